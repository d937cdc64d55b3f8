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

/// Boots `nodes` node(s) `runs` times; returns the runs the guest passed.
fn boots(
    boot: &cli::BootOpts,
    nodes: u8,
    append: &str,
    runs: usize,
) -> Result<Vec<qemu::Run>, String> {
    let mut ok = Vec::new();
    for i in 0..runs {
        let mut cfg = qemu::QemuConfig::new(nodes, append);
        cfg.timeout = Duration::from_secs(90);
        boot.apply(&mut cfg);
        let run = qemu::boot(&cfg, &mut |_| {}, &mut |n| eprintln!("{n}"))?;
        if run.verdict.is_pass() {
            eprintln!(
                "boot-bench: {nodes} node(s), run {}/{runs} ({} {})",
                i + 1,
                run.accel,
                run.firmware
            );
            ok.push(run);
        } else {
            eprintln!(
                "boot-bench: {nodes} node(s), run {}: {}; not counted",
                i + 1,
                run.verdict
            );
        }
    }
    Ok(ok)
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
    let Ok(dual) = runs_of(2, "nodes=2 transport=tcp") else {
        return ExitCode::FAILURE;
    };
    let Ok(dual_udpsec) = runs_of(2, "nodes=2 transport=udp-sec") else {
        return ExitCode::FAILURE;
    };
    let first = single
        .iter()
        .filter_map(|r| r.lines.first().map(|l| l.at))
        .collect();
    let dhcp = single
        .iter()
        .filter_map(|r| r.time_of(|l| l.starts_with("net: dhcp bound ")))
        .collect();
    let exit = single.iter().map(|r| r.elapsed).collect();
    // QEMU spawn -> both nodes printed `marker`.
    let both = |runs: &[qemu::Run], marker: &str| -> Vec<Duration> {
        let (a, b) = (format!("[node-a] {marker}"), format!("[node-b] {marker}"));
        runs.iter()
            .filter_map(|r| Some(r.time_of(|l| l == a)?.max(r.time_of(|l| l == b)?)))
            .collect()
    };
    // Over TCP the session marker is `dual-node session ok`; over udp-sec
    // that one waits for the bulk and backpressure self-tests, so the
    // authenticated-session marker is used instead.
    let dual = both(&dual, "dsoftbusd: dual-node session ok");
    let dual_udpsec = both(&dual_udpsec, "dsoftbus: udp-sec os session ok");

    let mut ok = true;
    for (name, v) in [
        ("boot_to_first_line_ms", first),
        ("boot_to_dhcp_ms", dhcp),
        ("boot_to_exit_ms", exit),
        ("boot_to_dual_session_ms", dual),
        ("boot_to_udpsec_session_ms", dual_udpsec),
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
