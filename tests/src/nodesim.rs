//! Full nodes on a simulated wire: slirp (DHCP, gateway) on station 0 and one
//! `dsb_app::node::Node` per further station, driven in simulated time by
//! jumping from one deadline to the next. The node code is the image's own.

use dsb_app::net::{NetStack, NetStackConfig};
use dsb_app::node::{Node, NodeConfig, NodeEvent};
use dsb_app::selftest::{SelftestApp, SelftestConfig, TestEvent};
use dsb_noise::Identity;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::EthernetAddress;

use crate::simwire::{SimDevice, Wire, WireConfig};
use crate::slirp::{Slirp, SlirpStation};

/// Smallest simulated-time step (guarantees progress when a deadline is "now").
pub const MIN_STEP: Duration = Duration::from_micros(50);
/// Largest step when nothing is scheduled (default of `NodeSim::max_step`).
pub const MAX_STEP: Duration = Duration::from_millis(10);

/// One node event with when and where it happened, and its position in
/// the run (shared with self-test events, so the two can be ordered).
#[derive(Clone, Copy, Debug)]
pub struct Logged {
    pub at: Instant,
    pub node: usize,
    pub seq: u64,
    pub event: NodeEvent,
}

/// One self-test event with when, where and its position in the run.
#[derive(Clone, Copy, Debug)]
pub struct TestLogged {
    pub at: Instant,
    pub node: usize,
    pub seq: u64,
    pub event: TestEvent,
}

pub struct NodeSim {
    pub wire: Wire,
    pub slirp: SlirpStation,
    pub nodes: Vec<Node<SimDevice>>,
    pub now: Instant,
    pub rng: ChaCha20Rng,
    pub log: Vec<Logged>,
    /// The self-test application of each node (the image's own), or none
    /// when the test drives the node's API itself ([`NodeSim::bare`]).
    pub apps: Vec<Option<SelftestApp>>,
    /// What the self-test applications reported.
    pub tlog: Vec<TestLogged>,
    seq: u64,
    /// Nodes not polled (switched off).
    pub stopped: Vec<bool>,
    /// Largest step when nothing is scheduled: long runs raise it, which
    /// also checks that every node reports its deadlines in `poll_at`.
    pub max_step: Duration,
}

/// The self-test of a node with `cfg`, its services published on `node`.
pub fn selftest_for(node: &mut Node<SimDevice>, cfg: SelftestConfig) -> SelftestApp {
    let app = SelftestApp::new(cfg);
    app.publish(node).expect("publish the self-test services");
    app
}

/// MAC of node `i` (0-based).
pub fn mac(i: usize) -> EthernetAddress {
    EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 1 + i as u8])
}

/// A node with deterministic test keys for `id` on `dev`.
pub fn make_node(
    id: &str,
    i: usize,
    dev: SimDevice,
    cfg: NodeConfig,
    now: Instant,
) -> Node<SimDevice> {
    let identity = Identity::from_test_seed(id).expect("identity");
    make_node_with(identity, i, dev, cfg, now)
}

/// A node with the given identity on `dev`.
pub fn make_node_with(
    identity: Identity,
    i: usize,
    dev: SimDevice,
    cfg: NodeConfig,
    now: Instant,
) -> Node<SimDevice> {
    let stack =
        NetStack::new(dev, NetStackConfig::new(mac(i), 1000 + i as u64), now).expect("stack");
    Node::new(stack, identity, cfg)
}

/// Pins for every id in `ids` except `me`: their test device keys (provisioned trust).
pub fn pins(ids: &[&str], me: &str) -> Vec<(dsb_discovery::DeviceId, [u8; 32])> {
    ids.iter()
        .filter(|id| **id != me)
        .map(|id| {
            let key = Identity::from_test_seed(id)
                .expect("identity")
                .device_public_key();
            (
                dsb_discovery::DeviceId::new(id.as_bytes()).expect("id"),
                key,
            )
        })
        .collect()
}

impl NodeSim {
    /// `ids.len()` honest nodes with default config, each pinning the others' keys.
    pub fn new(ids: &[&str], wire_cfg: WireConfig, seed: u64) -> Self {
        Self::with(ids, wire_cfg, seed, |_, c| c)
    }

    /// Like `new`, with `tweak(i, cfg)` adjusting each node's config.
    pub fn with(
        ids: &[&str],
        wire_cfg: WireConfig,
        seed: u64,
        tweak: impl FnMut(usize, NodeConfig) -> NodeConfig,
    ) -> Self {
        Self::with_stations(ids, ids.len() + 1, wire_cfg, seed, tweak)
    }

    /// Like `with`, on a wire of `stations` stations (slirp and the nodes
    /// take the first `ids.len() + 1`; the rest are for the test).
    pub fn with_stations(
        ids: &[&str],
        stations: usize,
        wire_cfg: WireConfig,
        seed: u64,
        mut tweak: impl FnMut(usize, NodeConfig) -> NodeConfig,
    ) -> Self {
        let wire = Wire::new(stations.max(ids.len() + 1), wire_cfg, seed);
        let now = Instant::ZERO;
        let slirp = SlirpStation::new(Slirp::restrict_on(), wire.device(0));
        let mut nodes: Vec<Node<SimDevice>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let cfg = tweak(i, NodeConfig::new(37021 + i as u16));
                make_node(id, i, wire.device(i + 1), cfg, now)
            })
            .collect();
        let apps = nodes
            .iter_mut()
            .map(|n| Some(selftest_for(n, SelftestConfig::default())))
            .collect();
        NodeSim {
            wire,
            slirp,
            nodes,
            now,
            rng: ChaCha20Rng::seed_from_u64(seed),
            log: Vec::new(),
            apps,
            tlog: Vec::new(),
            seq: 0,
            stopped: vec![false; ids.len()],
            max_step: MAX_STEP,
        }
    }

    /// Nodes without a self-test: nothing is published and no channel is
    /// opened unless the test calls the node's API (between steps).
    pub fn bare(
        ids: &[&str],
        wire_cfg: WireConfig,
        seed: u64,
        tweak: impl FnMut(usize, NodeConfig) -> NodeConfig,
    ) -> Self {
        Self::bare_with_stations(ids, ids.len() + 1, wire_cfg, seed, tweak)
    }

    /// [`NodeSim::bare`] on a wire of `stations` stations.
    pub fn bare_with_stations(
        ids: &[&str],
        stations: usize,
        wire_cfg: WireConfig,
        seed: u64,
        tweak: impl FnMut(usize, NodeConfig) -> NodeConfig,
    ) -> Self {
        let mut sim = Self::with_stations(ids, stations, wire_cfg, seed, tweak);
        for (i, id) in ids.iter().enumerate() {
            // Fresh nodes: `with` published the self-test's services.
            let cfg = sim.nodes[i].config().clone();
            let dev = sim.wire.device(i + 1);
            sim.nodes[i] = make_node(id, i, dev, cfg, sim.now);
            sim.apps[i] = None;
        }
        sim
    }

    /// Sets each node's self-test configuration (call before running).
    pub fn set_selftest(&mut self, mut f: impl FnMut(usize, &mut SelftestConfig)) {
        for (i, app) in self.apps.iter_mut().enumerate() {
            let mut c = SelftestConfig::default();
            f(i, &mut c);
            *app = Some(selftest_for(&mut self.nodes[i], c));
        }
    }

    /// Adds a node (on station `i + 1` of the wire) with its self-test.
    pub fn push_node(&mut self, node: Node<SimDevice>) {
        let mut node = node;
        self.apps
            .push(Some(selftest_for(&mut node, SelftestConfig::default())));
        self.nodes.push(node);
        self.stopped.push(false);
    }

    /// One round: slirp, every node, events collected; then time jumps.
    pub fn step(&mut self) {
        self.slirp.poll(self.now);
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if self.stopped[i] {
                continue;
            }
            n.poll(self.now, &mut self.rng);
            let mut app = self.apps[i].as_mut();
            while let Some(event) = n.next_event() {
                self.seq += 1;
                self.log.push(Logged {
                    at: self.now,
                    node: i,
                    seq: self.seq,
                    event,
                });
                if let Some(app) = app.as_mut() {
                    app.on_event(n, &event);
                }
            }
            let Some(app) = app else { continue };
            app.poll(self.now, n);
            while let Some(event) = app.next_event() {
                self.seq += 1;
                self.tlog.push(TestLogged {
                    at: self.now,
                    node: i,
                    seq: self.seq,
                    event,
                });
            }
        }
        let mut next = self.now + self.max_step;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if self.stopped[i] {
                continue;
            }
            if let Some(t) = n.poll_at(self.now) {
                next = next.min(t);
            }
        }
        if let Some(t) = self.wire.next_delivery() {
            next = next.min(t);
        }
        self.now = next.max(self.now + MIN_STEP);
    }

    /// Adds a node without a self-test (on station `i + 1` of the wire).
    pub fn push_node_bare(&mut self, node: Node<SimDevice>) {
        self.apps.push(None);
        self.nodes.push(node);
        self.stopped.push(false);
    }

    /// Steps until `done(self)` or `limit` of simulated time passed; returns whether done.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&NodeSim) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Whether node `i` logged an event matching `pred`.
    pub fn saw(&self, i: usize, pred: impl Fn(&NodeEvent) -> bool) -> bool {
        self.log.iter().any(|l| l.node == i && pred(&l.event))
    }

    /// When node `i` first logged an event matching `pred`.
    pub fn first(&self, i: usize, pred: impl Fn(&NodeEvent) -> bool) -> Option<Instant> {
        self.log
            .iter()
            .find(|l| l.node == i && pred(&l.event))
            .map(|l| l.at)
    }

    /// Position in the run of node `i`'s first event matching `pred`:
    /// unlike times, positions order events that happened in the same poll.
    pub fn first_index(&self, i: usize, pred: impl Fn(&NodeEvent) -> bool) -> Option<u64> {
        self.log
            .iter()
            .find(|l| l.node == i && pred(&l.event))
            .map(|l| l.seq)
    }

    /// Whether node `i`'s self-test reported an event matching `pred`.
    pub fn saw_test(&self, i: usize, pred: impl Fn(&TestEvent) -> bool) -> bool {
        self.tlog.iter().any(|l| l.node == i && pred(&l.event))
    }

    /// When node `i`'s self-test first reported an event matching `pred`.
    pub fn first_test(&self, i: usize, pred: impl Fn(&TestEvent) -> bool) -> Option<Instant> {
        self.tlog
            .iter()
            .find(|l| l.node == i && pred(&l.event))
            .map(|l| l.at)
    }

    /// Position in the run of node `i`'s first self-test event matching `pred`.
    pub fn first_test_index(&self, i: usize, pred: impl Fn(&TestEvent) -> bool) -> Option<u64> {
        self.tlog
            .iter()
            .find(|l| l.node == i && pred(&l.event))
            .map(|l| l.seq)
    }

    /// Replaces node `i` by a fresh boot of the same identity (peer restart).
    pub fn restart(&mut self, i: usize, id: &str, cfg: NodeConfig) {
        let dev = self.wire.device(i + 1);
        let node = make_node(id, i, dev, cfg, self.now);
        self.replace(i, node);
    }

    /// Replaces node `i` by `node` (a fresh boot), with a fresh self-test.
    pub fn replace(&mut self, i: usize, node: Node<SimDevice>) {
        self.nodes[i] = node;
        if self.apps[i].is_some() {
            self.apps[i] = Some(selftest_for(&mut self.nodes[i], SelftestConfig::default()));
        }
    }
}
