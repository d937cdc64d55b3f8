//! Full nodes on the simulated wire with the udp-sec transport: the same
//! discovery → attested XK + identity binding → mux → services path as over
//! TCP, carried in udp-sec datagrams; `auto` selection and its fallback to
//! TCP when the udp-sec port is unreachable. The node code is the image's own.

use dsb_app::config::Transport as Mode;
use dsb_app::node::{DialPolicy, FallbackReason, NodeConfig, NodeEvent};
use dsb_app::selftest::TestEvent;
use dsb_discovery::AnnounceError;
use dsb_noise::{DeviceId, Identity};
use dsb_tests::nodesim::{make_node_with, pins, NodeSim};
use dsb_tests::simwire::{Wire, WireConfig};
use dsb_transports::transport::{TransportError, TransportKind};
use dsb_transports::udpsec::RejectCode;
use smoltcp::time::Duration;

const IDS: [&str; 2] = ["node-a", "node-b"];
/// udp-sec port of node `i` (as in the image).
fn udpsec_port(i: usize) -> u16 {
    37031 + i as u16
}

/// A node config with udp-sec enabled on its port and `mode` selection.
fn cfg(i: usize, mut c: NodeConfig, mode: Mode) -> NodeConfig {
    c.transport = mode;
    c.udpsec_port = Some(udpsec_port(i));
    c
}

fn session_ok(sim: &NodeSim, i: usize, kind: TransportKind) -> bool {
    sim.saw_test(
        i,
        |e| matches!(e, TestEvent::SessionOk { kind: k, .. } if *k == kind),
    )
}

fn all_ok(kind: TransportKind) -> impl Fn(&NodeSim) -> bool {
    move |sim| (0..sim.nodes.len()).all(|i| session_ok(sim, i, kind))
}

fn count_test(sim: &NodeSim, i: usize, pred: impl Fn(&TestEvent) -> bool) -> usize {
    sim.tlog
        .iter()
        .filter(|l| l.node == i && pred(&l.event))
        .count()
}

fn count(sim: &NodeSim, i: usize, pred: impl Fn(&NodeEvent) -> bool) -> usize {
    sim.log
        .iter()
        .filter(|l| l.node == i && pred(&l.event))
        .count()
}

/// The UDP source and destination ports of an Ethernet/IPv4/UDP frame.
fn udp_ports(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(23)? != 17 {
        return None;
    }
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    let udp = frame.get(14 + ihl..14 + ihl + 4)?;
    Some((
        u16::from_be_bytes([udp[0], udp[1]]),
        u16::from_be_bytes([udp[2], udp[3]]),
    ))
}

/// Drops every frame to or from a udp-sec port.
fn drop_udpsec(wire: &Wire) {
    wire.set_filter(Some(Box::new(|_, frame: &[u8]| {
        !udp_ports(frame).is_some_and(|(s, d)| {
            [s, d]
                .iter()
                .any(|p| *p == udpsec_port(0) || *p == udpsec_port(1))
        })
    })));
}

#[test]
fn two_nodes_reach_session_ok_over_udpsec_in_marker_order() {
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 11, |i, c| {
        cfg(i, c, Mode::UdpSec)
    });
    assert!(
        sim.run_until(Duration::from_secs(20), all_ok(TransportKind::UdpSec)),
        "log: {:#?}",
        sim.log
    );
    for i in 0..2 {
        // Only the dialler has necessarily found its peer before the session.
        let found = (i == 0).then(|| sim.first_index(i, |e| matches!(e, NodeEvent::PeerFound(_))));
        let order: Vec<Option<u64>> = [
            sim.first_index(i, |e| matches!(e, NodeEvent::DiscoveryUp { .. })),
            sim.first_index(
                i,
                |e| matches!(e, NodeEvent::UdpSecListening { port } if *port == udpsec_port(i)),
            ),
        ]
        .into_iter()
        .chain(found)
        .chain([
            sim.first_index(i, |e| {
                matches!(
                    e,
                    NodeEvent::TransportSelected {
                        kind: TransportKind::UdpSec,
                        ..
                    }
                )
            }),
            sim.first_index(i, |e| matches!(e, NodeEvent::IdentityBound(_))),
            sim.first_index(i, |e| matches!(e, NodeEvent::AuthOk(_))),
            sim.first_index(i, |e| matches!(e, NodeEvent::UdpSecSessionOk(_))),
            sim.first_test_index(i, |e| {
                matches!(
                    e,
                    TestEvent::PingOk {
                        kind: TransportKind::UdpSec,
                        ..
                    }
                )
            }),
            sim.first_test_index(i, |e| {
                matches!(
                    e,
                    TestEvent::MuxDataOk {
                        kind: TransportKind::UdpSec,
                        ..
                    }
                )
            }),
            sim.first_test_index(i, |e| matches!(e, TestEvent::SessionOk { .. })),
        ])
        .collect();
        let times: Vec<_> = order
            .iter()
            .enumerate()
            .map(|(k, t)| t.unwrap_or_else(|| panic!("node {i}: event {k} missing")))
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "node {i}: out of order {times:?}"
        );
        // Nothing went over TCP.
        assert!(!sim.saw(i, |e| matches!(
            e,
            NodeEvent::TransportSelected {
                kind: TransportKind::Tcp,
                ..
            }
        )));
        assert_eq!(count(&sim, i, |e| matches!(e, NodeEvent::AuthOk(_))), 1);
    }
    let b = DeviceId::new("node-b").unwrap();
    assert_eq!(sim.nodes[0].session_kind(&b), Some(TransportKind::UdpSec));
    let (stats, endpoint) = sim.nodes[1].udpsec_stats().unwrap();
    assert!(stats.datagrams_in > 0 && stats.datagrams_out > 0);
    assert_eq!(endpoint.accepted, 1);
}

#[test]
fn one_mib_and_a_slow_sink_over_udpsec() {
    let sink_bytes = 256 * 1024;
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 12, |i, c| {
        cfg(i, c, Mode::UdpSec)
    });
    sim.set_selftest(|_, t| {
        t.udpsec_bulk_bytes = 1 << 20;
        t.udpsec_sink_bytes = sink_bytes;
        t.sink_rate = 128 * 1024; // 2 s of reading
    });
    let window = NodeConfig::new(0).mux.recv_window as usize;
    assert!(
        sim.run_until(Duration::from_secs(60), all_ok(TransportKind::UdpSec)),
        "log: {:#?}",
        sim.log
    );
    for i in 0..2 {
        // The client checked every echoed byte against the pattern and the hash.
        assert!(sim.saw_test(
            i,
            |e| matches!(e, TestEvent::MuxDataOk { bytes, kind: TransportKind::UdpSec, .. } if *bytes == 1 << 20)
        ));
        let (bytes, blocked, peak, elapsed) = sim
            .tlog
            .iter()
            .find_map(|l| match l.event {
                TestEvent::BackpressureOk {
                    bytes,
                    blocked,
                    peak_buffered,
                    elapsed,
                    kind: TransportKind::UdpSec,
                    ..
                } if l.node == i => Some((bytes, blocked, peak_buffered, elapsed)),
                _ => None,
            })
            .expect("backpressure event");
        assert_eq!(bytes, sink_bytes);
        // Holds are counted only while the reader's credit was zero.
        assert!(blocked > 0, "node {i}: writer never held by the reader");
        // The reader (the peer's sink) filled its window and stayed within it.
        assert!(
            peak >= window / 2 && peak <= window,
            "node {i}: reader peak {peak}, window {window}"
        );
        // 256 KiB at 128 KiB/s minus the window and the first burst: >= 1.25 s.
        assert!(
            elapsed >= Duration::from_millis(1250),
            "node {i}: the sink was not the bottleneck ({elapsed:?})"
        );
    }
}

#[test]
fn a_fast_sink_is_not_reported_as_backpressure() {
    // node-a expects its peer's sink to read 128 KiB/s (its own setting, as
    // in the symmetric self-test), but node-b's sink reads 1 GiB/s: nothing
    // slow holds node-a's writer, so its step must fail, not claim
    // backpressure. node-b writes into node-a's truly slow sink and passes.
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 13, |i, c| {
        cfg(i, c, Mode::UdpSec)
    });
    sim.set_selftest(|i, t| {
        t.udpsec_bulk_bytes = 64 * 1024;
        t.udpsec_sink_bytes = 256 * 1024;
        t.sink_rate = if i == 0 { 128 * 1024 } else { 1 << 30 };
    });
    let done = |s: &NodeSim| {
        s.saw_test(
            0,
            |e| matches!(e, TestEvent::ServiceFailed { what, .. } if what.starts_with("sink")),
        ) && s.saw_test(1, |e| matches!(e, TestEvent::BackpressureOk { .. }))
    };
    assert!(
        sim.run_until(Duration::from_secs(30), done),
        "{:#?}",
        sim.log
    );
    assert!(!sim.saw_test(0, |e| matches!(e, TestEvent::BackpressureOk { .. })));
    assert!(sim.saw_test(0, |e| matches!(
        e,
        TestEvent::ServiceFailed {
            what: "sink was not slow",
            ..
        }
    )));
}

#[test]
fn udpsec_session_survives_five_percent_loss() {
    for seed in [21, 22, 23] {
        let wire = WireConfig {
            loss: 0.05,
            ..WireConfig::default()
        };
        let mut sim = NodeSim::with(&IDS, wire, seed, |i, c| cfg(i, c, Mode::UdpSec));
        sim.set_selftest(|_, t| t.udpsec_bulk_bytes = 256 * 1024);
        assert!(
            sim.run_until(Duration::from_secs(120), all_ok(TransportKind::UdpSec)),
            "seed {seed}: {:#?}",
            sim.log
        );
        assert!(sim.wire.stats().lost > 0, "seed {seed}: nothing was lost");
        for i in 0..2 {
            assert_eq!(
                count(&sim, i, |e| matches!(e, NodeEvent::AuthOk(_))),
                1,
                "seed {seed} node {i}: session was not kept"
            );
        }
    }
}

#[test]
fn auto_prefers_udpsec_when_both_offer_it() {
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 13, |i, c| {
        cfg(i, c, Mode::Auto)
    });
    assert!(
        sim.run_until(Duration::from_secs(20), all_ok(TransportKind::UdpSec)),
        "log: {:#?}",
        sim.log
    );
    assert!(!sim.saw(0, |e| matches!(e, NodeEvent::UdpSecFallback { .. })));
}

#[test]
fn auto_falls_back_to_tcp_when_the_wire_drops_udpsec() {
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 14, |i, c| {
        cfg(i, c, Mode::Auto)
    });
    drop_udpsec(&sim.wire);
    assert!(
        sim.run_until(Duration::from_secs(30), all_ok(TransportKind::Tcp)),
        "log: {:#?}",
        sim.log
    );
    assert!(sim.wire.stats().filtered > 0, "the filter never fired");
    // node-a tried udp-sec first, gave up at the deadline, then used TCP.
    let tried = sim
        .first(0, |e| {
            matches!(
                e,
                NodeEvent::TransportSelected {
                    kind: TransportKind::UdpSec,
                    ..
                }
            )
        })
        .expect("udp-sec tried first");
    let gave_up = sim
        .first(0, |e| {
            matches!(
                e,
                NodeEvent::UdpSecFallback {
                    reason: FallbackReason::Unreachable,
                    ..
                }
            )
        })
        .expect("fallback");
    let tcp = sim
        .first(0, |e| {
            matches!(
                e,
                NodeEvent::TransportSelected {
                    kind: TransportKind::Tcp,
                    ..
                }
            )
        })
        .expect("tcp selected");
    let deadline = NodeConfig::new(0).udpsec_deadline;
    assert!(gave_up - tried >= deadline, "gave up early");
    assert!(gave_up - tried < deadline + Duration::from_millis(100));
    assert!(tcp >= gave_up);
    // node-b saw the session arrive over TCP although both offer udp-sec.
    assert!(sim.saw(1, |e| matches!(
        e,
        NodeEvent::UdpSecFallback {
            reason: FallbackReason::PeerChoseTcp,
            ..
        }
    )));
    for i in 0..2 {
        assert!(!sim.saw(i, |e| matches!(e, NodeEvent::UdpSecSessionOk(_))));
        assert_eq!(count(&sim, i, |e| matches!(e, NodeEvent::AuthOk(_))), 1);
    }
}

#[test]
fn auto_uses_tcp_at_once_when_the_peer_has_udpsec_off() {
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 15, |i, c| {
        let mut c = cfg(i, c, Mode::Auto);
        if i == 1 {
            c.udpsec_port = None;
        }
        c
    });
    assert!(
        sim.run_until(Duration::from_secs(20), all_ok(TransportKind::Tcp)),
        "log: {:#?}",
        sim.log
    );
    assert!(sim.saw(0, |e| matches!(
        e,
        NodeEvent::UdpSecFallback {
            reason: FallbackReason::NotOffered,
            ..
        }
    )));
    assert!(sim.saw(1, |e| matches!(
        e,
        NodeEvent::UdpSecFallback {
            peer: None,
            reason: FallbackReason::Disabled
        }
    )));
    assert!(!sim.saw(0, |e| matches!(
        e,
        NodeEvent::TransportSelected {
            kind: TransportKind::UdpSec,
            ..
        }
    )));
}

#[test]
fn forced_tcp_never_opens_udpsec() {
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 16, |i, c| cfg(i, c, Mode::Tcp));
    assert!(sim.run_until(Duration::from_secs(20), all_ok(TransportKind::Tcp)));
    for i in 0..2 {
        assert!(!sim.saw(i, |e| matches!(
            e,
            NodeEvent::UdpSecListening { .. } | NodeEvent::UdpSecFallback { .. }
        )));
        assert!(sim.nodes[i].udpsec_stats().is_none());
    }
}

#[test]
fn spoofer_over_udpsec_is_rejected_at_message_3() {
    // A third station claims node-b's id with its own keys and connects to
    // everyone over udp-sec; node-a must refuse it as responder.
    let wire = Wire::new(4, WireConfig::default(), 17);
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 17, |i, c| {
        cfg(i, c, Mode::UdpSec)
    });
    sim.wire = wire.clone();
    sim.slirp =
        dsb_tests::slirp::SlirpStation::new(dsb_tests::slirp::Slirp::restrict_on(), wire.device(0));
    for (i, id) in IDS.iter().enumerate() {
        let mut c = cfg(i, NodeConfig::new(37021 + i as u16), Mode::UdpSec);
        c.pinned = pins(&IDS, id);
        sim.replace(
            i,
            dsb_tests::nodesim::make_node(id, i, wire.device(i + 1), c, sim.now),
        );
    }
    let spoof_id = Identity::from_secret_bytes("node-b", &[7; 32], &[9; 32]).unwrap();
    let mut sc = cfg(2, NodeConfig::new(37029), Mode::UdpSec);
    sc.dial = DialPolicy::Everyone;
    sim.push_node(make_node_with(spoof_id, 2, wire.device(3), sc, sim.now));

    let node_b = DeviceId::new("node-b").unwrap();
    let done = |s: &NodeSim| {
        session_ok(s, 0, TransportKind::UdpSec)
            && session_ok(s, 1, TransportKind::UdpSec)
            && s.saw(
                0,
                |e| matches!(e, NodeEvent::IdentityMismatch(p) if *p == node_b),
            )
    };
    assert!(
        sim.run_until(Duration::from_secs(30), done),
        "log: {:#?}",
        sim.log
    );
    for i in 0..2 {
        assert_eq!(
            count(&sim, i, |e| matches!(e, NodeEvent::AuthOk(_))),
            1,
            "node {i}"
        );
    }
    // The impostor never believed it had a session: node-a refused its
    // message 3, and told it so (HS_REJECT) rather than letting it time out.
    assert!(!sim.saw(2, |e| matches!(
        e,
        NodeEvent::AuthOk(_) | NodeEvent::IdentityBound(_) | NodeEvent::SessionUp { .. }
    )));
    assert!(!sim.saw_test(2, |e| matches!(e, TestEvent::PingOk { .. })));
    assert!(sim.saw(2, |e| matches!(
        e,
        NodeEvent::HandshakeFailed {
            error: TransportError::Rejected(RejectCode::IdentityMismatch),
            ..
        }
    )));
    assert!(sim.saw(0, |e| matches!(
        e,
        NodeEvent::AnnounceIgnored(AnnounceError::KeyMismatch)
    )));
    assert!(sim.saw(1, |e| matches!(
        e,
        NodeEvent::AnnounceIgnored(AnnounceError::SelfAnnounce)
    )));
}

#[test]
fn peer_restart_leads_to_a_new_udpsec_session() {
    let mut sim = NodeSim::with(&IDS, WireConfig::default(), 18, |i, c| {
        cfg(i, c, Mode::UdpSec)
    });
    assert!(sim.run_until(Duration::from_secs(20), all_ok(TransportKind::UdpSec)));
    // node-b dies.
    sim.wire.set_down(2, true);
    sim.stopped[1] = true;
    assert!(
        sim.run_until(Duration::from_secs(20), |s| s
            .saw(0, |e| matches!(e, NodeEvent::SessionDown { .. }))),
        "node-a never noticed: {:#?}",
        sim.log
    );
    // node-b boots again with a newer announce epoch.
    sim.wire.set_down(2, false);
    sim.stopped[1] = false;
    let mut c = cfg(1, NodeConfig::new(37022), Mode::UdpSec);
    c.boot_epoch = 1;
    sim.restart(1, "node-b", c);
    assert!(
        sim.run_until(Duration::from_secs(30), |s| count_test(s, 0, |e| matches!(
            e,
            TestEvent::SessionOk {
                kind: TransportKind::UdpSec,
                ..
            }
        )) >= 2),
        "no second session: {:#?}",
        sim.log
    );
    assert_eq!(count(&sim, 0, |e| matches!(e, NodeEvent::AuthOk(_))), 2);
    // The old session was closed and replaced: one session with node-b.
    let (stats, _) = sim.nodes[0].udpsec_stats().unwrap();
    assert!(stats.datagrams_out > 0);
    assert_eq!(sim.nodes[0].session_peers().count(), 1);
}
