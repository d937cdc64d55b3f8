//! The `tcp` transport: TCP sockets (smoltcp's or the OS's, through
//! [`Sockets`](crate::sockets::Sockets)) carrying the Noise XK handshake
//! and then Noise transport messages, each framed with a 2-byte big-endian
//! length (see `docs/protocol.md`, "TCP: framing, key confirmation, limits").
//!
//! Life of a connection:
//! - **Accept**: up to [`ACCEPT_BACKLOG`] listening sockets wait on the port,
//!   so back-to-back SYNs each find one; each SYN turns its socket into a
//!   connection and a fresh listener is armed on the next poll.
//! - **Handshake**: three framed messages. Any failure aborts the socket: the
//!   peer gets a RST at once, never silence.
//! - **Key confirmation**: the responder, having admitted the initiator at
//!   message 3, sends one transport message at once (empty plaintext). The
//!   initiator reports `Authenticated` only once a transport message from the
//!   responder decrypted, so it never reports a session the responder refused.
//! - **Established**: framed transport messages both ways.
//!
//! Every buffer is bounded: a connection holds at most `rx_plain_cap` bytes
//! of decrypted data the node has not read (the TCP window closes behind it)
//! and `tx_wire_cap` bytes of sealed frames the socket has not taken yet.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use dsb_noise::{
    sealed_len, DeviceId, FrameDecoder, FramedSession, Handshake, HandshakeConfig,
    HandshakeLimiter, HandshakeStatus, HandshakeTicket, Identity, Initiator, NoiseError, Responder,
    FRAME_HEADER_LEN, MAX_HANDSHAKE_MESSAGE_LEN, TAG_LEN,
};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::sockets::{SocketId, Sockets, TcpState};
use crate::transport::{
    ConnId, ConnIds, Cx, EventQueue, PeerAddr, Transport, TransportError, TransportEvent,
    TransportKind,
};

/// Most connections (accepted + initiated) one TCP transport holds.
pub const MAX_CONNS_CAP: usize = 16;
/// Largest plaintext of one Noise transport message over TCP (protocol
/// constant): one whole mux frame, 8-byte header + 16384 payload bytes.
pub const MAX_PLAINTEXT: usize = 16_392;
/// Largest Noise transport message (frame length `L`) a receiver accepts
/// over TCP (protocol constant): `MAX_PLAINTEXT + 16`.
pub const MAX_MESSAGE: usize = MAX_PLAINTEXT + TAG_LEN;
/// Listening sockets kept armed at once (each takes one SYN).
pub const ACCEPT_BACKLOG: usize = 4;
/// Longest an aborted or closed socket is kept so its RST or FIN can leave.
pub const DEAD_LINGER: Duration = Duration::from_secs(1);
/// Most aborted or closing sockets kept at once (the oldest goes first).
pub const MAX_DEAD: usize = 16;

/// Settings of the TCP transport.
#[derive(Clone, Copy, Debug)]
pub struct TcpConfig {
    /// Port the listener binds.
    pub port: u16,
    /// Connection cap (≤ [`MAX_CONNS_CAP`]).
    pub max_conns: usize,
    /// Socket buffer per direction.
    pub socket_buf: usize,
    /// Largest plaintext per Noise message we send (≤ [`MAX_PLAINTEXT`]).
    pub max_plaintext: usize,
    /// Decrypted bytes held for the node per connection.
    pub rx_plain_cap: usize,
    /// Sealed bytes waiting for socket space per connection.
    pub tx_wire_cap: usize,
    /// Half-open handshake cap.
    pub max_half_open: usize,
    pub handshake: HandshakeConfig,
    /// First local port for outgoing connections.
    pub ephemeral_base: u16,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            port: 37021,
            max_conns: 4,
            socket_buf: 64 * 1024,
            max_plaintext: MAX_PLAINTEXT,
            rx_plain_cap: 64 * 1024,
            tx_wire_cap: 64 * 1024,
            max_half_open: 4,
            handshake: HandshakeConfig::default(),
            ephemeral_base: 49152,
        }
    }
}

enum Stage {
    /// Waiting for a SYN.
    Listening,
    /// TCP connecting or handshake running.
    Handshaking {
        hs: Box<Handshake>,
        decoder: FrameDecoder,
        ticket: Option<HandshakeTicket>,
    },
    /// Initiator: message 3 sent, waiting for the responder's first
    /// transport message (key confirmation) until `deadline`.
    Confirming {
        framed: Box<FramedSession>,
        deadline: Instant,
    },
    Established {
        framed: Box<FramedSession>,
    },
    /// Aborted (RST pending) or closing: removed once the socket is done, or
    /// after [`DEAD_LINGER`].
    Dead {
        since: Instant,
    },
}

struct Conn {
    id: ConnId,
    handle: SocketId,
    stage: Stage,
    /// Who we expect (initiator) or who claimed to be calling (responder).
    peer: Option<DeviceId>,
    rx_plain: VecDeque<u8>,
    tx_wire: VecDeque<u8>,
    /// Set once the node was told the connection is authenticated.
    announced: bool,
}

/// The TCP transport of one node.
pub struct TcpTransport {
    cfg: TcpConfig,
    identity: Rc<Identity>,
    conns: Vec<Conn>,
    events: EventQueue,
    limiter: HandshakeLimiter,
    ids: ConnIds,
    next_port: u16,
    listening: bool,
    /// Decrypted message being moved into a connection's `rx_plain`.
    scratch: Vec<u8>,
    /// Sealed frame being moved into a connection's `tx_wire`.
    seal_buf: Vec<u8>,
}

impl TcpTransport {
    pub fn new(identity: Rc<Identity>, mut cfg: TcpConfig) -> Self {
        cfg.max_conns = cfg.max_conns.clamp(1, MAX_CONNS_CAP);
        cfg.max_plaintext = cfg.max_plaintext.clamp(64, MAX_PLAINTEXT);
        cfg.rx_plain_cap = cfg.rx_plain_cap.max(MAX_PLAINTEXT);
        cfg.tx_wire_cap = cfg.tx_wire_cap.max(sealed_len(cfg.max_plaintext));
        TcpTransport {
            limiter: HandshakeLimiter::new(cfg.max_half_open),
            next_port: cfg.ephemeral_base,
            cfg,
            identity,
            conns: Vec::new(),
            events: EventQueue::default(),
            ids: ConnIds::new(),
            listening: false,
            scratch: vec![0; MAX_PLAINTEXT],
            seal_buf: vec![0; sealed_len(cfg.max_plaintext)],
        }
    }

    /// Connections currently held (listeners and dead sockets excluded).
    pub fn connections(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| !matches!(c.stage, Stage::Listening | Stage::Dead { .. }))
            .count()
    }

    fn count(&self, f: impl Fn(&Stage) -> bool) -> usize {
        self.conns.iter().filter(|c| f(&c.stage)).count()
    }

    /// Keeps `min(ACCEPT_BACKLOG, room)` sockets listening.
    fn open_listeners(&mut self, cx: &mut Cx<'_>) -> Result<(), TransportError> {
        let room = self.cfg.max_conns.saturating_sub(self.connections());
        let want = ACCEPT_BACKLOG.min(room);
        while self.count(|s| matches!(s, Stage::Listening)) < want {
            let handle = cx
                .sockets
                .tcp_listen(self.cfg.port, self.cfg.socket_buf)
                .map_err(|_| TransportError::Socket)?;
            let id = self.ids.alloc();
            self.conns.push(Conn {
                id,
                handle,
                stage: Stage::Listening,
                peer: None,
                rx_plain: VecDeque::new(),
                tx_wire: VecDeque::new(),
                announced: false,
            });
        }
        Ok(())
    }

    /// Ends connection `idx` with `error`: the socket is aborted (the peer
    /// gets a RST at once) and the node is told.
    fn fail(&mut self, idx: usize, cx: &mut Cx<'_>, error: TransportError) {
        let Some(c) = self.conns.get_mut(idx) else {
            return;
        };
        if let Stage::Handshaking { ticket, .. } = &mut c.stage {
            if let Some(t) = ticket.take() {
                self.limiter.release(t);
            }
        }
        let was_listening = matches!(c.stage, Stage::Listening);
        c.stage = Stage::Dead { since: cx.now };
        cx.sockets.tcp_abort(c.handle);
        if was_listening {
            return;
        }
        let (conn, peer) = (c.id, c.peer);
        self.events.push(if c.announced {
            TransportEvent::Closed {
                conn,
                error: Some(error),
            }
        } else {
            TransportEvent::HandshakeFailed {
                conn,
                claimed: peer,
                error,
            }
        });
    }

    /// Moves sealed bytes into the socket.
    fn flush(c: &mut Conn, sockets: &mut dyn Sockets) {
        while !c.tx_wire.is_empty() && sockets.tcp_status(c.handle).can_send() {
            let (a, _) = c.tx_wire.as_slices();
            match sockets.tcp_send(c.handle, a) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    c.tx_wire.drain(..n);
                }
            }
        }
    }

    /// Decrypts whole transport messages into `rx_plain` while there is room;
    /// returns whether at least one message decrypted.
    fn read_messages(
        c_rx: &mut VecDeque<u8>,
        sockets: &mut dyn Sockets,
        sock: SocketId,
        framed: &mut FramedSession,
        scratch: &mut [u8],
        rx_cap: usize,
    ) -> Result<bool, TransportError> {
        let mut got_any = false;
        while sockets.tcp_status(sock).can_recv() && c_rx.len() + MAX_PLAINTEXT <= rx_cap {
            let mut result: Result<Option<usize>, NoiseError> = Ok(None);
            let used = sockets
                .tcp_recv(sock, &mut |buf| match framed.open(buf, scratch) {
                    Ok((used, got)) => {
                        result = Ok(got);
                        used
                    }
                    Err(e) => {
                        result = Err(e);
                        0
                    }
                })
                .map_err(|_| TransportError::Socket)?;
            if let Some(n) = result? {
                c_rx.extend(scratch.get(..n).unwrap_or(&[]));
                got_any = true;
            }
            if used == 0 {
                break;
            }
        }
        Ok(got_any)
    }

    /// Drives one connection; returns an error that ends it.
    fn poll_conn(&mut self, idx: usize, cx: &mut Cx<'_>) -> Result<(), TransportError> {
        let now = cx.now;
        let rx_cap = self.cfg.rx_plain_cap;
        let Some(c) = self.conns.get_mut(idx) else {
            return Ok(());
        };
        let sock = c.handle;
        let status = |cx: &Cx<'_>| cx.sockets.tcp_status(sock);
        match &mut c.stage {
            Stage::Dead { .. } => return Ok(()),
            Stage::Listening => {
                if status(cx).is_listening() {
                    return Ok(());
                }
                // A SYN arrived: this socket becomes a connection.
                let ticket = self.limiter.try_acquire().map_err(TransportError::Noise)?;
                let hs = match Responder::new(&self.identity, cx.rng, now, &self.cfg.handshake) {
                    Ok(hs) => hs,
                    Err(e) => {
                        self.limiter.release(ticket);
                        return Err(e.into());
                    }
                };
                c.stage = Stage::Handshaking {
                    hs: Box::new(Handshake::Responder(hs)),
                    decoder: FrameDecoder::new(MAX_HANDSHAKE_MESSAGE_LEN),
                    ticket: Some(ticket),
                };
                return Ok(());
            }
            Stage::Handshaking { hs, decoder, .. } => {
                if hs.is_expired(now) {
                    return Err(TransportError::Noise(NoiseError::HandshakeTimeout));
                }
                let st = status(cx);
                if !st.is_open() {
                    return Err(TransportError::Refused);
                }
                if !st.may_send() && !st.may_recv() {
                    return Ok(()); // still connecting
                }
                write_handshake(hs, &mut c.tx_wire)?;
                // Read theirs, one frame at a time, never past its end.
                while hs.status() == HandshakeStatus::WantRead && status(cx).can_recv() {
                    let trust = &mut *cx.trust;
                    let mut result: Result<(), NoiseError> = Ok(());
                    let used = cx
                        .sockets
                        .tcp_recv(sock, &mut |buf| match decoder.feed(buf) {
                            Ok((used, Some(frame))) => {
                                result = hs.read_message(now, frame, trust);
                                used
                            }
                            Ok((used, None)) => used,
                            Err(e) => {
                                result = Err(e);
                                0
                            }
                        })
                        .map_err(|_| TransportError::Socket)?;
                    if c.peer.is_none() {
                        c.peer = hs.peer_device_id().copied();
                    }
                    result?;
                    if used == 0 {
                        break;
                    }
                }
                let st = status(cx);
                if hs.status() == HandshakeStatus::WantRead && !st.may_recv() && !st.can_recv() {
                    // The peer ended its side inside the handshake.
                    decoder.finish()?;
                    return Err(TransportError::PeerClosed);
                }
                write_handshake(hs, &mut c.tx_wire)?;
                if hs.is_finished() {
                    let Stage::Handshaking { hs, ticket, .. } =
                        core::mem::replace(&mut c.stage, Stage::Dead { since: now })
                    else {
                        return Ok(());
                    };
                    if let Some(t) = ticket {
                        self.limiter.release(t);
                    }
                    let deadline = hs.poll_at();
                    let responder = matches!(*hs, Handshake::Responder(_));
                    let session = (*hs).into_session()?;
                    let peer = *session.peer_device_id();
                    c.peer = Some(peer);
                    let mut framed = Box::new(FramedSession::new(session, MAX_MESSAGE));
                    if responder {
                        // Key confirmation: our first transport message, at once.
                        let n = framed.seal(&[], &mut self.seal_buf)?;
                        c.tx_wire.extend(self.seal_buf.get(..n).unwrap_or(&[]));
                        c.stage = Stage::Established { framed };
                        c.announced = true;
                        self.events
                            .push(TransportEvent::Authenticated { conn: c.id, peer });
                    } else {
                        c.stage = Stage::Confirming { framed, deadline };
                    }
                }
            }
            Stage::Confirming { framed, deadline } => {
                if now >= *deadline {
                    return Err(TransportError::Noise(NoiseError::HandshakeTimeout));
                }
                if !status(cx).is_open() {
                    return Err(TransportError::Refused);
                }
                let confirmed = Self::read_messages(
                    &mut c.rx_plain,
                    cx.sockets,
                    sock,
                    framed,
                    &mut self.scratch,
                    rx_cap,
                )?;
                if confirmed {
                    let Stage::Confirming { framed, .. } =
                        core::mem::replace(&mut c.stage, Stage::Dead { since: now })
                    else {
                        return Ok(());
                    };
                    c.stage = Stage::Established { framed };
                    c.announced = true;
                    let peer = c.peer.ok_or(TransportError::BadState)?;
                    self.events
                        .push(TransportEvent::Authenticated { conn: c.id, peer });
                } else {
                    let st = status(cx);
                    if !st.may_recv() && !st.can_recv() {
                        return Err(TransportError::Refused);
                    }
                }
            }
            Stage::Established { framed } => {
                Self::read_messages(
                    &mut c.rx_plain,
                    cx.sockets,
                    sock,
                    framed,
                    &mut self.scratch,
                    rx_cap,
                )?;
                let st = status(cx);
                if !st.may_recv() && !st.can_recv() {
                    framed.finish()?;
                    return Err(TransportError::PeerClosed);
                }
            }
        }
        Self::flush(c, cx.sockets);
        Ok(())
    }

    /// Removes dead connections whose socket is done (RST or FIN sent and
    /// closed), those older than [`DEAD_LINGER`], and beyond [`MAX_DEAD`] the oldest.
    fn reap(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        let mut dead = 0;
        let mut i = 0;
        while i < self.conns.len() {
            let c = &self.conns[i];
            if let Stage::Dead { since } = c.stage {
                let st = cx.sockets.tcp_status(c.handle);
                // An aborted socket forgets its remote once the RST is out.
                let done = !st.is_active() && (st.state != TcpState::Closed || st.remote.is_none());
                if done || now >= since + DEAD_LINGER {
                    let c = self.conns.swap_remove(i);
                    cx.sockets.tcp_remove(c.handle);
                    continue;
                }
                dead += 1;
            }
            i += 1;
        }
        while dead > MAX_DEAD {
            let oldest = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c.stage {
                    Stage::Dead { since } => Some((i, since)),
                    _ => None,
                })
                .min_by_key(|(_, since)| *since)
                .map(|(i, _)| i);
            let Some(i) = oldest else { break };
            let c = self.conns.swap_remove(i);
            cx.sockets.tcp_remove(c.handle);
            dead -= 1;
        }
    }
}

/// Queues our next handshake message, if it is our turn and the previous one left.
fn write_handshake(hs: &mut Handshake, tx_wire: &mut VecDeque<u8>) -> Result<(), NoiseError> {
    if hs.wants_write() && tx_wire.is_empty() {
        let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE_LEN + FRAME_HEADER_LEN];
        let n = hs.write_frame(&mut buf)?;
        tx_wire.extend(buf.get(..n).unwrap_or(&[]));
    }
    Ok(())
}

impl Transport for TcpTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Tcp
    }

    fn listen(&mut self, cx: &mut Cx<'_>) -> Result<(), TransportError> {
        self.listening = true;
        self.open_listeners(cx)
    }

    fn connect(&mut self, cx: &mut Cx<'_>, peer: &PeerAddr) -> Result<ConnId, TransportError> {
        let port = peer.tcp_port.ok_or(TransportError::NotOffered)?;
        if self.connections() >= self.cfg.max_conns {
            return Err(TransportError::TooManyConnections);
        }
        let ticket = self.limiter.try_acquire()?;
        let hs = match Initiator::new(
            &self.identity,
            &peer.device_id,
            peer.binding,
            cx.rng,
            cx.now,
            &self.cfg.handshake,
        ) {
            Ok(hs) => hs,
            Err(e) => {
                self.limiter.release(ticket);
                return Err(e.into());
            }
        };
        let local_port = self.next_port;
        self.next_port = if self.next_port == u16::MAX {
            self.cfg.ephemeral_base
        } else {
            self.next_port + 1
        };
        let remote = IpEndpoint::new(IpAddress::Ipv4(peer.ip), port);
        let handle = match cx
            .sockets
            .tcp_connect(remote, local_port, self.cfg.socket_buf)
        {
            Ok(h) => h,
            Err(_) => {
                self.limiter.release(ticket);
                return Err(TransportError::Socket);
            }
        };
        let id = self.ids.alloc();
        self.conns.push(Conn {
            id,
            handle,
            stage: Stage::Handshaking {
                hs: Box::new(Handshake::Initiator(hs)),
                decoder: FrameDecoder::new(MAX_HANDSHAKE_MESSAGE_LEN),
                ticket: Some(ticket),
            },
            peer: Some(peer.device_id),
            rx_plain: VecDeque::new(),
            tx_wire: VecDeque::new(),
            announced: false,
        });
        Ok(id)
    }

    fn poll(&mut self, cx: &mut Cx<'_>) {
        let mut i = 0;
        while i < self.conns.len() {
            if let Err(e) = self.poll_conn(i, cx) {
                self.fail(i, cx, e);
            }
            i += 1;
        }
        self.reap(cx);
        if self.listening {
            let _ = self.open_listeners(cx);
        }
    }

    fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop()
    }

    fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, TransportError> {
        let c = self
            .conns
            .iter_mut()
            .find(|c| c.id == conn)
            .ok_or(TransportError::UnknownConnection)?;
        if !c.announced {
            return Err(TransportError::BadState);
        }
        let n = buf.len().min(c.rx_plain.len());
        for (dst, src) in buf.iter_mut().zip(c.rx_plain.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    fn write(&mut self, conn: ConnId, data: &[u8]) -> Result<usize, TransportError> {
        let cap = self.cfg.tx_wire_cap;
        let max_plain = self.cfg.max_plaintext;
        let seal_buf = &mut self.seal_buf;
        let c = self
            .conns
            .iter_mut()
            .find(|c| c.id == conn)
            .ok_or(TransportError::UnknownConnection)?;
        let Stage::Established { framed } = &mut c.stage else {
            return Err(TransportError::BadState);
        };
        let mut written = 0;
        while written < data.len() {
            let room = cap.saturating_sub(c.tx_wire.len());
            if room <= sealed_len(0) {
                break;
            }
            let n = (data.len() - written)
                .min(max_plain)
                .min(room - sealed_len(0));
            let Some(chunk) = data.get(written..written + n) else {
                break;
            };
            let len = framed.seal(chunk, seal_buf)?;
            c.tx_wire.extend(seal_buf.get(..len).unwrap_or(&[]));
            written += n;
        }
        Ok(written)
    }

    fn write_capacity(&self, conn: ConnId) -> usize {
        let Some(c) = self
            .conns
            .iter()
            .find(|c| c.id == conn && matches!(c.stage, Stage::Established { .. }))
        else {
            return 0;
        };
        // Plaintext that `write` accepts in full: whole messages of
        // `max_plaintext`, then whatever fits in one more after its overhead.
        let room = self.cfg.tx_wire_cap.saturating_sub(c.tx_wire.len());
        let whole = sealed_len(self.cfg.max_plaintext);
        (room / whole) * self.cfg.max_plaintext + (room % whole).saturating_sub(sealed_len(0))
    }

    fn close(&mut self, cx: &mut Cx<'_>, conn: ConnId) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            if let Stage::Handshaking { ticket, .. } = &mut c.stage {
                if let Some(t) = ticket.take() {
                    self.limiter.release(t);
                }
            }
            if matches!(c.stage, Stage::Established { .. }) {
                // Graceful: what was written still goes out, then FIN.
                Self::flush(c, cx.sockets);
                cx.sockets.tcp_close(c.handle);
            } else {
                // Not a session (yet): the peer learns at once.
                cx.sockets.tcp_abort(c.handle);
            }
            c.stage = Stage::Dead { since: cx.now };
        }
    }

    fn abort(&mut self, cx: &mut Cx<'_>, conn: ConnId) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            if let Stage::Handshaking { ticket, .. } = &mut c.stage {
                if let Some(t) = ticket.take() {
                    self.limiter.release(t);
                }
            }
            cx.sockets.tcp_abort(c.handle);
            c.stage = Stage::Dead { since: cx.now };
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|c| match &c.stage {
                Stage::Handshaking { hs, .. } => Some(hs.poll_at()),
                Stage::Confirming { deadline, .. } => Some(*deadline),
                Stage::Dead { since } => Some(*since + DEAD_LINGER),
                _ => None,
            })
            .min()
    }
}
