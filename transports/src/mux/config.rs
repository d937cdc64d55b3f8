//! Configuration and the fixed caps of the multiplexer.
//!
//! Memory is bounded by construction: receive buffers never exceed the credit
//! granted (`recv_window` per channel, `session_window` in total), send buffers
//! never exceed `send_buffer` per channel and `max_pending_send` in total, and
//! the input reassembly buffer never exceeds one frame.

use smoltcp::time::Duration;

use super::error::ConfigError;
use super::frame::{MAX_FRAME_LEN, MAX_FRAME_PAYLOAD};

/// Upper limit for [`MuxConfig::max_channels`].
pub const MAX_CHANNELS_LIMIT: usize = 1024;
/// Most service names one session accepts (`register_service`).
pub const MAX_SERVICES: usize = 16;
/// Most queued events; further events are dropped and counted (`events_dropped`).
pub const EVENT_QUEUE_CAP: usize = 256;
/// Incoming OPENs are refused (`too-many-channels`) when fewer event slots than this are free.
pub const EVENT_HEADROOM: usize = 16;
/// Most RESETs answering refused OPENs waiting to be sent; one more is `control-overflow`.
pub const MAX_PENDING_REFUSALS: usize = 64;
/// Longest allowed `idle_timeout`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Tunables of one multiplexed session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxConfig {
    /// Most channels alive at once (both directions together).
    pub max_channels: usize,
    /// Per-channel receive window = receive buffer size (bytes of credit granted).
    pub recv_window: u32,
    /// Session-wide receive window (connection-level credit, all channels together).
    pub session_window: u32,
    /// Per-channel send buffer cap (bytes `write` accepts before blocking).
    pub send_buffer: usize,
    /// Session-wide cap on bytes waiting in send buffers.
    pub max_pending_send: usize,
    /// Largest DATA payload this side sends (<= `MAX_FRAME_PAYLOAD`).
    pub max_frame_payload: usize,
    /// The session fails with `idle-timeout` when nothing arrives for this long.
    pub idle_timeout: Duration,
    /// A PING is sent when nothing arrived (and no PING was sent) for this long.
    pub keepalive_interval: Duration,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            max_channels: 16,
            recv_window: 64 * 1024,
            session_window: 256 * 1024,
            send_buffer: 64 * 1024,
            max_pending_send: 256 * 1024,
            max_frame_payload: MAX_FRAME_PAYLOAD,
            idle_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(10),
        }
    }
}

impl MuxConfig {
    /// Checks every field against its limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_channels == 0 || self.max_channels > MAX_CHANNELS_LIMIT {
            return Err(ConfigError::MaxChannels);
        }
        if self.recv_window == 0
            || self.session_window == 0
            || self.send_buffer == 0
            || self.max_pending_send == 0
        {
            return Err(ConfigError::ZeroCapacity);
        }
        if self.max_frame_payload == 0 || self.max_frame_payload > MAX_FRAME_PAYLOAD {
            return Err(ConfigError::FramePayload);
        }
        if self.keepalive_interval == Duration::ZERO
            || self.keepalive_interval >= self.idle_timeout
            || self.idle_timeout > MAX_TIMEOUT
        {
            return Err(ConfigError::Timers);
        }
        Ok(())
    }

    /// Upper bound of buffered payload bytes (send + receive + input reassembly);
    /// [`super::MuxStats::buffered_bytes`] never exceeds it.
    pub fn memory_bound(&self) -> usize {
        let recv = (self.recv_window as usize)
            .saturating_mul(self.max_channels)
            .min(self.session_window as usize);
        self.max_pending_send
            .min(self.send_buffer.saturating_mul(self.max_channels))
            .saturating_add(recv)
            .saturating_add(MAX_FRAME_LEN)
    }
}
