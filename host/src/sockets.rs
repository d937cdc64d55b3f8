//! [`Sockets`] over the operating system's sockets, all non-blocking.
//!
//! - **UDP**: one OS socket per [`Sockets::udp_bind`]. A shared socket
//!   (discovery) is bound to `0.0.0.0:<port>` with `SO_REUSEADDR` +
//!   `SO_REUSEPORT` (several nodes of one host each receive every multicast
//!   and broadcast datagram) and `SO_BROADCAST` (the fallback); any other to
//!   `<local>:<port>`, exclusively. A multicast join is
//!   `IP_ADD_MEMBERSHIP` on the interface holding the local address, with
//!   `IP_MULTICAST_IF` on that address, loop on and TTL 1 (the group never
//!   leaves the link). Datagrams go straight to `sendto` / come straight
//!   from `recvfrom`; the kernel's buffers, sized from the request, are the
//!   bound.
//! - **TCP**: smoltcp's listen-slot model over `accept()`. The first
//!   [`Sockets::tcp_listen`] on a port opens one OS listener (kept while
//!   this value lives); each listen slot waits in `LISTEN`; every poll
//!   accepts pending connections into free slots of their port, lowest
//!   first, and resets (RST) connections no slot is free for, as smoltcp
//!   answers a SYN no socket listens for. Streams have a receive and a send
//!   buffer of the requested size each; [`OsSockets::poll`] moves bytes
//!   between them and the kernel, connects complete, FINs go out once the
//!   send buffer drained.
//!
//! Every table is capped ([`MAX_SOCKETS`], [`MAX_LISTENERS`]); requested
//! buffers are capped at [`MAX_BUFFER`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use dsb_transports::sockets::{SocketError, SocketId, Sockets, TcpState, TcpStatus, UdpSpec};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

use crate::sys;

/// Most sockets (UDP and TCP, listen slots included) open at once.
pub const MAX_SOCKETS: usize = 64;
/// Most TCP ports listened on at once.
pub const MAX_LISTENERS: usize = 4;
/// Largest buffer (each way) a socket may ask for.
pub const MAX_BUFFER: usize = 1 << 20;
/// Longest UDP datagram read; longer ones are truncated (and then rejected
/// by discovery and udp-sec, whose datagrams are far shorter).
pub const UDP_READ_MAX: usize = 2048;
/// Bytes moved per `read` from a TCP stream.
const READ_CHUNK: usize = 16 * 1024;
/// Connections accepted (or refused) per listener and poll.
const ACCEPTS_PER_POLL: usize = 16;
/// Backlog of each OS listener.
const LISTEN_BACKLOG: i32 = 16;
/// Receive errors skipped per `udp_recv` before giving up until the next poll.
const UDP_ERRORS_PER_RECV: usize = 4;

/// Counters of what the OS refused or the emulation decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsStats {
    /// Connections reset at once because no listen slot of their port was free.
    pub accept_refused: u64,
    /// Datagrams `sendto` refused (other than for lack of buffer).
    pub udp_send_errors: u64,
    /// `recvfrom` errors (e.g. an ICMP error reported on the socket).
    pub udp_recv_errors: u64,
    /// TCP streams ended by an error of the OS (reset, broken pipe).
    pub tcp_resets: u64,
}

enum Entry {
    Udp(UdpSocket),
    Tcp(Box<Tcp>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A listen slot waiting for a connection on `port`.
    Listen { port: u16 },
    /// Connect in progress.
    Connecting,
    /// Connected (see the flags for the half-closes).
    Connected,
    /// Both FINs exchanged; the descriptor is closed.
    TimeWait,
    /// Never connected, refused, reset or aborted.
    Closed,
}

struct Tcp {
    phase: Phase,
    stream: Option<TcpStream>,
    remote: Option<SocketAddrV4>,
    rx: VecDeque<u8>,
    tx: VecDeque<u8>,
    cap: usize,
    /// The application closed: FIN once `tx` drained.
    close_requested: bool,
    /// Our FIN went out (`shutdown(Write)`).
    write_shut: bool,
    /// The peer's FIN arrived (`read` returned 0).
    read_eof: bool,
}

impl Tcp {
    fn new(phase: Phase, cap: usize) -> Tcp {
        Tcp {
            phase,
            stream: None,
            remote: None,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            cap,
            close_requested: false,
            write_shut: false,
            read_eof: false,
        }
    }

    fn state(&self) -> TcpState {
        match self.phase {
            Phase::Listen { .. } => TcpState::Listen,
            Phase::Connecting => TcpState::SynSent,
            Phase::TimeWait => TcpState::TimeWait,
            Phase::Closed => TcpState::Closed,
            Phase::Connected => match (self.close_requested, self.read_eof, self.write_shut) {
                (false, false, _) => TcpState::Established,
                (false, true, _) => TcpState::CloseWait,
                (true, false, false) => TcpState::FinWait1,
                (true, false, true) => TcpState::FinWait2,
                (true, true, false) => TcpState::LastAck,
                (true, true, true) => TcpState::TimeWait,
            },
        }
    }

    fn status(&self) -> TcpStatus {
        TcpStatus {
            state: self.state(),
            recv_queue: self.rx.len(),
            send_queue: self.tx.len(),
            send_capacity: self.cap,
            remote: self.remote.map(endpoint),
        }
    }

    /// The stream ended in an error (or we aborted): like smoltcp on a RST,
    /// closed and without a peer; received bytes stay readable.
    fn reset(&mut self) {
        self.phase = Phase::Closed;
        self.stream = None;
        self.remote = None;
        self.tx.clear();
    }

    /// Moves bytes between the buffers and the kernel; completes connects
    /// and half-closes. Returns whether anything changed.
    fn drive(&mut self, scratch: &mut [u8], stats: &mut OsStats) -> bool {
        let mut moved = false;
        if self.phase == Phase::Connecting {
            let Some(s) = self.stream.as_ref() else {
                self.reset();
                return true;
            };
            if !sys::ready_now(s.as_raw_fd(), libc::POLLOUT) {
                return false;
            }
            match (s.take_error(), s.peer_addr()) {
                (Ok(None), Ok(SocketAddr::V4(peer))) => {
                    self.phase = Phase::Connected;
                    self.remote = Some(peer);
                }
                _ => {
                    self.reset();
                    return true;
                }
            }
            moved = true;
        }
        if self.phase != Phase::Connected {
            return moved;
        }
        let Some(s) = self.stream.as_mut() else {
            self.reset();
            return true;
        };
        let mut failed = false;
        while !self.read_eof && self.rx.len() < self.cap {
            let want = (self.cap - self.rx.len()).min(scratch.len());
            let Some(buf) = scratch.get_mut(..want) else {
                break;
            };
            match s.read(buf) {
                Ok(0) => {
                    self.read_eof = true;
                    moved = true;
                }
                Ok(n) => {
                    self.rx.extend(buf.get(..n).unwrap_or(&[]));
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        while !failed && !self.write_shut && !self.tx.is_empty() {
            let (a, _) = self.tx.as_slices();
            match s.write(a) {
                Ok(0) => break,
                Ok(n) => {
                    self.tx.drain(..n);
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => failed = true,
            }
        }
        if !failed && self.close_requested && !self.write_shut && self.tx.is_empty() {
            failed = s.shutdown(Shutdown::Write).is_err();
            self.write_shut = !failed;
            moved = true;
        }
        if failed {
            stats.tcp_resets = stats.tcp_resets.saturating_add(1);
            self.reset();
            return true;
        }
        if self.close_requested && self.write_shut && self.read_eof {
            self.phase = Phase::TimeWait;
            self.stream = None;
        }
        moved
    }

    /// What to wait for on this stream, if anything.
    fn interest(&self) -> Option<(i32, libc::c_short)> {
        let s = self.stream.as_ref()?;
        let events = match self.phase {
            Phase::Connecting => libc::POLLOUT,
            Phase::Connected => {
                let mut ev = 0;
                if !self.read_eof && self.rx.len() < self.cap {
                    ev |= libc::POLLIN;
                }
                if !self.write_shut && (!self.tx.is_empty() || self.close_requested) {
                    ev |= libc::POLLOUT;
                }
                ev
            }
            _ => 0,
        };
        (events != 0).then(|| (s.as_raw_fd(), events))
    }
}

struct Listener {
    port: u16,
    sock: TcpListener,
}

/// The operating system's sockets of one node, bound to its address.
pub struct OsSockets {
    local: Ipv4Addr,
    slots: Vec<Option<Entry>>,
    listeners: Vec<Listener>,
    scratch: Vec<u8>,
    stats: OsStats,
}

fn endpoint(a: SocketAddrV4) -> IpEndpoint {
    IpEndpoint::new(IpAddress::Ipv4(*a.ip()), a.port())
}

fn os_addr(e: IpEndpoint) -> SocketAddrV4 {
    let IpAddress::Ipv4(ip) = e.addr;
    SocketAddrV4::new(ip, e.port)
}

impl OsSockets {
    /// Sockets of a node whose address is `local` (the address it announces).
    pub fn new(local: Ipv4Addr) -> OsSockets {
        OsSockets {
            local,
            slots: Vec::new(),
            listeners: Vec::new(),
            scratch: vec![0; READ_CHUNK.max(UDP_READ_MAX)],
            stats: OsStats::default(),
        }
    }

    /// The address sockets are bound to (and multicast leaves from).
    pub fn local(&self) -> Ipv4Addr {
        self.local
    }

    pub fn stats(&self) -> OsStats {
        self.stats
    }

    /// Sockets open (listen slots included).
    pub fn open_sockets(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether an OS listener is open on TCP `port`.
    pub fn listening(&self, port: u16) -> bool {
        self.listeners.iter().any(|l| l.port == port)
    }

    /// Accepts connections into listen slots, drives every TCP stream.
    /// Returns whether anything moved.
    pub fn poll(&mut self) -> bool {
        let mut moved = self.accept();
        let OsSockets {
            slots,
            scratch,
            stats,
            ..
        } = self;
        for e in slots.iter_mut().flatten() {
            if let Entry::Tcp(t) = e {
                moved |= t.drive(scratch, stats);
            }
        }
        moved
    }

    /// Waits until a socket may have work (a datagram, a connection, bytes
    /// to read, room to write) or `timeout` passed.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.slots.len() + MAX_LISTENERS);
        let mut add = |fd: i32, events: libc::c_short| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            })
        };
        for l in &self.listeners {
            add(l.sock.as_raw_fd(), libc::POLLIN);
        }
        for e in self.slots.iter().flatten() {
            match e {
                Entry::Udp(u) => add(u.as_raw_fd(), libc::POLLIN),
                Entry::Tcp(t) => {
                    if let Some((fd, ev)) = t.interest() {
                        add(fd, ev);
                    }
                }
            }
        }
        sys::wait(&mut fds, timeout).map(|_| ())
    }

    fn accept(&mut self) -> bool {
        let mut moved = false;
        let OsSockets {
            slots,
            listeners,
            stats,
            ..
        } = self;
        for l in listeners.iter() {
            for _ in 0..ACCEPTS_PER_POLL {
                let (stream, peer) = match l.sock.accept() {
                    Ok((s, SocketAddr::V4(peer))) => (s, peer),
                    Ok((s, SocketAddr::V6(_))) => {
                        sys::abort(s);
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                moved = true;
                let slot = slots.iter_mut().flatten().find_map(|e| match e {
                    Entry::Tcp(t) if t.phase == Phase::Listen { port: l.port } => Some(t),
                    _ => None,
                });
                let Some(t) = slot else {
                    stats.accept_refused = stats.accept_refused.saturating_add(1);
                    sys::abort(stream);
                    continue;
                };
                let ok = stream.set_nonblocking(true).is_ok()
                    && stream.set_nodelay(true).is_ok()
                    && sys::set_buffers(stream.as_raw_fd(), t.cap).is_ok();
                if !ok {
                    sys::abort(stream);
                    continue;
                }
                t.phase = Phase::Connected;
                t.stream = Some(stream);
                t.remote = Some(peer);
            }
        }
        moved
    }

    fn insert(&mut self, e: Entry) -> Result<SocketId, SocketError> {
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.slots.len() < MAX_SOCKETS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(SocketError::Exhausted),
        };
        let id = u32::try_from(i).map_err(|_| SocketError::Exhausted)?;
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(e);
        }
        Ok(SocketId::from_index(id))
    }

    fn has_room(&self) -> bool {
        self.slots.len() < MAX_SOCKETS || self.slots.iter().any(Option::is_none)
    }

    fn entry(&self, s: SocketId) -> Option<&Entry> {
        self.slots.get(s.index()? as usize)?.as_ref()
    }

    fn entry_mut(&mut self, s: SocketId) -> Option<&mut Entry> {
        self.slots.get_mut(s.index()? as usize)?.as_mut()
    }

    fn udp(&self, s: SocketId) -> Option<&UdpSocket> {
        match self.entry(s)? {
            Entry::Udp(u) => Some(u),
            Entry::Tcp(_) => None,
        }
    }

    fn tcp(&self, s: SocketId) -> Option<&Tcp> {
        match self.entry(s)? {
            Entry::Tcp(t) => Some(t),
            Entry::Udp(_) => None,
        }
    }

    fn tcp_mut(&mut self, s: SocketId) -> Option<&mut Tcp> {
        match self.entry_mut(s)? {
            Entry::Tcp(t) => Some(t),
            Entry::Udp(_) => None,
        }
    }

    fn remove(&mut self, s: SocketId) -> Option<Entry> {
        self.slots.get_mut(s.index()? as usize)?.take()
    }
}

fn join(sock: &UdpSocket, group: Ipv4Addr, local: Ipv4Addr) -> io::Result<()> {
    sock.join_multicast_v4(&group, &local)?;
    sys::set_multicast_if(sock, local)?;
    sock.set_multicast_loop_v4(true)?;
    sock.set_multicast_ttl_v4(1)
}

impl Sockets for OsSockets {
    fn udp_bind(&mut self, spec: UdpSpec) -> Result<SocketId, SocketError> {
        if !self.has_room() {
            return Err(SocketError::Exhausted);
        }
        let addr = if spec.shared {
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, spec.port)
        } else {
            SocketAddrV4::new(self.local, spec.port)
        };
        let sock = sys::udp_socket(addr, spec.shared, spec.bytes.min(MAX_BUFFER))
            .map_err(|_| SocketError::Bind)?;
        self.insert(Entry::Udp(sock))
    }

    fn udp_join_multicast(&mut self, s: SocketId, group: Ipv4Address) -> bool {
        let local = self.local;
        self.udp(s).is_some_and(|u| join(u, group, local).is_ok())
    }

    fn udp_send(&mut self, s: SocketId, data: &[u8], to: IpEndpoint) -> Result<(), SocketError> {
        let sock = self.udp(s).ok_or(SocketError::NoSocket)?;
        match sock.send_to(data, os_addr(to)) {
            Ok(_) => Ok(()),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                Err(SocketError::BufferFull)
            }
            Err(_) => {
                self.stats.udp_send_errors = self.stats.udp_send_errors.saturating_add(1);
                Err(SocketError::Unaddressable)
            }
        }
    }

    fn udp_recv(&mut self, s: SocketId, f: &mut dyn FnMut(&[u8], IpEndpoint)) -> bool {
        let OsSockets {
            slots,
            scratch,
            stats,
            ..
        } = self;
        let Some(Some(Entry::Udp(sock))) = s.index().and_then(|i| slots.get(i as usize)) else {
            return false;
        };
        let buf = scratch.get_mut(..UDP_READ_MAX).unwrap_or(&mut []);
        for _ in 0..UDP_ERRORS_PER_RECV {
            match sock.recv_from(buf) {
                Ok((n, SocketAddr::V4(from))) => {
                    f(buf.get(..n).unwrap_or(&[]), endpoint(from));
                    return true;
                }
                Ok((_, SocketAddr::V6(_))) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => stats.udp_recv_errors = stats.udp_recv_errors.saturating_add(1),
            }
        }
        false
    }

    fn udp_send_queue(&self, _s: SocketId) -> usize {
        // `sendto` hands the datagram to the kernel at once.
        0
    }

    fn udp_close(&mut self, s: SocketId) {
        if matches!(self.entry(s), Some(Entry::Udp(_))) {
            self.remove(s);
        }
    }

    fn tcp_listen(&mut self, port: u16, buffer: usize) -> Result<SocketId, SocketError> {
        if !self.has_room() {
            return Err(SocketError::Exhausted);
        }
        if !self.listening(port) {
            if self.listeners.len() >= MAX_LISTENERS {
                return Err(SocketError::Exhausted);
            }
            let addr = SocketAddrV4::new(self.local, port);
            let sock = sys::tcp_listener(addr, LISTEN_BACKLOG, buffer.clamp(1, MAX_BUFFER))
                .map_err(|_| SocketError::Bind)?;
            self.listeners.push(Listener { port, sock });
        }
        let cap = buffer.clamp(1, MAX_BUFFER);
        self.insert(Entry::Tcp(Box::new(Tcp::new(Phase::Listen { port }, cap))))
    }

    fn tcp_connect(
        &mut self,
        remote: IpEndpoint,
        _local_port: u16,
        buffer: usize,
    ) -> Result<SocketId, SocketError> {
        if !self.has_room() {
            return Err(SocketError::Exhausted);
        }
        let cap = buffer.clamp(1, MAX_BUFFER);
        let mut t = Box::new(Tcp::new(Phase::Connecting, cap));
        match sys::tcp_connect(self.local, os_addr(remote), cap) {
            Ok(sys::Connect::Started(stream)) => t.stream = Some(stream),
            Ok(sys::Connect::Refused) => t.phase = Phase::Closed,
            Err(_) => return Err(SocketError::Unaddressable),
        }
        self.insert(Entry::Tcp(t))
    }

    fn tcp_status(&self, s: SocketId) -> TcpStatus {
        self.tcp(s).map_or(TcpStatus::CLOSED, Tcp::status)
    }

    fn tcp_send(&mut self, s: SocketId, data: &[u8]) -> Result<usize, SocketError> {
        let t = self.tcp_mut(s).ok_or(SocketError::NoSocket)?;
        if !t.status().may_send() {
            return Err(SocketError::InvalidState);
        }
        let n = data.len().min(t.cap.saturating_sub(t.tx.len()));
        t.tx.extend(data.get(..n).unwrap_or(&[]));
        Ok(n)
    }

    fn tcp_recv(
        &mut self,
        s: SocketId,
        f: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Result<usize, SocketError> {
        let t = self.tcp_mut(s).ok_or(SocketError::NoSocket)?;
        if !t.status().may_recv() {
            return Err(SocketError::InvalidState);
        }
        let (head, _) = t.rx.as_slices();
        let n = f(head).min(head.len());
        t.rx.drain(..n);
        Ok(n)
    }

    fn tcp_close(&mut self, s: SocketId) {
        let Some(t) = self.tcp_mut(s) else { return };
        match t.phase {
            Phase::Listen { .. } | Phase::Connecting => {
                t.phase = Phase::Closed;
                t.stream = None;
                t.remote = None;
            }
            Phase::Connected => t.close_requested = true,
            Phase::TimeWait | Phase::Closed => {}
        }
    }

    fn tcp_abort(&mut self, s: SocketId) {
        let Some(t) = self.tcp_mut(s) else { return };
        if let Some(stream) = t.stream.take() {
            sys::abort(stream);
        }
        t.reset();
    }

    fn tcp_remove(&mut self, s: SocketId) {
        if matches!(self.entry(s), Some(Entry::Tcp(_))) {
            self.remove(s);
        }
    }
}
