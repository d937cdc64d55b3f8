//! Session setup does not depend on which announce arrives first, on either
//! transport: whoever boots first, whichever first announce is lost, the
//! session authenticates within three round trips of the dialler's
//! discovery, with no timeout on the path. Initiators report `AuthOk` only
//! for sessions the responder accepted; refusals reach them at once;
//! simultaneous dials leave exactly one session, the same on both nodes.

use dsb_app::config::Transport as Mode;
use dsb_app::node::{DialPolicy, Direction, NodeConfig, NodeEvent};
use dsb_app::selftest::TestEvent;
use dsb_noise::{DeviceId, Identity};
use dsb_tests::nodesim::{make_node_with, NodeSim};
use dsb_tests::simwire::WireConfig;
use dsb_transports::transport::{TransportError, TransportKind};
use dsb_transports::udpsec::RejectCode;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, UdpPacket};

const IDS: [&str; 2] = ["node-a", "node-b"];
/// One-way delay of the wire in these tests (RTT 10 ms).
const DELAY: Duration = Duration::from_millis(5);
const RTT: Duration = Duration::from_millis(10);
/// Processing between steps of the simulation (several polls per hop).
const SLACK: Duration = Duration::from_millis(3);

fn wire() -> WireConfig {
    WireConfig {
        delay: DELAY,
        ..WireConfig::default()
    }
}

fn cfg(i: usize, mut c: NodeConfig, mode: Mode) -> NodeConfig {
    c.transport = mode;
    c.udpsec_port = (mode != Mode::Tcp).then_some(37031 + i as u16);
    c
}

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn kind_of(mode: Mode) -> TransportKind {
    match mode {
        Mode::Tcp => TransportKind::Tcp,
        _ => TransportKind::UdpSec,
    }
}

fn count(sim: &NodeSim, i: usize, pred: impl Fn(&NodeEvent) -> bool) -> usize {
    sim.log
        .iter()
        .filter(|l| l.node == i && pred(&l.event))
        .count()
}

fn authed(sim: &NodeSim, i: usize) -> Option<Instant> {
    sim.first(i, |e| matches!(e, NodeEvent::AuthOk(_)))
}

/// Whether `frame` is a discovery announce (UDP to port 37020).
fn is_announce(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return false;
    };
    ip.next_header() == IpProtocol::Udp
        && UdpPacket::new_checked(ip.payload()).is_ok_and(|u| u.dst_port() == 37020)
}

/// How the two nodes meet.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// node-a boots 500 ms before node-b.
    AFirst,
    /// node-b boots 500 ms before node-a.
    BFirst,
    /// Both at once.
    Together,
    /// Both at once; the first announce of node `i` is lost.
    FirstAnnounceLost(usize),
}

/// Runs one ordering; returns the sim once both nodes authenticated.
fn meet(order: Order, mode: Mode, seed: u64) -> NodeSim {
    let mut sim = NodeSim::with(&IDS, wire(), seed, |i, c| cfg(i, c, mode));
    let late = match order {
        Order::AFirst => Some(1),
        Order::BFirst => Some(0),
        _ => None,
    };
    if let Order::FirstAnnounceLost(who) = order {
        let mut dropped = false;
        sim.wire.set_filter(Some(Box::new(move |src, frame| {
            if !dropped && src == who + 1 && is_announce(frame) {
                dropped = true;
                return false;
            }
            true
        })));
    }
    if let Some(i) = late {
        sim.stopped[i] = true;
        sim.wire.set_down(i + 1, true);
        sim.run_until(Duration::from_millis(500), |_| false);
        sim.stopped[i] = false;
        sim.wire.set_down(i + 1, false);
        let c = cfg(i, NodeConfig::new(37021 + i as u16), mode);
        sim.restart(i, IDS[i], c);
    }
    let done = |s: &NodeSim| authed(s, 0).is_some() && authed(s, 1).is_some();
    assert!(
        sim.run_until(Duration::from_secs(10), done),
        "{order:?} {mode:?}: no session: {:#?}",
        sim.log
    );
    sim
}

fn check_prompt(sim: &NodeSim, order: Order, mode: Mode) {
    // The dialler (lower id) found its peer at t0; both sides must be
    // authenticated within three round trips of it.
    let t0 = sim
        .first(0, |e| matches!(e, NodeEvent::PeerFound(_)))
        .expect("node-a found node-b");
    for i in 0..2 {
        let t = authed(sim, i).unwrap();
        assert!(
            t <= t0 + RTT * 3 + SLACK,
            "{order:?} {mode:?}: node {i} authenticated {:?} after the dialler's discovery",
            t - t0
        );
        assert_eq!(
            sim.nodes[i].session_kind(&id(IDS[1 - i])),
            Some(kind_of(mode))
        );
        // No timeout, refusal or fallback on the path, and one session each.
        assert!(
            !sim.saw(i, |e| matches!(
                e,
                NodeEvent::HandshakeFailed { .. }
                    | NodeEvent::UdpSecFallback { .. }
                    | NodeEvent::SessionDown { .. }
            )),
            "{order:?} {mode:?}: node {i}: {:#?}",
            sim.log
        );
        assert_eq!(count(sim, i, |e| matches!(e, NodeEvent::AuthOk(_))), 1);
    }
}

#[test]
fn every_announce_ordering_authenticates_within_three_round_trips() {
    for mode in [Mode::Tcp, Mode::UdpSec, Mode::Auto] {
        for (k, order) in [
            Order::AFirst,
            Order::BFirst,
            Order::Together,
            Order::FirstAnnounceLost(0),
            Order::FirstAnnounceLost(1),
        ]
        .into_iter()
        .enumerate()
        {
            let sim = meet(order, mode, 100 + k as u64);
            check_prompt(&sim, order, mode);
        }
    }
}

#[test]
fn the_responder_accepts_before_it_has_heard_the_initiator() {
    // node-b's view of node-a's announces is cut entirely: it can only learn
    // node-a from node-a's handshake.
    for mode in [Mode::Tcp, Mode::UdpSec] {
        let mut sim = NodeSim::with(&IDS, wire(), 7, |i, c| cfg(i, c, mode));
        sim.wire.set_filter(Some(Box::new(|src, frame| {
            !(src == 1 && is_announce(frame))
        })));
        assert!(
            sim.run_until(Duration::from_secs(5), |s| authed(s, 0).is_some()
                && authed(s, 1).is_some()),
            "{mode:?}: {:#?}",
            sim.log
        );
        assert!(!sim.saw(1, |e| matches!(e, NodeEvent::PeerFound(_))));
    }
}

#[test]
fn simultaneous_dials_leave_one_session_the_same_on_both_nodes() {
    for mode in [Mode::Tcp, Mode::UdpSec] {
        for seed in 0..6u64 {
            // node-b dials too (ignoring the tie-break); the wire delay varies
            // so the two handshakes cross at different points.
            let w = WireConfig {
                delay: Duration::from_micros(200 + 900 * seed),
                ..WireConfig::default()
            };
            let mut sim = NodeSim::with(&IDS, w, 40 + seed, |i, c| {
                let mut c = cfg(i, c, mode);
                if i == 1 {
                    c.dial = DialPolicy::Everyone;
                }
                c
            });
            let both_ok = |s: &NodeSim| {
                (0..2).all(|i| s.saw_test(i, |e| matches!(e, TestEvent::SessionOk { .. })))
            };
            assert!(
                sim.run_until(Duration::from_secs(20), both_ok),
                "{mode:?} seed {seed}: {:#?}",
                sim.log
            );
            // Let any loser finish dying, then compare the tables.
            sim.run_until(Duration::from_secs(2), |_| false);
            let (a, b) = (id("node-a"), id("node-b"));
            assert_eq!(sim.nodes[0].session_peers().count(), 1);
            assert_eq!(sim.nodes[1].session_peers().count(), 1);
            // The survivor is the session node-a (the lower id) opened.
            assert_eq!(
                sim.nodes[0].session_initiated(&b),
                Some(true),
                "{mode:?} {seed}"
            );
            assert_eq!(
                sim.nodes[1].session_initiated(&a),
                Some(false),
                "{mode:?} {seed}"
            );
            // Nobody reported a session the other side did not keep for long:
            // node-a authenticated exactly one session.
            assert_eq!(
                count(&sim, 0, |e| matches!(e, NodeEvent::AuthOk(_))),
                1,
                "{mode:?} seed {seed}: {:#?}",
                sim.log
            );
        }
    }
}

/// node-b refuses everyone it has no pin for.
fn refusing(mode: Mode, seed: u64) -> NodeSim {
    NodeSim::with(&IDS, wire(), seed, |i, c| {
        let mut c = cfg(i, c, mode);
        if i == 1 {
            c.tofu = false;
        }
        c
    })
}

#[test]
fn a_refused_initiator_never_reports_auth_and_learns_at_once() {
    for mode in [Mode::Tcp, Mode::UdpSec] {
        let mut sim = refusing(mode, 11);
        let refused = |s: &NodeSim| {
            s.saw(0, |e| {
                matches!(
                    e,
                    NodeEvent::HandshakeFailed {
                        direction: Direction::Outbound,
                        ..
                    }
                )
            })
        };
        assert!(
            sim.run_until(Duration::from_secs(5), refused),
            "{mode:?}: {:#?}",
            sim.log
        );
        let dialled = sim
            .first(0, |e| matches!(e, NodeEvent::SessionConnect(_)))
            .unwrap();
        let learnt = sim
            .first(0, |e| matches!(e, NodeEvent::HandshakeFailed { .. }))
            .unwrap();
        // TCP: SYN, msg1, msg2, msg3 then the RST; udp-sec: msg1..3 then HS_REJECT.
        assert!(
            learnt - dialled <= RTT * 3 + SLACK,
            "{mode:?}: refusal took {:?}",
            learnt - dialled
        );
        let expected = match mode {
            Mode::Tcp => TransportError::Refused,
            _ => TransportError::Rejected(RejectCode::UnknownPeer),
        };
        assert!(sim.saw(0, |e| matches!(
            e,
            NodeEvent::HandshakeFailed { error, .. } if *error == expected
        )));
        // Keep it running: retries are refused the same way, never authenticated.
        sim.run_until(Duration::from_secs(3), |_| false);
        for i in 0..2 {
            assert!(
                !sim.saw(i, |e| matches!(e, NodeEvent::AuthOk(_))),
                "{mode:?} node {i}"
            );
        }
        assert!(sim.saw(1, |e| matches!(
            e,
            NodeEvent::HandshakeFailed {
                direction: Direction::Inbound,
                ..
            }
        )));
    }
}

/// node-a and node-b (with explicit keys) pair over TCP; then node-b is
/// replaced by `replacement` (same id, new boot). Returns the sim and the
/// instant of the swap.
fn swap_node_b(seed: u64, replacement: Identity) -> (NodeSim, Instant) {
    let mut sim = NodeSim::with(&IDS, wire(), seed, |i, c| cfg(i, c, Mode::Tcp));
    let original = Identity::from_secret_bytes("node-b", &[5; 32], &[6; 32]).unwrap();
    let dev = sim.wire.device(2);
    let c = cfg(1, NodeConfig::new(37022), Mode::Tcp);
    sim.replace(1, make_node_with(original, 1, dev, c, sim.now));
    assert!(sim.run_until(Duration::from_secs(5), |s| authed(s, 0).is_some()));
    let dev = sim.wire.device(2);
    let mut c = cfg(1, NodeConfig::new(37022), Mode::Tcp);
    c.boot_epoch = 1;
    sim.replace(1, make_node_with(replacement, 1, dev, c, sim.now));
    let at = sim.now;
    (sim, at)
}

/// Time from node-a's first dial after `since` to its first outbound failure,
/// once that failure is a reset.
fn refused_after(sim: &mut NodeSim, since: Instant) -> Duration {
    let refused = |s: &NodeSim| {
        s.log.iter().any(|l| {
            l.node == 0
                && l.at > since
                && matches!(
                    l.event,
                    NodeEvent::HandshakeFailed {
                        direction: Direction::Outbound,
                        ..
                    }
                )
        })
    };
    assert!(
        sim.run_until(Duration::from_secs(20), refused),
        "{:#?}",
        sim.log
    );
    let after = |pred: &dyn Fn(&NodeEvent) -> bool| {
        sim.log
            .iter()
            .find(|l| l.node == 0 && l.at > since && pred(&l.event))
            .map(|l| l.at)
            .unwrap()
    };
    let connect = after(&|e| matches!(e, NodeEvent::SessionConnect(_)));
    let failed = after(&|e| matches!(e, NodeEvent::HandshakeFailed { .. }));
    failed - connect
}

#[test]
fn a_tcp_handshake_refused_at_message_1_is_reset_at_once() {
    // node-b reboots with new keys; node-a still holds its old announce (the
    // new one is a key mismatch for its TOFU binding), so node-b cannot
    // decrypt message 1 and resets the connection.
    let fresh = Identity::from_secret_bytes("node-b", &[3; 32], &[4; 32]).unwrap();
    let (mut sim, since) = swap_node_b(21, fresh);
    let took = refused_after(&mut sim, since);
    // SYN/SYN-ACK, message 1, then the RST: two round trips.
    assert!(took <= RTT * 2 + SLACK, "{took:?}");
    assert!(sim.saw(0, |e| matches!(
        e,
        NodeEvent::HandshakeFailed {
            error: TransportError::Refused,
            direction: Direction::Outbound,
            ..
        }
    )));
    assert!(sim.saw(1, |e| matches!(
        e,
        NodeEvent::HandshakeFailed {
            direction: Direction::Inbound,
            error: TransportError::Noise(dsb_noise::NoiseError::DecryptFailed),
            ..
        }
    )));
}

#[test]
fn a_tcp_handshake_refused_at_message_2_is_reset_at_once() {
    // The new node-b keeps node-b's static key but has another device key:
    // message 1 decrypts, node-a rejects the attestation in message 2 and
    // resets; node-b learns at once.
    let other = Identity::from_secret_bytes("node-b", &[3; 32], &[6; 32]).unwrap();
    let (mut sim, since) = swap_node_b(22, other);
    let took = refused_after(&mut sim, since);
    assert!(took <= RTT * 2 + SLACK, "{took:?}");
    assert!(sim.saw(0, |e| matches!(e, NodeEvent::IdentityMismatch(_))));
    let dialled = sim
        .log
        .iter()
        .find(|l| l.node == 0 && l.at > since && matches!(l.event, NodeEvent::SessionConnect(_)))
        .unwrap()
        .at;
    let heard = |s: &NodeSim| {
        s.saw(1, |e| {
            matches!(
                e,
                NodeEvent::HandshakeFailed {
                    direction: Direction::Inbound,
                    error: TransportError::Refused,
                    ..
                }
            )
        })
    };
    assert!(
        sim.run_until(Duration::from_secs(1), heard),
        "{:#?}",
        sim.log
    );
    let at = sim
        .first(1, |e| matches!(e, NodeEvent::HandshakeFailed { .. }))
        .unwrap();
    assert!(at - dialled <= RTT * 3 + SLACK, "{:?}", at - dialled);
}

#[test]
fn a_burst_of_simultaneous_connects_is_accepted() {
    // Four nodes learn node-z at the same instant (its announce reaches them
    // together) and all dial it: four SYNs back to back.
    let ids = ["node-1", "node-2", "node-3", "node-4", "node-z"];
    let mut sim = NodeSim::with(&ids, wire(), 5, |i, c| cfg(i, c, Mode::Tcp));
    let z = ids.len() - 1;
    let all = |s: &NodeSim| s.nodes[z].session_peers().count() == 4;
    assert!(sim.run_until(Duration::from_secs(5), all), "{:#?}", sim.log);
    // Nobody was refused or reset on the way.
    for i in 0..ids.len() {
        assert!(
            !sim.saw(i, |e| matches!(e, NodeEvent::HandshakeFailed { .. })),
            "node {i}: {:#?}",
            sim.log
        );
    }
    let connects: Vec<Instant> = sim
        .log
        .iter()
        .filter(|l| {
            l.node < z && matches!(l.event, NodeEvent::SessionConnect(p) if p.as_str() == "node-z")
        })
        .map(|l| l.at)
        .collect();
    assert_eq!(connects.len(), 4);
    let spread = *connects.iter().max().unwrap() - *connects.iter().min().unwrap();
    assert!(
        spread < Duration::from_millis(1),
        "the dials were not simultaneous: {spread:?}"
    );
}

#[test]
fn a_peer_that_restarts_again_and_again_always_gets_its_session_back() {
    // More restarts, back to back, than a transport has connection slots
    // (the pattern of a workstation running one `dsb` command after
    // another): the restarted instance never answers a graceful close, so
    // each stale session must give its slot up at once, or node-a ends up
    // refusing node-b for lack of room.
    let restarts = dsb_app::node::MAX_CONNS as u32 + 4;
    for mode in [Mode::Tcp, Mode::UdpSec] {
        let mut sim = NodeSim::with(&IDS, wire(), 11, |i, c| cfg(i, c, mode));
        assert!(
            sim.run_until(Duration::from_secs(5), |s| authed(s, 0).is_some()
                && authed(s, 1).is_some())
        );
        for epoch in 1..=restarts {
            let mut c = cfg(1, NodeConfig::new(37022), mode);
            c.boot_epoch = epoch;
            sim.restart(1, "node-b", c);
            let since = sim.now;
            let up = |s: &NodeSim| {
                s.log.iter().any(|l| {
                    l.node == 0 && l.at > since && matches!(l.event, NodeEvent::SessionUp { .. })
                })
            };
            assert!(
                sim.run_until(Duration::from_secs(3), up),
                "{mode:?}, restart {epoch}: {:#?}",
                &sim.log[sim.log.len().saturating_sub(30)..]
            );
        }
        let full = |e: &NodeEvent| {
            matches!(
                e,
                NodeEvent::HandshakeFailed {
                    error: TransportError::TooManyConnections
                        | TransportError::Rejected(RejectCode::NotAccepting),
                    ..
                }
            )
        };
        assert_eq!(count(&sim, 0, full) + count(&sim, 1, full), 0, "{mode:?}");
    }
}

#[test]
fn a_peer_that_said_goodbye_is_dialled_again_only_once_it_announces() {
    // node-b closes its session (GOAWAY) and its process ends; a second later
    // a new one takes its place at the same address, as `dsb` does from one
    // command to the next. node-a must not dial in between (it would dial a
    // process that has left, or reach the new one before its announce and
    // take it for the old one), and gets one clean session once the
    // newcomer announces itself. udp-sec only: over TCP the FIN can be
    // reported before the mux reads the GOAWAY (see `said_goodbye`).
    let node_a = id("node-a");
    {
        let mode = Mode::UdpSec;
        let mut sim = NodeSim::with(&IDS, wire(), 13, |i, c| cfg(i, c, mode));
        assert!(
            sim.run_until(Duration::from_secs(5), |s| authed(s, 0).is_some()
                && authed(s, 1).is_some())
        );
        assert!(sim.nodes[1].disconnect(&node_a));
        sim.run_until(Duration::from_millis(50), |_| false);
        sim.stopped[1] = true;
        let left = sim.now;
        sim.run_until(Duration::from_secs(1), |_| false);
        let after = |s: &NodeSim, since: Instant, f: &dyn Fn(&NodeEvent) -> bool| {
            s.log
                .iter()
                .filter(|l| l.node == 0 && l.at > since && f(&l.event))
                .count()
        };
        let dials = |e: &NodeEvent| matches!(e, NodeEvent::SessionConnect(_));
        assert_eq!(
            after(&sim, left, &dials),
            0,
            "{mode:?}: dialled a peer that left"
        );
        let mut c = cfg(1, NodeConfig::new(37022), mode);
        c.boot_epoch = 1;
        sim.restart(1, "node-b", c);
        sim.stopped[1] = false;
        let since = sim.now;
        let up = |e: &NodeEvent| matches!(e, NodeEvent::SessionUp { .. });
        assert!(
            sim.run_until(Duration::from_secs(5), |s| after(s, since, &up) > 0),
            "{mode:?}: {:#?}",
            sim.log
        );
        sim.run_until(Duration::from_secs(3), |_| false);
        let down = |e: &NodeEvent| matches!(e, NodeEvent::SessionDown { .. });
        assert_eq!(
            (after(&sim, since, &up), after(&sim, since, &down)),
            (1, 0),
            "{mode:?}: one clean session with the newcomer"
        );
    }
}
