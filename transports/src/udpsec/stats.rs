//! Counters for tests, benches and logs: why datagrams were dropped, and a
//! snapshot of the recovery / congestion state of a connection.

use smoltcp::time::Duration;

/// Why an incoming datagram (or part of one) was dropped. Every rejection is
/// counted under its stable [`label`](DropReason::label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than the fixed header.
    Truncated,
    /// Larger than [`MAX_DATAGRAM`](super::MAX_DATAGRAM).
    Oversized,
    /// `ver` is not 1.
    BadVersion,
    /// `typ` is not a known packet type.
    UnknownType,
    /// Reserved bits / fields not zero, or a field out of range.
    Malformed,
    /// The header `len` does not match the datagram length.
    LengthMismatch,
    /// No connection with this session id.
    UnknownSession,
    /// A data packet arrived before the session keys exist.
    NoKeys,
    /// Packet number already received.
    Replay,
    /// Packet number below the replay window.
    TooOld,
    /// AEAD authentication failed (forged or corrupted).
    AuthFailed,
    /// An authenticated payload with a malformed frame.
    MalformedFrame,
    /// Stream data beyond the advertised receive credit.
    FlowControl,
    /// The reassembly buffer has no room for another gap.
    ReassemblyFull,
    /// An ACK for a packet number never sent.
    InvalidAck,
    /// A handshake message not expected in the current state.
    UnexpectedHandshake,
    /// The handshake layer rejected a message.
    HandshakeFailed,
    /// Handshake initiation over the per-source or global rate limit.
    RateLimited,
    /// Too many half-open handshakes.
    HalfOpenFull,
    /// Too many connections.
    EndpointFull,
    /// The connection is closed or draining.
    Closed,
}

impl DropReason {
    /// Number of variants (size of [`RejectCounters`]).
    pub const COUNT: usize = 21;

    /// Every variant, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::Oversized,
        DropReason::BadVersion,
        DropReason::UnknownType,
        DropReason::Malformed,
        DropReason::LengthMismatch,
        DropReason::UnknownSession,
        DropReason::NoKeys,
        DropReason::Replay,
        DropReason::TooOld,
        DropReason::AuthFailed,
        DropReason::MalformedFrame,
        DropReason::FlowControl,
        DropReason::ReassemblyFull,
        DropReason::InvalidAck,
        DropReason::UnexpectedHandshake,
        DropReason::HandshakeFailed,
        DropReason::RateLimited,
        DropReason::HalfOpenFull,
        DropReason::EndpointFull,
        DropReason::Closed,
    ];

    /// Stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversized => "oversized",
            DropReason::BadVersion => "bad-version",
            DropReason::UnknownType => "unknown-type",
            DropReason::Malformed => "malformed",
            DropReason::LengthMismatch => "length-mismatch",
            DropReason::UnknownSession => "unknown-session",
            DropReason::NoKeys => "no-keys",
            DropReason::Replay => "replay",
            DropReason::TooOld => "too-old",
            DropReason::AuthFailed => "auth-failed",
            DropReason::MalformedFrame => "malformed-frame",
            DropReason::FlowControl => "flow-control",
            DropReason::ReassemblyFull => "reassembly-full",
            DropReason::InvalidAck => "invalid-ack",
            DropReason::UnexpectedHandshake => "unexpected-handshake",
            DropReason::HandshakeFailed => "handshake-failed",
            DropReason::RateLimited => "rate-limited",
            DropReason::HalfOpenFull => "half-open-full",
            DropReason::EndpointFull => "endpoint-full",
            DropReason::Closed => "closed",
        }
    }

    fn index(&self) -> usize {
        *self as usize
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.label())
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounters {
    counts: [u64; DropReason::COUNT],
}

impl RejectCounters {
    /// Count one rejection.
    pub fn count(&mut self, reason: DropReason) {
        if let Some(c) = self.counts.get_mut(reason.index()) {
            *c = c.saturating_add(1);
        }
    }

    /// How many datagrams were dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts.get(reason.index()).copied().unwrap_or(0)
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(label, count)` for every reason with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (r.label(), self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Snapshot of one connection's counters and recovery state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Congestion window (bytes).
    pub cwnd: u64,
    /// Slow-start threshold (bytes; `u64::MAX` until the first loss).
    pub ssthresh: u64,
    /// Smoothed RTT (initial RTT before the first sample).
    pub srtt: Duration,
    /// RTT variation.
    pub rttvar: Duration,
    /// Smallest RTT sample seen.
    pub min_rtt: Duration,
    /// Current retransmission timeout (without backoff).
    pub rto: Duration,
    /// Bytes of ack-eliciting packets not yet acknowledged or declared lost.
    pub bytes_in_flight: u64,
    /// Datagrams sent (handshake and data).
    pub packets_sent: u64,
    /// Authenticated data packets received.
    pub packets_received: u64,
    /// Packets declared lost (by threshold or RTO).
    pub packets_lost: u64,
    /// Packets that carried retransmitted stream data.
    pub packets_retransmitted: u64,
    /// Pure acknowledgement packets sent.
    pub acks_sent: u64,
    /// Packets that carried IMMEDIATE_ACK (the flight's last before a full window).
    pub immediate_acks_requested: u64,
    /// Handshake messages re-sent.
    pub handshake_retransmits: u64,
    /// Tail-loss probes sent (probe timer fired before the RTO).
    pub tlp_count: u64,
    /// Retransmission timeouts fired.
    pub rto_count: u64,
    /// Congestion events (window reductions on loss).
    pub congestion_events: u64,
    /// Stream bytes sent for the first time.
    pub stream_bytes_sent: u64,
    /// Stream bytes sent again.
    pub stream_bytes_retransmitted: u64,
    /// Stream bytes handed to the application.
    pub stream_bytes_read: u64,
    /// Datagram bytes sent.
    pub bytes_sent: u64,
    /// The sender had nothing to send while the window had room (acks then
    /// do not grow the window).
    pub app_limited: bool,
    /// Rejected datagrams by reason.
    pub rejected: RejectCounters,
}
