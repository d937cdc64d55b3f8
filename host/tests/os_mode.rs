//! OS mode end to end: nodes over the kernel's UDP and TCP sockets discover
//! each other on multicast 239.42.0.1:37020, authenticate a session over TCP
//! and over udp-sec, and move a blob both ways with the node's API.
//!
//! Every node runs inside a network namespace the test creates (only `lo`,
//! multicast on, 224.0.0.0/4 routed to it, the nodes' addresses
//! 10.42.0.1/24 and 10.42.0.2/24 on it) and removes again, also when the
//! test fails: no datagram can leave this machine. Creating a namespace
//! needs root (CAP_SYS_ADMIN); without it the tests fail with one message.
//!
//! - `two_nodes_in_one_process_*`: one thread enters the namespace
//!   (`setns` affects only that thread) and drives both nodes.
//! - `two_processes_over_udp_sec`: this test binary runs twice more under
//!   `ip netns exec`, one node per process (`child_node`, ignored unless
//!   started that way).

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use dsb_app::bus::blob::{blob_hash, BlobError};
use dsb_app::bus::Access;
use dsb_app::config::Transport as TransportMode;
use dsb_app::node::{NodeConfig, NodeEvent, TransferId, Transferred};
use dsb_host::netns::Netns;
use dsb_host::{HostNode, HostStack, OsRandom};
use dsb_noise::{DeviceId, Identity};
use dsb_transports::transport::TransportKind;
use smoltcp::time::Instant;

const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 2);
/// Set in the children of `two_processes_over_udp_sec`: which node to be.
const ROLE_ENV: &str = "DSB_HOST_TEST_ROLE";
/// A whole test (discovery, session, two transfers) ends well within this.
const LIMIT: Duration = Duration::from_secs(20);

fn id(name: &str) -> DeviceId {
    DeviceId::new(name).expect("device id")
}

fn config(mode: TransportMode, tcp_port: u16, udpsec_port: u16) -> NodeConfig {
    let mut c = NodeConfig::new(tcp_port);
    c.transport = mode;
    c.udpsec_port = Some(udpsec_port);
    c
}

fn node(name: &str, addr: Ipv4Addr, cfg: NodeConfig) -> HostNode {
    // SECURITY: test keys, not for production.
    let identity = Identity::from_test_seed(name).expect("identity");
    let stack = HostStack::new(Some(addr)).expect("the address is on lo in the namespace");
    HostNode::new(stack, identity, cfg)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Polls `nodes` with the real clock until `done` or [`LIMIT`]; every event
/// goes to `seen` (per node) so checks can look back.
struct Driver {
    start: StdInstant,
    seen: Vec<Vec<NodeEvent>>,
}

impl Driver {
    fn new(n: usize) -> Driver {
        Driver {
            start: StdInstant::now(),
            seen: vec![Vec::new(); n],
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    fn run(
        &mut self,
        nodes: &mut [&mut HostNode],
        what: &str,
        mut done: impl FnMut(&mut [&mut HostNode], &[Vec<NodeEvent>]) -> bool,
    ) {
        let deadline = StdInstant::now() + LIMIT;
        loop {
            let now = self.now();
            for (i, n) in nodes.iter_mut().enumerate() {
                n.poll(now, &mut OsRandom);
                while let Some(e) = n.next_event() {
                    if let NodeEvent::BusFailed(f) = e {
                        panic!("node {i}: bus failed: {f:?}");
                    }
                    self.seen[i].push(e);
                }
            }
            if done(nodes, &self.seen) {
                return;
            }
            assert!(
                StdInstant::now() < deadline,
                "{what}: not done within {LIMIT:?}; events: {:#?}",
                self.seen
            );
            // Both nodes share one thread: wait on the first, briefly.
            let due = nodes
                .iter_mut()
                .filter_map(|n| n.poll_at(now))
                .min()
                .map_or(1000, |t| (t - now).total_micros().min(1000));
            if let Some(n) = nodes.first() {
                n.stack().wait(Duration::from_micros(due)).expect("ppoll");
            }
        }
    }

    fn transfer(
        &mut self,
        nodes: &mut [&mut HostNode],
        i: usize,
        t: TransferId,
    ) -> Result<Transferred, BlobError> {
        self.run(nodes, "transfer", |_, seen| {
            seen[i].contains(&NodeEvent::TransferDone(t))
        });
        nodes[i]
            .take_transfer(t)
            .expect("a result after TransferDone")
    }
}

fn session_up(seen: &[NodeEvent], peer: &DeviceId, kind: TransportKind) -> bool {
    seen.iter().any(
        |e| matches!(e, NodeEvent::SessionUp { peer: p, kind: k, .. } if p == peer && *k == kind),
    )
}

/// node-a serves `blob` to node-b only; node-b uploads and downloads `len`
/// bytes over `kind`.
fn blob_both_ways(mode: TransportMode, kind: TransportKind, port_base: u16, len: usize) {
    let (session, all) = dsb_host::netns::in_netns(|| {
        let (ida, idb) = (id("node-a"), id("node-b"));
        let mut a = node("node-a", ADDR_A, config(mode, port_base, port_base + 10));
        let mut b = node("node-b", ADDR_B, config(mode, port_base, port_base + 10));
        a.publish("blob", Access::only([&idb]).expect("access"))
            .expect("publish");
        let mut d = Driver::new(2);
        let nodes = &mut [&mut a, &mut b];
        let start = StdInstant::now();
        d.run(nodes, "session", |_, seen| {
            session_up(&seen[0], &idb, kind) && session_up(&seen[1], &ida, kind)
        });
        let session_at = start.elapsed();
        assert!(d.seen[0].contains(&NodeEvent::DiscoveryUp { multicast: true }));

        let blob = data(len, 7);
        let put = nodes[1]
            .blob_put(&ida, "os-mode.bin", blob.clone())
            .expect("put");
        match d.transfer(nodes, 1, put) {
            Ok(Transferred::Put(p)) => assert_eq!(p.hash, blob_hash(&blob)),
            other => panic!("put: {other:?}"),
        }
        let get = nodes[1].blob_get(&ida, "os-mode.bin", len).expect("get");
        match d.transfer(nodes, 1, get) {
            Ok(Transferred::Get(g)) => assert!(g.data == blob, "got other bytes"),
            other => panic!("get: {other:?}"),
        }
        assert_eq!(nodes[0].session_kind(&idb), Some(kind));
        (session_at, start.elapsed())
    });
    eprintln!(
        "os mode {}: session after {} ms, {len} bytes up and down after {} ms",
        kind.label(),
        session.as_millis(),
        all.as_millis()
    );
}

#[test]
fn two_nodes_in_one_process_over_tcp() {
    blob_both_ways(TransportMode::Tcp, TransportKind::Tcp, 37021, 1 << 20);
}

#[test]
fn two_nodes_in_one_process_over_udp_sec() {
    blob_both_ways(TransportMode::UdpSec, TransportKind::UdpSec, 37021, 1 << 20);
}

/// One node per process: node-b uploads and downloads over udp-sec (`auto`
/// picks it), node-a serves until it has served both. Each exits 0 only
/// when its part passed.
#[test]
fn two_processes_over_udp_sec() {
    let ns = Netns::create();
    let exe = std::env::current_exe().expect("test binary");
    let spawn = |role: &str| -> Child {
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(&exe)
            .args(["child_node", "--exact", "--ignored", "--nocapture"])
            .env(ROLE_ENV, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a child under ip netns exec")
    };
    let children = [("a", spawn("a")), ("b", spawn("b"))];
    let deadline = StdInstant::now() + LIMIT + Duration::from_secs(5);
    let mut failures = Vec::new();
    for (role, mut child) in children {
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if StdInstant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let out = child.wait_with_output().expect("child output");
        let ok = status.is_some_and(|s| s.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        if ok {
            for line in stdout.lines().filter(|l| l.starts_with("child ")) {
                eprintln!("{line}");
            }
        } else {
            failures.push(format!(
                "child {role}: {status:?}\n--- stdout\n{stdout}\n--- stderr\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    drop(ns);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One node of `two_processes_over_udp_sec` (does nothing unless started by it).
#[test]
#[ignore = "run by two_processes_over_udp_sec inside its network namespace"]
fn child_node() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let (ida, idb) = (id("node-a"), id("node-b"));
    let mode = TransportMode::Auto;
    let len = 1 << 20;
    let mut d = Driver::new(1);
    match role.as_str() {
        "a" => {
            let mut a = node("node-a", ADDR_A, config(mode, 37021, 37031));
            a.publish("blob", Access::only([&idb]).expect("access"))
                .expect("publish");
            let nodes = &mut [&mut a];
            d.run(nodes, "serve", |_, seen| {
                let served = |f: fn(&dsb_app::node::BlobServed) -> bool| {
                    seen[0]
                        .iter()
                        .any(|e| matches!(e, NodeEvent::BlobServed { what, .. } if f(what)))
                };
                served(|w| matches!(w, dsb_app::node::BlobServed::Stored { .. }))
                    && served(|w| matches!(w, dsb_app::node::BlobServed::Sent { .. }))
            });
            // Stay a moment for the last acknowledgements, then leave.
            let until = StdInstant::now() + Duration::from_millis(500);
            d.run(nodes, "linger", |_, _| StdInstant::now() >= until);
            assert_eq!(nodes[0].session_kind(&idb), Some(TransportKind::UdpSec));
            println!("child a: served node-b over udp-sec");
        }
        "b" => {
            let mut b = node("node-b", ADDR_B, config(mode, 37021, 37031));
            let nodes = &mut [&mut b];
            let start = StdInstant::now();
            d.run(nodes, "session", |_, seen| {
                session_up(&seen[0], &ida, TransportKind::UdpSec)
            });
            let session_at = start.elapsed();
            let blob = data(len, 9);
            let put = nodes[0].blob_put(&ida, "x.bin", blob.clone()).expect("put");
            match d.transfer(nodes, 0, put) {
                Ok(Transferred::Put(p)) => assert_eq!(p.hash, blob_hash(&blob)),
                other => panic!("put: {other:?}"),
            }
            let get = nodes[0].blob_get(&ida, "x.bin", len).expect("get");
            match d.transfer(nodes, 0, get) {
                Ok(Transferred::Get(g)) => assert!(g.data == blob, "got other bytes"),
                other => panic!("get: {other:?}"),
            }
            println!(
                "child b: udp-sec session after {} ms, {len} bytes up and down after {} ms",
                session_at.as_millis(),
                start.elapsed().as_millis()
            );
        }
        other => panic!("unknown role {other}"),
    }
}
