//! `vms`: `make run VMS=N`. Starts the segment switch, N QEMU processes (one
//! serving node each, with its own identity) and, with `--dhcp slirp`, a
//! slirp DHCP bridge; prints every console line as `[vmK] ...`, keeps per-VM
//! logs in `out/vms/`, stops the VMs once every one reached its goal (the
//! full mesh, see `dsb_tests::vms`), prints one summary line per VM and the
//! switch counters, and exits 0 only if every VM reached its goal. Ctrl-C /
//! SIGTERM stop every QEMU.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dsb_tests::cli;
use dsb_tests::switch::faults;
use dsb_tests::vms::{self, DhcpMode, VmsConfig};

const USAGE: &str = "usage: vms --vms N [--scenario mesh|spoof] [--echo-bytes N] [--stay] [--workstation] \
[--append CMDLINE] [--vm-append TEMPLATE] [--dhcp none|slirp] [--loss PCT] [--dup PCT] [--reorder PCT] [--delay MS] [--rate MBIT] \
[--seed N] [--pcap FILE] [--out DIR] [--spare-ports N] [--idle-cpu SECS] [--expect LINE]... \
[--accel tcg|kvm|auto] [--firmware auto|qboot|seabios] [--timeout SECS] [--kernel PATH]\n\
  TEMPLATE placeholders: {k} (1..N) {id} (node-{k}) {mac} {ip} (static fallback address)";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn parse_count(flag: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{flag}: expected a whole number in {min}..={max}, got {v:?}"))
}

fn parse_args() -> Result<VmsConfig, String> {
    let mut cfg = VmsConfig::new(0);
    let mut boot = cli::BootOpts::default();
    let mut vms_given = false;
    cli::parse(std::env::args().skip(1), |flag, value| {
        let f = &mut cfg.faults;
        match flag {
            "--vms" => {
                cfg.vms = parse_count(flag, &value()?, vms::MIN_VMS as u64, vms::MAX_VMS as u64)?
                    as usize;
                vms_given = true;
            }
            "--append" => cfg.append = value()?,
            "--scenario" => cfg.scenario = vms::VmScenario::parse(&value()?)?,
            "--echo-bytes" => cfg.echo_bytes = parse_count(flag, &value()?, 0, 16 << 20)?,
            "--stay" => cfg.stay = true,
            "--workstation" => cfg.workstation = true,
            "--vm-append" => cfg.vm_template = value()?,
            "--dhcp" => cfg.dhcp = DhcpMode::parse(&value()?)?,
            "--loss" => f.loss_pct = faults::parse_pct("LOSS", &value()?)?,
            "--dup" => f.dup_pct = faults::parse_pct("DUP", &value()?)?,
            "--reorder" => f.reorder_pct = faults::parse_pct("REORDER", &value()?)?,
            "--delay" => f.delay = faults::parse_delay_ms(&value()?)?,
            "--rate" => f.rate_mbps = faults::parse_rate(&value()?)?,
            "--seed" => cfg.seed = parse_count(flag, &value()?, 0, u64::MAX)?,
            "--pcap" => cfg.pcap = Some(value()?.into()),
            "--out" => cfg.out_dir = value()?.into(),
            "--expect" => cfg.expect.push(value()?),
            "--spare-ports" => cfg.spare_ports = parse_count(flag, &value()?, 0, 8)? as usize,
            "--idle-cpu" => {
                cfg.idle_cpu = Some(Duration::from_secs(parse_count(flag, &value()?, 1, 600)?))
            }
            _ => return boot.take(flag, value),
        }
        Ok(true)
    })?;
    if !vms_given {
        return Err("--vms N is required".into());
    }
    cfg.kernel = boot.kernel;
    cfg.accel = boot.accel;
    cfg.firmware = boot.firmware;
    if let Some(t) = boot.timeout {
        cfg.timeout = t;
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vms: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let handler = on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    let faults = cfg.faults.describe();
    eprintln!(
        "vms: {} VMs on one switch ({faults}, seed {}), dhcp {:?}, logs in {}",
        cfg.vms,
        cfg.seed,
        cfg.dhcp,
        cfg.out_dir.display()
    );
    let mut print = |l: &str| println!("{l}");
    let outcome = match vms::run(&cfg, &STOP, &mut print) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vms: {e}");
            return ExitCode::FAILURE;
        }
    };
    for l in &outcome.switch_lines {
        eprintln!("{l}");
    }
    if let Some(p) = &cfg.pcap {
        eprintln!("vms: segment pcap {}", p.display());
    }
    for vm in &outcome.vms {
        eprintln!("vms: {}", vm.summary());
        if let Ok(run) = &vm.run {
            if !run.stderr.trim().is_empty() {
                eprintln!("vms: vm{} qemu stderr: {}", vm.k, run.stderr.trim());
            }
        }
    }
    if let Some(t) = outcome.goal_at() {
        eprintln!(
            "vms: every VM reached its goal {:.0} ms after the first QEMU spawn",
            t.as_secs_f64() * 1e3
        );
    }
    let passed = outcome.vms.iter().filter(|v| v.passed()).count();
    eprintln!(
        "vms: {passed} of {} VMs passed{}",
        outcome.vms.len(),
        if outcome.cancelled {
            " (interrupted)"
        } else {
            ""
        }
    );
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
