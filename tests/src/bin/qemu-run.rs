//! `qemu-run`: boots the image once, prints its serial console, and exits with
//! the guest's verdict (0 only when the guest reported success). Used by
//! `make run`.

use dsb_tests::{cli, qemu};
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage: qemu-run [--nodes 1|2|3] [--append CMDLINE] [--accel tcg|kvm|auto] \
[--firmware auto|qboot|seabios] [--pcap DIR] [--timeout SECS] [--kernel PATH]";

fn main() -> ExitCode {
    let mut boot = cli::BootOpts::default();
    let mut nodes: u8 = 1;
    let mut append = String::new();
    let parsed = cli::parse(std::env::args().skip(1), |flag, value| {
        if boot.take(flag, value)? {
            return Ok(true);
        }
        match flag {
            "--nodes" => {
                let v = value()?;
                nodes = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=3).contains(n))
                    .ok_or_else(|| format!("--nodes: expected 1, 2 or 3, got {v:?}"))?;
            }
            "--append" => append = value()?,
            _ => return Ok(false),
        }
        Ok(true)
    });
    if let Err(e) = parsed {
        eprintln!("qemu-run: {e}\n{USAGE}");
        return ExitCode::from(2);
    }

    let mut cfg = qemu::QemuConfig::new(nodes, append);
    boot.apply(&mut cfg);
    let stdout = std::io::stdout();
    let mut on_line = |l: &qemu::Line| {
        let mut out = stdout.lock();
        let _ = writeln!(out, "{}", l.text);
        let _ = out.flush();
    };
    let mut on_note = |n: &str| eprintln!("{n}");
    match qemu::boot(&cfg, &mut on_line, &mut on_note) {
        Ok(run) => {
            if !run.stderr.trim().is_empty() {
                eprint!("{}", run.stderr);
            }
            if let Some(dir) = &cfg.pcap_dir {
                eprintln!("qemu-run: pcap files in {}", dir.display());
            }
            eprintln!(
                "qemu-run: {} ({} {}, {:.0} ms)",
                run.verdict,
                run.accel,
                run.firmware,
                run.elapsed.as_secs_f64() * 1e3
            );
            if run.verdict.is_pass() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("qemu-run: {e}");
            ExitCode::FAILURE
        }
    }
}
