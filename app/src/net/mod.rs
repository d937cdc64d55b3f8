//! Host-testable networking core of a node: a smoltcp stack over any
//! `phy::Device` that brings itself up (DHCPv4, then an ICMP echo to the gateway)
//! and reports what happened as events. The image drives it over virtio-net;
//! host tests drive it over a simulated wire. [`Network`] is what the node
//! needs of any stack beneath it (this one, or the OS's sockets in `dsb-host`).

pub mod guard;
pub mod network;
pub mod ping;
pub mod stack;

pub use guard::{GuardStats, LinkGuard};
pub use network::Network;
pub use ping::{PingInput, Pinger};
pub use stack::{
    static_fallback_for, GatewayPing, Lease, NetEvent, NetStack, NetStackConfig, NetStackError,
    Phase, StackFailure,
};
