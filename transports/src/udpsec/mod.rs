//! udp-sec: one reliable, ordered, authenticated byte stream over UDP datagrams.
//!
//! The properties that make QUIC worth having, in a small `no_std` transport of
//! our own: no head-of-line blocking by someone else's TCP, our own loss
//! recovery (RFC 6298 RTO, RFC 9002-style packet/time thresholds) and Reno
//! congestion control with pacing, datagrams that never exceed
//! [`MAX_DATAGRAM`] bytes. Sessions are set up by a Noise XK handshake behind
//! the [`Handshake`] trait ([`NoiseHandshake`]: the attested XK + identity
//! binding of `dsb-noise`); packets are sealed with ChaCha20-Poly1305.
//! [`UdpSecTransport`] puts it all behind the node's `Transport` trait.
//!
//! Sans-IO in the quinn-proto style: [`Connection`] takes datagrams and time in
//! and hands datagrams, events and deadlines out; [`Endpoint`] demultiplexes
//! many connections by session id. The wire format is specified byte by byte
//! in `docs/protocol.md`.

pub mod ack;
pub mod assembler;
pub mod config;
pub mod congestion;
pub mod connection;
pub mod crypto;
pub mod endpoint;
pub mod frame;
pub mod handshake;
pub mod noise;
pub mod pacing;
pub mod packet;
pub mod range_set;
pub mod recovery;
pub mod reject;
pub mod send_buf;
pub mod sent;
pub mod stats;
pub mod transport;

pub use config::Config;
pub use congestion::CongestionControl;
pub use connection::{CloseReason, Connection, Event, Role};
pub use endpoint::{Endpoint, EndpointConfig, EndpointError, EndpointStats};
pub use handshake::{Handshake, HsError, SessionKeys};
pub use noise::NoiseHandshake;
pub use reject::RejectCode;
pub use stats::{DropReason, RejectCounters, Stats};
pub use transport::{UdpSecConfig, UdpSecStats, UdpSecTransport};

/// Largest UDP payload udp-sec ever sends or accepts (a conservative PMTU).
pub const MAX_DATAGRAM: usize = 1200;

use smoltcp::time::{Duration, Instant};

/// `now - earlier`, or zero when `earlier` is in the future.
pub(crate) fn since(now: Instant, earlier: Instant) -> Duration {
    if now > earlier {
        now - earlier
    } else {
        Duration::ZERO
    }
}
