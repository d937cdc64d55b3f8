//! The dialer: which discovered peers this node connects to, over which
//! transport, and what happens when an attempt fails.
//!
//! - **Who dials.** The node with the lower device id (byte-wise) dials as
//!   soon as it holds the peer's verified announce (it needs the peer's keys
//!   for XK); the peer needs nothing of ours in advance (see `admission`).
//!   The application may ask for a session with any discovered peer
//!   (`Node::connect`); that peer is dialled whatever the ids.
//! - **Which transport.** `tcp` / `udp-sec` force theirs. `auto` uses
//!   udp-sec when both sides offer it and the peer is not remembered as
//!   unreachable over UDP, else TCP.
//! - **Failures.** A udp-sec attempt that got no answer at all within
//!   `udpsec_deadline` (`auto`) or its handshake timeout means udp-sec is
//!   unreachable: TCP is tried at once and the peer is remembered (until
//!   discovery loses it). Any answer, a refusal included, proves the peer is
//!   reachable: the attempt is retried on the same transport with
//!   exponential backoff.

use alloc::vec::Vec;
use core::num::NonZeroU16;

use dsb_discovery::Discovery;
use dsb_noise::{DeviceId, NoiseError};
use dsb_transports::transport::{ConnId, Cx, PeerAddr, TransportError, TransportKind};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

use super::admission::lower;
use super::event::{Direction, Events, FallbackReason, NodeEvent};
use super::sessions::Sessions;
use super::transports::Transports;
use super::{noise_id, DialPolicy, NodeConfig, MAX_SESSIONS};
use crate::config::Transport as TransportMode;

/// Peers remembered as unreachable over udp-sec (`auto` then uses TCP for them).
pub const MAX_UDPSEC_FAILED: usize = MAX_SESSIONS * 2;
/// Peers with a backoff timer at once.
pub const MAX_BACKOFF: usize = MAX_SESSIONS * 2;
/// Peers the application may ask a session with at once.
pub const MAX_WANTED: usize = MAX_SESSIONS;

/// A session this node is opening.
pub(crate) struct Attempt {
    pub peer: DeviceId,
    pub kind: TransportKind,
    pub conn: ConnId,
    /// `auto` over udp-sec: unreachable (fall back to TCP) if not authenticated by then.
    pub deadline: Option<Instant>,
}

struct Backoff {
    peer: DeviceId,
    next: Instant,
    delay: Duration,
}

#[derive(Default)]
pub(crate) struct Dialer {
    attempts: Vec<Attempt>,
    backoff: Vec<Backoff>,
    /// Peers that never answered over udp-sec.
    udpsec_failed: Vec<DeviceId>,
    /// Peers the application asked a session with (dialled whatever the ids).
    wanted: Vec<DeviceId>,
    /// Peers that said goodbye (GOAWAY) and had no other session with us,
    /// with the boot epoch of their newest announce at the time (`None`
    /// until the next dial pass reads it). A goodbye is honoured: such a peer
    /// is dialled again only once it announces a newer boot epoch (it
    /// restarted), or the application asks for it; the peer itself may dial
    /// at any time. Dialling at once would reach a process that has left, or
    /// a new one at its address before its announce (then taken for the old
    /// one). At most [`MAX_BACKOFF`] of them.
    left: Vec<(DeviceId, Option<u32>)>,
}

impl Dialer {
    /// Whether we are opening a session to `peer`.
    pub fn is_dialing(&self, peer: &DeviceId) -> bool {
        self.attempts.iter().any(|a| a.peer == *peer)
    }

    /// Removes and returns our attempt on `(kind, conn)`.
    pub fn take(&mut self, kind: TransportKind, conn: ConnId) -> Option<Attempt> {
        let i = self
            .attempts
            .iter()
            .position(|a| a.kind == kind && a.conn == conn)?;
        Some(self.attempts.swap_remove(i))
    }

    /// Removes and returns our attempt towards `peer`.
    pub fn take_to(&mut self, peer: &DeviceId) -> Option<Attempt> {
        let i = self.attempts.iter().position(|a| a.peer == *peer)?;
        Some(self.attempts.swap_remove(i))
    }

    /// A session with `peer` is up: its backoff ends, the wish is granted.
    pub fn connected(&mut self, peer: &DeviceId) {
        self.backoff.retain(|b| b.peer != *peer);
        self.wanted.retain(|p| p != peer);
        self.left.retain(|(p, _)| p != peer);
    }

    /// `peer` closed its last session with a GOAWAY: do not dial it again
    /// until it restarts (or the application wants it).
    pub fn peer_left(&mut self, peer: DeviceId) {
        self.left.retain(|(p, _)| *p != peer);
        if self.left.len() >= MAX_BACKOFF {
            self.left.remove(0);
        }
        self.left.push((peer, None));
    }

    /// Whether `peer` (announce sequence `seq`) said goodbye and has not
    /// restarted since.
    fn still_left(&mut self, peer: &DeviceId, seq: u64) -> bool {
        let epoch = (seq >> 32) as u32;
        let Some(i) = self.left.iter().position(|(p, _)| p == peer) else {
            return false;
        };
        match self.left.get_mut(i) {
            Some((_, at @ None)) => {
                *at = Some(epoch);
                true
            }
            Some((_, Some(at))) if epoch <= *at => true,
            _ => {
                self.left.swap_remove(i);
                false
            }
        }
    }

    /// The application wants a session with `peer`: dial it even if its id
    /// is lower than ours. False when [`MAX_WANTED`] wishes are pending.
    pub fn want(&mut self, peer: DeviceId) -> bool {
        if self.wanted.contains(&peer) {
            return true;
        }
        if self.wanted.len() >= MAX_WANTED {
            return false;
        }
        self.wanted.push(peer);
        // Dial now, not after an earlier failure's backoff or goodbye.
        self.backoff.retain(|b| b.peer != peer);
        self.left.retain(|(p, _)| *p != peer);
        true
    }

    /// Discovery lost `peer`: forget what we learnt about reaching it.
    pub fn forget(&mut self, peer: &DeviceId) {
        self.udpsec_failed.retain(|p| p != peer);
        self.left.retain(|(p, _)| p != peer);
    }

    /// Earliest attempt deadline or backoff expiry still ahead. (An expired
    /// backoff needs no wake-up: `dial` runs on every poll. Reporting it
    /// would keep the node from ever sleeping.)
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        let a = self.attempts.iter().filter_map(|a| a.deadline).min();
        let b = self
            .backoff
            .iter()
            .map(|b| b.next)
            .filter(|t| *t > now)
            .min();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn backing_off(&self, peer: &DeviceId, now: Instant) -> bool {
        self.backoff.iter().any(|b| b.peer == *peer && b.next > now)
    }

    /// Starts sessions to the discovered peers this node should dial.
    #[allow(clippy::too_many_arguments)]
    pub fn dial(
        &mut self,
        cx: &mut Cx<'_>,
        transports: &mut Transports,
        discovery: &Discovery,
        sessions: &Sessions,
        cfg: &NodeConfig,
        local: &DeviceId,
        events: &mut Events,
    ) {
        let now = cx.now;
        for p in discovery.peers() {
            let Some(peer) = noise_id(&p.device_id) else {
                continue;
            };
            let we_dial = match cfg.dial {
                DialPolicy::LowerId => lower(local, &peer) || self.wanted.contains(&peer),
                DialPolicy::Everyone => true,
            };
            if !we_dial
                || self.still_left(&peer, p.seq)
                || sessions.get(&peer).is_some()
                || self.is_dialing(&peer)
                || self.backing_off(&peer, now)
                || sessions.len() + self.attempts.len() >= MAX_SESSIONS
            {
                continue;
            }
            let IpAddress::Ipv4(ip) = p.addr;
            let addr = PeerAddr {
                device_id: peer,
                binding: dsb_noise::Binding {
                    device_key: p.device_key.to_bytes(),
                    noise_static: p.noise_static,
                },
                ip,
                tcp_port: p.tcp_port.map(NonZeroU16::get),
                udpsec_port: p.udp_sec_port.map(NonZeroU16::get),
            };
            let kind = self.select(&addr, cfg, transports, events);
            events.push(NodeEvent::TransportSelected { peer, kind });
            events.push(NodeEvent::SessionConnect(peer));
            let started = match transports.get(kind) {
                Some(t) => t.connect(cx, &addr),
                None => Err(TransportError::NotOffered),
            };
            match started {
                Ok(conn) => self.attempts.push(Attempt {
                    peer,
                    kind,
                    conn,
                    deadline: (kind == TransportKind::UdpSec
                        && cfg.transport == TransportMode::Auto)
                        .then(|| now + cfg.udpsec_deadline),
                }),
                Err(error) => {
                    events.push(NodeEvent::HandshakeFailed {
                        peer: Some(peer),
                        error,
                        direction: Direction::Outbound,
                    });
                    self.back_off(peer, now, cfg);
                }
            }
        }
    }

    fn select(
        &self,
        addr: &PeerAddr,
        cfg: &NodeConfig,
        transports: &Transports,
        events: &mut Events,
    ) -> TransportKind {
        match cfg.transport {
            TransportMode::Tcp => TransportKind::Tcp,
            TransportMode::UdpSec => TransportKind::UdpSec,
            TransportMode::Auto => {
                let have = transports.udpsec.is_some();
                if have
                    && addr.udpsec_port.is_some()
                    && !self.udpsec_failed.contains(&addr.device_id)
                {
                    TransportKind::UdpSec
                } else {
                    if have && addr.udpsec_port.is_none() {
                        events.push(NodeEvent::UdpSecFallback {
                            peer: Some(addr.device_id),
                            reason: FallbackReason::NotOffered,
                        });
                    }
                    TransportKind::Tcp
                }
            }
        }
    }

    /// `auto`: udp-sec attempts that got no answer by their deadline give way to TCP.
    pub fn expire(&mut self, cx: &mut Cx<'_>, transports: &mut Transports, events: &mut Events) {
        let now = cx.now;
        let mut i = 0;
        while i < self.attempts.len() {
            if self.attempts[i].deadline.is_some_and(|d| d <= now) {
                let a = self.attempts.swap_remove(i);
                transports.close(cx, a.kind, a.conn);
                self.unreachable(a.peer, events);
                continue;
            }
            i += 1;
        }
    }

    fn unreachable(&mut self, peer: DeviceId, events: &mut Events) {
        if !self.udpsec_failed.contains(&peer) {
            if self.udpsec_failed.len() >= MAX_UDPSEC_FAILED {
                self.udpsec_failed.remove(0);
            }
            self.udpsec_failed.push(peer);
        }
        events.push(NodeEvent::UdpSecFallback {
            peer: Some(peer),
            reason: FallbackReason::Unreachable,
        });
    }

    /// Our attempt `a` failed with `error`: fall back (udp-sec never
    /// answered, `auto`) or retry later on the same transport.
    pub fn failed(
        &mut self,
        a: Attempt,
        error: TransportError,
        now: Instant,
        cfg: &NodeConfig,
        events: &mut Events,
    ) {
        let silent = matches!(
            error,
            TransportError::Timeout | TransportError::Noise(NoiseError::HandshakeTimeout)
        );
        if a.kind == TransportKind::UdpSec && cfg.transport == TransportMode::Auto && silent {
            self.unreachable(a.peer, events);
        } else {
            self.back_off(a.peer, now, cfg);
        }
    }

    /// Doubles `peer`'s retry delay (from `reconnect_min` up to `reconnect_max`).
    pub fn back_off(&mut self, peer: DeviceId, now: Instant, cfg: &NodeConfig) {
        if let Some(b) = self.backoff.iter_mut().find(|b| b.peer == peer) {
            let next = b.delay + b.delay;
            b.delay = if next > cfg.reconnect_max {
                cfg.reconnect_max
            } else {
                next
            };
            b.next = now + b.delay;
            return;
        }
        if self.backoff.len() >= MAX_BACKOFF {
            self.backoff.remove(0);
        }
        self.backoff.push(Backoff {
            peer,
            next: now + cfg.reconnect_min,
            delay: cfg.reconnect_min,
        });
    }

    /// Forgets timers that expired longer than `reconnect_max` ago (a
    /// later failure starts over from `reconnect_min`).
    pub fn tidy(&mut self, now: Instant, cfg: &NodeConfig) {
        self.backoff.retain(|b| b.next + cfg.reconnect_max > now);
    }
}
