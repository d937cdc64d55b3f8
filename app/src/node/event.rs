//! What a node reports, with typed reasons: every label a console line or a
//! counter shows comes from one of these enums.

use alloc::collections::VecDeque;
use core::fmt;

use dsb_discovery::AnnounceError;
use dsb_noise::DeviceId;
use dsb_transports::mux::{MuxError, RefuseReason, ServiceName};
use dsb_transports::transport::{TransportError, TransportKind};

use super::owned::{CallId, TransferId};
use crate::bus::blob::{BlobCode, BlobEvent};
use crate::bus::{ChannelRef, ServiceList};

/// Why TCP carries a session although udp-sec exists in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// udp-sec is switched off on this node (`udpsec=off`).
    Disabled,
    /// Our udp-sec socket could not be bound.
    ListenFailed,
    /// The peer announces no udp-sec port.
    NotOffered,
    /// The peer never answered our udp-sec handshake within the deadline:
    /// it is unreachable over UDP (e.g. filtered). A refusal is not this.
    Unreachable,
    /// The peer opened a TCP session to us although both sides offer udp-sec.
    PeerChoseTcp,
}

impl FallbackReason {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            FallbackReason::Disabled => "disabled",
            FallbackReason::ListenFailed => "listen-failed",
            FallbackReason::NotOffered => "not-offered",
            FallbackReason::Unreachable => "unreachable",
            FallbackReason::PeerChoseTcp => "peer-chose-tcp",
        }
    }
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// The transport ended it (peer closed, reset, idle, decrypt failure...).
    Transport(TransportError),
    /// The multiplexer failed (protocol violation, idle timeout, GOAWAY).
    Mux(MuxError),
    /// A session with the same peer that wins the tie-break replaced it.
    Superseded,
    /// The transport took fewer bytes than it said it would.
    ShortWrite,
    /// This node closed it.
    Local,
    /// The peer's announces show it restarted since the session began.
    PeerRestarted,
}

impl DownReason {
    /// Stable label.
    pub fn label(&self) -> &'static str {
        match self {
            DownReason::Transport(e) => e.label(),
            DownReason::Mux(e) => e.label(),
            DownReason::Superseded => "superseded",
            DownReason::ShortWrite => "transport-short-write",
            DownReason::Local => "local",
            DownReason::PeerRestarted => "peer-restarted",
        }
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which way a failed handshake went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We dialled; the peer refused, or we rejected its answer.
    Outbound,
    /// The peer dialled; we rejected its handshake.
    Inbound,
}

/// Why the bus could not start on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusFailure {
    DiscoveryBind,
    DeviceId,
    TcpListen,
    UdpSecListen,
    MuxConfig,
}

impl BusFailure {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            BusFailure::DiscoveryBind => "discovery bind",
            BusFailure::DeviceId => "device id",
            BusFailure::TcpListen => "tcp listen",
            BusFailure::UdpSecListen => "udp-sec listen",
            BusFailure::MuxConfig => "mux config",
        }
    }
}

/// What happened in the node, in order: the bus (discovery, sessions,
/// channels) as the image prints it and as applications see it.
///
/// `PeerOnline` carries the peer's service list (up to 8 names, ~270
/// bytes), so every event is that large; the queue holds at most
/// [`EVENT_QUEUE_CAP`] of them (about 70 KiB per node).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// Discovery socket bound, receive path active.
    DiscoveryUp {
        multicast: bool,
    },
    /// An announce left the discovery socket for the interface (`count` so far).
    AnnounceSent {
        count: u32,
    },
    /// A peer's first verified announce (the console's `peer found`).
    PeerFound(DeviceId),
    /// A peer is on the bus: what it publishes and which transports it offers.
    PeerOnline {
        peer: DeviceId,
        services: ServiceList,
        tcp: bool,
        udpsec: bool,
    },
    /// A peer left the bus (its announces stopped: TTL) or was evicted.
    PeerOffline(DeviceId),
    /// A datagram on the discovery port was dropped.
    AnnounceIgnored(AnnounceError),
    /// The udp-sec socket is bound and accepting sessions.
    UdpSecListening {
        port: u16,
    },
    /// udp-sec is off (`peer: None`) or does not carry the session with
    /// `peer` (`reason` says why): TCP carries it instead.
    UdpSecFallback {
        peer: Option<DeviceId>,
        reason: FallbackReason,
    },
    TransportSelected {
        peer: DeviceId,
        kind: TransportKind,
    },
    SessionConnect(DeviceId),
    IdentityBound(DeviceId),
    /// The peer failed to prove the identity it claimed (or that we expected).
    IdentityMismatch(DeviceId),
    /// A handshake failed: we refused the peer's (`Inbound`), or ours was
    /// refused or did not complete (`Outbound`).
    HandshakeFailed {
        peer: Option<DeviceId>,
        error: TransportError,
        direction: Direction,
    },
    /// Both sides agree the session exists (the initiator has key confirmation).
    AuthOk(DeviceId),
    /// The authenticated session runs over udp-sec.
    UdpSecSessionOk(DeviceId),
    /// A session is up: channels to and from `peer` can be used.
    SessionUp {
        peer: DeviceId,
        kind: TransportKind,
        session: u32,
    },
    /// The session ended; its channels are gone.
    SessionDown {
        peer: DeviceId,
        kind: TransportKind,
        reason: DownReason,
    },
    /// The peer accepted a channel we opened.
    ChannelOpened {
        ch: ChannelRef,
        service: ServiceName,
    },
    /// The peer opened a channel to one of our services, and its policy allowed it.
    ChannelAccepted {
        ch: ChannelRef,
        service: ServiceName,
    },
    /// Bytes are waiting on a channel (a hint: `read` until `WouldBlock`).
    ChannelReadable(ChannelRef),
    /// A write that was refused or short can make progress again.
    ChannelWritable(ChannelRef),
    /// The peer finished its direction (`read` returns 0 once drained).
    ChannelFinished(ChannelRef),
    /// The peer reset the channel with an application code.
    ChannelReset {
        ch: ChannelRef,
        code: u16,
    },
    /// The peer refused a channel we opened: `access-denied`,
    /// `unknown-service` or `too-many-channels`.
    ChannelRefused {
        ch: ChannelRef,
        service: ServiceName,
        reason: RefuseReason,
    },
    /// We refused a channel `peer` opened to `service` (its policy denies the peer).
    ChannelDenied {
        peer: DeviceId,
        service: ServiceName,
    },
    /// A call the application made has its answer (`Node::take_call`).
    CallDone(CallId),
    /// A transfer the application started ended (`Node::take_transfer`).
    TransferDone(TransferId),
    /// This node's blob store served `peer`.
    BlobServed {
        peer: DeviceId,
        what: BlobServed,
    },
    /// Our own node could not start its bus layer (socket bind, listen).
    BusFailed(BusFailure),
}

/// What the blob store did for a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobServed {
    /// An upload was verified and stored (or the same blob was there).
    Stored { size: u64 },
    /// A download was sent: bytes `[from, size)`.
    Sent { from: u64, size: u64 },
    /// A request was refused with this code.
    Refused(BlobCode),
    /// An upload stopped early; `have` bytes are kept for it to resume.
    Interrupted { have: u64 },
}

impl BlobServed {
    pub(crate) fn from_event(e: &BlobEvent) -> BlobServed {
        match e {
            BlobEvent::Stored { size, .. } => BlobServed::Stored { size: *size },
            BlobEvent::Sent { from, size, .. } => BlobServed::Sent {
                from: *from,
                size: *size,
            },
            BlobEvent::Refused { code } => BlobServed::Refused(*code),
            BlobEvent::Interrupted { have, .. } => BlobServed::Interrupted { have: *have },
        }
    }
}

/// Most queued node events (oldest dropped beyond this, and counted).
pub const EVENT_QUEUE_CAP: usize = 256;

/// The node's bounded event queue.
#[derive(Debug, Default)]
pub(crate) struct Events {
    q: VecDeque<NodeEvent>,
    dropped: u32,
}

impl Events {
    pub(crate) fn push(&mut self, e: NodeEvent) {
        if self.q.len() >= EVENT_QUEUE_CAP {
            self.q.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        self.q.push_back(e);
    }

    pub(crate) fn pop(&mut self) -> Option<NodeEvent> {
        self.q.pop_front()
    }

    pub(crate) fn dropped(&self) -> u32 {
        self.dropped
    }
}
