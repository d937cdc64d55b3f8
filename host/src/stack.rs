//! The network beneath a node in OS mode: the operating system's sockets,
//! bound to one local IPv4 address, and always up (the host configured its
//! interfaces long before).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use dsb_app::net::Network;
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Cidr;

use crate::error::HostError;
use crate::sockets::OsSockets;
use crate::sys;

/// Where [`default_address`] pretends to send: TEST-NET-1 (RFC 5737), an
/// address reserved for documentation, so nothing real is ever named.
pub const ROUTE_PROBE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9);

/// The address of the interface the default route leaves through.
///
/// A UDP socket is `connect`ed to [`ROUTE_PROBE`]: for UDP, connect only
/// looks up the route and fixes the source address the kernel would use;
/// no datagram is sent. The socket's local address is the answer.
pub fn default_address() -> Result<Ipv4Addr, HostError> {
    let probe = || -> io::Result<Ipv4Addr> {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        s.connect(ROUTE_PROBE)?;
        match s.local_addr()? {
            std::net::SocketAddr::V4(a) => Ok(*a.ip()),
            std::net::SocketAddr::V6(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    };
    match probe() {
        Ok(a) if !a.is_unspecified() => Ok(a),
        _ => Err(HostError::NoDefaultRoute),
    }
}

/// `address` with the prefix of the interface that holds it.
pub fn interface_cidr(address: Ipv4Addr) -> Result<Ipv4Cidr, HostError> {
    match sys::prefix_of(address) {
        Ok(Some(prefix)) => Ok(Ipv4Cidr::new(address, prefix)),
        Ok(None) => Err(HostError::AddressNotLocal(address)),
        Err(e) => Err(HostError::Os(e.kind())),
    }
}

/// The OS-socket stack of one node.
pub struct HostStack {
    sockets: OsSockets,
    cidr: Ipv4Cidr,
}

impl HostStack {
    /// A stack on `address` (`--bind <ip>`), or on the address of the
    /// default route's interface when `None`. The address must belong to an
    /// interface of this host (its prefix gives the broadcast fallback).
    pub fn new(address: Option<Ipv4Addr>) -> Result<HostStack, HostError> {
        let address = match address {
            Some(a) => a,
            None => default_address()?,
        };
        Ok(HostStack::with_cidr(interface_cidr(address)?))
    }

    /// A stack on `cidr` as given (no check that the host holds it).
    pub fn with_cidr(cidr: Ipv4Cidr) -> HostStack {
        HostStack {
            sockets: OsSockets::new(cidr.address()),
            cidr,
        }
    }

    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The sockets (counters, what is open).
    pub fn os_sockets(&self) -> &OsSockets {
        &self.sockets
    }

    /// Blocks until a socket may have work or `timeout` passed (the node's
    /// `poll_at` gives the timeout).
    pub fn wait(&self, timeout: Duration) -> Result<(), HostError> {
        self.sockets
            .wait(timeout)
            .map_err(|e| HostError::Os(e.kind()))
    }
}

impl Network for HostStack {
    type Sockets<'a> = &'a mut OsSockets;

    fn poll(&mut self, _now: Instant) -> bool {
        self.sockets.poll()
    }

    /// Nothing in the OS stack is timed: readiness wakes [`HostStack::wait`].
    fn poll_at(&mut self, _now: Instant) -> Option<Instant> {
        None
    }

    fn is_up(&self) -> bool {
        true
    }

    fn address(&self) -> Option<Ipv4Cidr> {
        Some(self.cidr)
    }

    fn sockets(&mut self) -> &mut OsSockets {
        &mut self.sockets
    }
}
