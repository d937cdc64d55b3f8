//! Node-level benchmarks on the simulated wire (`make bench`):
//!
//! - `session_setup_wire_ms`: *simulated* time from node-a first seeing
//!   node-b's announce to both nodes reporting `auth ok` over TCP. It counts
//!   only the network: the wire model charges no time for computation, so it
//!   is the round trips of connect + XK + key confirmation (3 RTT on TCP)
//!   times the wire delay, the same for every seed.
//! - `session_setup_cpu_us`: the CPU time (this thread's clock) both nodes
//!   spent in that same interval: handshake crypto, binding, socket work.
//!   Added to the wire time it gives the setup time on a real link.
//! - `mux_tcp_goodput_mbps`, `mux_udpsec_goodput_mbps`: the bulk echo
//!   through the whole stack (mux → Noise or udp-sec → smoltcp → wire →
//!   back), loss 0, as bytes echoed back byte-exact per second of CPU time
//!   (this thread's clock: the simulation is single-threaded).
//!
//! Each prints the median of several seeds.

use dsb_app::config::Transport;
use dsb_app::node::NodeEvent;
use dsb_app::selftest::TestEvent;
use dsb_tests::cputime::thread_cpu;
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

fn found(sim: &NodeSim) -> bool {
    sim.saw(0, |e| matches!(e, NodeEvent::PeerFound(_)))
}

fn main() {
    let (mut wire, mut cpu) = (Vec::new(), Vec::new());
    for seed in 1..=9 {
        let mut sim = NodeSim::with(
            &["node-a", "node-b"],
            WireConfig::default(),
            seed,
            |_, mut c| {
                c.transport = Transport::Tcp;
                c
            },
        );
        assert!(sim.run_until(Duration::from_secs(20), found), "seed {seed}");
        let start = thread_cpu();
        assert!(
            sim.run_until(Duration::from_secs(20), both_auth),
            "no session (seed {seed})"
        );
        cpu.push(thread_cpu().saturating_sub(start).as_secs_f64() * 1e6);
        let found_at = sim
            .first(0, |e| matches!(e, NodeEvent::PeerFound(_)))
            .expect("found");
        let auth = (0..2)
            .filter_map(|i| sim.first(i, |e| matches!(e, NodeEvent::AuthOk(_))))
            .max()
            .expect("auth");
        wire.push((auth - found_at).total_micros() as f64 / 1e3);
    }
    println!("BENCH session_setup_wire_ms {:.2} ms", median(wire));
    println!("BENCH session_setup_cpu_us {:.0} us", median(cpu));

    let tcp = goodput(TransportKind::Tcp);
    println!("BENCH mux_tcp_goodput_mbps {tcp:.1} Mbit/s");
    let udpsec = goodput(TransportKind::UdpSec);
    println!("BENCH mux_udpsec_goodput_mbps {udpsec:.1} Mbit/s");
}

/// Median goodput of an 8 MiB bulk echo over `kind`, per second of CPU time.
fn goodput(kind: TransportKind) -> f64 {
    let bytes: u64 = 8 << 20;
    let mut goodput = Vec::new();
    for seed in 1..=3 {
        let mut sim = NodeSim::with(
            &["node-a", "node-b"],
            WireConfig::default(),
            seed,
            |i, mut c| {
                if kind == TransportKind::UdpSec {
                    c.transport = Transport::UdpSec;
                    c.udpsec_port = Some(37031 + i as u16);
                }
                c
            },
        );
        sim.set_selftest(|i, t| {
            // Only node-a runs the bulk client; node-b just echoes.
            let load = if i == 0 { bytes } else { 1 };
            t.bulk_bytes = load;
            t.udpsec_bulk_bytes = load;
        });
        assert!(sim.run_until(Duration::from_secs(20), both_auth));
        let start = thread_cpu();
        let done = |s: &NodeSim| {
            s.saw_test(
                0,
                |e| matches!(e, TestEvent::MuxDataOk { bytes: b, kind: k, .. } if *b == bytes && *k == kind),
            )
        };
        assert!(
            sim.run_until(Duration::from_secs(600), done),
            "bulk did not finish"
        );
        let secs = thread_cpu().saturating_sub(start).as_secs_f64();
        goodput.push(bytes as f64 * 8.0 / secs / 1e6);
    }
    median(goodput)
}
