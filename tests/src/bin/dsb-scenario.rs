//! `dsb-scenario`: `make test`'s scenario `dsb`. Two serving VMs on a
//! segment (the `make run VMS=2 CMDLINE=mode=serve` harness, in this
//! process), then the real `dsb` binary against them, as a user would run
//! it:
//! - `dsb peers --json` lists node-1 and node-2;
//! - `dsb ping` answers from each;
//! - `dsb call <node> sd --json` answers from each;
//! - `dsb put` / `dsb get` move 4 MiB through node-1 with a matching hash;
//! - `dsb put` to node-2, whose policy denies `blob` to the workstation,
//!   exits 3; a file over node-1's per-blob cap exits 1; an unknown peer
//!   exits 4.
//!
//! Prints one line per check and exits 0 only if every check passed and the
//! VMs kept their mesh throughout.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsb_tests::cli;
use dsb_tests::vms::{self, VmsConfig};
use rand_chacha::rand_core::{RngCore, SeedableRng};

const USAGE: &str = "usage: dsb-scenario --dsb PATH [--accel A] [--firmware F] [--kernel PATH]";

static STOP: AtomicBool = AtomicBool::new(false);

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            println!("dsb-scenario: {what}: ok");
        } else {
            self.failed += 1;
            println!("dsb-scenario: {what}: FAIL ({})", detail());
        }
    }
}

fn run_dsb(dsb: &Path, segment: &Path, args: &[&str]) -> Output {
    let out = Command::new(dsb)
        .args(args)
        .env("DSOFTBUS_SEGMENT", segment)
        .output();
    match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dsb-scenario: cannot run {}: {e}", dsb.display());
            std::process::exit(2);
        }
    }
}

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

fn main() -> ExitCode {
    let mut boot = cli::BootOpts::default();
    let mut dsb: Option<PathBuf> = None;
    let parsed = cli::parse(std::env::args().skip(1), |flag, value| match flag {
        "--dsb" => {
            dsb = Some(value()?.into());
            Ok(true)
        }
        _ => boot.take(flag, value),
    });
    let (Ok(()), Some(dsb)) = (parsed.clone(), dsb) else {
        eprintln!(
            "dsb-scenario: {}\n{USAGE}",
            parsed.err().unwrap_or_else(|| "--dsb is required".into())
        );
        return ExitCode::from(2);
    };
    let out_dir = dsb_tests::qemu::workspace_root().join("out/dsb-scenario");
    let _ = std::fs::create_dir_all(&out_dir);
    let segment = out_dir.join("segment");
    let _ = std::fs::remove_file(&segment);

    let mut cfg = VmsConfig::new(2);
    cfg.kernel = boot.kernel;
    cfg.accel = boot.accel;
    cfg.firmware = boot.firmware;
    cfg.stay = true;
    cfg.out_dir = out_dir.clone();
    cfg.descriptor = Some(segment.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let harness = {
        let (ready, log) = (ready.clone(), log.clone());
        std::thread::spawn(move || {
            vms::run(&cfg, &STOP, &mut |l| {
                if l.contains("serving until Ctrl-C") {
                    ready.store(true, Ordering::Relaxed);
                }
                if let Ok(mut v) = log.lock() {
                    v.push(l.to_string());
                }
            })
        })
    };
    let start = Instant::now();
    while !ready.load(Ordering::Relaxed) && !harness.is_finished() {
        if start.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut c = Checks { failed: 0 };
    c.check(
        "two serving VMs reach their mesh",
        ready.load(Ordering::Relaxed),
        || log.lock().map(|v| v.join("\n")).unwrap_or_default(),
    );
    if ready.load(Ordering::Relaxed) {
        scenario(&mut c, &dsb, &segment, &out_dir);
    }
    STOP.store(true, Ordering::Relaxed);
    let outcome = harness.join();
    let vms_ok = matches!(&outcome, Ok(Ok(o)) if o.passed());
    c.check(
        "the VMs served throughout and stopped cleanly",
        vms_ok,
        || match &outcome {
            Ok(Ok(o)) => o
                .vms
                .iter()
                .map(|v| v.summary())
                .collect::<Vec<_>>()
                .join("; "),
            Ok(Err(e)) => e.clone(),
            Err(_) => "harness thread panicked".into(),
        },
    );
    if c.failed == 0 {
        println!("dsb-scenario: all ok");
        ExitCode::SUCCESS
    } else {
        println!("dsb-scenario: {} check(s) failed", c.failed);
        ExitCode::FAILURE
    }
}

fn scenario(c: &mut Checks, dsb: &Path, segment: &Path, out_dir: &Path) {
    let o = run_dsb(dsb, segment, &["peers", "--json"]);
    let ids: Vec<String> = serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|p| p.get("id")?.as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default();
    c.check(
        "dsb peers --json lists node-1 and node-2",
        o.status.success()
            && ids.iter().any(|i| i == "node-1")
            && ids.iter().any(|i| i == "node-2"),
        || describe(&o),
    );
    for node in ["node-1", "node-2"] {
        let o = run_dsb(dsb, segment, &["ping", node, "-c", "3", "--json"]);
        let replies = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .ok()
            .and_then(|v| v.get("rtts_ms")?.as_array().map(Vec::len));
        c.check(
            &format!("dsb ping {node}: 3 replies"),
            o.status.success() && replies == Some(3),
            || describe(&o),
        );
        let o = run_dsb(dsb, segment, &["call", node, "sd", "--json"]);
        let listed = serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .ok()
            .and_then(|v| v.get("services")?.as_array().map(Vec::len));
        c.check(
            &format!("dsb call {node} sd"),
            o.status.success() && listed.unwrap_or(0) >= 3,
            || describe(&o),
        );
    }
    // 4 MiB through node-1, whose policy lets the workstation use blob.
    let file = out_dir.join("payload.bin");
    let mut data = vec![0u8; 4 << 20];
    rand_chacha::ChaCha20Rng::seed_from_u64(4).fill_bytes(&mut data);
    if std::fs::write(&file, &data).is_err() {
        c.check("write the 4 MiB payload", false, || {
            file.display().to_string()
        });
        return;
    }
    let file_s = file.display().to_string();
    let o = run_dsb(dsb, segment, &["put", "node-1", &file_s, "--json"]);
    let put_hash = serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| v.get("blake2s")?.as_str().map(String::from));
    c.check(
        "dsb put node-1 (4 MiB)",
        o.status.success() && put_hash.is_some(),
        || describe(&o),
    );
    let back = out_dir.join("payload.back");
    let _ = std::fs::remove_file(&back);
    let back_s = back.display().to_string();
    let o = run_dsb(
        dsb,
        segment,
        &["get", "node-1", "payload.bin", "-o", &back_s, "--json"],
    );
    let get_hash = serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| v.get("blake2s")?.as_str().map(String::from));
    let same = std::fs::read(&back).is_ok_and(|b| b == data);
    c.check(
        "dsb get node-1 returns the same 4 MiB with the same hash",
        o.status.success() && same && get_hash.is_some() && get_hash == put_hash,
        || describe(&o),
    );
    let o = run_dsb(dsb, segment, &["put", "node-2", &file_s]);
    c.check(
        "dsb put node-2 is denied: exit 3",
        o.status.code() == Some(3),
        || describe(&o),
    );
    let big = out_dir.join("too-big.bin");
    let _ = std::fs::write(&big, vec![7u8; 9 << 20]);
    let o = run_dsb(dsb, segment, &["put", "node-1", &big.display().to_string()]);
    let said = String::from_utf8_lossy(&o.stderr).contains("too-large");
    c.check(
        "a file over node-1's blob cap: exit 1, too-large",
        o.status.code() == Some(1) && said,
        || describe(&o),
    );
    let o = run_dsb(dsb, segment, &["ping", "node-9", "--timeout", "2"]);
    c.check(
        "an unknown peer: exit 4",
        o.status.code() == Some(4),
        || describe(&o),
    );
}
