//! Node-level benchmarks on the simulated wire (`make bench`):
//!
//! - `session_setup_ms`: simulated time from node-a first seeing node-b's
//!   announce to both nodes reporting `auth ok` (connect + XK + binding).
//! - `mux_tcp_goodput_mbps`: wall-clock goodput of the bulk echo through the
//!   real stack (mux → Noise → smoltcp TCP → wire → back), loss 0, counted
//!   as bytes echoed back byte-exact per second of CPU time; the figure to
//!   read beside `aead_chacha20poly1305_mbps`, since both are CPU-bound here.
//! - `mux_udpsec_goodput_mbps`: the same over udp-sec (mux → udp-sec packets
//!   under ChaCha20-Poly1305 → smoltcp UDP → wire → back).
//!
//! Each prints the median of several seeds.

use std::time::Instant as Wall;

use dsb_app::config::Transport;
use dsb_app::node::NodeEvent;
use dsb_tests::nodesim::NodeSim;
use dsb_tests::simwire::WireConfig;
use dsb_transports::transport::TransportKind;
use smoltcp::time::Duration;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn both_auth(sim: &NodeSim) -> bool {
    (0..2).all(|i| sim.saw(i, |e| matches!(e, NodeEvent::AuthOk(_))))
}

fn main() {
    let mut setup = Vec::new();
    for seed in 1..=5 {
        let mut sim = NodeSim::new(&["node-a", "node-b"], WireConfig::default(), seed);
        assert!(
            sim.run_until(Duration::from_secs(20), both_auth),
            "no session (seed {seed})"
        );
        let found = sim
            .first(0, |e| matches!(e, NodeEvent::PeerFound(_)))
            .expect("found");
        let auth = (0..2)
            .filter_map(|i| sim.first(i, |e| matches!(e, NodeEvent::AuthOk(_))))
            .max()
            .expect("auth");
        setup.push((auth - found).total_micros() as f64 / 1e3);
    }
    println!("BENCH session_setup_ms {:.2} ms", median(setup));

    let tcp = goodput(TransportKind::Tcp);
    println!("BENCH mux_tcp_goodput_mbps {tcp:.1} Mbit/s");
    let udpsec = goodput(TransportKind::UdpSec);
    println!("BENCH mux_udpsec_goodput_mbps {udpsec:.1} Mbit/s");
}

/// Median wall-clock goodput of an 8 MiB bulk echo over `kind`.
fn goodput(kind: TransportKind) -> f64 {
    let bytes: u64 = 8 << 20;
    let mut goodput = Vec::new();
    for seed in 1..=3 {
        let mut sim = NodeSim::with(
            &["node-a", "node-b"],
            WireConfig::default(),
            seed,
            |i, mut c| {
                // Only node-a runs the bulk client; node-b just echoes.
                let load = if i == 0 { bytes } else { 1 };
                c.bulk_bytes = load;
                c.udpsec_bulk_bytes = load;
                if kind == TransportKind::UdpSec {
                    c.transport = Transport::UdpSec;
                    c.udpsec_port = Some(37031 + i as u16);
                }
                c
            },
        );
        assert!(sim.run_until(Duration::from_secs(20), both_auth));
        let start = Wall::now();
        let done = |s: &NodeSim| {
            s.saw(
                0,
                |e| matches!(e, NodeEvent::MuxDataOk { bytes: b, kind: k, .. } if *b == bytes && *k == kind),
            )
        };
        assert!(
            sim.run_until(Duration::from_secs(600), done),
            "bulk did not finish"
        );
        let secs = start.elapsed().as_secs_f64();
        goodput.push(bytes as f64 * 8.0 / secs / 1e6);
    }
    median(goodput)
}
