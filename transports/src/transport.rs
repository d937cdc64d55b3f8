//! The seam between the node and whatever carries its sessions.
//!
//! A [`Transport`] turns a discovered peer into a reliable, ordered,
//! authenticated byte stream: it connects and accepts, runs the Noise XK
//! handshake with identity binding, and then moves plaintext in and out of
//! bounded buffers. The node and the multiplexer above never know whether TCP
//! or udp-sec carries them. Transports do no I/O of their own: each call gets
//! a [`Cx`] with the time, the [`Sockets`] of the stack beneath (smoltcp or
//! the operating system's), the trust store and the RNG.

use alloc::collections::VecDeque;
use core::fmt;

use dsb_noise::{Binding, DeviceId, NoiseError, TrustStore};

use crate::sockets::Sockets;
use crate::udpsec::RejectCode;
use rand_core::CryptoRngCore;
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;

/// Which transport carries a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    Tcp,
    UdpSec,
}

impl TransportKind {
    /// The label used in markers (`tcp`, `udp-sec`).
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::UdpSec => "udp-sec",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Everything a transport may touch during one call.
pub struct Cx<'a> {
    pub now: Instant,
    /// The stack's sockets (see [`crate::sockets`]).
    pub sockets: &'a mut dyn Sockets,
    /// Who owns which keys (the peer table).
    pub trust: &'a mut dyn TrustStore,
    pub rng: &'a mut dyn CryptoRngCore,
}

/// Where and who a peer is, as its verified announce said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub device_id: DeviceId,
    /// The keys bound to `device_id`: the handshake must authenticate exactly these.
    pub binding: Binding,
    pub ip: Ipv4Address,
    pub tcp_port: Option<u16>,
    pub udpsec_port: Option<u16>,
}

/// A connection of one transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// Hands out connection ids: 1, 2, …, wrapping past `u32::MAX` to 1 (0 is never used).
#[derive(Debug)]
pub(crate) struct ConnIds {
    next: u32,
}

impl ConnIds {
    pub(crate) const fn new() -> Self {
        ConnIds { next: 1 }
    }

    pub(crate) fn alloc(&mut self) -> ConnId {
        let id = ConnId(self.next);
        self.next = self.next.wrapping_add(1).max(1);
        id
    }
}

/// Most events a transport queues for the node; beyond this the oldest is dropped.
pub const MAX_EVENTS: usize = 64;

/// The bounded queue of events a transport keeps for the node.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    q: VecDeque<TransportEvent>,
}

impl EventQueue {
    pub(crate) fn push(&mut self, e: TransportEvent) {
        if self.q.len() >= MAX_EVENTS {
            self.q.pop_front();
        }
        self.q.push_back(e);
    }

    pub(crate) fn pop(&mut self) -> Option<TransportEvent> {
        self.q.pop_front()
    }
}

/// What a transport reports to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// The handshake completed and the peer's keys are the ones bound to its id.
    Authenticated { conn: ConnId, peer: DeviceId },
    /// The handshake failed; `claimed` is the id the peer claimed (or we expected).
    HandshakeFailed {
        conn: ConnId,
        claimed: Option<DeviceId>,
        error: TransportError,
    },
    /// The connection ended (after or before authentication).
    Closed {
        conn: ConnId,
        error: Option<TransportError>,
    },
}

/// Why a connection failed, with a stable label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The handshake or the session layer rejected the peer or its bytes.
    Noise(NoiseError),
    /// The peer does not offer this transport (no port in its announce).
    NotOffered,
    /// The connection cap is reached.
    TooManyConnections,
    /// No such connection.
    UnknownConnection,
    /// The network stack refused (no socket, unroutable, port in use).
    Socket,
    /// The peer reset or closed the connection before it was established
    /// (TCP: a RST during the handshake or before key confirmation).
    Refused,
    /// The peer refused the handshake and said why (udp-sec HS_REJECT).
    Rejected(RejectCode),
    /// The peer closed the stream.
    PeerClosed,
    /// Nothing heard from the peer within the deadline.
    Timeout,
    /// Data before authentication, or after close.
    BadState,
}

impl TransportError {
    /// Stable label for markers and counters.
    pub fn label(&self) -> &'static str {
        match self {
            TransportError::Noise(e) => e.label(),
            TransportError::NotOffered => "not-offered",
            TransportError::TooManyConnections => "too-many-connections",
            TransportError::UnknownConnection => "unknown-connection",
            TransportError::Socket => "socket",
            TransportError::Refused => "refused",
            TransportError::Rejected(c) => c.refusal_label(),
            TransportError::PeerClosed => "peer-closed",
            TransportError::Timeout => "timeout",
            TransportError::BadState => "bad-state",
        }
    }

    /// Whether the peer proved keys other than the ones bound to the id it
    /// claimed (or we expected): the `identity mismatch` case. An unknown
    /// peer is not a mismatch (its announce may simply not have arrived yet).
    pub fn is_identity_mismatch(&self) -> bool {
        matches!(
            self,
            TransportError::Noise(NoiseError::IdentityMismatch | NoiseError::BadSignature)
        )
    }

    /// Whether the peer failed to prove the identity it claimed
    /// (a mismatch, a bad attestation, or an id we have no binding for).
    pub fn is_identity_failure(&self) -> bool {
        matches!(self, TransportError::Noise(e) if e.is_identity_failure())
    }

    /// Whether the peer answered and refused (as opposed to never answering):
    /// it is reachable over this transport.
    pub fn is_refusal(&self) -> bool {
        matches!(self, TransportError::Refused | TransportError::Rejected(_))
    }
}

impl From<NoiseError> for TransportError {
    fn from(e: NoiseError) -> Self {
        TransportError::Noise(e)
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A transport: connects, accepts, authenticates, and carries plaintext.
///
/// `read` and `write` only touch the transport's bounded buffers; `poll`
/// moves bytes between those buffers and the network and drives handshakes
/// and timers. Application bytes are never accepted or delivered before the
/// `Authenticated` event.
pub trait Transport {
    fn kind(&self) -> TransportKind;
    /// Opens the listening side (call once the interface has an address).
    fn listen(&mut self, cx: &mut Cx<'_>) -> Result<(), TransportError>;
    /// Starts a connection and handshake towards `peer`.
    fn connect(&mut self, cx: &mut Cx<'_>, peer: &PeerAddr) -> Result<ConnId, TransportError>;
    /// Drives I/O, handshakes and timers.
    fn poll(&mut self, cx: &mut Cx<'_>);
    /// The next event, if any.
    fn poll_event(&mut self) -> Option<TransportEvent>;
    /// Plaintext received on an authenticated connection.
    fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, TransportError>;
    /// Queues plaintext; returns how much was accepted (0 = backpressure).
    fn write(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, TransportError>;
    /// Plaintext bytes `write` would accept in full now.
    fn write_capacity(&self, conn: ConnId) -> usize;
    /// Closes a connection (gracefully where the transport can).
    fn close(&mut self, cx: &mut Cx<'_>, conn: ConnId);
    /// Ends a connection without waiting for the peer to take what was
    /// written: the peer is known to be gone (it restarted), so a graceful
    /// close would hold the connection's slot until a timeout. The peer is
    /// told where it can be (TCP RST, udp-sec CLOSE).
    fn abort(&mut self, cx: &mut Cx<'_>, conn: ConnId);
    /// When `poll` must run again at the latest.
    fn poll_at(&self) -> Option<Instant>;
}

impl core::error::Error for TransportError {}
