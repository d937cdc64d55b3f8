//! The `udp-sec` transport: one UDP socket (smoltcp's or the OS's, through
//! [`Sockets`](crate::sockets::Sockets)) bound to the node's
//! udp-sec port, an [`Endpoint`] demultiplexing its sessions, and the
//! `dsb-noise` handshake ([`NoiseHandshake`]) behind every session, so the
//! node sees exactly what the TCP transport gives it: authenticated,
//! identity-bound byte streams.
//!
//! Bounds: the socket buffers `socket_packets` datagrams of at most
//! [`MAX_DATAGRAM`] bytes each way; each connection holds at most
//! `conn.send_buffer` unacknowledged and `conn.recv_window` unread bytes; at
//! most `max_conns` connections (and the endpoint's half-open cap). A datagram
//! the socket cannot take yet is kept (one) and offered again on the next poll.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use dsb_noise::{DeviceId, HandshakeConfig, Identity, NoiseError};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::config::Config;
use super::connection::{CloseReason, Event};
use super::endpoint::{Endpoint, EndpointConfig, EndpointStats};
use super::noise::NoiseHandshake;
use super::packet::Header;
use super::stats::DropReason;
use super::MAX_DATAGRAM;
use crate::sockets::{SocketError, SocketId, UdpSpec};
use crate::transport::{
    ConnId, ConnIds, Cx, EventQueue, PeerAddr, Transport, TransportError, TransportEvent,
    TransportKind,
};

/// Most connections (accepted + initiated) one udp-sec transport holds.
pub const MAX_CONNS_CAP: usize = 16;
/// Most datagrams the socket buffers each way.
pub const MAX_SOCKET_PACKETS: usize = 256;

/// Settings of the udp-sec transport.
#[derive(Clone, Debug)]
pub struct UdpSecConfig {
    /// UDP port the socket binds (announced as the udp-sec port).
    pub port: u16,
    /// Connection cap (≤ [`MAX_CONNS_CAP`]).
    pub max_conns: usize,
    /// Datagrams the socket buffers each way (≤ [`MAX_SOCKET_PACKETS`]).
    pub socket_packets: usize,
    /// Per-connection timers, windows and buffers.
    pub conn: Config,
    /// Half-open cap and handshake rate limits.
    pub endpoint: EndpointConfig,
    pub handshake: HandshakeConfig,
}

impl Default for UdpSecConfig {
    fn default() -> Self {
        UdpSecConfig {
            port: 37031,
            max_conns: 4,
            socket_packets: 64,
            conn: Config::default(),
            endpoint: EndpointConfig {
                max_connections: 4,
                max_half_open: 4,
                ..EndpointConfig::default()
            },
            handshake: HandshakeConfig::default(),
        }
    }
}

/// Counters of the transport itself (the endpoint and connections count their own drops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpSecStats {
    /// Datagrams received from the socket.
    pub datagrams_in: u64,
    /// Datagrams handed to the socket.
    pub datagrams_out: u64,
    /// Datagrams the socket refused for good (unroutable).
    pub send_errors: u64,
    /// Inbound sessions closed at once because `max_conns` was reached.
    pub refused: u64,
}

struct Conn {
    id: ConnId,
    sid: u64,
    /// Expected (initiator) or authenticated (responder) peer.
    peer: Option<DeviceId>,
    /// The node was told the connection is authenticated.
    announced: bool,
    /// The node closed it: no more events, reaped once the connection closed.
    closed_by_us: bool,
    /// A terminal event (Closed / HandshakeFailed) was reported.
    reported: bool,
}

/// The udp-sec transport of one node.
pub struct UdpSecTransport {
    cfg: UdpSecConfig,
    identity: Rc<Identity>,
    endpoint: Endpoint<NoiseHandshake, IpEndpoint>,
    socket: Option<SocketId>,
    listening: bool,
    conns: Vec<Conn>,
    events: EventQueue,
    ids: ConnIds,
    /// One datagram (destination, length in `tx_buf`) the socket had no room for.
    pending: Option<(IpEndpoint, usize)>,
    /// Set when sending stopped for lack of socket room: poll again at once.
    blocked_at: Option<Instant>,
    tx_buf: Vec<u8>,
    stats: UdpSecStats,
}

impl UdpSecTransport {
    pub fn new(identity: Rc<Identity>, mut cfg: UdpSecConfig) -> Self {
        cfg.max_conns = cfg.max_conns.clamp(1, MAX_CONNS_CAP);
        cfg.socket_packets = cfg.socket_packets.clamp(4, MAX_SOCKET_PACKETS);
        cfg.endpoint.max_connections = cfg.endpoint.max_connections.min(cfg.max_conns);
        UdpSecTransport {
            endpoint: Endpoint::new(cfg.endpoint.clone(), cfg.conn.clone()),
            cfg,
            identity,
            socket: None,
            listening: false,
            conns: Vec::new(),
            events: EventQueue::default(),
            ids: ConnIds::new(),
            pending: None,
            blocked_at: None,
            tx_buf: vec![0; MAX_DATAGRAM],
            stats: UdpSecStats::default(),
        }
    }

    /// The bound port, once the socket exists.
    pub fn port(&self) -> Option<u16> {
        self.socket.map(|_| self.cfg.port)
    }

    /// Connections currently held.
    pub fn connections(&self) -> usize {
        self.conns.iter().filter(|c| !c.closed_by_us).count()
    }

    /// Transport counters.
    pub fn stats(&self) -> UdpSecStats {
        self.stats
    }

    /// Endpoint counters (accepted, reaped, datagrams rejected by label).
    pub fn endpoint_stats(&self) -> &EndpointStats {
        self.endpoint.stats()
    }

    /// Connection counters of `conn` (RTT, cwnd, retransmissions, drops).
    pub fn conn_stats(&self, conn: ConnId) -> Option<super::Stats> {
        let c = self.conns.iter().find(|c| c.id == conn)?;
        self.endpoint.connection(c.sid).map(|x| x.stats())
    }

    fn open_socket(&mut self, cx: &mut Cx<'_>) -> Result<SocketId, TransportError> {
        if let Some(h) = self.socket {
            return Ok(h);
        }
        let n = self.cfg.socket_packets;
        let h = cx
            .sockets
            .udp_bind(UdpSpec {
                port: self.cfg.port,
                packets: n * 2,
                bytes: n * MAX_DATAGRAM,
                shared: false,
            })
            .map_err(|_| TransportError::Socket)?;
        self.socket = Some(h);
        Ok(h)
    }

    /// Marks `conn` as closed by us; its udp-sec connection, to close.
    fn closing_by_us(&mut self, conn: ConnId) -> Option<&mut super::Connection<NoiseHandshake>> {
        let i = self.conn_index(conn)?;
        let c = self.conns.get_mut(i)?;
        c.closed_by_us = true;
        let sid = c.sid;
        self.endpoint.connection_mut(sid)
    }

    fn conn_index(&self, conn: ConnId) -> Option<usize> {
        self.conns.iter().position(|c| c.id == conn)
    }

    /// Receives every datagram the socket holds.
    fn receive(&mut self, cx: &mut Cx<'_>, handle: SocketId) {
        let now = cx.now;
        let listening = self.listening;
        let identity = &self.identity;
        let hs_cfg = &self.cfg.handshake;
        let (sockets, trust, rng) = (&mut *cx.sockets, &mut *cx.trust, &mut *cx.rng);
        let (endpoint, conns, events, ids, stats) = (
            &mut self.endpoint,
            &self.conns,
            &mut self.events,
            &mut self.ids,
            &mut self.stats,
        );
        while sockets.udp_recv(handle, &mut |datagram, from| {
            stats.datagrams_in += 1;
            let rng = &mut *rng;
            // Length, header, session and rate checks happen in the endpoint;
            // a new session costs a DH only after all of them passed.
            let r = endpoint.handle_datagram(now, from, datagram, &mut *trust, || {
                if !listening {
                    return None;
                }
                NoiseHandshake::responder(identity, rng, now, hs_cfg).ok()
            });
            if r == Err(DropReason::HandshakeFailed) {
                if let Some(sid) = Header::peek_session_id(datagram) {
                    Self::report_inbound_failure(endpoint, conns, events, ids, sid);
                }
            }
        }) {}
    }

    /// An inbound handshake failed (e.g. message 3 did not prove the bound
    /// identity): tell the node who claimed what. The endpoint reaps it.
    fn report_inbound_failure(
        endpoint: &Endpoint<NoiseHandshake, IpEndpoint>,
        conns: &[Conn],
        events: &mut EventQueue,
        ids: &mut ConnIds,
        sid: u64,
    ) {
        if conns.iter().any(|c| c.sid == sid) {
            return; // ours: reported through its Closed event
        }
        let Some(conn) = endpoint.connection(sid) else {
            return;
        };
        if !conn.is_closed() {
            return;
        }
        let hs = conn.handshake();
        let claimed = hs.and_then(|h| h.claimed_peer()).copied();
        let error = hs
            .and_then(|h| h.error())
            .map_or(TransportError::Refused, TransportError::Noise);
        events.push(TransportEvent::HandshakeFailed {
            conn: ids.alloc(),
            claimed,
            error,
        });
    }

    /// Why a connection ended, as a transport error (`None`: we closed it).
    fn close_error(&self, sid: u64, reason: CloseReason) -> Option<TransportError> {
        Some(match reason {
            CloseReason::Local => return None,
            CloseReason::Peer { .. } => TransportError::PeerClosed,
            CloseReason::IdleTimeout => TransportError::Timeout,
            CloseReason::HandshakeTimeout => TransportError::Noise(NoiseError::HandshakeTimeout),
            CloseReason::Rejected(code) => TransportError::Rejected(code),
            CloseReason::HandshakeFailed(_) => self
                .endpoint
                .connection(sid)
                .and_then(|c| c.handshake())
                .and_then(|h| h.error())
                .map_or(TransportError::Refused, TransportError::Noise),
            // The connection closed before any nonce could repeat.
            CloseReason::PacketNumbersExhausted => TransportError::Noise(NoiseError::Crypto),
        })
    }

    fn on_event(&mut self, sid: u64, ev: Event) {
        let idx = self.conns.iter().position(|c| c.sid == sid);
        match ev {
            Event::Connected { .. } => {
                let peer = self
                    .endpoint
                    .connection(sid)
                    .and_then(|c| c.handshake())
                    .and_then(|h| h.authenticated_peer())
                    .copied();
                let Some(peer) = peer else {
                    // Cannot happen: Connected follows a bound handshake.
                    if let Some(c) = self.endpoint.connection_mut(sid) {
                        c.close();
                    }
                    return;
                };
                match idx {
                    Some(i) => {
                        let Some(c) = self.conns.get_mut(i) else {
                            return;
                        };
                        if c.closed_by_us {
                            return;
                        }
                        c.announced = true;
                        c.peer = Some(peer);
                        let conn = c.id;
                        self.events
                            .push(TransportEvent::Authenticated { conn, peer });
                    }
                    None => {
                        let full = self.connections() >= self.cfg.max_conns;
                        let id = self.ids.alloc();
                        self.conns.push(Conn {
                            id,
                            sid,
                            peer: Some(peer),
                            announced: !full,
                            closed_by_us: full,
                            reported: false,
                        });
                        if full {
                            self.stats.refused += 1;
                            if let Some(c) = self.endpoint.connection_mut(sid) {
                                c.close();
                            }
                        } else {
                            self.events
                                .push(TransportEvent::Authenticated { conn: id, peer });
                        }
                    }
                }
            }
            Event::Closed { reason } => {
                let Some(i) = idx else {
                    return; // a half-open responder: reaped by the endpoint
                };
                let error = self.close_error(sid, reason);
                let Some(c) = self.conns.get_mut(i) else {
                    return;
                };
                if c.closed_by_us || c.reported {
                    return;
                }
                c.reported = true;
                let (conn, peer, announced) = (c.id, c.peer, c.announced);
                if announced {
                    self.events.push(TransportEvent::Closed { conn, error });
                } else {
                    self.events.push(TransportEvent::HandshakeFailed {
                        conn,
                        claimed: peer,
                        error: error.unwrap_or(TransportError::Refused),
                    });
                }
            }
            Event::Readable | Event::Writable => {}
        }
    }

    /// Moves datagrams from the endpoint into the socket while it has room.
    fn transmit(&mut self, cx: &mut Cx<'_>, handle: SocketId) {
        let now = cx.now;
        self.blocked_at = None;
        loop {
            let (to, n) = match self.pending.take() {
                Some(p) => p,
                None => match self.endpoint.poll_transmit(now, &mut self.tx_buf) {
                    Some(p) => p,
                    None => return,
                },
            };
            let Some(bytes) = self.tx_buf.get(..n) else {
                return;
            };
            match cx.sockets.udp_send(handle, bytes, to) {
                Ok(()) => self.stats.datagrams_out += 1,
                Err(SocketError::BufferFull) => {
                    self.pending = Some((to, n));
                    self.blocked_at = Some(now);
                    return;
                }
                Err(_) => self.stats.send_errors += 1,
            }
        }
    }

    /// Forgets connections that are closed and whose end was reported (or that we closed).
    fn reap(&mut self) {
        let endpoint = &mut self.endpoint;
        self.conns.retain(|c| {
            let closed = endpoint.connection(c.sid).is_none_or(|x| x.is_closed());
            let done = closed && (c.reported || c.closed_by_us);
            if done {
                endpoint.remove(c.sid);
            }
            !done
        });
    }
}

impl Transport for UdpSecTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::UdpSec
    }

    fn listen(&mut self, cx: &mut Cx<'_>) -> Result<(), TransportError> {
        self.open_socket(cx)?;
        self.listening = true;
        Ok(())
    }

    fn connect(&mut self, cx: &mut Cx<'_>, peer: &PeerAddr) -> Result<ConnId, TransportError> {
        let port = peer.udpsec_port.ok_or(TransportError::NotOffered)?;
        if self.connections() >= self.cfg.max_conns {
            return Err(TransportError::TooManyConnections);
        }
        self.open_socket(cx)?;
        let hs = NoiseHandshake::initiator(
            &self.identity,
            &peer.device_id,
            peer.binding,
            cx.rng,
            cx.now,
            &self.cfg.handshake,
        )?;
        // A random session id: an off-path attacker must guess it.
        let mut sid = cx.rng.next_u64();
        while sid == 0 || self.endpoint.connection(sid).is_some() {
            sid = cx.rng.next_u64();
        }
        let remote = IpEndpoint::new(IpAddress::Ipv4(peer.ip), port);
        self.endpoint
            .connect(cx.now, remote, sid, hs)
            .map_err(|_| TransportError::TooManyConnections)?;
        let id = self.ids.alloc();
        self.conns.push(Conn {
            id,
            sid,
            peer: Some(peer.device_id),
            announced: false,
            closed_by_us: false,
            reported: false,
        });
        Ok(id)
    }

    fn poll(&mut self, cx: &mut Cx<'_>) {
        let Some(handle) = self.socket else {
            return;
        };
        self.receive(cx, handle);
        if self.endpoint.poll_timeout().is_some_and(|t| t <= cx.now) {
            self.endpoint.handle_timeout(cx.now);
        }
        while let Some((sid, ev)) = self.endpoint.poll_event() {
            self.on_event(sid, ev);
        }
        self.transmit(cx, handle);
        self.reap();
    }

    fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop()
    }

    fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, TransportError> {
        let i = self
            .conn_index(conn)
            .ok_or(TransportError::UnknownConnection)?;
        let c = self.conns.get(i).ok_or(TransportError::UnknownConnection)?;
        if !c.announced || c.closed_by_us {
            return Err(TransportError::BadState);
        }
        let x = self
            .endpoint
            .connection_mut(c.sid)
            .ok_or(TransportError::UnknownConnection)?;
        Ok(x.read(buf))
    }

    fn write(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, TransportError> {
        let i = self
            .conn_index(conn)
            .ok_or(TransportError::UnknownConnection)?;
        let c = self.conns.get(i).ok_or(TransportError::UnknownConnection)?;
        if !c.announced || c.closed_by_us || c.reported {
            return Err(TransportError::BadState);
        }
        let x = self
            .endpoint
            .connection_mut(c.sid)
            .ok_or(TransportError::UnknownConnection)?;
        Ok(x.write(data))
    }

    fn write_capacity(&self, conn: ConnId) -> usize {
        let Some(c) = self
            .conns
            .iter()
            .find(|c| c.id == conn && c.announced && !c.closed_by_us && !c.reported)
        else {
            return 0;
        };
        self.endpoint
            .connection(c.sid)
            .map_or(0, |x| x.send_capacity())
    }

    fn close(&mut self, _cx: &mut Cx<'_>, conn: ConnId) {
        if let Some(x) = self.closing_by_us(conn) {
            x.close();
        }
    }

    fn abort(&mut self, cx: &mut Cx<'_>, conn: ConnId) {
        if let Some(x) = self.closing_by_us(conn) {
            x.abort(cx.now);
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        match (self.blocked_at, self.endpoint.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
