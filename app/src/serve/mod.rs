//! The serving node's application (`mode=serve`): it publishes the node's
//! built-in services with the configured access policies and, as a health
//! check, pings every peer it gets a session with once (over the peer's
//! `ping` echo, when the peer announces it), then optionally echoes
//! `echo_bytes` through it, hash-checked ([`probe`]). It never ends; the
//! image runs it until QEMU is stopped.

mod probe;

use alloc::vec::Vec;

use crate::net::Network;
use dsb_noise::DeviceId;
use smoltcp::time::{Duration, Instant};

use probe::Probe;
pub use probe::{ProbeResult, PROBE_IDLE};

use crate::bus::api::{BLOB, DIRECTORY, PING};
use crate::bus::{Access, ApiError};
use crate::config::{AllowEntry, Who};
use crate::node::{NodeEvent, NodeOn, MAX_SESSIONS};

/// Most peers probed at once.
pub const MAX_PROBES: usize = MAX_SESSIONS;

/// What the serving application reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeEvent {
    /// A peer answered the health-check ping over the session.
    PingOk { peer: DeviceId, rtt: Duration },
    /// `bytes` went through the peer's echo and came back with the same hash.
    EchoOk {
        peer: DeviceId,
        bytes: u64,
        elapsed: Duration,
    },
    /// The health check failed (no echo in time, refused, wrong echo).
    PingFailed { peer: DeviceId, what: &'static str },
}

/// The services a serving node publishes when `allow=` does not say:
/// `ping` and `sd` to any authenticated peer, `blob` to nobody.
pub const DEFAULT_ALLOW: &str = "ping:*,sd:*";

/// Publishes `ping`, `sd` and `blob` (and any other name `allow` mentions)
/// with the policies `allow` gives (`None`: [`DEFAULT_ALLOW`]); a published
/// service no entry names is denied to everyone.
pub fn publish<N: Network>(
    node: &mut NodeOn<N>,
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

/// The serving node's application.
#[derive(Default)]
pub struct ServeApp {
    /// Bytes echoed with each peer after the ping (0: ping only).
    echo_bytes: u64,
    /// Sessions up whose peer's services are not known yet.
    waiting: Vec<DeviceId>,
    probes: Vec<Probe>,
    events: Vec<ServeEvent>,
}

impl ServeApp {
    /// Pings every new peer; with `echo_bytes > 0` also echoes that many
    /// bytes through its `ping` service and compares their hash.
    pub fn new(echo_bytes: u64) -> ServeApp {
        ServeApp {
            echo_bytes,
            ..ServeApp::default()
        }
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
                if let Some(i) = self.probes.iter().position(|p| p.channel() == Some(ch)) {
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

    /// When a probe gives up, at the latest.
    pub fn poll_at(&self) -> Option<Instant> {
        self.probes.iter().map(Probe::poll_at).min()
    }

    /// Starts probes of peers that announce `ping`; drives running probes.
    pub fn poll<N: Network>(&mut self, now: Instant, node: &mut NodeOn<N>) {
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
                    self.probes.push(Probe::new(peer, now, self.echo_bytes));
                }
            }
        }
        let events = &mut self.events;
        self.probes.retain_mut(|p| {
            let peer = p.peer;
            !p.step(now, node, &mut |r| {
                events.push(match r {
                    ProbeResult::Rtt(rtt) => ServeEvent::PingOk { peer, rtt },
                    ProbeResult::Echo { bytes, elapsed } => ServeEvent::EchoOk {
                        peer,
                        bytes,
                        elapsed,
                    },
                    ProbeResult::Failed(what) => ServeEvent::PingFailed { peer, what },
                })
            })
        });
    }
}
