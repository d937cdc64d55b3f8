//! One normative message limit per transport, met by full-size mux frames:
//! a whole DATA frame (8 + 16384 bytes) crosses TCP as one Noise transport
//! message of 16408 bytes, and udp-sec as stream bytes split over datagrams
//! of at most 1200 bytes.

use dsb_app::config::Transport as Mode;
use dsb_app::node::NodeConfig;
use dsb_app::selftest::TestEvent;
use dsb_noise::DeviceId;
use dsb_tests::nodesim::NodeSim;
use dsb_tests::simwire::WireConfig;
use dsb_transports::mux::MAX_FRAME_PAYLOAD;
use dsb_transports::tcp;
use smoltcp::time::Duration;

const IDS: [&str; 2] = ["node-a", "node-b"];

#[test]
fn the_tcp_message_limit_is_one_whole_mux_frame() {
    assert_eq!(tcp::MAX_PLAINTEXT, 8 + MAX_FRAME_PAYLOAD);
    assert_eq!(tcp::MAX_MESSAGE, tcp::MAX_PLAINTEXT + 16);
}

#[test]
fn full_size_mux_frames_cross_both_transports() {
    for mode in [Mode::Tcp, Mode::UdpSec] {
        let mut sim = NodeSim::with(&IDS, WireConfig::default(), 3, |i, mut c: NodeConfig| {
            c.transport = mode;
            c.udpsec_port = (mode == Mode::UdpSec).then_some(37031 + i as u16);
            c
        });
        sim.set_selftest(|_, t| {
            t.bulk_bytes = 512 * 1024;
            t.udpsec_bulk_bytes = 512 * 1024;
        });
        let ok = |s: &NodeSim| {
            (0..2).all(|i| s.saw_test(i, |e| matches!(e, TestEvent::SessionOk { .. })))
        };
        assert!(
            sim.run_until(Duration::from_secs(60), ok),
            "{mode:?}: {:#?}",
            sim.log
        );
        for i in 0..2 {
            let peer = DeviceId::new(IDS[1 - i]).unwrap();
            let stats = sim.nodes[i].session_stats(&peer).unwrap().mux;
            assert_eq!(
                stats.largest_frame_rx,
                8 + MAX_FRAME_PAYLOAD,
                "{mode:?} node {i}: no full-size frame arrived"
            );
        }
    }
}
