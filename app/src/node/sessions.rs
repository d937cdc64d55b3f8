//! Authenticated sessions: the table (one session per peer), what happens on
//! each transport event, and the pump that moves bytes transport → mux →
//! built-in services and application channels → mux → transport.
//!
//! One session per pair of peers, the same one on both nodes: of two
//! sessions with one peer, the one whose initiator has the lower device id
//! wins; between two with the same initiator, the newer wins (the initiator
//! gave the older one up, e.g. it restarted).
//!
//! Access control happens here, per session: every published service is
//! registered on the session's mux if its policy allows the peer and denied
//! otherwise, so an OPEN the policy refuses is answered `access-denied` by
//! the mux before a single byte is delivered.

use alloc::vec;
use alloc::vec::Vec;

use dsb_discovery::Discovery;
use dsb_noise::DeviceId;
use dsb_transports::mux::{
    ChannelId, Mux, MuxError, MuxEvent, MuxStats, RefuseReason, Role, ServiceName,
};
use dsb_transports::transport::{ConnId, Cx, TransportError, TransportEvent, TransportKind};
use smoltcp::time::Instant;

use super::admission::lower;
use super::dialer::Dialer;
use super::event::{BusFailure, Direction, DownReason, Events, FallbackReason, NodeEvent};
use super::owned::{Ctx, Done, Owned};
use super::transports::Transports;
use super::{noise_id, NodeConfig, MAX_SESSIONS};
use crate::bus::blob::BlobStore;
use crate::bus::rpc::RpcError;
use crate::bus::{ChannelRef, Handler, Services};
use crate::config::Transport as TransportMode;

/// Bytes moved between transport and mux per step: one whole mux frame.
pub const PUMP: usize = dsb_transports::tcp::MAX_PLAINTEXT;

pub(crate) struct Session {
    pub peer: DeviceId,
    pub conn: ConnId,
    pub kind: TransportKind,
    /// We opened it (Noise initiator).
    pub initiated: bool,
    /// This node's number for the session (channel handles carry it).
    pub number: u32,
    /// When it was authenticated.
    pub since: Instant,
    pub mux: Mux,
    /// Channels the node drives itself: built-in services it serves, and
    /// the application's calls and transfers (all others belong to the
    /// application).
    pub owned: Vec<(ChannelId, Owned)>,
    /// Channels we opened that the peer has not accepted or refused yet
    /// (at most the mux's channel cap).
    pub opening: Vec<(ChannelId, ServiceName)>,
    /// The boot epoch of the peer's announces while this session lives
    /// (the high half of their sequence numbers), once one was seen.
    pub peer_epoch: Option<u32>,
}

impl Session {
    /// A handle for channel `id` of this session.
    pub fn handle(&self, id: ChannelId) -> ChannelRef {
        ChannelRef {
            peer: self.peer,
            session: self.number,
            id,
        }
    }

    /// Registers (allowed) or denies every published service for this peer.
    pub fn apply_services(&mut self, services: &Services, withdrawn: &[ServiceName]) {
        for n in withdrawn {
            self.mux.unregister_service(n.as_str());
        }
        for p in services.iter() {
            let _ = if p.access.allows(&self.peer) {
                self.mux.register_service(p.name.as_str())
            } else {
                self.mux.deny_service(p.name.as_str())
            };
        }
    }
}

/// What a session's mux event means for the node (built and consumed at once).
#[allow(clippy::large_enum_variant)]
enum Routed {
    Nothing,
    Event(NodeEvent),
}

pub(crate) struct Sessions {
    list: Vec<Session>,
    /// Sessions made so far (numbers handles).
    counter: u32,
    /// Inbound OPENs refused because of a service's policy.
    pub denied: u64,
    /// What node-driven channels completed (drained by the node each poll).
    pub done: Vec<Done>,
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
            denied: 0,
            done: Vec::new(),
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

    pub fn get_mut(&mut self, peer: &DeviceId) -> Option<&mut Session> {
        self.list.iter_mut().find(|s| s.peer == *peer)
    }

    /// The session a handle belongs to, if it is still that session.
    pub fn for_handle(&mut self, ch: &ChannelRef) -> Option<&mut Session> {
        self.list
            .iter_mut()
            .find(|s| s.peer == ch.peer && s.number == ch.session)
    }

    /// Whether we hold a session we opened to `peer`.
    pub fn initiated_to(&self, peer: &DeviceId) -> bool {
        self.list.iter().any(|s| s.peer == *peer && s.initiated)
    }

    pub fn poll_at(&self) -> Option<Instant> {
        self.list
            .iter()
            .flat_map(|s| {
                core::iter::once(s.mux.poll_at()).chain(s.owned.iter().map(|(_, o)| o.poll_at()))
            })
            .flatten()
            .min()
    }

    /// Resets the channel carrying transfer `id`, wherever it runs.
    pub fn drop_transfer(&mut self, id: super::owned::TransferId) {
        for s in self.list.iter_mut() {
            if let Some(i) = s.owned.iter().position(|(_, o)| o.transfer() == Some(id)) {
                let (ch, _) = s.owned.swap_remove(i);
                let _ = s.mux.reset(ch, crate::bus::codec::reset_code::ABORTED);
            }
        }
    }

    fn remove(&mut self, kind: TransportKind, conn: ConnId) -> Option<Session> {
        let i = self
            .list
            .iter()
            .position(|s| s.kind == kind && s.conn == conn)?;
        let s = self.list.swap_remove(i);
        Some(self.retire(s))
    }

    /// A session leaves the table: its calls fail, its transfers are kept
    /// to continue on the next session.
    fn retire(&mut self, mut s: Session) -> Session {
        for (_, o) in s.owned.drain(..) {
            o.session_ended(s.peer, &mut self.done);
        }
        s
    }

    /// Handles one transport event.
    #[allow(clippy::too_many_arguments)]
    pub fn on_transport_event(
        &mut self,
        cx: &mut Cx<'_>,
        transports: &mut Transports,
        dialer: &mut Dialer,
        discovery: &Discovery,
        services: &Services,
        cfg: &NodeConfig,
        local: &DeviceId,
        kind: TransportKind,
        ev: TransportEvent,
        events: &mut Events,
    ) {
        let now = cx.now;
        match ev {
            TransportEvent::Authenticated { conn, peer } => {
                let initiated = dialer.take(kind, conn).is_some();
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
                    let gone = self.list.swap_remove(old);
                    self.retire(gone);
                    transports.close(cx, old_kind, old_conn);
                    events.push(NodeEvent::SessionDown {
                        peer,
                        kind: old_kind,
                        reason: DownReason::Superseded,
                    });
                }
                if self.list.len() >= MAX_SESSIONS {
                    transports.close(cx, kind, conn);
                    return;
                }
                let role = if initiated {
                    Role::Initiator
                } else {
                    Role::Responder
                };
                let Ok(mut mux) = Mux::new(role, cfg.mux, now) else {
                    transports.close(cx, kind, conn);
                    events.push(NodeEvent::BusFailed(BusFailure::MuxConfig));
                    return;
                };
                mux.set_authenticated(now);
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
                let mut s = Session {
                    peer,
                    conn,
                    kind,
                    initiated,
                    number: self.counter,
                    since: now,
                    mux,
                    owned: Vec::new(),
                    opening: Vec::new(),
                    peer_epoch: epoch_of(discovery, &peer),
                };
                s.apply_services(services, &[]);
                events.push(NodeEvent::SessionUp {
                    peer,
                    kind,
                    session: s.number,
                });
                self.list.push(s);
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
                    if said_goodbye(&s.mux, &reason) && self.get(&s.peer).is_none() {
                        dialer.peer_left(s.peer);
                    }
                    events.push(NodeEvent::SessionDown {
                        peer: s.peer,
                        kind,
                        reason,
                    });
                    dialer.back_off(s.peer, now, cfg);
                }
            }
        }
    }

    /// Moves bytes for every session: transport → mux → built-ins and
    /// application events → mux → transport.
    #[allow(clippy::too_many_arguments)]
    pub fn pump(
        &mut self,
        cx: &mut Cx<'_>,
        transports: &mut Transports,
        dialer: &mut Dialer,
        services: &Services,
        store: &mut Option<BlobStore>,
        cfg: &NodeConfig,
        events: &mut Events,
    ) {
        let now = cx.now;
        let mut closing: Vec<(TransportKind, ConnId, DownReason)> = Vec::new();
        let buf = &mut self.buf;
        let denied = &mut self.denied;
        let done = &mut self.done;
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
                if let Routed::Event(e) = route(s, ev, now, services, store.is_some(), denied, done)
                {
                    events.push(e);
                }
            }
            let mut ctx = Ctx {
                now,
                peer: s.peer,
                services,
                store,
                done,
            };
            let mux = &mut s.mux;
            s.owned.retain_mut(|(id, o)| !o.poll(mux, *id, &mut ctx));
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
                if said_goodbye(&s.mux, &reason) && self.get(&s.peer).is_none() {
                    dialer.peer_left(s.peer);
                }
                events.push(NodeEvent::SessionDown {
                    peer: s.peer,
                    kind,
                    reason,
                });
                dialer.back_off(s.peer, now, cfg);
            }
        }
    }

    /// Applies a change of the published services to every session.
    pub fn apply_services(&mut self, services: &Services, withdrawn: &[ServiceName]) {
        for s in self.list.iter_mut() {
            s.apply_services(services, withdrawn);
        }
    }

    /// Peers whose announces carry a newer boot epoch than when their
    /// session began: they restarted, and the session is a dead one's
    /// (closing it at once lets the new one in, instead of waiting for the
    /// idle timeout while the one-per-pair rule refuses the new session).
    pub fn restarted(&mut self, discovery: &Discovery) -> heapless::Vec<DeviceId, MAX_SESSIONS> {
        let mut out = heapless::Vec::new();
        for s in self.list.iter_mut() {
            let Some(now) = epoch_of(discovery, &s.peer) else {
                continue;
            };
            match s.peer_epoch {
                None => s.peer_epoch = Some(now),
                Some(then) if now > then => {
                    let _ = out.push(s.peer);
                }
                Some(_) => {}
            }
        }
        out
    }

    /// Closes the session with `peer` (gracefully where the transport can).
    pub fn close(
        &mut self,
        cx: &mut Cx<'_>,
        transports: &mut Transports,
        peer: &DeviceId,
        events: &mut Events,
    ) -> bool {
        self.close_for(cx, transports, peer, DownReason::Local, events)
    }

    /// Closes the session with `peer`, reporting `reason`.
    pub fn close_for(
        &mut self,
        cx: &mut Cx<'_>,
        transports: &mut Transports,
        peer: &DeviceId,
        reason: DownReason,
        events: &mut Events,
    ) -> bool {
        let Some(i) = self.list.iter().position(|s| s.peer == *peer) else {
            return false;
        };
        let s = self.list.swap_remove(i);
        let mut s = self.retire(s);
        s.mux.close(dsb_transports::mux::goaway_code::NO_ERROR);
        // Let the GOAWAY out before the transport closes.
        if let Some(t) = transports.get(s.kind) {
            let cap = t.write_capacity(s.conn).min(self.buf.len());
            let n = s
                .mux
                .poll_transmit(self.buf.get_mut(..cap).unwrap_or(&mut []));
            let _ = t.write(s.conn, self.buf.get(..n).unwrap_or(&[]));
        }
        if reason == DownReason::PeerRestarted {
            // That instance of the peer is gone: nothing it was sent will be
            // acknowledged, so a graceful close would hold the connection's
            // slot until a timeout (and a peer restarting in a loop, like a
            // workstation's `dsb`, would fill the table).
            transports.abort(cx, s.kind, s.conn);
        } else {
            transports.close(cx, s.kind, s.conn);
        }
        events.push(NodeEvent::SessionDown {
            peer: s.peer,
            kind: s.kind,
            reason,
        });
        true
    }
}

/// Turns one mux event of session `s` into a node event, or hands it to the
/// channel the node drives.
#[allow(clippy::too_many_arguments)]
fn route(
    s: &mut Session,
    ev: MuxEvent,
    now: Instant,
    services: &Services,
    has_store: bool,
    denied: &mut u64,
    done: &mut Vec<Done>,
) -> Routed {
    let owned = |s: &Session, id: ChannelId| s.owned.iter().any(|(c, _)| *c == id);
    match ev {
        MuxEvent::ChannelOpened { id, name } => {
            let handler = services.get(name.as_bytes()).map(|p| p.handler);
            match handler {
                Some(Handler::App) => Routed::Event(NodeEvent::ChannelAccepted {
                    ch: s.handle(id),
                    service: name,
                }),
                Some(h) => match Owned::serve(h, now, has_store) {
                    Some(o) => {
                        s.owned.push((id, o));
                        Routed::Nothing
                    }
                    None => {
                        // A built-in this node cannot serve (no store).
                        let _ = s.mux.reset(id, crate::bus::codec::reset_code::ABORTED);
                        Routed::Nothing
                    }
                },
                // Withdrawn after the mux accepted the OPEN.
                None => {
                    let _ = s.mux.reset(id, crate::bus::codec::reset_code::ABORTED);
                    Routed::Nothing
                }
            }
        }
        MuxEvent::Refused {
            name,
            reason: RefuseReason::AccessDenied,
            ..
        } => {
            *denied = denied.saturating_add(1);
            Routed::Event(NodeEvent::ChannelDenied {
                peer: s.peer,
                service: name,
            })
        }
        MuxEvent::Refused { .. } | MuxEvent::Pong { .. } => Routed::Nothing,
        MuxEvent::Accepted { id } => match take_opening(s, id) {
            Some(service) if !owned(s, id) => Routed::Event(NodeEvent::ChannelOpened {
                ch: s.handle(id),
                service,
            }),
            _ => Routed::Nothing,
        },
        MuxEvent::Readable { id } if !owned(s, id) => {
            Routed::Event(NodeEvent::ChannelReadable(s.handle(id)))
        }
        MuxEvent::Writable { id } if !owned(s, id) => {
            Routed::Event(NodeEvent::ChannelWritable(s.handle(id)))
        }
        MuxEvent::Finished { id } if !owned(s, id) => {
            Routed::Event(NodeEvent::ChannelFinished(s.handle(id)))
        }
        MuxEvent::Reset { id, code } => {
            let ch = s.handle(id);
            let service = take_opening(s, id);
            let refusal = RefuseReason::from_reset_code(code);
            if let Some(i) = s.owned.iter().position(|(c, _)| *c == id) {
                // The node's own channel: a refusal fails its call or
                // transfer here; any other reset is read by its state
                // machine (after what the peer sent before it).
                if let Some(r) = refusal {
                    let (_, o) = s.owned.swap_remove(i);
                    let why = match r {
                        RefuseReason::AccessDenied => RpcError::Denied,
                        RefuseReason::UnknownService => RpcError::UnknownService,
                        _ => RpcError::ChannelClosed,
                    };
                    o.refused(why, s.peer, done);
                }
                return Routed::Nothing;
            }
            match (refusal, service) {
                (Some(reason), Some(service)) => Routed::Event(NodeEvent::ChannelRefused {
                    ch,
                    service,
                    reason,
                }),
                _ => Routed::Event(NodeEvent::ChannelReset { ch, code }),
            }
        }
        MuxEvent::Readable { .. } | MuxEvent::Writable { .. } | MuxEvent::Finished { .. } => {
            Routed::Nothing
        }
    }
}

/// The boot epoch of `peer`'s newest announce, if discovery holds one.
fn epoch_of(discovery: &Discovery, peer: &DeviceId) -> Option<u32> {
    let id = dsb_discovery::DeviceId::new(peer.as_bytes()).ok()?;
    discovery.peer(&id).map(|p| (p.seq >> 32) as u32)
}

/// The service of a channel we opened, once the peer answered it.
fn take_opening(s: &mut Session, id: ChannelId) -> Option<ServiceName> {
    let i = s.opening.iter().position(|(c, _)| *c == id)?;
    Some(s.opening.swap_remove(i).1)
}

/// Statistics of one session, for applications and tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStats {
    pub peer: DeviceId,
    pub kind: TransportKind,
    /// This node opened it.
    pub initiated: bool,
    pub number: u32,
    /// When it was authenticated.
    pub since: Instant,
    pub mux: MuxStats,
}

impl Session {
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            peer: self.peer,
            kind: self.kind,
            initiated: self.initiated,
            number: self.number,
            since: self.since,
            mux: self.mux.stats(),
        }
    }
}

/// Whether a session ended because the peer said goodbye: its GOAWAY, as
/// the mux read it. (Over TCP the FIN that follows a GOAWAY can be reported
/// before the mux read the GOAWAY; such a goodbye is not recognised, and
/// the peer is dialled again after the usual backoff.)
fn said_goodbye(mux: &Mux, reason: &DownReason) -> bool {
    matches!(reason, DownReason::Mux(MuxError::PeerGoAway(_)))
        || matches!(mux.error(), Some(MuxError::PeerGoAway(_)))
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
