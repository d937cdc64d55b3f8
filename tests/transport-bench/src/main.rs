//! Transport comparison on the simulated benchmark link (issue 6): udp-sec +
//! mux, quinn-proto NewReno and Cubic, smoltcp TCP + mux, side by side; and
//! the bus services of `dsb-app` on udp-sec + mux (issue 11): a blob upload
//! (`blob_goodput_mbps_loss*`, same runs as udp-sec's, with
//! `blob_vs_udpsec_ratio_loss*`) and the RPC round trip (`rpc_roundtrip_ms`,
//! loss-free; `bus.rs`).
//!
//! Link: `PathConfig::benchmark(loss)` both ways (5 ms one way, 100 Mbit/s,
//! 64-datagram drop-tail queue, Bernoulli loss from a seeded RNG). Each run
//! moves 8 MiB one way; goodput is counted in simulated time from connect to
//! the last byte read by the receiving application; the printed figure is the
//! median over seeds. Progress goes to stderr, `BENCH` lines to stdout.
//!
//! `cargo run --release --manifest-path tests/transport-bench/Cargo.toml`
//! Knobs: `BENCH_SEEDS=n` (default 5), `BENCH_ONLY=substr[,substr]` (run only
//! matching benchmark names), `BENCH_OVERHEAD=n` (bytes charged per UDP
//! datagram on the link; default 28, IPv4 + UDP headers, so that every
//! transport pays its headers: TCP's datagrams are whole IP packets of at
//! most 1228 bytes, udp-sec's and QUIC's UDP payloads of at most 1200 plus
//! 28),
//! `BENCH_DELAY_MS=20` (one-way delay instead of 5 ms; diagnostics only),
//! `BENCH_UDPSEC_CC=reno` (udp-sec's Reno instead of its default CUBIC;
//! diagnostics only),
//! `BENCH_VERBOSE=1` (each run's recovery counters, time-averaged window and
//! the receiver's datagrams (ACKs), for udp-sec and quinn, to stderr).
//!
//! CPU per byte: every run also reads the thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`) before the connection is created and after the
//! last byte was read, and divides by the payload bytes. That covers both
//! endpoints, the handshake, the link model and the receiver's byte check,
//! the same work on every side. Printed per loss (`<cpu name>_loss<n>`) and
//! over all runs of a transport (`<cpu name>`: median of every seed at every
//! loss that ran). The transports take turns run by run (for each loss and
//! seed, every selected benchmark once), and `udpsec_vs_quic_cpu_ratio` is
//! the median over those pairs of udp-sec's CPU per byte divided by quinn
//! Cubic's: the comparison that stays put when the machine is noisy.

mod bus;
mod common;
/// The link model of `dsb-tests` (`tests/src/link.rs`), compiled in from
/// source so that this crate does not build `dsb-tests` (it builds only the
/// app's library, for the bus services of `bus.rs`).
#[path = "../../src/link.rs"]
#[allow(dead_code)]
mod link;
mod quic;
mod tcp_mux;
mod udpsec_mux;

use std::time::Instant as StdInstant;

/// Loss rates (each direction) and their name suffixes.
const LOSSES: [(f64, &str); 4] = [(0.0, "0"), (0.01, "1"), (0.05, "5"), (0.10, "10")];
/// First seed; run `i` uses `SEED_BASE + i`.
const SEED_BASE: u64 = 1000;
/// `rpc_roundtrip_ms`: body bytes, unmeasured first calls, measured calls.
const RPC_BODY: usize = 64;
const RPC_WARMUP: usize = 5;
const RPC_CALLS: usize = 100;

/// udp-sec's figure names. Built as `dsb` builds it (feature `ring`, the
/// default) they are the plain ones; built with `--no-default-features`,
/// i.e. with the image's RustCrypto AEAD, they say `portable`, so both can
/// be printed by one `make bench` without two lines of the same name.
#[cfg(feature = "ring")]
const UDPSEC_GOODPUT: &str = "udpsec_goodput_mbps";
#[cfg(feature = "ring")]
const UDPSEC_CPU: &str = "udpsec_cpu_ns_per_byte";
#[cfg(feature = "ring")]
const UDPSEC_VS_QUIC_CPU: &str = "udpsec_vs_quic_cpu_ratio";
#[cfg(not(feature = "ring"))]
const UDPSEC_GOODPUT: &str = "udpsec_portable_goodput_mbps";
#[cfg(not(feature = "ring"))]
const UDPSEC_CPU: &str = "udpsec_portable_cpu_ns_per_byte";
#[cfg(not(feature = "ring"))]
const UDPSEC_VS_QUIC_CPU: &str = "udpsec_portable_vs_quic_cpu_ratio";

struct Bench {
    name: &'static str,
    /// Name of the CPU-per-byte figure.
    cpu: &'static str,
    run: fn(f64, u64) -> common::Run,
}

fn benches() -> Vec<Bench> {
    vec![
        Bench {
            name: UDPSEC_GOODPUT,
            cpu: UDPSEC_CPU,
            run: udpsec_mux::goodput,
        },
        Bench {
            // The same connection, seeds and losses as udp-sec: comparable.
            name: "blob_goodput_mbps",
            cpu: "blob_cpu_ns_per_byte",
            run: bus::blob_goodput,
        },
        Bench {
            name: "quic_newreno_goodput_mbps",
            cpu: "quic_newreno_cpu_ns_per_byte",
            run: |l, s| quic::goodput(quic::Cc::NewReno, l, s),
        },
        Bench {
            name: "quic_cubic_goodput_mbps",
            // quinn's default controller: the reference for CPU per byte.
            cpu: "quic_cpu_ns_per_byte",
            run: |l, s| quic::goodput(quic::Cc::Cubic, l, s),
        },
        Bench {
            name: "mux_tcp_goodput_mbps",
            cpu: "mux_tcp_cpu_ns_per_byte",
            run: tcp_mux::goodput,
        },
    ]
}

fn main() {
    let seeds: u64 = std::env::var("BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("BENCH_ONLY").ok();
    let selected = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| name.contains(p)))
    };
    let start = StdInstant::now();
    let benches = benches();
    // Every selected (bench, loss) runs seed by seed, and for each loss and
    // seed every bench runs once before the next seed: the transports take
    // turns, so a burst of noise on this shared machine (CPU time stolen by
    // the hypervisor counts as this thread's) falls on all of them alike.
    // runs[bench][loss] = that cell's runs, in seed order.
    let mut runs: Vec<Vec<Vec<common::Run>>> = vec![vec![Vec::new(); LOSSES.len()]; benches.len()];
    let n = seeds.max(1);
    for (li, (loss, suffix)) in LOSSES.iter().enumerate() {
        for i in 0..n {
            for (bi, b) in benches.iter().enumerate() {
                let name = format!("{}_loss{suffix}", b.name);
                if !selected(&name) {
                    continue;
                }
                let t = StdInstant::now();
                let r = (b.run)(*loss, SEED_BASE + i);
                eprintln!(
                    "  {name} seed {}: {:.3} Mbit/s, {:.2} ns/B CPU ({:.1} s)",
                    SEED_BASE + i,
                    r.mbps,
                    r.cpu_ns_per_byte,
                    t.elapsed().as_secs_f64()
                );
                runs[bi][li].push(r);
            }
        }
    }
    // Median goodput by figure name, for the ratios.
    let mut medians = std::collections::HashMap::new();
    for (b, cells) in benches.iter().zip(&runs) {
        let mut all_cpu = Vec::new();
        for ((_, suffix), cell) in LOSSES.iter().zip(cells) {
            if cell.is_empty() {
                continue;
            }
            let name = format!("{}_loss{suffix}", b.name);
            let cpu: Vec<f64> = cell.iter().map(|r| r.cpu_ns_per_byte).collect();
            all_cpu.extend_from_slice(&cpu);
            let m = common::median(cell.iter().map(|r| r.mbps).collect());
            // Three significant digits for the slow cases (0.065, not 0.07).
            let prec = if m < 1.0 { 3 } else { 2 };
            eprintln!("{name}: median of {} = {m:.prec$} Mbit/s", cell.len());
            println!("BENCH {name} {m:.prec$} Mbit/s");
            medians.insert(name, m);
            let c = common::median(cpu);
            println!("BENCH {}_loss{suffix} {c:.2} ns/B", b.cpu);
        }
        if !all_cpu.is_empty() {
            let c = common::median(all_cpu);
            println!("BENCH {} {c:.2} ns/B", b.cpu);
        }
    }
    // udp-sec's CPU per byte over quinn Cubic's, paired run by run (same
    // loss, same seed, run back to back): the figure that survives noise.
    let pos = |cpu: &str| benches.iter().position(|b| b.cpu == cpu);
    if let (Some(u), Some(q)) = (pos(UDPSEC_CPU), pos("quic_cpu_ns_per_byte")) {
        let ratios: Vec<f64> = runs[u]
            .iter()
            .zip(&runs[q])
            .flat_map(|(a, b)| a.iter().zip(b))
            .map(|(a, b)| a.cpu_ns_per_byte / b.cpu_ns_per_byte)
            .collect();
        if !ratios.is_empty() {
            let m = common::median(ratios);
            println!("BENCH {UDPSEC_VS_QUIC_CPU} {m:.2} x");
        }
    }
    for (_, suffix) in LOSSES {
        let get = |b: &str| medians.get(&format!("{b}_goodput_mbps_loss{suffix}"));
        if let (Some(blob), Some(udpsec)) = (get("blob"), get("udpsec")) {
            println!(
                "BENCH blob_vs_udpsec_ratio_loss{suffix} {:.2} x",
                blob / udpsec
            );
        }
    }
    if selected("rpc_roundtrip_ms") {
        let t0 = StdInstant::now();
        // Loss-free and deterministic: one seed, the median of its calls.
        let rtts = bus::rpc_roundtrip(SEED_BASE, RPC_BODY, RPC_WARMUP, RPC_CALLS);
        let m = common::median(rtts.clone());
        let (lo, hi) = rtts
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        eprintln!(
            "rpc_roundtrip_ms: median of {RPC_CALLS} calls = {m:.3} ms (min {lo:.3}, max {hi:.3}; {:.1} s)",
            t0.elapsed().as_secs_f64()
        );
        println!("BENCH rpc_roundtrip_ms {m:.2} ms");
    }
    eprintln!("total {:.1} s", start.elapsed().as_secs_f64());
}
