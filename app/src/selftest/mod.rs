//! The self-test of all nodes: turns each node's [`NetEvent`]s into its
//! markers, judges the udp-sec steps (`SELFTEST: udp-sec ...`), and decides
//! when the run passed (every node pinged its gateway and reached its
//! [`BusGoal`] over the transport [`TransportGoal`] asks for) or failed (the
//! first failure, or the run deadline).

use dsb_transports::transport::TransportKind;
use smoltcp::time::Instant;

use crate::config::MAX_NODES;
use crate::marker::{Failure, Marker};
use crate::net::NetEvent;
use crate::node::{FallbackReason, NodeEvent};

pub mod app;
pub mod checks;
pub mod services;

pub use app::{SelftestApp, SelftestConfig, TestEvent};
use dsb_noise::DeviceId;

/// What the bus layers must show before the run passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusGoal {
    /// Network bring-up only.
    None,
    /// Each honest node has discovery up and sent an announce (one node alone).
    Discovery,
    /// Each honest node completed a full session (ping + bulk) with a peer.
    /// With `spoof`, also: node 0 rejected the impostor's handshake and every
    /// honest node ignored at least one announce.
    Sessions { spoof: bool },
    /// `Sessions`, and the `services` checks: every node's directory calls
    /// answered, node 1's blob round trip, node 2 refused by node 0's
    /// policy, and node 0 reporting that denial.
    Services,
}

/// Which transport the sessions of [`BusGoal::Sessions`] must run over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportGoal {
    /// Either; a udp-sec session must also pass every udp-sec step.
    Any,
    /// udp-sec, with control, bulk (≥ [`UDPSEC_BULK_MIN`]) and backpressure steps.
    UdpSec,
    /// TCP after udp-sec was found disabled or unreachable.
    Fallback,
}

/// Least bulk echo over udp-sec that counts as `SELFTEST: udp-sec bulk ok`.
pub const UDPSEC_BULK_MIN: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, Default)]
struct BusProgress {
    discovery_up: bool,
    announced: bool,
    tcp_session_ok: bool,
    udpsec_session_ok: bool,
    mismatch: bool,
    ignored: bool,
    udpsec_control: bool,
    udpsec_bulk: bool,
    udpsec_backpressure: bool,
    /// udp-sec was off here (`None` peer) or unusable with that peer.
    fallback: Option<(Option<DeviceId>, FallbackReason)>,
    fallback_ok: bool,
    rpc_ok: bool,
    blob_ok: bool,
    access_denied_ok: bool,
    /// This node refused a `blob` channel of a peer its policy denies.
    denied_blob: bool,
}

impl BusProgress {
    fn udpsec_done(&self) -> bool {
        self.udpsec_session_ok
            && self.udpsec_control
            && self.udpsec_bulk
            && self.udpsec_backpressure
    }

    fn session_done(&self, goal: TransportGoal) -> bool {
        match goal {
            TransportGoal::Any => self.tcp_session_ok || self.udpsec_done(),
            TransportGoal::UdpSec => self.udpsec_done(),
            TransportGoal::Fallback => self.tcp_session_ok && self.fallback_ok,
        }
    }
}

/// Outcome so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some node is still coming up.
    Pending,
    /// Every node is up: print `SELFTEST: all ok`.
    AllOk,
    /// Stop: this failed (its marker was already returned).
    Failed(Failure),
}

/// Progress of the network self-test across `nodes` nodes.
#[derive(Clone, Debug)]
pub struct NetSelftest {
    nodes: usize,
    up: [bool; MAX_NODES as usize],
    failed: Option<Failure>,
    deadline: Instant,
    goal: BusGoal,
    transport: TransportGoal,
    /// Largest reader buffering (its channel window) the udp-sec
    /// backpressure step accepts.
    memory_cap: usize,
    /// Nodes whose goals count (the spoofer's do not).
    honest: [bool; MAX_NODES as usize],
    bus: [BusProgress; MAX_NODES as usize],
}

impl NetSelftest {
    /// Tracks `nodes` nodes (clamped to `1..=MAX_NODES`); the run fails at `deadline`.
    pub fn new(nodes: usize, deadline: Instant) -> NetSelftest {
        NetSelftest {
            nodes: nodes.clamp(1, usize::from(MAX_NODES)),
            up: [false; MAX_NODES as usize],
            failed: None,
            deadline,
            goal: BusGoal::None,
            transport: TransportGoal::Any,
            memory_cap: SelftestConfig::default().window,
            honest: [true; MAX_NODES as usize],
            bus: [BusProgress::default(); MAX_NODES as usize],
        }
    }

    /// Also requires `goal` of every node marked honest.
    pub fn with_goal(mut self, goal: BusGoal, honest: [bool; MAX_NODES as usize]) -> NetSelftest {
        self.goal = goal;
        self.honest = honest;
        self
    }

    /// Requires the sessions to run over `transport`.
    pub fn with_transport(mut self, transport: TransportGoal) -> NetSelftest {
        self.transport = transport;
        self
    }

    /// The most the reader may buffer in the udp-sec backpressure step.
    pub fn with_memory_cap(mut self, cap: usize) -> NetSelftest {
        self.memory_cap = cap;
        self
    }

    /// Records a node event (after its own marker was printed); returns the
    /// self-test verdict it completes (`SELFTEST: udp-sec ...`), or a failure
    /// marker when it ends the run. Each udp-sec verdict prints once per node.
    pub fn on_node_event(&mut self, node: usize, event: &NodeEvent) -> Option<Marker<'static>> {
        if node >= self.nodes || self.failed.is_some() {
            return None;
        }
        let p = self.bus.get_mut(node)?;
        match *event {
            NodeEvent::DiscoveryUp { .. } => p.discovery_up = true,
            NodeEvent::AnnounceSent { .. } => p.announced = true,
            NodeEvent::UdpSecFallback { peer, reason } if p.fallback.is_none() => {
                p.fallback = Some((peer, reason));
            }
            NodeEvent::IdentityMismatch(_) => p.mismatch = true,
            NodeEvent::AnnounceIgnored(_) => p.ignored = true,
            NodeEvent::ChannelDenied { service, .. }
                if service.as_str() == crate::bus::api::BLOB =>
            {
                p.denied_blob = true;
            }
            NodeEvent::BusFailed(_) if self.honest.get(node).copied().unwrap_or(false) => {
                return Some(self.fail(Failure::BusStart));
            }
            _ => {}
        }
        None
    }

    /// Records a self-test event of node `node` (after its own marker was
    /// printed); returns the verdict it completes (`SELFTEST: udp-sec ...`),
    /// or a failure marker when it ends the run. Each udp-sec verdict prints
    /// once per node.
    pub fn on_test_event(&mut self, node: usize, event: &TestEvent) -> Option<Marker<'static>> {
        if node >= self.nodes || self.failed.is_some() {
            return None;
        }
        let cap = self.memory_cap;
        let honest = self.honest.get(node).copied().unwrap_or(false);
        let p = self.bus.get_mut(node)?;
        let udp = TransportKind::UdpSec;
        match *event {
            TestEvent::SessionOk { kind, peer } => {
                if kind == udp {
                    p.udpsec_session_ok = true;
                } else {
                    p.tcp_session_ok = true;
                    // The fallback is proven by a TCP session with the peer
                    // it concerned (any peer when udp-sec is off here).
                    if let Some((who, reason)) = p.fallback {
                        if !p.fallback_ok && who.is_none_or(|w| w == peer) {
                            p.fallback_ok = true;
                            return Some(Marker::UdpSecFallbackOk { peer: who, reason });
                        }
                    }
                }
            }
            TestEvent::ServiceFailed { what, .. }
                if honest
                    && what.starts_with("bulk")
                    && (what.contains("mismatch") || what.contains("too long")) =>
            {
                return Some(self.fail(Failure::BulkMismatch));
            }
            TestEvent::ServiceFailed { what, kind, .. }
                if kind == udp && what.starts_with("sink") && honest =>
            {
                return Some(self.fail(Failure::UdpSecBackpressure));
            }
            TestEvent::RpcOk { .. } => p.rpc_ok = true,
            TestEvent::BlobOk { .. } => p.blob_ok = true,
            TestEvent::AccessDeniedOk { .. } => p.access_denied_ok = true,
            TestEvent::CheckFailed { .. } if honest => return Some(self.fail(Failure::Services)),
            TestEvent::PingOk { kind, .. } if kind == udp && !p.udpsec_control => {
                p.udpsec_control = true;
                return Some(Marker::UdpSecControlOk);
            }
            TestEvent::MuxDataOk { kind, bytes, .. }
                if kind == udp && bytes >= UDPSEC_BULK_MIN && !p.udpsec_bulk =>
            {
                p.udpsec_bulk = true;
                return Some(Marker::UdpSecBulkOk);
            }
            TestEvent::BackpressureOk {
                kind,
                blocked,
                peak_buffered,
                ..
            } if kind == udp && !p.udpsec_backpressure => {
                if blocked == 0 || peak_buffered > cap {
                    return Some(self.fail(Failure::UdpSecBackpressure));
                }
                p.udpsec_backpressure = true;
                return Some(Marker::UdpSecBackpressureOk);
            }
            _ => {}
        }
        None
    }

    fn bus_done(&self) -> bool {
        let honest = |i: &usize| self.honest.get(*i).copied().unwrap_or(false);
        let mut nodes = (0..self.nodes).filter(honest);
        match self.goal {
            BusGoal::None => true,
            BusGoal::Discovery => nodes.all(|i| self.bus[i].discovery_up && self.bus[i].announced),
            BusGoal::Sessions { spoof } => {
                let t = self.transport;
                nodes.all(|i| self.bus[i].session_done(t) && (!spoof || self.bus[i].ignored))
                    && (!spoof || self.bus[0].mismatch)
            }
            BusGoal::Services => {
                let t = self.transport;
                let b = &self.bus;
                nodes.all(|i| b[i].session_done(t) && b[i].rpc_ok)
                    && b[0].denied_blob
                    && b[1].blob_ok
                    && b[2].access_denied_ok
            }
        }
    }

    /// Records an event of node `node`; returns the marker that node must print, if any.
    pub fn on_event(&mut self, node: usize, event: &NetEvent) -> Option<Marker<'static>> {
        if node >= self.nodes || self.failed.is_some() {
            return None;
        }
        match *event {
            NetEvent::DhcpBound(lease) => Some(Marker::DhcpBound {
                cidr: lease.cidr,
                gateway: lease.gateway,
            }),
            NetEvent::PingOk { .. } => {
                let fresh = self.up.get(node).is_some_and(|up| !up);
                if let Some(up) = self.up.get_mut(node) {
                    *up = true;
                }
                fresh.then_some(Marker::IcmpPingOk)
            }
            NetEvent::DhcpLost => None,
            NetEvent::DhcpTimeout => Some(self.fail(Failure::DhcpTimeout)),
            NetEvent::PingTimeout => Some(self.fail(Failure::PingTimeout)),
            // No gateway to ping on a static address; an optional gateway that
            // stayed silent is not a failure. Either way the node is up.
            NetEvent::StaticFallback(cidr) => {
                if let Some(up) = self.up.get_mut(node) {
                    *up = true;
                }
                Some(Marker::DhcpUnavailable { cidr })
            }
            NetEvent::GatewayUnreachable => {
                if let Some(up) = self.up.get_mut(node) {
                    *up = true;
                }
                None
            }
        }
    }

    /// Checks the run deadline; returns the (unprefixed) failure marker once when it passes.
    pub fn on_time(&mut self, now: Instant) -> Option<Marker<'static>> {
        if self.failed.is_none() && self.verdict() == Verdict::Pending && now >= self.deadline {
            Some(self.fail(Failure::RunDeadline))
        } else {
            None
        }
    }

    /// The run deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Outcome so far.
    pub fn verdict(&self) -> Verdict {
        if let Some(f) = self.failed {
            return Verdict::Failed(f);
        }
        let all_up = self.up.iter().take(self.nodes).all(|up| *up);
        if all_up && self.bus_done() {
            Verdict::AllOk
        } else {
            Verdict::Pending
        }
    }

    fn fail(&mut self, failure: Failure) -> Marker<'static> {
        self.failed = Some(failure);
        Marker::Fail(failure)
    }
}

#[cfg(test)]
mod bus_tests {
    use super::*;
    use dsb_noise::DeviceId;

    fn pinged(t: &mut NetSelftest, nodes: usize) {
        for i in 0..nodes {
            t.on_event(
                i,
                &NetEvent::PingOk {
                    seq: 0,
                    rtt: smoltcp::time::Duration::ZERO,
                },
            );
        }
    }

    fn session_ok(peer: DeviceId, kind: TransportKind) -> TestEvent {
        TestEvent::SessionOk { peer, kind }
    }

    #[test]
    fn sessions_goal_waits_for_every_honest_node() {
        let b = DeviceId::new("node-b").unwrap();
        let mut t = NetSelftest::new(2, Instant::from_secs(30))
            .with_goal(BusGoal::Sessions { spoof: false }, [true; 3]);
        pinged(&mut t, 2);
        assert_eq!(t.verdict(), Verdict::Pending);
        t.on_test_event(0, &session_ok(b, TransportKind::Tcp));
        assert_eq!(t.verdict(), Verdict::Pending);
        t.on_test_event(1, &session_ok(b, TransportKind::Tcp));
        assert_eq!(t.verdict(), Verdict::AllOk);
    }

    /// The udp-sec steps of one node, in the order the node reports them.
    fn udpsec_steps(peer: DeviceId, bulk: u64, blocked: u32, peak: usize) -> [TestEvent; 4] {
        let kind = TransportKind::UdpSec;
        [
            TestEvent::PingOk {
                peer,
                kind,
                rtt: smoltcp::time::Duration::ZERO,
            },
            TestEvent::MuxDataOk {
                peer,
                kind,
                bytes: bulk,
            },
            TestEvent::BackpressureOk {
                peer,
                kind,
                bytes: 1,
                blocked,
                peak_buffered: peak,
                elapsed: smoltcp::time::Duration::from_secs(1),
            },
            session_ok(peer, kind),
        ]
    }

    #[test]
    fn udpsec_goal_needs_every_udpsec_step_and_prints_each_verdict_once() {
        let b = DeviceId::new("node-b").unwrap();
        let mut t = NetSelftest::new(1, Instant::from_secs(30))
            .with_goal(BusGoal::Sessions { spoof: false }, [true; 3])
            .with_transport(TransportGoal::UdpSec);
        pinged(&mut t, 1);
        // A TCP session does not count.
        assert!(t
            .on_test_event(0, &session_ok(b, TransportKind::Tcp))
            .is_none());
        assert_eq!(t.verdict(), Verdict::Pending);
        let printed: alloc::vec::Vec<_> = udpsec_steps(b, UDPSEC_BULK_MIN, 3, 1000)
            .iter()
            .map(|e| {
                t.on_test_event(0, e)
                    .map(|m| alloc::string::ToString::to_string(&m))
            })
            .collect();
        assert_eq!(
            printed,
            [
                Some("SELFTEST: udp-sec control ok".into()),
                Some("SELFTEST: udp-sec bulk ok".into()),
                Some("SELFTEST: udp-sec backpressure ok".into()),
                None,
            ]
        );
        assert_eq!(t.verdict(), Verdict::AllOk);
        let again = udpsec_steps(b, UDPSEC_BULK_MIN, 3, 1000);
        assert!(t.on_test_event(0, &again[0]).is_none());
    }

    #[test]
    fn too_little_udpsec_bulk_is_no_bulk_ok() {
        let b = DeviceId::new("node-b").unwrap();
        let mut t = NetSelftest::new(1, Instant::from_secs(30))
            .with_goal(BusGoal::Sessions { spoof: false }, [true; 3])
            .with_transport(TransportGoal::UdpSec);
        pinged(&mut t, 1);
        let steps = udpsec_steps(b, UDPSEC_BULK_MIN - 1, 3, 1000);
        for e in &steps {
            t.on_test_event(0, e);
        }
        assert_eq!(t.verdict(), Verdict::Pending);
    }

    #[test]
    fn udpsec_backpressure_without_blocking_or_over_cap_fails() {
        let b = DeviceId::new("node-b").unwrap();
        for (blocked, peak) in [(0, 1000), (3, 5000)] {
            let mut t = NetSelftest::new(1, Instant::from_secs(30))
                .with_goal(BusGoal::Sessions { spoof: false }, [true; 3])
                .with_transport(TransportGoal::UdpSec)
                .with_memory_cap(4096);
            let steps = udpsec_steps(b, UDPSEC_BULK_MIN, blocked, peak);
            let m = t.on_test_event(0, &steps[2]).unwrap();
            assert_eq!(
                alloc::string::ToString::to_string(&m),
                "SELFTEST: FAIL udp-sec backpressure"
            );
            assert_eq!(t.verdict(), Verdict::Failed(Failure::UdpSecBackpressure));
        }
    }

    #[test]
    fn fallback_goal_needs_the_fallback_then_a_tcp_session() {
        let b = DeviceId::new("node-b").unwrap();
        let mut t = NetSelftest::new(1, Instant::from_secs(30))
            .with_goal(BusGoal::Sessions { spoof: false }, [true; 3])
            .with_transport(TransportGoal::Fallback);
        pinged(&mut t, 1);
        let fallback = NodeEvent::UdpSecFallback {
            peer: None,
            reason: FallbackReason::Disabled,
        };
        assert!(t.on_node_event(0, &fallback).is_none());
        assert_eq!(t.verdict(), Verdict::Pending);
        let m = t
            .on_test_event(0, &session_ok(b, TransportKind::Tcp))
            .unwrap();
        assert_eq!(
            alloc::string::ToString::to_string(&m),
            "SELFTEST: udp-sec fallback ok (udp-sec off)"
        );
        assert_eq!(t.verdict(), Verdict::AllOk);
    }

    #[test]
    fn a_runtime_fallback_is_proven_only_by_a_session_with_that_peer() {
        let (b, c) = (
            DeviceId::new("node-b").unwrap(),
            DeviceId::new("node-c").unwrap(),
        );
        let mut t = NetSelftest::new(1, Instant::from_secs(30))
            .with_goal(BusGoal::Sessions { spoof: false }, [true; 3])
            .with_transport(TransportGoal::Fallback);
        pinged(&mut t, 1);
        let fallback = NodeEvent::UdpSecFallback {
            peer: Some(b),
            reason: FallbackReason::Unreachable,
        };
        assert!(t.on_node_event(0, &fallback).is_none());
        // A TCP session with another peer proves nothing about node-b.
        assert!(t
            .on_test_event(0, &session_ok(c, TransportKind::Tcp))
            .is_none());
        assert_eq!(t.verdict(), Verdict::Pending);
        let m = t
            .on_test_event(0, &session_ok(b, TransportKind::Tcp))
            .unwrap();
        assert_eq!(
            alloc::string::ToString::to_string(&m),
            "SELFTEST: udp-sec fallback ok (peer=node-b unreachable)"
        );
        assert_eq!(t.verdict(), Verdict::AllOk);
    }

    #[test]
    fn a_bulk_mismatch_or_a_failed_sink_fails_the_run_at_once() {
        let b = DeviceId::new("node-b").unwrap();
        for (what, kind, failure) in [
            (
                "bulk echo mismatch",
                TransportKind::Tcp,
                Failure::BulkMismatch,
            ),
            (
                "bulk hash mismatch",
                TransportKind::UdpSec,
                Failure::BulkMismatch,
            ),
            (
                "sink was not slow",
                TransportKind::UdpSec,
                Failure::UdpSecBackpressure,
            ),
        ] {
            let mut t = NetSelftest::new(1, Instant::from_secs(30))
                .with_goal(BusGoal::Sessions { spoof: false }, [true; 3]);
            let ev = TestEvent::ServiceFailed {
                peer: b,
                kind,
                what,
            };
            assert_eq!(
                t.on_test_event(0, &ev)
                    .map(|m| alloc::string::ToString::to_string(&m)),
                Some(alloc::format!("SELFTEST: FAIL {}", failure.label()))
            );
            assert_eq!(t.verdict(), Verdict::Failed(failure));
        }
    }

    #[test]
    fn no_fallback_ok_without_a_fallback() {
        let b = DeviceId::new("node-b").unwrap();
        let mut t = NetSelftest::new(1, Instant::from_secs(30))
            .with_goal(BusGoal::Sessions { spoof: false }, [true; 3])
            .with_transport(TransportGoal::Fallback);
        pinged(&mut t, 1);
        assert!(t
            .on_test_event(0, &session_ok(b, TransportKind::Tcp))
            .is_none());
        assert_eq!(t.verdict(), Verdict::Pending);
    }

    #[test]
    fn spoof_goal_needs_the_rejection_and_ignores_the_spoofer() {
        let b = DeviceId::new("node-b").unwrap();
        let mut t = NetSelftest::new(3, Instant::from_secs(30))
            .with_goal(BusGoal::Sessions { spoof: true }, [true, true, false]);
        pinged(&mut t, 3);
        for i in 0..2 {
            t.on_test_event(i, &session_ok(b, TransportKind::Tcp));
            t.on_node_event(
                i,
                &NodeEvent::AnnounceIgnored(dsb_discovery::AnnounceError::KeyMismatch),
            );
        }
        assert_eq!(
            t.verdict(),
            Verdict::Pending,
            "node-a has not rejected the impostor yet"
        );
        t.on_node_event(0, &NodeEvent::IdentityMismatch(b));
        assert_eq!(t.verdict(), Verdict::AllOk);
    }

    #[test]
    fn bus_failure_of_an_honest_node_fails_the_run() {
        let mut t =
            NetSelftest::new(1, Instant::from_secs(30)).with_goal(BusGoal::Discovery, [true; 3]);
        assert!(t
            .on_node_event(0, &NodeEvent::BusFailed(crate::node::BusFailure::TcpListen))
            .is_some());
        assert_eq!(t.verdict(), Verdict::Failed(Failure::BusStart));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Lease;
    use alloc::string::ToString;
    use smoltcp::time::Duration;
    use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

    fn bound(last: u8) -> NetEvent {
        NetEvent::DhcpBound(Lease {
            cidr: Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, last), 24),
            gateway: Ipv4Address::new(10, 0, 2, 2),
            gateway_from_router: false,
        })
    }

    #[test]
    fn static_fallback_counts_as_up_and_prints_the_contract_marker() {
        let mut t = NetSelftest::new(1, Instant::from_secs(30));
        let cidr = Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 101), 24);
        let m = t.on_event(0, &NetEvent::StaticFallback(cidr)).unwrap();
        assert_eq!(
            m.to_string(),
            "net: dhcp unavailable (fallback static 10.0.2.101/24)"
        );
        assert_eq!(t.verdict(), Verdict::AllOk);
        let mut t = NetSelftest::new(1, Instant::from_secs(30));
        t.on_event(0, &bound(15));
        assert!(t.on_event(0, &NetEvent::GatewayUnreachable).is_none());
        assert_eq!(t.verdict(), Verdict::AllOk);
    }

    fn ping_ok() -> NetEvent {
        NetEvent::PingOk {
            seq: 0,
            rtt: Duration::from_millis(1),
        }
    }

    #[test]
    fn all_ok_only_after_every_node_pinged() {
        let mut t = NetSelftest::new(2, Instant::from_secs(30));
        let m = t.on_event(0, &bound(15)).unwrap();
        assert_eq!(m.to_string(), "net: dhcp bound 10.0.2.15/24 gw=10.0.2.2");
        assert_eq!(
            t.on_event(0, &ping_ok()).unwrap().to_string(),
            "SELFTEST: icmp ping ok"
        );
        assert_eq!(t.verdict(), Verdict::Pending);
        t.on_event(1, &bound(16));
        assert_eq!(t.verdict(), Verdict::Pending);
        t.on_event(1, &ping_ok());
        assert_eq!(t.verdict(), Verdict::AllOk);
    }

    #[test]
    fn a_repeated_ping_ok_prints_once() {
        let mut t = NetSelftest::new(1, Instant::from_secs(30));
        assert!(t.on_event(0, &ping_ok()).is_some());
        assert!(t.on_event(0, &ping_ok()).is_none());
    }

    #[test]
    fn first_failure_wins_and_silences_the_rest() {
        let mut t = NetSelftest::new(2, Instant::from_secs(30));
        let m = t.on_event(1, &NetEvent::DhcpTimeout).unwrap();
        assert_eq!(m.to_string(), "SELFTEST: FAIL dhcp timeout");
        assert_eq!(t.verdict(), Verdict::Failed(Failure::DhcpTimeout));
        assert!(t.on_event(0, &NetEvent::PingTimeout).is_none());
        assert!(t.on_time(Instant::from_secs(99)).is_none());
    }

    #[test]
    fn run_deadline_fails_a_pending_run() {
        let mut t = NetSelftest::new(1, Instant::from_secs(30));
        assert!(t.on_time(Instant::from_secs(29)).is_none());
        assert_eq!(
            t.on_time(Instant::from_secs(30)).unwrap().to_string(),
            "SELFTEST: FAIL run deadline"
        );
        assert_eq!(t.verdict(), Verdict::Failed(Failure::RunDeadline));
    }

    #[test]
    fn events_of_unknown_nodes_are_ignored() {
        let mut t = NetSelftest::new(1, Instant::from_secs(30));
        assert!(t.on_event(1, &ping_ok()).is_none());
        assert!(t.on_event(7, &NetEvent::DhcpTimeout).is_none());
        assert_eq!(t.verdict(), Verdict::Pending);
    }
}
