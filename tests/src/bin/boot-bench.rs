//! `boot-bench`: boots the image several times and prints the median of each
//! boot milestone, measured from QEMU spawn, as `BENCH` lines. Used by
//! `make bench`.
//!
//! Both transports are timed at the same two events: both nodes
//! authenticated (`dsoftbusd: auth ok` on each), and both nodes' first
//! round trip over the session (`SELFTEST: dsoftbus ping ok` on each). A run
//! the guest failed is counted and fails the figures of its set: no median
//! is ever taken over the survivors.

use dsb_tests::{cli, qemu};
use std::process::ExitCode;
use std::time::Duration;

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    Some(v[v.len() / 2])
}

/// The runs of one configuration: all of them, and how many the guest passed.
struct Set {
    runs: Vec<qemu::Run>,
    failed: usize,
}

/// Boots `nodes` node(s) `runs` times.
fn boots(boot: &cli::BootOpts, nodes: u8, append: &str, runs: usize) -> Result<Set, String> {
    let mut set = Set {
        runs: Vec::new(),
        failed: 0,
    };
    for i in 0..runs {
        let mut cfg = qemu::QemuConfig::new(nodes, append);
        cfg.timeout = Duration::from_secs(90);
        boot.apply(&mut cfg);
        let run = qemu::boot(&cfg, &mut |_| {}, &mut |n| eprintln!("{n}"))?;
        eprintln!(
            "boot-bench: {append}: run {}/{runs}: {} ({} {})",
            i + 1,
            run.verdict,
            run.accel,
            run.firmware
        );
        if !run.verdict.is_pass() {
            set.failed += 1;
        }
        set.runs.push(run);
    }
    eprintln!(
        "boot-bench: {append}: {}/{runs} runs passed",
        runs - set.failed
    );
    Ok(set)
}

fn main() -> ExitCode {
    let mut boot = cli::BootOpts::default();
    let mut runs: usize = 5;
    let mut suffix = String::new();
    let parsed = cli::parse(std::env::args().skip(1), |flag, value| {
        if boot.take(flag, value)? {
            return Ok(true);
        }
        match flag {
            "--runs" => {
                let v = value()?;
                runs = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=50).contains(n))
                    .ok_or_else(|| format!("--runs: expected 1..=50, got {v:?}"))?;
            }
            "--suffix" => suffix = value()?,
            _ => return Ok(false),
        }
        Ok(true)
    });
    if let Err(e) = parsed {
        eprintln!("boot-bench: {e}\nusage: boot-bench [--runs N] [--suffix _kvm] [--accel A] [--firmware F] [--kernel PATH]");
        return ExitCode::from(2);
    }

    let runs_of =
        |nodes, append| boots(&boot, nodes, append, runs).map_err(|e| eprintln!("boot-bench: {e}"));
    let Ok(single) = runs_of(1, "nodes=1") else {
        return ExitCode::FAILURE;
    };
    let Ok(tcp) = runs_of(2, "nodes=2 transport=tcp") else {
        return ExitCode::FAILURE;
    };
    let Ok(udpsec) = runs_of(2, "nodes=2 transport=udp-sec") else {
        return ExitCode::FAILURE;
    };
    let first = |set: &Set| -> Vec<Duration> {
        set.runs
            .iter()
            .filter_map(|r| r.lines.first().map(|l| l.at))
            .collect()
    };
    let dhcp = |set: &Set| -> Vec<Duration> {
        set.runs
            .iter()
            .filter_map(|r| r.time_of(|l| l.starts_with("net: dhcp bound ")))
            .collect()
    };
    let exit = |set: &Set| -> Vec<Duration> { set.runs.iter().map(|r| r.elapsed).collect() };
    // QEMU spawn -> both nodes printed `marker`.
    let both = |set: &Set, marker: &str| -> Vec<Duration> {
        let (a, b) = (format!("[node-a] {marker}"), format!("[node-b] {marker}"));
        set.runs
            .iter()
            .filter_map(|r| Some(r.time_of(|l| l == a)?.max(r.time_of(|l| l == b)?)))
            .collect()
    };
    let auth = "dsoftbusd: auth ok";
    let rtt = "SELFTEST: dsoftbus ping ok";

    let mut ok = true;
    for (name, set, v) in [
        ("boot_to_first_line_ms", &single, first(&single)),
        ("boot_to_dhcp_ms", &single, dhcp(&single)),
        ("boot_to_exit_ms", &single, exit(&single)),
        ("boot_to_dual_session_ms", &tcp, both(&tcp, auth)),
        ("boot_to_udpsec_session_ms", &udpsec, both(&udpsec, auth)),
        ("boot_to_tcp_first_rtt_ms", &tcp, both(&tcp, rtt)),
        ("boot_to_udpsec_first_rtt_ms", &udpsec, both(&udpsec, rtt)),
    ] {
        if set.failed > 0 || v.len() < set.runs.len() {
            eprintln!(
                "boot-bench: {name}: {} run(s) failed, {} of {} showed the event; no figure",
                set.failed,
                v.len(),
                set.runs.len()
            );
            ok = false;
            continue;
        }
        match median(v) {
            Some(d) => println!("BENCH {name}{suffix} {:.1} ms", d.as_secs_f64() * 1e3),
            None => {
                eprintln!("boot-bench: no run measured {name}");
                ok = false;
            }
        }
    }
    let failed = single.failed + tcp.failed + udpsec.failed;
    eprintln!("boot-bench: {failed} of {} boots failed", 3 * runs);
    println!("BENCH boot_runs_failed{suffix} {failed} runs");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
