//! Authenticated sessions: the table (one session per peer), what happens on
//! each transport event, and the pump that moves bytes transport → mux →
//! services → mux → transport.
//!
//! One session per pair of peers, the same one on both nodes: of two
//! sessions with one peer, the one whose initiator has the lower device id
//! wins; between two with the same initiator, the newer wins (the initiator
//! gave the older one up, e.g. it restarted).

use alloc::vec;
use alloc::vec::Vec;

use dsb_discovery::Discovery;
use dsb_noise::DeviceId;
use dsb_transports::mux::{Mux, Role};
use dsb_transports::transport::{ConnId, Cx, TransportError, TransportEvent, TransportKind};
use smoltcp::time::Instant;

use super::admission::lower;
use super::dialer::Dialer;
use super::event::{BusFailure, Direction, DownReason, Events, FallbackReason, NodeEvent};
use super::services::{Client, ClientEvent, EchoServer, SinkCheck};
use super::transports::Transports;
use super::{noise_id, NodeConfig, MAX_SESSIONS};
use crate::config::Transport as TransportMode;

/// Bytes moved between transport and mux per step: one whole mux frame.
pub const PUMP: usize = dsb_transports::tcp::MAX_PLAINTEXT;

pub(crate) struct Session {
    pub peer: DeviceId,
    pub conn: ConnId,
    pub kind: TransportKind,
    /// We opened it (Noise initiator).
    pub initiated: bool,
    pub mux: Mux,
    sink_bytes: u64,
    pub client: Client,
    pub server: EchoServer,
    ping_ok: bool,
    bulk_ok: bool,
}

pub(crate) struct Sessions {
    list: Vec<Session>,
    /// Sessions made, for the bulk pattern seed.
    counter: u32,
    buf: Vec<u8>,
}

/// Whether a new session (`new_initiated_by_us`) replaces `old` with `peer`.
fn new_wins(local: &DeviceId, peer: &DeviceId, old_initiated: bool, new_initiated: bool) -> bool {
    if old_initiated == new_initiated {
        return true; // same initiator: the newer one
    }
    // The winner is the session opened by the lower id.
    let new_opener = if new_initiated { local } else { peer };
    let old_opener = if old_initiated { local } else { peer };
    lower(new_opener, old_opener)
}

impl Sessions {
    pub fn new() -> Self {
        Sessions {
            list: Vec::new(),
            counter: 0,
            buf: vec![0; PUMP],
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.list.iter()
    }

    pub fn get(&self, peer: &DeviceId) -> Option<&Session> {
        self.list.iter().find(|s| s.peer == *peer)
    }

    /// Whether we hold a session we opened to `peer`.
    pub fn initiated_to(&self, peer: &DeviceId) -> bool {
        self.list.iter().any(|s| s.peer == *peer && s.initiated)
    }

    pub fn poll_at(&self) -> Option<Instant> {
        self.list.iter().filter_map(|s| s.mux.poll_at()).min()
    }

    fn remove(&mut self, kind: TransportKind, conn: ConnId) -> Option<Session> {
        let i = self
            .list
            .iter()
            .position(|s| s.kind == kind && s.conn == conn)?;
        Some(self.list.swap_remove(i))
    }

    /// Handles one transport event.
    #[allow(clippy::too_many_arguments)]
    pub fn on_transport_event(
        &mut self,
        cx: &mut Cx<'_, '_>,
        transports: &mut Transports,
        dialer: &mut Dialer,
        discovery: &Discovery,
        cfg: &NodeConfig,
        local: &DeviceId,
        kind: TransportKind,
        ev: TransportEvent,
        events: &mut Events,
    ) {
        let now = cx.now;
        match ev {
            TransportEvent::Authenticated { conn, peer } => {
                let attempt = dialer.take(kind, conn);
                let initiated = attempt.is_some();
                if !initiated {
                    // Admission let the peer's session in: it wins over ours.
                    if let Some(a) = dialer.take_to(&peer) {
                        transports.close(cx, a.kind, a.conn);
                    }
                }
                if let Some(old) = self.list.iter().position(|s| s.peer == peer) {
                    let (old_kind, old_conn, old_initiated) = {
                        let s = &self.list[old];
                        (s.kind, s.conn, s.initiated)
                    };
                    if !new_wins(local, &peer, old_initiated, initiated) {
                        transports.close(cx, kind, conn);
                        return;
                    }
                    self.list.swap_remove(old);
                    transports.close(cx, old_kind, old_conn);
                    events.push(NodeEvent::SessionClosed {
                        peer,
                        kind: old_kind,
                        reason: DownReason::Superseded,
                    });
                }
                if self.list.len() >= MAX_SESSIONS {
                    transports.close(cx, kind, conn);
                    return;
                }
                let Ok(mut mux) = Mux::new(
                    if initiated {
                        Role::Initiator
                    } else {
                        Role::Responder
                    },
                    cfg.mux,
                    now,
                ) else {
                    transports.close(cx, kind, conn);
                    events.push(NodeEvent::BusFailed(BusFailure::MuxConfig));
                    return;
                };
                mux.set_authenticated(now);
                if EchoServer::register(&mut mux).is_err() {
                    transports.close(cx, kind, conn);
                    return;
                }
                if !initiated {
                    events.push(NodeEvent::TransportSelected { peer, kind });
                    let offers_udpsec = discovery
                        .peers()
                        .any(|p| noise_id(&p.device_id) == Some(peer) && p.udp_sec_port.is_some());
                    if kind == TransportKind::Tcp
                        && cfg.transport == TransportMode::Auto
                        && transports.udpsec.is_some()
                        && offers_udpsec
                    {
                        events.push(NodeEvent::UdpSecFallback {
                            peer: Some(peer),
                            reason: FallbackReason::PeerChoseTcp,
                        });
                    }
                }
                events.push(NodeEvent::IdentityBound(peer));
                events.push(NodeEvent::AuthOk(peer));
                if kind == TransportKind::UdpSec {
                    events.push(NodeEvent::UdpSecSessionOk(peer));
                }
                dialer.connected(&peer);
                self.counter = self.counter.wrapping_add(1);
                let seed = self.counter ^ u32::from(local.as_bytes()[0]) << 24;
                let (bulk_bytes, sink_bytes) = cfg.load(kind);
                self.list.push(Session {
                    peer,
                    conn,
                    kind,
                    initiated,
                    mux,
                    sink_bytes,
                    client: Client::new(
                        bulk_bytes,
                        sink_bytes,
                        seed,
                        SinkCheck::new(sink_bytes, cfg.sink_rate, cfg.mux.recv_window as usize),
                    ),
                    server: EchoServer::new(cfg.sink_rate),
                    ping_ok: false,
                    bulk_ok: false,
                });
            }
            TransportEvent::HandshakeFailed {
                conn,
                claimed,
                error,
            } => {
                let attempt = dialer.take(kind, conn);
                let direction = if attempt.is_some() {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                let peer = attempt.as_ref().map(|a| a.peer).or(claimed);
                if error.is_identity_mismatch() {
                    if let Some(p) = peer {
                        events.push(NodeEvent::IdentityMismatch(p));
                    }
                }
                events.push(NodeEvent::HandshakeFailed {
                    peer,
                    error,
                    direction,
                });
                if let Some(a) = attempt {
                    dialer.failed(a, error, now, cfg, events);
                }
            }
            TransportEvent::Closed { conn, error } => {
                if let Some(s) = self.remove(kind, conn) {
                    let reason = error.map_or(DownReason::Local, DownReason::Transport);
                    events.push(NodeEvent::SessionClosed {
                        peer: s.peer,
                        kind,
                        reason,
                    });
                    dialer.back_off(s.peer, now, cfg);
                }
            }
        }
    }

    /// Moves bytes for every session: transport → mux → services → mux → transport.
    pub fn pump(
        &mut self,
        cx: &mut Cx<'_, '_>,
        transports: &mut Transports,
        dialer: &mut Dialer,
        cfg: &NodeConfig,
        events: &mut Events,
    ) {
        let now = cx.now;
        let mut closing: Vec<(TransportKind, ConnId, DownReason)> = Vec::new();
        let buf = &mut self.buf;
        for s in self.list.iter_mut() {
            let Some(transport) = transports.get(s.kind) else {
                closing.push((
                    s.kind,
                    s.conn,
                    DownReason::Transport(TransportError::NotOffered),
                ));
                continue;
            };
            let mut failed: Option<DownReason> = None;
            loop {
                match transport.read(s.conn, buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Err(e) = s.mux.handle_bytes(now, buf.get(..n).unwrap_or(&[])) {
                            failed = Some(DownReason::Mux(e));
                            break;
                        }
                    }
                }
            }
            if s.mux.poll_at().is_some_and(|t| t <= now) {
                if let Err(e) = s.mux.handle_timeout(now) {
                    failed = Some(DownReason::Mux(e));
                }
            }
            while let Some(ev) = s.mux.poll_event() {
                let _ = s.server.on_event(&mut s.mux, ev);
            }
            s.server.poll(now, &mut s.mux);
            run_client(s, now, events);
            // Move what the mux has to send into the transport, within its capacity.
            loop {
                let cap = transport.write_capacity(s.conn).min(buf.len());
                if cap == 0 {
                    break;
                }
                let n = s.mux.poll_transmit(buf.get_mut(..cap).unwrap_or(&mut []));
                if n == 0 {
                    break;
                }
                match transport.write(s.conn, buf.get(..n).unwrap_or(&[])) {
                    Ok(w) if w == n => {}
                    Ok(_) => {
                        failed = Some(DownReason::ShortWrite);
                        break;
                    }
                    Err(e) => {
                        failed = Some(DownReason::Transport(e));
                        break;
                    }
                }
            }
            if failed.is_none() && s.mux.is_closed() {
                failed = Some(s.mux.error().map_or(DownReason::Local, DownReason::Mux));
            }
            if let Some(reason) = failed {
                closing.push((s.kind, s.conn, reason));
            }
        }
        for (kind, conn, reason) in closing {
            transports.close(cx, kind, conn);
            if let Some(s) = self.remove(kind, conn) {
                events.push(NodeEvent::SessionClosed {
                    peer: s.peer,
                    kind,
                    reason,
                });
                dialer.back_off(s.peer, now, cfg);
            }
        }
    }
}

/// Drives the self-test client of one session and reports its steps.
fn run_client(s: &mut Session, now: Instant, events: &mut Events) {
    if s.client.is_done() {
        return;
    }
    let (peer, kind) = (s.peer, s.kind);
    while let Some(ev) = s.client.poll(now, &mut s.mux) {
        match ev {
            ClientEvent::PingOk { rtt } => {
                s.ping_ok = true;
                events.push(NodeEvent::PingOk { peer, kind, rtt });
            }
            ClientEvent::BulkOk { bytes, .. } => {
                s.bulk_ok = true;
                events.push(NodeEvent::MuxDataOk { peer, kind, bytes });
                if s.ping_ok && s.sink_bytes == 0 {
                    events.push(NodeEvent::SessionOk { peer, kind });
                }
            }
            ClientEvent::BackpressureOk {
                bytes,
                blocked,
                peak_buffered,
                elapsed,
            } => {
                events.push(NodeEvent::BackpressureOk {
                    peer,
                    kind,
                    bytes,
                    blocked,
                    peak_buffered,
                    elapsed,
                });
                if s.ping_ok && s.bulk_ok {
                    events.push(NodeEvent::SessionOk { peer, kind });
                }
            }
            ClientEvent::Failed(what) => {
                events.push(NodeEvent::ServiceFailed { peer, kind, what });
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    #[test]
    fn the_session_opened_by_the_lower_id_wins_on_both_sides() {
        let (a, b) = (id("node-a"), id("node-b"));
        // On a: old = ours (a opened), new = b's. b's must lose.
        assert!(!new_wins(&a, &b, true, false));
        // On b: old = ours (b opened), new = a's. a's must win.
        assert!(new_wins(&b, &a, true, false));
        // Reverse arrival order gives the same survivor.
        assert!(new_wins(&a, &b, false, true));
        assert!(!new_wins(&b, &a, false, true));
        // Same opener: the newer session wins (the opener gave the old one up).
        assert!(new_wins(&a, &b, true, true));
        assert!(new_wins(&a, &b, false, false));
    }

    #[test]
    fn lower_is_bytewise() {
        assert!(lower(&id("A"), &id("a")));
        assert!(lower(&id("node"), &id("node-1")));
        assert!(lower(&id("node-10"), &id("node-2")));
        assert!(!lower(&id("x"), &id("x")));
    }
}
