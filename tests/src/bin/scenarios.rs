//! `scenarios`: boots every QEMU scenario (or those named with `--only`),
//! checks its markers in order within a time limit, keeps each serial log in
//! `out/scenarios/<name>.log`, and on failure names the first missing marker.
//! Used by `make test`.

use dsb_tests::{cli, markers, qemu, scenarios};
use std::fs;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut boot = cli::BootOpts::default();
    let mut only: Vec<String> = Vec::new();
    let parsed = cli::parse(std::env::args().skip(1), |flag, value| {
        if boot.take(flag, value)? {
            return Ok(true);
        }
        match flag {
            "--only" => only.push(value()?),
            _ => return Ok(false),
        }
        Ok(true)
    });
    if let Err(e) = parsed {
        eprintln!("scenarios: {e}\nusage: scenarios [--only NAME]... [--accel A] [--firmware F] [--kernel PATH] [--timeout SECS]");
        return ExitCode::from(2);
    }
    let all = scenarios::all();
    for name in &only {
        if !all.iter().any(|s| s.name == name) {
            let names: Vec<_> = all.iter().map(|s| s.name).collect();
            eprintln!(
                "scenarios: unknown scenario {name:?} (known: {})",
                names.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    let log_dir = qemu::workspace_root().join("out/scenarios");
    if let Err(e) = fs::create_dir_all(&log_dir) {
        eprintln!("scenarios: cannot create {}: {e}", log_dir.display());
        return ExitCode::FAILURE;
    }

    let (mut passed, mut failed) = (0u32, 0u32);
    for sc in all
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name))
    {
        println!("scenario {}: {} ...", sc.name, sc.about);
        let mut cfg = qemu::QemuConfig::new(sc.nodes, sc.append.clone());
        cfg.timeout = sc.timeout;
        boot.apply(&mut cfg);
        let mut on_note = |n: &str| println!("  {n}");
        let result = qemu::boot(&cfg, &mut |_| {}, &mut on_note).and_then(|run| {
            let log = log_dir.join(format!("{}.log", sc.name));
            fs::write(&log, run.log_text())
                .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
            let verdict_ok = if sc.expect_pass {
                run.verdict.is_pass()
            } else {
                run.verdict == qemu::Verdict::GuestFailed
            };
            let check = markers::check_required(&run.lines, &sc.required)
                .and_then(|_| {
                    if sc.expect_pass {
                        markers::check_verdict_last(&run.lines, &sc.required, &scenarios::all_ok())
                    } else {
                        Ok(())
                    }
                })
                .and_then(|_| {
                    sc.anywhere.iter().try_for_each(|m| {
                        markers::check_required(&run.lines, std::slice::from_ref(m)).map(|_| ())
                    })
                })
                .and_then(|_| markers::check_forbidden(&run.lines, &sc.forbidden))
                .and_then(|_| {
                    if verdict_ok {
                        Ok(())
                    } else {
                        Err(format!("wrong verdict: {}", run.verdict))
                    }
                });
            Ok((run, log, check))
        });
        match result {
            Ok((run, _log, Ok(()))) => {
                passed += 1;
                println!(
                    "scenario {}: ok ({} {}, {:.0} ms)",
                    sc.name,
                    run.accel,
                    run.firmware,
                    run.elapsed.as_secs_f64() * 1e3
                );
            }
            Ok((run, log, Err(why))) => {
                failed += 1;
                println!("scenario {}: FAIL: {why} ({})", sc.name, run.verdict);
                println!("  log kept in {}", log.display());
                for l in run
                    .lines
                    .iter()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    println!("  | {}", l.text);
                }
            }
            Err(e) => {
                failed += 1;
                println!("scenario {}: FAIL: {e}", sc.name);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
