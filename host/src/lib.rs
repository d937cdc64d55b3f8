//! OS mode: the node runtime of the image (`dsb_app::node`) over the
//! operating system's UDP and TCP sockets, so a host process joins a real
//! LAN as one more node (discovery on multicast 239.42.0.1:37020, sessions
//! over TCP and udp-sec), running exactly the code the image runs.
//!
//! - [`OsSockets`]: [`dsb_transports::sockets::Sockets`] over non-blocking
//!   std/libc sockets (see its module for the UDP and TCP models);
//! - [`HostStack`]: the [`dsb_app::net::Network`] beneath a [`HostNode`]:
//!   those sockets on one local address (given, or the default route's),
//!   always up, [`HostStack::wait`] to sleep until a socket has work;
//! - [`OsRandom`]: getrandom(2) for the node's handshakes and session ids.
//!
//! The caller owns the clock: it passes `Instant`s measured from its start
//! to `Node::poll`, as the image's platform does. Host only: never a
//! dependency of the image.
//!
//! ```no_run
//! use dsb_host::{HostNode, HostStack, OsRandom};
//! # fn identity() -> dsb_noise::Identity { unimplemented!() }
//! let stack = HostStack::new(None).expect("an IPv4 default route");
//! let mut node = HostNode::new(stack, identity(), dsb_app::node::NodeConfig::new(37021));
//! let start = std::time::Instant::now();
//! loop {
//!     let now = smoltcp::time::Instant::from_micros(start.elapsed().as_micros() as i64);
//!     node.poll(now, &mut OsRandom);
//!     while let Some(event) = node.next_event() { println!("{event:?}"); }
//!     let due = node.poll_at(now).map_or(100_000, |t| (t - now).total_micros()).min(100_000);
//!     node.stack().wait(std::time::Duration::from_micros(due)).expect("poll");
//! }
//! ```

pub mod error;
pub mod netns;
pub mod rng;
pub mod sockets;
pub mod stack;
mod sys;

pub use error::HostError;
pub use rng::OsRandom;
pub use sockets::{OsSockets, OsStats};
pub use stack::{default_address, interface_cidr, HostStack};

/// A node over the operating system's sockets.
pub type HostNode = dsb_app::node::NodeOn<HostStack>;
