//! Goodput on the benchmark link (5 ms one way, 100 Mbit/s, 64-datagram
//! drop-tail queue each way, Bernoulli loss both ways), 8 MiB, counted in
//! simulated time from connect to the last byte read. Reference: quinn-proto
//! NewReno measured 86.6 / 10.8 / 3.4 / 1.75 Mbit/s at 0 / 1 / 5 / 10 % loss
//! on this link; we require at least 0.95× of that (median over seeds).
//!
//! `cargo test --release -p dsb-tests --test udpsec_goodput -- --nocapture`

mod udpsec_support;

use dsb_tests::link::{LinkConfig, PathConfig};
use dsb_transports::udpsec::Config;
use smoltcp::time::Instant;
use udpsec_support::*;

const LEN: usize = 8 << 20;
/// Seeds per loss rate (override with `UDPSEC_SEEDS`).
fn seeds() -> u64 {
    std::env::var("UDPSEC_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11)
}

/// Loss rates to run (override with `UDPSEC_LOSS`, e.g. `0.01,0.05`).
fn only(loss: f64) -> bool {
    match std::env::var("UDPSEC_LOSS") {
        Ok(v) => v.split(',').any(|x| x.parse::<f64>().ok() == Some(loss)),
        Err(_) => true,
    }
}

fn goodput(loss: f64, seed: u64) -> f64 {
    let path = PathConfig {
        // Bytes below UDP counted by the serializer (e.g. 28 for IPv4 + UDP).
        overhead_bytes: std::env::var("UDPSEC_OVERHEAD")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        ..PathConfig::benchmark(loss)
    };
    let mut sim = pair(&Config::default(), LinkConfig::symmetric(path), seed);
    let r = transfer(&mut sim, LEN, Instant::from_secs(600));
    assert!(r.completed, "loss {loss} seed {seed}: transfer incomplete");
    let s = sim.a.stats();
    eprintln!(
        "  loss {:>4.1}% seed {seed}: {:6.2} Mbit/s  ({} lost, {} rto, {} cong events, srtt {}, cwnd {})",
        loss * 100.0,
        r.mbit_per_s(),
        s.packets_lost,
        s.rto_count,
        s.congestion_events,
        s.srtt,
        s.cwnd
    );
    r.mbit_per_s()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
fn goodput_on_the_benchmark_link_matches_quinn_newreno() {
    let reference = [(0.0, 86.6), (0.01, 10.8), (0.05, 3.4), (0.10, 1.75)];
    let mut failures = vec![];
    for (loss, quinn) in reference {
        if !only(loss) {
            continue;
        }
        let m = median((0..seeds()).map(|s| goodput(loss, 1000 + s)).collect());
        let ratio = m / quinn;
        eprintln!(
            "BENCH udpsec_goodput_loss_{} {m:.2} Mbit/s (quinn {quinn}, ratio {ratio:.2})",
            (loss * 100.0) as u32
        );
        if ratio < 0.95 {
            failures.push((loss, m, quinn));
        }
    }
    assert!(failures.is_empty(), "below 0.95 x quinn: {failures:?}");
}
