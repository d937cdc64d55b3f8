//! `switch`: the segment switch as a stand-alone program. Binds the given
//! ports, forwards frames between them until SIGINT/SIGTERM (or
//! `--duration`), and prints counters on stderr: at start-up, every
//! `--stats` seconds, on SIGUSR1, and at exit. Exit status 0 after a clean
//! stop, 2 for bad options, 1 when a port cannot be bound.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use dsb_tests::switch::{self, net, Control, Options};

static CONTROL: Control = Control {
    stop: std::sync::atomic::AtomicBool::new(false),
    report: std::sync::atomic::AtomicBool::new(false),
};

extern "C" fn on_stop(_: libc::c_int) {
    CONTROL.stop.store(true, Ordering::Relaxed);
}

extern "C" fn on_report(_: libc::c_int) {
    CONTROL.report.store(true, Ordering::Relaxed);
}

fn install_signals() {
    let stop = on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    let report = on_report as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handlers only store to atomics (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, stop);
        libc::signal(libc::SIGTERM, stop);
        libc::signal(libc::SIGUSR1, report);
    }
}

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("switch: {e}\n{}", switch::USAGE);
            return ExitCode::from(2);
        }
    };
    let ports = match net::bind_all(&opts.ports) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("switch: {e}");
            return ExitCode::from(1);
        }
    };
    install_signals();
    let mut log = |l: &str| eprintln!("{l}");
    match net::run(ports, opts.switch, &opts.run, &CONTROL, &mut log) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switch: {e}");
            ExitCode::from(1)
        }
    }
}
