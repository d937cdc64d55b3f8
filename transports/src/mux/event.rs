//! What the multiplexer tells its owner: roles, channel ids, events, counters.

use core::fmt;

use smoltcp::time::Duration;

use super::error::RefuseReason;
use super::name::ServiceName;

/// Which end of the underlying session this side is; decides channel id parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Started the session; opens odd channel ids (1, 3, 5, ...).
    Initiator,
    /// Accepted the session; opens even channel ids (2, 4, 6, ...).
    Responder,
}

impl Role {
    /// Parity bit (id & 1) of the channel ids this role opens.
    pub fn parity(self) -> u32 {
        match self {
            Role::Initiator => 1,
            Role::Responder => 0,
        }
    }
}

/// A channel id (never 0; odd = opened by the session initiator, even = by the responder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u32);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Something the application should react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxEvent {
    /// The peer opened a channel for a registered service (already accepted).
    ChannelOpened {
        /// New channel.
        id: ChannelId,
        /// Service it was opened for.
        name: ServiceName,
    },
    /// The peer accepted a channel we opened.
    Accepted {
        /// Our channel.
        id: ChannelId,
    },
    /// Data is waiting: `read` until it returns `WouldBlock`.
    Readable {
        /// Channel with data.
        id: ChannelId,
    },
    /// A `write` that was short or blocked can make progress again.
    Writable {
        /// Channel with space.
        id: ChannelId,
    },
    /// The peer finished its direction; `read` returns `Ok(0)` once drained, or
    /// `Err(Closed)` if our direction was finished too and the slot was released.
    Finished {
        /// Channel.
        id: ChannelId,
    },
    /// The peer reset the channel (or refused our OPEN); the channel is gone.
    Reset {
        /// Channel.
        id: ChannelId,
        /// RESET code (see [`super::error::reset_code`]).
        code: u16,
    },
    /// We refused an incoming OPEN (answered with a RESET); counted in stats.
    Refused {
        /// Channel id the peer chose.
        id: ChannelId,
        /// Requested service.
        name: ServiceName,
        /// Why.
        reason: RefuseReason,
    },
    /// A PONG answered our latest PING.
    Pong {
        /// Time since the PING was queued.
        rtt: Duration,
    },
}

/// Counters and current buffer occupancy (to prove the memory caps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Channels currently holding a slot.
    pub channels: usize,
    /// Bytes waiting in send buffers (all channels).
    pub send_buffered: usize,
    /// Bytes waiting in receive buffers (all channels).
    pub recv_buffered: usize,
    /// Bytes of a partial frame held by the input reassembler.
    pub input_buffered: usize,
    /// Events waiting in the queue.
    pub events_queued: usize,
    /// Whole frames received.
    pub frames_rx: u64,
    /// Whole frames emitted.
    pub frames_tx: u64,
    /// Largest whole frame received (header included), bytes.
    pub largest_frame_rx: usize,
    /// Bytes fed to `handle_bytes`.
    pub bytes_rx: u64,
    /// Bytes emitted by `poll_transmit`.
    pub bytes_tx: u64,
    /// Application payload bytes sent in DATA frames.
    pub data_tx: u64,
    /// Application payload bytes received in DATA frames.
    pub data_rx: u64,
    /// Incoming OPENs refused with `unknown-service`.
    pub refused_unknown_service: u64,
    /// Incoming OPENs refused with `too-many-channels`.
    pub refused_too_many_channels: u64,
    /// Incoming OPENs refused with `access-denied`.
    pub refused_access_denied: u64,
    /// Frames for channels that were already closed or reset, ignored.
    pub stale_frames: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// PONGs that matched no outstanding PING, ignored.
    pub stale_pongs: u64,
}

impl MuxStats {
    /// All buffered payload bytes (send + receive + input reassembly).
    pub fn buffered_bytes(&self) -> usize {
        self.send_buffered
            .saturating_add(self.recv_buffered)
            .saturating_add(self.input_buffered)
    }
}
