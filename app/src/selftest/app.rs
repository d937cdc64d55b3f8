//! The self-test as an application of the bus API: it publishes `bulk` and
//! `sink` (and the node's built-in `ping`) to every authenticated peer, and
//! on every session runs a client through ping, bulk echo and, if asked, the
//! slow sink; in the `services` scenario it also runs [`Checks`] (directory
//! calls, a blob round trip, a refused blob). Nothing of it lives in the node.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::net::Network;
use dsb_noise::DeviceId;
use dsb_transports::transport::TransportKind;
use smoltcp::time::{Duration, Instant};

use super::checks::{CheckEvent, Checks, Plan};
use super::services::{
    Client, ClientEvent, Served, SinkBudget, SinkCheck, BULK_SERVICE, PING_SERVICE, SINK_SERVICE,
};
use crate::bus::{Access, ApiError};
use crate::node::{NodeEvent, NodeOn, MAX_SESSIONS};

/// Most channels the self-test serves at once (more are reset).
pub const MAX_SERVED: usize = 16;
/// Most self-test events queued (oldest dropped beyond this).
pub const MAX_TEST_EVENTS: usize = 64;

/// How much each session's client moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelftestConfig {
    /// Bulk echo bytes per TCP session.
    pub bulk_bytes: u64,
    /// Slow-sink bytes per TCP session (0 = skip).
    pub sink_bytes: u64,
    /// Bulk echo bytes per udp-sec session.
    pub udpsec_bulk_bytes: u64,
    /// Slow-sink bytes per udp-sec session (0 = skip).
    pub udpsec_sink_bytes: u64,
    /// Read rate of our sink, bytes per second (the peer's is assumed equal).
    pub sink_rate: u64,
    /// The reader's channel window (the mux's `recv_window`).
    pub window: usize,
    /// The `services` scenario's part for this node (directory calls, blob).
    pub plan: Option<Plan>,
}

impl Default for SelftestConfig {
    fn default() -> Self {
        SelftestConfig {
            bulk_bytes: 64 * 1024,
            sink_bytes: 0,
            udpsec_bulk_bytes: 64 * 1024,
            udpsec_sink_bytes: 0,
            sink_rate: 256 * 1024,
            window: 64 * 1024,
            plan: None,
        }
    }
}

impl SelftestConfig {
    /// (bulk, sink) bytes over a session of `kind`.
    pub fn load(&self, kind: TransportKind) -> (u64, u64) {
        match kind {
            TransportKind::Tcp => (self.bulk_bytes, self.sink_bytes),
            TransportKind::UdpSec => (self.udpsec_bulk_bytes, self.udpsec_sink_bytes),
        }
    }
}

/// What the self-test saw happen on a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestEvent {
    PingOk {
        peer: DeviceId,
        kind: TransportKind,
        rtt: Duration,
    },
    MuxDataOk {
        peer: DeviceId,
        kind: TransportKind,
        bytes: u64,
    },
    /// The slow sink received everything: the writer was refused `blocked`
    /// times while the reader's credit was zero, the reader buffered at most
    /// `peak_buffered` (within its window), and the phase took `elapsed`.
    BackpressureOk {
        peer: DeviceId,
        kind: TransportKind,
        bytes: u64,
        blocked: u32,
        peak_buffered: usize,
        elapsed: Duration,
    },
    /// Every step completed over this session.
    SessionOk { peer: DeviceId, kind: TransportKind },
    /// A step failed.
    ServiceFailed {
        peer: DeviceId,
        kind: TransportKind,
        what: &'static str,
    },
    /// `services`: every peer's directory answered.
    RpcOk { peers: u8 },
    /// `services`: the blob came back byte-exact.
    BlobOk { bytes: u64 },
    /// `services`: the server refused our blob channel, as its policy says.
    AccessDeniedOk { server: DeviceId },
    /// `services`: a check failed.
    CheckFailed { what: &'static str },
}

impl From<CheckEvent> for TestEvent {
    fn from(e: CheckEvent) -> TestEvent {
        match e {
            CheckEvent::RpcOk { peers } => TestEvent::RpcOk { peers },
            CheckEvent::BlobOk { bytes } => TestEvent::BlobOk { bytes },
            CheckEvent::AccessDeniedOk { server } => TestEvent::AccessDeniedOk { server },
            CheckEvent::Failed(what) => TestEvent::CheckFailed { what },
        }
    }
}

struct Run {
    client: Client,
    kind: TransportKind,
    ping_ok: bool,
    bulk_ok: bool,
    sink: bool,
}

/// The self-test application of one node.
pub struct SelftestApp {
    cfg: SelftestConfig,
    /// Sessions up whose client has not started (waiting for the peer's services).
    waiting: Vec<(DeviceId, TransportKind, u32)>,
    runs: Vec<Run>,
    served: Vec<Served>,
    budget: SinkBudget,
    events: VecDeque<TestEvent>,
    started: u32,
    checks: Option<Checks>,
}

impl SelftestApp {
    pub fn new(cfg: SelftestConfig) -> SelftestApp {
        SelftestApp {
            budget: SinkBudget::new(cfg.sink_rate),
            cfg,
            waiting: Vec::new(),
            runs: Vec::new(),
            served: Vec::new(),
            events: VecDeque::new(),
            started: 0,
            checks: cfg.plan.map(Checks::new),
        }
    }

    /// Publishes the self-test's services, open to every authenticated peer.
    pub fn publish<N: Network>(&self, node: &mut NodeOn<N>) -> Result<(), ApiError> {
        for name in [PING_SERVICE, BULK_SERVICE, SINK_SERVICE] {
            node.publish(name, Access::AnyAuthenticated)?;
        }
        if let Some(c) = &self.checks {
            c.publish(node)?;
        }
        Ok(())
    }

    /// When `poll` must run again at the latest even if the network is
    /// quiet (a slow sink waiting for its read budget).
    pub fn poll_at(&self) -> Option<Instant> {
        if self.served.iter().any(Served::is_sink) {
            self.budget.poll_at()
        } else {
            None
        }
    }

    /// The next self-test event.
    pub fn next_event(&mut self) -> Option<TestEvent> {
        self.events.pop_front()
    }

    fn push(&mut self, e: TestEvent) {
        if self.events.len() >= MAX_TEST_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// Takes the node events that concern the self-test.
    pub fn on_event<N: Network>(&mut self, node: &mut NodeOn<N>, ev: &NodeEvent) {
        if let Some(c) = self.checks.as_mut() {
            let mut out = Vec::new();
            c.on_event(node, ev, &mut out);
            for e in out {
                self.push(e.into());
            }
        }
        match *ev {
            NodeEvent::SessionUp {
                peer,
                kind,
                session,
            } => {
                self.runs.retain(|r| *r.client.peer() != peer);
                self.waiting.retain(|w| w.0 != peer);
                if self.waiting.len() < MAX_SESSIONS {
                    self.waiting.push((peer, kind, session));
                }
            }
            NodeEvent::SessionDown { peer, .. } => {
                self.waiting.retain(|w| w.0 != peer);
                self.runs.retain(|r| *r.client.peer() != peer);
                self.served.retain(|s| s.ch.peer != peer);
            }
            NodeEvent::ChannelAccepted { ch, service } => {
                let sink = match service.as_str() {
                    SINK_SERVICE => true,
                    BULK_SERVICE => false,
                    _ => return,
                };
                if self.served.len() >= MAX_SERVED {
                    let _ = node.reset(ch, 1);
                    return;
                }
                self.served.push(Served::new(ch, sink));
            }
            NodeEvent::ChannelRefused { ch, .. } | NodeEvent::ChannelReset { ch, .. } => {
                let mut failed = None;
                if let Some(r) = self
                    .runs
                    .iter_mut()
                    .find(|r| r.client.channel() == Some(ch))
                {
                    if let Some(ClientEvent::Failed(what)) = r.client.refused(ch) {
                        failed = Some((ch.peer, r.kind, what));
                    }
                }
                if let Some((peer, kind, what)) = failed {
                    self.push(TestEvent::ServiceFailed { peer, kind, what });
                }
                self.served.retain(|s| s.ch != ch);
            }
            _ => {}
        }
    }

    /// Starts clients whose peer's services are known, and drives every
    /// client and served channel as far as the channels allow.
    pub fn poll<N: Network>(&mut self, now: Instant, node: &mut NodeOn<N>) {
        self.start_clients(node);
        if let Some(c) = self.checks.as_mut() {
            c.poll(node, self.started ^ 0x5eed);
        }
        let mut out: Vec<TestEvent> = Vec::new();
        for r in self.runs.iter_mut() {
            let (peer, kind) = (*r.client.peer(), r.kind);
            while let Some(ev) = r.client.poll(now, node) {
                match ev {
                    ClientEvent::PingOk { rtt } => {
                        r.ping_ok = true;
                        out.push(TestEvent::PingOk { peer, kind, rtt });
                    }
                    ClientEvent::BulkOk { bytes, .. } => {
                        r.bulk_ok = true;
                        out.push(TestEvent::MuxDataOk { peer, kind, bytes });
                        if r.ping_ok && !r.sink {
                            out.push(TestEvent::SessionOk { peer, kind });
                        }
                    }
                    ClientEvent::BackpressureOk {
                        bytes,
                        blocked,
                        peak_buffered,
                        elapsed,
                    } => {
                        out.push(TestEvent::BackpressureOk {
                            peer,
                            kind,
                            bytes,
                            blocked,
                            peak_buffered,
                            elapsed,
                        });
                        if r.ping_ok && r.bulk_ok {
                            out.push(TestEvent::SessionOk { peer, kind });
                        }
                    }
                    ClientEvent::Failed(what) => {
                        out.push(TestEvent::ServiceFailed { peer, kind, what });
                        break;
                    }
                }
            }
        }
        for e in out {
            self.push(e);
        }
        let tokens = self.budget.refill(now);
        self.served.retain_mut(|s| {
            let readable = node.readable_len(s.ch);
            match node.channel(s.ch) {
                Ok(mut io) => !s.poll(&mut io, readable, tokens),
                Err(_) => false,
            }
        });
    }

    fn start_clients<N: Network>(&mut self, node: &mut NodeOn<N>) {
        let cfg = self.cfg;
        let mut i = 0;
        while i < self.waiting.len() {
            let (peer, kind, session) = self.waiting[i];
            let (bulk, sink) = cfg.load(kind);
            // Open only what the peer announces (its announce may still be on the way).
            let offers = node
                .peers()
                .find(|p| p.device_id.as_bytes() == peer.as_bytes())
                .map(|p| {
                    let has = |n: &str| p.services.iter().any(|s| s.as_bytes() == n.as_bytes());
                    has(PING_SERVICE) && has(BULK_SERVICE) && (sink == 0 || has(SINK_SERVICE))
                });
            match offers {
                None => i += 1,
                Some(false) => {
                    self.waiting.swap_remove(i);
                    self.push(TestEvent::ServiceFailed {
                        peer,
                        kind,
                        what: "peer does not offer the self-test services",
                    });
                }
                Some(true) => {
                    self.waiting.swap_remove(i);
                    self.started = self.started.wrapping_add(1);
                    let seed = self.started ^ session.rotate_left(16);
                    let check = SinkCheck::new(sink, cfg.sink_rate, cfg.window);
                    self.runs.push(Run {
                        client: Client::new(peer, bulk, sink, seed, check),
                        kind,
                        ping_ok: false,
                        bulk_ok: false,
                        sink: sink > 0,
                    });
                }
            }
        }
        self.runs.retain(|r| !r.client.is_done());
    }
}
