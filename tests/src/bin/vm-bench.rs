//! `vm-bench`: the cross-VM figures of `make bench`, each from real runs of
//! the `make run VMS=N` harness (serving nodes, own identities, our switch):
//!
//! - `vm_idle_cpu_pct`: QEMU CPU time of an idle serving VM over 10 s (two
//!   VMs with their session up, then nothing to do), in percent of one host
//!   core; the larger of the two VMs.
//! - `mesh4_ms`, `mesh8_ms`: from the first QEMU spawn to the last pair
//!   authenticated (the last `session up` of the full mesh), VMS=4 and VMS=8.
//!   Includes the image's 1 s wait for a DHCP server before its static
//!   address (the segment has none).
//! - `vm_udpsec_bulk_mbps`: 4 MiB through a peer's echo over udp-sec on a
//!   clean switch (each byte crosses the switch twice), bytes × 8 / the
//!   echo's time, as the image measures it; the lower of the two directions.
//!
//! Each figure is the median of `--runs` runs (default 3; `mesh8` and the
//! idle figure once each). A run that fails voids its figure.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use dsb_tests::cli;
use dsb_tests::vms::{self, Outcome, VmsConfig};

const USAGE: &str =
    "usage: vm-bench [--runs N] [--accel A] [--firmware F] [--kernel PATH] [--timeout SECS]";
const BULK: u64 = 4 << 20;

static STOP: AtomicBool = AtomicBool::new(false);

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

fn run(base: &VmsConfig, vms: usize, tweak: impl Fn(&mut VmsConfig)) -> Option<Outcome> {
    let mut cfg = base.clone();
    cfg.vms = vms;
    tweak(&mut cfg);
    match vms::run(&cfg, &STOP, &mut |_| {}) {
        Ok(o) if o.passed() => Some(o),
        Ok(o) => {
            for v in o.vms.iter().filter(|v| !v.passed()) {
                eprintln!("vm-bench: {}", v.summary());
            }
            None
        }
        Err(e) => {
            eprintln!("vm-bench: {e}");
            None
        }
    }
}

/// The echo's Mbit/s of every VM of `o` (from its `echo ok` line).
fn echo_mbps(o: &Outcome) -> Option<f64> {
    o.vms
        .iter()
        .map(|v| {
            let run = v.run.as_ref().ok()?;
            let line = run
                .lines
                .iter()
                .find(|l| l.text.starts_with("dsoftbusd: echo ok "))?;
            let ms: f64 = line.text.rsplit("ms=").next()?.trim().parse().ok()?;
            (ms > 0.0).then(|| BULK as f64 * 8.0 / (ms / 1e3) / 1e6)
        })
        .collect::<Option<Vec<f64>>>()?
        .into_iter()
        .reduce(f64::min)
}

fn main() -> ExitCode {
    let mut boot = cli::BootOpts::default();
    let mut runs = 3usize;
    let parsed = cli::parse(std::env::args().skip(1), |flag, value| match flag {
        "--runs" => {
            runs = value()?
                .parse()
                .ok()
                .filter(|n| (1..=20).contains(n))
                .ok_or("--runs: expected 1..=20")?;
            Ok(true)
        }
        _ => boot.take(flag, value),
    });
    if let Err(e) = parsed {
        eprintln!("vm-bench: {e}\n{USAGE}");
        return ExitCode::from(2);
    }
    let mut base = VmsConfig::new(2);
    base.kernel = boot.kernel;
    base.accel = boot.accel;
    base.firmware = boot.firmware;
    base.timeout = boot.timeout.unwrap_or(Duration::from_secs(150));
    base.out_dir = dsb_tests::qemu::workspace_root().join("out/vm-bench");
    let mut failed = 0;

    // Idle: two VMs up, then 10 s of nothing.
    match run(&base, 2, |c| c.idle_cpu = Some(Duration::from_secs(10))) {
        Some(o) => {
            let worst = o.vms.iter().filter_map(|v| v.idle_cpu_pct).reduce(f64::max);
            match worst {
                Some(p) => println!("BENCH vm_idle_cpu_pct {p:.2} %"),
                None => eprintln!("vm-bench: no idle CPU sample (/proc unreadable?)"),
            }
        }
        None => failed += 1,
    }

    for (vms, name, n) in [(4, "mesh4_ms", runs), (8, "mesh8_ms", 1)] {
        let mut times = Vec::new();
        for i in 0..n {
            match run(&base, vms, |_| {}).and_then(|o| o.sessions_at()) {
                Some(t) => {
                    eprintln!(
                        "vm-bench: {name} run {}: {:.0} ms",
                        i + 1,
                        t.as_secs_f64() * 1e3
                    );
                    times.push(t.as_secs_f64() * 1e3);
                }
                None => failed += 1,
            }
        }
        if times.len() == n {
            if let Some(m) = median(times) {
                println!("BENCH {name} {m:.0} ms");
            }
        }
    }

    let mut mbps = Vec::new();
    for i in 0..runs {
        let o = run(&base, 2, |c| {
            c.append = "transport=udp-sec".into();
            c.echo_bytes = BULK;
        });
        match o.as_ref().and_then(echo_mbps) {
            Some(m) => {
                eprintln!("vm-bench: vm_udpsec_bulk run {}: {m:.2} Mbit/s", i + 1);
                mbps.push(m);
            }
            None => failed += 1,
        }
    }
    if mbps.len() == runs {
        if let Some(m) = median(mbps) {
            println!("BENCH vm_udpsec_bulk_mbps {m:.2} Mbit/s");
        }
    }
    println!("BENCH vm_runs_failed {failed} runs");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
