//! Bulk transfer over lossy, duplicating, reordering links: the handshake
//! completes and every byte arrives exactly once, in order.

mod udpsec_support;

use dsb_tests::link::{LinkConfig, PathConfig};
use dsb_transports::udpsec::Config;
use smoltcp::time::{Duration, Instant};
use udpsec_support::*;

fn lossy(loss: f64) -> LinkConfig {
    LinkConfig::symmetric(PathConfig {
        delay: Duration::from_millis(5),
        bandwidth_bps: Some(100_000_000),
        queue_packets: 64,
        loss,
        duplicate: 0.02,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(3),
        ..PathConfig::default()
    })
}

fn run(loss: f64, seed: u64, len: usize) {
    let mut sim = pair(&Config::default(), lossy(loss), seed);
    let r = transfer(&mut sim, len, Instant::from_secs(600));
    let sa = sim.a.stats();
    assert!(
        r.completed,
        "seed {seed} loss {loss}: only {} of {len} bytes after {}; stats {sa:?}",
        r.bytes, r.elapsed
    );
    assert!(r.seen.a_connected() && r.seen.b_connected());
    assert!(sim.largest_datagram <= 1200);
    assert!(
        sa.packets_lost > 0,
        "loss was simulated, so some packets must be lost"
    );
    eprintln!(
        "loss {loss} seed {seed}: {} bytes in {} ({:.2} Mbit/s), lost {} rto {} cwnd {}",
        r.bytes,
        r.elapsed,
        r.mbit_per_s(),
        sa.packets_lost,
        sa.rto_count,
        sa.cwnd
    );
}

#[test]
fn four_mib_arrive_intact_at_5_percent_loss() {
    for seed in 0..8 {
        run(0.05, seed, 4 << 20);
    }
}

#[test]
fn four_mib_arrive_intact_at_10_percent_loss() {
    for seed in 100..108 {
        run(0.10, seed, 4 << 20);
    }
}
