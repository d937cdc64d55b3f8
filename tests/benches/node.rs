//! Node-level benchmarks on the simulated wire (`make bench`):
//!
//! - `session_setup_ms`: simulated time from node-a first seeing node-b's
//!   announce to both nodes reporting `auth ok` (connect + XK + binding).
//! - `mux_tcp_goodput_mbps`: wall-clock goodput of the bulk echo through the
//!   real stack (mux → Noise → smoltcp TCP → wire → back), loss 0, counted
//!   as bytes echoed back byte-exact per second of CPU time; the figure to
//!   read beside `aead_chacha20poly1305_mbps`, since both are CPU-bound here.
//!
//! Each prints the median of several seeds.

use std::time::Instant as Wall;

use dsb_app::node::NodeEvent;
use dsb_tests::nodesim::NodeSim;
use dsb_tests::simwire::WireConfig;
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

    let bytes: u64 = 8 << 20;
    let mut goodput = Vec::new();
    for seed in 1..=3 {
        let mut sim = NodeSim::with(
            &["node-a", "node-b"],
            WireConfig::default(),
            seed,
            |i, mut c| {
                // Only node-a runs the bulk client; node-b just echoes.
                c.bulk_bytes = if i == 0 { bytes } else { 1 };
                c
            },
        );
        assert!(sim.run_until(Duration::from_secs(20), both_auth));
        let start = Wall::now();
        let done = |s: &NodeSim| {
            s.saw(
                0,
                |e| matches!(e, NodeEvent::MuxDataOk { bytes: b, .. } if *b == bytes),
            )
        };
        assert!(
            sim.run_until(Duration::from_secs(600), done),
            "bulk did not finish"
        );
        let secs = start.elapsed().as_secs_f64();
        goodput.push(bytes as f64 * 8.0 / secs / 1e6);
    }
    println!("BENCH mux_tcp_goodput_mbps {:.1} Mbit/s", median(goodput));
}
