//! What a node needs of the network beneath it, whichever stack that is:
//! smoltcp over a NIC ([`NetStack`], the image and the simulated wire) or the
//! operating system's sockets (`dsb-host`, the host CLI).

use dsb_transports::sockets::{SmolSockets, Sockets};
use smoltcp::phy::Device;
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Cidr;

use super::stack::{NetStack, Phase};

/// The network beneath one node.
///
/// Polled like everything else: `poll` moves bytes between the sockets'
/// buffers and the network (and runs the stack's own bring-up), never blocks
/// and never reads a clock. The node starts its bus once `is_up` and
/// `address` say so, then uses [`Network::sockets`] for discovery and its
/// transports.
pub trait Network {
    /// The sockets, borrowed for one call of the node.
    type Sockets<'a>: Sockets
    where
        Self: 'a;

    /// Moves what is due at `now`; returns whether anything may have changed.
    fn poll(&mut self, now: Instant) -> bool;
    /// When `poll` must run again at the latest even if nothing arrives.
    fn poll_at(&mut self, now: Instant) -> Option<Instant>;
    /// Ready for the bus (an address, and whatever bring-up the stack has).
    fn is_up(&self) -> bool;
    /// The IPv4 address announced to peers, and its prefix (broadcast fallback).
    fn address(&self) -> Option<Ipv4Cidr>;
    /// The stack's sockets.
    fn sockets(&mut self) -> Self::Sockets<'_>;
}

impl<D: Device> Network for NetStack<D> {
    type Sockets<'a>
        = SmolSockets<'a, 'static>
    where
        Self: 'a;

    fn poll(&mut self, now: Instant) -> bool {
        NetStack::poll(self, now)
    }

    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        NetStack::poll_at(self, now)
    }

    fn is_up(&self) -> bool {
        self.phase() == Phase::Up
    }

    fn address(&self) -> Option<Ipv4Cidr> {
        NetStack::address(self)
    }

    fn sockets(&mut self) -> SmolSockets<'_, 'static> {
        let (iface, sockets) = self.iface_and_sockets();
        SmolSockets::new(iface, sockets)
    }
}
