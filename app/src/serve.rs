//! The serving node's application (`mode=serve`): it publishes the node's
//! built-in services with the configured access policies and, as a health
//! check, pings every peer it gets a session with once (over the peer's
//! `ping` echo, when the peer announces it). It never ends; the image runs
//! it until QEMU is stopped.

use alloc::vec::Vec;

use dsb_noise::DeviceId;
use dsb_transports::mux::ChannelError;
use smoltcp::phy::Device;
use smoltcp::time::{Duration, Instant};

use crate::bus::api::{BLOB, DIRECTORY, PING};
use crate::bus::{Access, ApiError, ChannelRef};
use crate::config::{AllowEntry, Who};
use crate::node::{Node, NodeEvent, MAX_SESSIONS};

/// Most peers probed at once.
pub const MAX_PROBES: usize = MAX_SESSIONS;
/// A probe that got no echo by then fails.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the serving application reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeEvent {
    /// A peer answered the health-check ping over the session.
    PingOk { peer: DeviceId, rtt: Duration },
    /// The health check failed (no echo in time, refused, wrong echo).
    PingFailed { peer: DeviceId, what: &'static str },
}

/// The services a serving node publishes when `allow=` does not say:
/// `ping` and `sd` to any authenticated peer, `blob` to nobody.
pub const DEFAULT_ALLOW: &str = "ping:*,sd:*";

/// Publishes `ping`, `sd` and `blob` (and any other name `allow` mentions)
/// with the policies `allow` gives (`None`: [`DEFAULT_ALLOW`]); a published
/// service no entry names is denied to everyone.
pub fn publish<D: Device>(
    node: &mut Node<D>,
    allow: Option<&[AllowEntry]>,
) -> Result<(), ApiError> {
    let defaults = [(PING, Who::Any), (DIRECTORY, Who::Any)];
    let mut names: Vec<dsb_transports::mux::ServiceName> = Vec::new();
    for n in [PING, DIRECTORY, BLOB] {
        if let Some(n) = dsb_transports::mux::ServiceName::new(n.as_bytes()) {
            names.push(n);
        }
    }
    if let Some(allow) = allow {
        for e in allow {
            if !names.contains(&e.service) {
                names.push(e.service);
            }
        }
    }
    for name in &names {
        let mut access = Access::Deny;
        match allow {
            Some(allow) => {
                for e in allow.iter().filter(|e| e.service == *name) {
                    match e.who {
                        Who::Any => access = Access::AnyAuthenticated,
                        Who::Id(id) => access.allow(id).map_err(|_| ApiError::TooManyIds)?,
                    }
                }
            }
            None => {
                if defaults.iter().any(|(n, _)| *n == name.as_str()) {
                    access = Access::AnyAuthenticated;
                }
            }
        }
        node.publish(name.as_str(), access)?;
    }
    Ok(())
}

struct Probe {
    peer: DeviceId,
    ch: Option<ChannelRef>,
    nonce: [u8; 8],
    sent: usize,
    got: usize,
    started: Instant,
}

/// The serving node's application.
#[derive(Default)]
pub struct ServeApp {
    /// Sessions up whose peer's services are not known yet.
    waiting: Vec<DeviceId>,
    probes: Vec<Probe>,
    events: Vec<ServeEvent>,
}

impl ServeApp {
    pub fn new() -> ServeApp {
        ServeApp::default()
    }

    /// Takes the node events that concern it.
    pub fn on_event(&mut self, ev: &NodeEvent) {
        match *ev {
            NodeEvent::SessionUp { peer, .. } => {
                self.probes.retain(|p| p.peer != peer);
                if !self.waiting.contains(&peer) && self.waiting.len() < MAX_PROBES {
                    self.waiting.push(peer);
                }
            }
            NodeEvent::SessionDown { peer, .. } => {
                self.waiting.retain(|p| *p != peer);
                self.probes.retain(|p| p.peer != peer);
            }
            NodeEvent::ChannelRefused { ch, .. } | NodeEvent::ChannelReset { ch, .. } => {
                if let Some(i) = self.probes.iter().position(|p| p.ch == Some(ch)) {
                    let p = self.probes.swap_remove(i);
                    self.events.push(ServeEvent::PingFailed {
                        peer: p.peer,
                        what: "ping refused",
                    });
                }
            }
            _ => {}
        }
    }

    /// The next report.
    pub fn next_event(&mut self) -> Option<ServeEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// When a probe times out.
    pub fn poll_at(&self) -> Option<Instant> {
        self.probes.iter().map(|p| p.started + PROBE_TIMEOUT).min()
    }

    /// Starts probes of peers that announce `ping`; drives running probes.
    pub fn poll<D: Device>(&mut self, now: Instant, node: &mut Node<D>) {
        let mut i = 0;
        while i < self.waiting.len() {
            let peer = self.waiting[i];
            let offers = node
                .peers()
                .find(|p| p.device_id.as_bytes() == peer.as_bytes())
                .map(|p| p.services.iter().any(|s| s.as_bytes() == PING.as_bytes()));
            match offers {
                None => i += 1,
                Some(false) => {
                    self.waiting.swap_remove(i);
                }
                Some(true) => {
                    self.waiting.swap_remove(i);
                    let nonce = (now.total_micros() as u64).to_be_bytes();
                    self.probes.push(Probe {
                        peer,
                        ch: None,
                        nonce,
                        sent: 0,
                        got: 0,
                        started: now,
                    });
                }
            }
        }
        let mut done: Vec<(usize, Result<Duration, &'static str>)> = Vec::new();
        for (k, p) in self.probes.iter_mut().enumerate() {
            if now >= p.started + PROBE_TIMEOUT {
                done.push((k, Err("no echo in time")));
                continue;
            }
            if let Some(r) = step(p, now, node) {
                done.push((k, r));
            }
        }
        for (k, r) in done.into_iter().rev() {
            let p = self.probes.swap_remove(k);
            if let Some(ch) = p.ch {
                let _ = node.finish(ch);
            }
            self.events.push(match r {
                Ok(rtt) => ServeEvent::PingOk { peer: p.peer, rtt },
                Err(what) => ServeEvent::PingFailed { peer: p.peer, what },
            });
        }
    }
}

/// Advances one probe; `Some` when it ended.
fn step<D: Device>(
    p: &mut Probe,
    now: Instant,
    node: &mut Node<D>,
) -> Option<Result<Duration, &'static str>> {
    let ch = match p.ch {
        Some(ch) => ch,
        None => match node.open(&p.peer, PING) {
            Ok(ch) => {
                p.ch = Some(ch);
                ch
            }
            Err(ApiError::Channel(ChannelError::TooManyChannels)) => return None,
            Err(_) => return Some(Err("ping open")),
        },
    };
    if p.sent < p.nonce.len() {
        match node.write(ch, p.nonce.get(p.sent..).unwrap_or(&[])) {
            Ok(n) => p.sent += n,
            Err(ApiError::Channel(ChannelError::WouldBlock)) => {}
            Err(_) => return Some(Err("ping write")),
        }
    }
    let mut buf = [0u8; 8];
    let want = p.nonce.len() - p.got;
    match node.read(ch, buf.get_mut(..want).unwrap_or(&mut [])) {
        Ok(0) if want > 0 => return Some(Err("ping echo short")),
        Ok(n) => {
            if buf.get(..n) != p.nonce.get(p.got..p.got + n) {
                return Some(Err("ping echo mismatch"));
            }
            p.got += n;
        }
        Err(ApiError::Channel(ChannelError::WouldBlock)) => {}
        Err(_) => return Some(Err("ping read")),
    }
    (p.got == p.nonce.len()).then(|| Ok(now - p.started))
}
