//! Full nodes on the simulated wire: they take DHCP leases, find each other
//! through signed announces, connect (lower id), run the Noise XK handshake
//! with identity binding, and exchange data over the mux. The node code is
//! the image's own.

use dsb_app::node::{DialPolicy, DownReason, NodeConfig, NodeEvent};
use dsb_app::selftest::TestEvent;
use dsb_discovery::AnnounceError;
use dsb_noise::{DeviceId, Identity};
use dsb_tests::nodesim::{make_node_with, pins, NodeSim};
use dsb_tests::simwire::WireConfig;
use dsb_transports::transport::TransportError;
use smoltcp::time::Duration;

fn session_ok(sim: &NodeSim, i: usize) -> bool {
    sim.saw_test(i, |e| matches!(e, TestEvent::SessionOk { .. }))
}

fn all_ok(sim: &NodeSim) -> bool {
    (0..sim.nodes.len()).all(|i| session_ok(sim, i))
}

fn count(sim: &NodeSim, i: usize, pred: impl Fn(&NodeEvent) -> bool) -> usize {
    sim.log
        .iter()
        .filter(|l| l.node == i && pred(&l.event))
        .count()
}

#[test]
fn two_nodes_reach_session_ok_in_marker_order() {
    let mut sim = NodeSim::new(&["node-a", "node-b"], WireConfig::default(), 1);
    assert!(
        sim.run_until(Duration::from_secs(20), all_ok),
        "log: {:#?}",
        sim.log
    );
    // node-a (lower id) connected; node-b accepted.
    assert!(sim.saw(
        0,
        |e| matches!(e, NodeEvent::SessionConnect(p) if p.as_str() == "node-b")
    ));
    assert!(!sim.saw(1, |e| matches!(e, NodeEvent::SessionConnect(_))));
    for i in 0..2 {
        // The dialler found its peer first; the acceptor needs no announce.
        let found = [sim.first_index(i, |e| matches!(e, NodeEvent::PeerFound(_)))];
        let order: Vec<Option<u64>> =
            [sim.first_index(i, |e| matches!(e, NodeEvent::DiscoveryUp { .. }))]
                .into_iter()
                .chain(found.into_iter().filter(|_| i == 0))
                .chain([
                    sim.first_index(i, |e| matches!(e, NodeEvent::TransportSelected { .. })),
                    sim.first_index(i, |e| matches!(e, NodeEvent::IdentityBound(_))),
                    sim.first_index(i, |e| matches!(e, NodeEvent::AuthOk(_))),
                    sim.first_test_index(i, |e| matches!(e, TestEvent::PingOk { .. })),
                    sim.first_test_index(i, |e| matches!(e, TestEvent::MuxDataOk { .. })),
                    sim.first_test_index(i, |e| matches!(e, TestEvent::SessionOk { .. })),
                ])
                .collect();
        let at: Vec<u64> = order.iter().map(|t| t.expect("event missing")).collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "node {i}: out of order {at:?}"
        );
    }
    // Exactly one session per pair.
    assert_eq!(count(&sim, 0, |e| matches!(e, NodeEvent::AuthOk(_))), 1);
    assert_eq!(count(&sim, 1, |e| matches!(e, NodeEvent::AuthOk(_))), 1);
}

#[test]
fn one_mib_through_the_mux_arrives_byte_exact() {
    let mut sim = NodeSim::with(&["node-a", "node-b"], WireConfig::default(), 2, |_, c| c);
    sim.set_selftest(|_, t| t.bulk_bytes = 1 << 20);
    assert!(
        sim.run_until(Duration::from_secs(60), all_ok),
        "log: {:#?}",
        sim.log
    );
    for i in 0..2 {
        // The client checks every echoed byte against the pattern and the hash.
        assert!(sim.saw_test(
            i,
            |e| matches!(e, TestEvent::MuxDataOk { bytes, .. } if *bytes == 1 << 20)
        ));
    }
}

#[test]
fn slow_reader_holds_the_writer_by_credit_with_bounded_memory() {
    let sink_bytes = 512 * 1024;
    let mut sim = NodeSim::with(&["node-a", "node-b"], WireConfig::default(), 3, |_, c| c);
    sim.set_selftest(|_, t| {
        t.sink_bytes = sink_bytes;
        t.sink_rate = 128 * 1024; // 4 s of reading
    });
    let window = NodeConfig::new(0).mux.recv_window as usize;
    assert!(
        sim.run_until(Duration::from_secs(60), all_ok),
        "log: {:#?}",
        sim.log
    );
    for i in 0..2 {
        let (bytes, blocked, peak, elapsed) = sim
            .tlog
            .iter()
            .find_map(|l| match l.event {
                TestEvent::BackpressureOk {
                    bytes,
                    blocked,
                    peak_buffered,
                    elapsed,
                    ..
                } if l.node == i => Some((bytes, blocked, peak_buffered, elapsed)),
                _ => None,
            })
            .expect("backpressure event");
        assert_eq!(bytes, sink_bytes);
        // Holds are counted only while the reader's credit was zero.
        assert!(
            blocked > 0,
            "node {i}: the writer was never held by the reader"
        );
        // The reader filled its channel window and never went beyond it.
        assert!(
            peak >= window / 2 && peak <= window,
            "node {i}: reader peak {peak}, window {window}"
        );
        // 512 KiB at 128 KiB/s, minus the window and the first burst: >= 3.25 s.
        assert!(
            elapsed >= Duration::from_millis(3250),
            "node {i}: {elapsed:?}"
        );
    }
}

#[test]
fn session_survives_two_percent_loss() {
    for seed in [4, 5, 6] {
        let wire = WireConfig {
            loss: 0.02,
            ..WireConfig::default()
        };
        let mut sim = NodeSim::with(&["node-a", "node-b"], wire, seed, |_, c| c);
        sim.set_selftest(|_, t| t.bulk_bytes = 256 * 1024);
        assert!(
            sim.run_until(Duration::from_secs(120), all_ok),
            "seed {seed}: {:#?}",
            sim.log
        );
        assert!(sim.wire.stats().lost > 0, "seed {seed}: nothing was lost");
    }
}

#[test]
fn peer_restart_leads_to_a_new_session_with_a_fresh_handshake() {
    let ids = ["node-a", "node-b"];
    let mut sim = NodeSim::new(&ids, WireConfig::default(), 7);
    assert!(sim.run_until(Duration::from_secs(20), all_ok));
    // node-b dies.
    sim.wire.set_down(2, true);
    sim.stopped[1] = true;
    assert!(
        sim.run_until(Duration::from_secs(20), |s| s
            .saw(0, |e| matches!(e, NodeEvent::SessionDown { .. }))),
        "node-a never noticed: {:#?}",
        sim.log
    );
    // node-b boots again (new epoch: its announces must be newer than the old ones).
    sim.wire.set_down(2, false);
    sim.stopped[1] = false;
    let mut cfg = NodeConfig::new(37022);
    cfg.boot_epoch = 1;
    sim.restart(1, "node-b", cfg);
    let before = count(&sim, 0, |e| matches!(e, NodeEvent::AuthOk(_)));
    assert!(
        sim.run_until(Duration::from_secs(30), |s| s
            .tlog
            .iter()
            .filter(|l| l.node == 0 && matches!(l.event, TestEvent::SessionOk { .. }))
            .count()
            >= 2),
        "no second session: {:#?}",
        sim.log
    );
    assert_eq!(
        count(&sim, 0, |e| matches!(e, NodeEvent::AuthOk(_))),
        before + 1
    );
}

/// A peer that reboots faster than the idle timeout: its new announces
/// (higher boot epoch) end the stale session at once, and the lower id
/// dials the new incarnation, instead of refusing it (`session-exists`)
/// until the old session idles out.
#[test]
fn a_quick_reboot_replaces_the_stale_session_at_once() {
    let ids = ["node-a", "node-b"];
    let mut sim = NodeSim::new(&ids, WireConfig::default(), 9);
    assert!(sim.run_until(Duration::from_secs(20), all_ok));
    let mut cfg = NodeConfig::new(37022);
    cfg.boot_epoch = 1;
    sim.restart(1, "node-b", cfg);
    let rebooted = sim.now;
    let up_again = |s: &NodeSim| {
        s.log.iter().any(|l| {
            l.node == 0 && l.at > rebooted && matches!(l.event, NodeEvent::SessionUp { .. })
        })
    };
    assert!(
        sim.run_until(Duration::from_secs(10), up_again),
        "{:#?}",
        sim.log
    );
    let down = sim
        .log
        .iter()
        .find(|l| {
            l.node == 0 && l.at > rebooted && matches!(l.event, NodeEvent::SessionDown { .. })
        })
        .expect("the stale session ended");
    assert!(
        matches!(
            down.event,
            NodeEvent::SessionDown {
                reason: DownReason::PeerRestarted,
                ..
            }
        ),
        "{:?}",
        down.event
    );
    let new_up = sim
        .log
        .iter()
        .find(|l| l.node == 0 && l.at > rebooted && matches!(l.event, NodeEvent::SessionUp { .. }))
        .unwrap();
    // Well inside the 6 s idle timeout that used to be the only way out.
    assert!(
        new_up.at - rebooted < Duration::from_secs(3),
        "{}",
        new_up.at - rebooted
    );
}

#[test]
fn spoofing_node_is_rejected_and_honest_nodes_still_pair() {
    let honest = ["node-a", "node-b"];
    let mut sim = NodeSim::with(&honest, WireConfig::default(), 8, |i, mut c| {
        c.pinned = pins(&honest, honest[i]);
        c
    });
    // A third station claims node-b's id with its own keys.
    let wire = dsb_tests::simwire::Wire::new(4, WireConfig::default(), 8);
    // Rebuild the sim on a 4-station wire so the spoofer shares the segment.
    sim.wire = wire.clone();
    sim.slirp =
        dsb_tests::slirp::SlirpStation::new(dsb_tests::slirp::Slirp::restrict_on(), wire.device(0));
    for (i, id) in honest.iter().enumerate() {
        let mut c = NodeConfig::new(37021 + i as u16);
        c.pinned = pins(&honest, id);
        sim.replace(
            i,
            dsb_tests::nodesim::make_node(id, i, wire.device(i + 1), c, sim.now),
        );
    }
    let spoof_id = Identity::from_secret_bytes("node-b", &[7; 32], &[9; 32]).unwrap();
    let mut sc = NodeConfig::new(37029);
    sc.dial = DialPolicy::Everyone;
    sim.push_node(make_node_with(spoof_id, 2, wire.device(3), sc, sim.now));

    let node_b = DeviceId::new("node-b").unwrap();
    let done = |s: &NodeSim| {
        session_ok(s, 0)
            && session_ok(s, 1)
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
    // node-a ignored the spoofer's announces as a key mismatch (node-b is
    // pinned), node-b as its own id.
    assert!(sim.saw(0, |e| matches!(
        e,
        NodeEvent::AnnounceIgnored(AnnounceError::KeyMismatch)
    )));
    assert!(sim.saw(1, |e| matches!(
        e,
        NodeEvent::AnnounceIgnored(AnnounceError::SelfAnnounce)
    )));
    for i in 0..2 {
        // Exactly one authenticated session each: with each other, never with the spoofer.
        assert_eq!(
            count(&sim, i, |e| matches!(e, NodeEvent::AuthOk(_))),
            1,
            "node {i}"
        );
    }
    // node-a rejected message 3 and reset the connection: the impostor never
    // got key confirmation, so it never reported a session at all.
    assert!(!sim.saw(2, |e| matches!(
        e,
        NodeEvent::AuthOk(_) | NodeEvent::IdentityBound(_) | NodeEvent::SessionUp { .. }
    )));
    assert!(!sim.saw_test(2, |e| matches!(e, TestEvent::PingOk { .. })));
    assert!(sim.saw(2, |e| matches!(
        e,
        NodeEvent::HandshakeFailed {
            error: TransportError::Refused,
            ..
        }
    )));
}
