//! `boot-bench`: boots the image several times and prints the median of each
//! boot milestone, measured from QEMU spawn, as `BENCH` lines. Used by
//! `make bench`.

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

    let mut first = Vec::new();
    let mut dhcp = Vec::new();
    let mut exit = Vec::new();
    for i in 0..runs {
        let mut cfg = qemu::QemuConfig::new(1, "nodes=1");
        cfg.timeout = Duration::from_secs(60);
        boot.apply(&mut cfg);
        let run = match qemu::boot(&cfg, &mut |_| {}, &mut |n| eprintln!("{n}")) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("boot-bench: {e}");
                return ExitCode::FAILURE;
            }
        };
        if !run.verdict.is_pass() {
            eprintln!("boot-bench: run {i}: {}; not counted", run.verdict);
            continue;
        }
        eprintln!(
            "boot-bench: run {}/{runs} ({} {})",
            i + 1,
            run.accel,
            run.firmware
        );
        if let Some(t) = run.lines.first().map(|l| l.at) {
            first.push(t);
        }
        if let Some(t) = run.time_of(|l| l.starts_with("net: dhcp bound ")) {
            dhcp.push(t);
        }
        exit.push(run.elapsed);
    }
    // Two nodes: QEMU spawn -> both nodes printed `dual-node session ok`.
    let mut dual = Vec::new();
    for i in 0..runs {
        let mut cfg = qemu::QemuConfig::new(2, "nodes=2 transport=tcp");
        cfg.timeout = Duration::from_secs(90);
        boot.apply(&mut cfg);
        let run = match qemu::boot(&cfg, &mut |_| {}, &mut |n| eprintln!("{n}")) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("boot-bench: {e}");
                return ExitCode::FAILURE;
            }
        };
        let a = run.time_of(|l| l == "[node-a] dsoftbusd: dual-node session ok");
        let b = run.time_of(|l| l == "[node-b] dsoftbusd: dual-node session ok");
        match (run.verdict.is_pass(), a, b) {
            (true, Some(a), Some(b)) => {
                eprintln!("boot-bench: dual run {}/{runs}", i + 1);
                dual.push(a.max(b));
            }
            _ => eprintln!("boot-bench: dual run {i}: {}; not counted", run.verdict),
        }
    }

    let mut ok = true;
    for (name, v) in [
        ("boot_to_first_line_ms", first),
        ("boot_to_dhcp_ms", dhcp),
        ("boot_to_exit_ms", exit),
        ("boot_to_dual_session_ms", dual),
    ] {
        match median(v) {
            Some(d) => println!("BENCH {name}{suffix} {:.1} ms", d.as_secs_f64() * 1e3),
            None => {
                eprintln!("boot-bench: no successful run measured {name}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
