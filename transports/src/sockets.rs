//! The sockets the protocol layers above a network stack use, behind one
//! object-safe trait, so the same transports and node run over smoltcp (the
//! image, the simulated wire) or over the operating system's sockets (the
//! host CLI, `dsb-host`).
//!
//! The model is smoltcp's, because that is what the transports were written
//! against: sockets are polled, never block, and buffer a bounded amount each
//! way; the stack beneath moves bytes between those buffers and the network
//! when it is polled. What the users need, and nothing more:
//!
//! - **UDP** (discovery, udp-sec): bind a port with bounded buffers, send a
//!   datagram to an endpoint, receive the next datagram (handed to a closure,
//!   so smoltcp needs no copy), how many bytes wait to leave, join a
//!   multicast group (which may fail: discovery then falls back to the
//!   subnet broadcast address), close.
//! - **TCP** (the `tcp` transport): listen slots (a socket in `LISTEN` that
//!   the first SYN to its port turns into a connection; the transport keeps
//!   [`crate::tcp::ACCEPT_BACKLOG`] of them armed), connect, a status
//!   snapshot (state, queues, remote endpoint) with smoltcp's predicates,
//!   send and receive through bounded buffers, graceful close, abort (a RST
//!   at once), remove.
//!
//! [`SmolSockets`] implements the trait over a smoltcp `Interface` and
//! `SocketSet`, call for call what the transports did before the trait
//! existed. A socket is named by a [`SocketId`]: a smoltcp `SocketHandle`
//! for that implementation, an index for any other.

use alloc::vec;
use core::fmt;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpEndpoint, Ipv4Address};

/// Names one socket of one [`Sockets`] implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketId(Repr);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Repr {
    Smoltcp(SocketHandle),
    Index(u32),
}

impl SocketId {
    /// The id of a smoltcp socket.
    pub const fn from_smoltcp(handle: SocketHandle) -> Self {
        SocketId(Repr::Smoltcp(handle))
    }

    /// The smoltcp handle, if this names a smoltcp socket.
    pub const fn smoltcp(self) -> Option<SocketHandle> {
        match self.0 {
            Repr::Smoltcp(h) => Some(h),
            Repr::Index(_) => None,
        }
    }

    /// An id for implementations that keep their sockets in a table.
    pub const fn from_index(index: u32) -> Self {
        SocketId(Repr::Index(index))
    }

    /// The table index, if this was made by [`SocketId::from_index`].
    pub const fn index(self) -> Option<u32> {
        match self.0 {
            Repr::Index(i) => Some(i),
            Repr::Smoltcp(_) => None,
        }
    }
}

/// Why a socket call failed, with a stable label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketError {
    /// The port could not be bound (in use, or not allowed).
    Bind,
    /// The destination cannot be reached from here (unspecified, no route).
    Unaddressable,
    /// No buffer room now (a datagram): try again after the next poll.
    BufferFull,
    /// No more sockets can be opened (a cap of the implementation or of the OS).
    Exhausted,
    /// The id names no socket of this kind.
    NoSocket,
    /// Not possible in the socket's state (send before it is established,
    /// receive after the peer's FIN was read or after a reset).
    InvalidState,
    /// Any other error of the operating system.
    Os,
}

impl SocketError {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            SocketError::Bind => "bind",
            SocketError::Unaddressable => "unaddressable",
            SocketError::BufferFull => "buffer-full",
            SocketError::Exhausted => "exhausted",
            SocketError::NoSocket => "no-socket",
            SocketError::InvalidState => "invalid-state",
            SocketError::Os => "os",
        }
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl core::error::Error for SocketError {}

/// A UDP socket to bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpSpec {
    pub port: u16,
    /// Datagrams buffered each way.
    pub packets: usize,
    /// Payload bytes buffered each way.
    pub bytes: usize,
    /// The port is shared by every node of a host and receives multicast and
    /// broadcast datagrams (discovery). An OS implementation binds it to the
    /// wildcard address with address and port reuse and allows broadcast;
    /// other sockets are bound to the node's own address, exclusively.
    /// smoltcp has one node per interface and ignores it.
    pub shared: bool,
}

/// A TCP socket's state, in terms of RFC 793 (smoltcp's `tcp::State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl From<tcp::State> for TcpState {
    fn from(s: tcp::State) -> Self {
        match s {
            tcp::State::Closed => TcpState::Closed,
            tcp::State::Listen => TcpState::Listen,
            tcp::State::SynSent => TcpState::SynSent,
            tcp::State::SynReceived => TcpState::SynReceived,
            tcp::State::Established => TcpState::Established,
            tcp::State::FinWait1 => TcpState::FinWait1,
            tcp::State::FinWait2 => TcpState::FinWait2,
            tcp::State::CloseWait => TcpState::CloseWait,
            tcp::State::Closing => TcpState::Closing,
            tcp::State::LastAck => TcpState::LastAck,
            tcp::State::TimeWait => TcpState::TimeWait,
        }
    }
}

/// A snapshot of one TCP socket. The predicates are smoltcp's, word for word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpStatus {
    pub state: TcpState,
    /// Received bytes waiting to be read.
    pub recv_queue: usize,
    /// Bytes queued to send.
    pub send_queue: usize,
    /// Size of the send buffer.
    pub send_capacity: usize,
    /// The peer, while the socket has one.
    pub remote: Option<IpEndpoint>,
}

impl TcpStatus {
    /// What a missing socket looks like: closed, empty, no peer.
    pub const CLOSED: TcpStatus = TcpStatus {
        state: TcpState::Closed,
        recv_queue: 0,
        send_queue: 0,
        send_capacity: 0,
        remote: None,
    };

    /// In `LISTEN`.
    pub fn is_listening(&self) -> bool {
        self.state == TcpState::Listen
    }

    /// Neither `CLOSED` nor `TIME-WAIT`.
    pub fn is_open(&self) -> bool {
        !matches!(self.state, TcpState::Closed | TcpState::TimeWait)
    }

    /// Exchanging packets with a peer: not `CLOSED`, `TIME-WAIT` or `LISTEN`.
    pub fn is_active(&self) -> bool {
        !matches!(
            self.state,
            TcpState::Closed | TcpState::TimeWait | TcpState::Listen
        )
    }

    /// The transmit half is open (`ESTABLISHED`, `CLOSE-WAIT`).
    pub fn may_send(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::CloseWait)
    }

    /// The receive half is open, or received bytes wait.
    pub fn may_recv(&self) -> bool {
        matches!(
            self.state,
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
        ) || self.can_recv()
    }

    /// May send and the send buffer is not full.
    pub fn can_send(&self) -> bool {
        self.may_send() && self.send_queue < self.send_capacity
    }

    /// Received bytes wait.
    pub fn can_recv(&self) -> bool {
        self.recv_queue > 0
    }
}

/// The sockets of one network stack (see the module documentation).
///
/// Every call is non-blocking; bytes move between the buffers and the
/// network when the stack is polled. Calls with an id that names no socket
/// of the right kind fail with [`SocketError::NoSocket`] or report a closed,
/// empty socket.
pub trait Sockets {
    /// Opens a UDP socket bound to `spec.port`.
    fn udp_bind(&mut self, spec: UdpSpec) -> Result<SocketId, SocketError>;
    /// Joins multicast `group` for datagrams to socket `s`'s port; false if
    /// the stack cannot (the caller falls back to broadcast).
    fn udp_join_multicast(&mut self, s: SocketId, group: Ipv4Address) -> bool;
    /// Queues one datagram ([`SocketError::BufferFull`]: keep it and retry).
    fn udp_send(&mut self, s: SocketId, data: &[u8], to: IpEndpoint) -> Result<(), SocketError>;
    /// Hands the next received datagram and its source to `f`; false when none waits.
    fn udp_recv(&mut self, s: SocketId, f: &mut dyn FnMut(&[u8], IpEndpoint)) -> bool;
    /// Bytes queued that have not left for the network yet.
    fn udp_send_queue(&self, s: SocketId) -> usize;
    /// Closes and forgets socket `s`.
    fn udp_close(&mut self, s: SocketId);

    /// Opens a listen slot on `port` with `buffer` bytes each way: the first
    /// connection to the port that finds it turns it into that connection.
    fn tcp_listen(&mut self, port: u16, buffer: usize) -> Result<SocketId, SocketError>;
    /// Starts a connection to `remote` from `local_port` (an OS stack may
    /// let the kernel choose the port) with `buffer` bytes each way.
    fn tcp_connect(
        &mut self,
        remote: IpEndpoint,
        local_port: u16,
        buffer: usize,
    ) -> Result<SocketId, SocketError>;
    /// State, queues and peer of socket `s` ([`TcpStatus::CLOSED`] if none).
    fn tcp_status(&self, s: SocketId) -> TcpStatus;
    /// Queues bytes to send; returns how many fit (0: the buffer is full).
    fn tcp_send(&mut self, s: SocketId, data: &[u8]) -> Result<usize, SocketError>;
    /// Hands the received bytes at the head of the buffer (possibly not all
    /// of them) to `f`, which returns how many it consumed; returns that count.
    fn tcp_recv(
        &mut self,
        s: SocketId,
        f: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Result<usize, SocketError>;
    /// Closes gracefully: what is queued still goes out, then a FIN.
    fn tcp_close(&mut self, s: SocketId);
    /// Aborts: the peer gets a RST at once; the socket is `CLOSED`.
    fn tcp_abort(&mut self, s: SocketId);
    /// Forgets socket `s` (whatever its state).
    fn tcp_remove(&mut self, s: SocketId);
}

impl<T: Sockets + ?Sized> Sockets for &mut T {
    fn udp_bind(&mut self, spec: UdpSpec) -> Result<SocketId, SocketError> {
        (**self).udp_bind(spec)
    }
    fn udp_join_multicast(&mut self, s: SocketId, group: Ipv4Address) -> bool {
        (**self).udp_join_multicast(s, group)
    }
    fn udp_send(&mut self, s: SocketId, data: &[u8], to: IpEndpoint) -> Result<(), SocketError> {
        (**self).udp_send(s, data, to)
    }
    fn udp_recv(&mut self, s: SocketId, f: &mut dyn FnMut(&[u8], IpEndpoint)) -> bool {
        (**self).udp_recv(s, f)
    }
    fn udp_send_queue(&self, s: SocketId) -> usize {
        (**self).udp_send_queue(s)
    }
    fn udp_close(&mut self, s: SocketId) {
        (**self).udp_close(s)
    }
    fn tcp_listen(&mut self, port: u16, buffer: usize) -> Result<SocketId, SocketError> {
        (**self).tcp_listen(port, buffer)
    }
    fn tcp_connect(
        &mut self,
        remote: IpEndpoint,
        local_port: u16,
        buffer: usize,
    ) -> Result<SocketId, SocketError> {
        (**self).tcp_connect(remote, local_port, buffer)
    }
    fn tcp_status(&self, s: SocketId) -> TcpStatus {
        (**self).tcp_status(s)
    }
    fn tcp_send(&mut self, s: SocketId, data: &[u8]) -> Result<usize, SocketError> {
        (**self).tcp_send(s, data)
    }
    fn tcp_recv(
        &mut self,
        s: SocketId,
        f: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Result<usize, SocketError> {
        (**self).tcp_recv(s, f)
    }
    fn tcp_close(&mut self, s: SocketId) {
        (**self).tcp_close(s)
    }
    fn tcp_abort(&mut self, s: SocketId) {
        (**self).tcp_abort(s)
    }
    fn tcp_remove(&mut self, s: SocketId) {
        (**self).tcp_remove(s)
    }
}

/// [`Sockets`] over a smoltcp interface and socket set.
///
/// TCP sockets get `buffer` bytes each way and Nagle off (the transports
/// frame whole messages themselves). Ids that do not name a smoltcp socket
/// fail; smoltcp's own handles are trusted as before (a handle of a removed
/// socket is a bug of the caller and panics in smoltcp, as it always did).
pub struct SmolSockets<'a, 's> {
    iface: &'a mut Interface,
    set: &'a mut SocketSet<'s>,
}

impl<'a, 's> SmolSockets<'a, 's> {
    pub fn new(iface: &'a mut Interface, set: &'a mut SocketSet<'s>) -> Self {
        SmolSockets { iface, set }
    }

    fn udp(&mut self, s: SocketId) -> Option<&mut udp::Socket<'s>> {
        Some(self.set.get_mut::<udp::Socket>(s.smoltcp()?))
    }

    fn tcp(&mut self, s: SocketId) -> Option<&mut tcp::Socket<'s>> {
        Some(self.set.get_mut::<tcp::Socket>(s.smoltcp()?))
    }

    fn new_tcp(&mut self, buffer: usize) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; buffer]);
        let tx = tcp::SocketBuffer::new(vec![0; buffer]);
        let mut s = tcp::Socket::new(rx, tx);
        s.set_nagle_enabled(false);
        self.set.add(s)
    }
}

impl Sockets for SmolSockets<'_, '_> {
    fn udp_bind(&mut self, spec: UdpSpec) -> Result<SocketId, SocketError> {
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; spec.packets],
                vec![0; spec.bytes],
            )
        };
        let mut sock = udp::Socket::new(buffer(), buffer());
        if sock.bind(spec.port).is_err() {
            return Err(SocketError::Bind);
        }
        Ok(SocketId::from_smoltcp(self.set.add(sock)))
    }

    fn udp_join_multicast(&mut self, _s: SocketId, group: Ipv4Address) -> bool {
        self.iface.join_multicast_group(group).is_ok()
    }

    fn udp_send(&mut self, s: SocketId, data: &[u8], to: IpEndpoint) -> Result<(), SocketError> {
        let sock = self.udp(s).ok_or(SocketError::NoSocket)?;
        sock.send_slice(data, to).map_err(|e| match e {
            udp::SendError::BufferFull => SocketError::BufferFull,
            udp::SendError::Unaddressable => SocketError::Unaddressable,
        })
    }

    fn udp_recv(&mut self, s: SocketId, f: &mut dyn FnMut(&[u8], IpEndpoint)) -> bool {
        let Some(sock) = self.udp(s) else {
            return false;
        };
        match sock.recv() {
            Ok((data, meta)) => {
                f(data, meta.endpoint);
                true
            }
            Err(_) => false,
        }
    }

    fn udp_send_queue(&self, s: SocketId) -> usize {
        s.smoltcp()
            .map_or(0, |h| self.set.get::<udp::Socket>(h).send_queue())
    }

    fn udp_close(&mut self, s: SocketId) {
        if let Some(h) = s.smoltcp() {
            self.set.remove(h);
        }
    }

    fn tcp_listen(&mut self, port: u16, buffer: usize) -> Result<SocketId, SocketError> {
        let handle = self.new_tcp(buffer);
        let sock = self.set.get_mut::<tcp::Socket>(handle);
        if sock.listen(port).is_err() {
            self.set.remove(handle);
            return Err(SocketError::Bind);
        }
        Ok(SocketId::from_smoltcp(handle))
    }

    fn tcp_connect(
        &mut self,
        remote: IpEndpoint,
        local_port: u16,
        buffer: usize,
    ) -> Result<SocketId, SocketError> {
        let handle = self.new_tcp(buffer);
        let sock = self.set.get_mut::<tcp::Socket>(handle);
        if sock
            .connect(self.iface.context(), remote, local_port)
            .is_err()
        {
            self.set.remove(handle);
            return Err(SocketError::Unaddressable);
        }
        Ok(SocketId::from_smoltcp(handle))
    }

    fn tcp_status(&self, s: SocketId) -> TcpStatus {
        let Some(h) = s.smoltcp() else {
            return TcpStatus::CLOSED;
        };
        let sock = self.set.get::<tcp::Socket>(h);
        TcpStatus {
            state: sock.state().into(),
            recv_queue: sock.recv_queue(),
            send_queue: sock.send_queue(),
            send_capacity: sock.send_capacity(),
            remote: sock.remote_endpoint(),
        }
    }

    fn tcp_send(&mut self, s: SocketId, data: &[u8]) -> Result<usize, SocketError> {
        let sock = self.tcp(s).ok_or(SocketError::NoSocket)?;
        sock.send_slice(data).map_err(|_| SocketError::InvalidState)
    }

    fn tcp_recv(
        &mut self,
        s: SocketId,
        f: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Result<usize, SocketError> {
        let sock = self.tcp(s).ok_or(SocketError::NoSocket)?;
        sock.recv(|buf| {
            let n = f(buf).min(buf.len());
            (n, n)
        })
        .map_err(|_| SocketError::InvalidState)
    }

    fn tcp_close(&mut self, s: SocketId) {
        if let Some(sock) = self.tcp(s) {
            sock.close();
        }
    }

    fn tcp_abort(&mut self, s: SocketId) {
        if let Some(sock) = self.tcp(s) {
            sock.abort();
        }
    }

    fn tcp_remove(&mut self, s: SocketId) {
        if let Some(h) = s.smoltcp() {
            self.set.remove(h);
        }
    }
}
