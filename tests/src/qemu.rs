//! The QEMU launcher: builds a command line from `qemu-conf/`, boots the image,
//! streams its serial console line by line with timestamps measured from QEMU
//! spawn, enforces a time limit, and turns the guest's exit code into a verdict.
//!
//! `make run`, the scenario tests and the boot benchmarks all use this one code
//! path, so what is measured is what users run.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// QEMU exit status when the guest wrote 0x10 to the isa-debug-exit port.
pub const GUEST_EXIT_SUCCESS: i32 = 33;
/// QEMU exit status when the guest wrote 0x11 to the isa-debug-exit port.
pub const GUEST_EXIT_FAILURE: i32 = 35;
/// How long qboot may leave the console silent before the launcher gives up on
/// it and boots with SeaBIOS instead (qboot's first line comes in ~50 ms).
pub const QBOOT_SILENCE_LIMIT: Duration = Duration::from_secs(3);
/// Cap on serial lines kept in memory per run (a runaway guest cannot exhaust us).
pub const MAX_LINES: usize = 100_000;
/// Cap on one serial line; longer lines are cut.
pub const MAX_LINE_LEN: usize = 4096;
/// How often a cancellable run checks its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Accelerator choice (`ACCEL=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
    /// KVM when `/dev/kvm` can be opened, else TCG.
    Auto,
}

impl Accel {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "tcg" => Ok(Accel::Tcg),
            "kvm" => Ok(Accel::Kvm),
            "auto" => Ok(Accel::Auto),
            _ => Err(format!("ACCEL: expected tcg, kvm or auto, got {s:?}")),
        }
    }

    /// The accelerator actually used.
    pub fn resolve(self) -> Accel {
        match self {
            Accel::Auto => {
                let usable = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/kvm")
                    .is_ok();
                if usable {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                }
            }
            a => a,
        }
    }

    fn file(self) -> &'static str {
        match self.resolve() {
            Accel::Kvm => "accel-kvm.args",
            _ => "accel-tcg.args",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
            Accel::Auto => "auto",
        })
    }
}

/// Firmware choice (`FIRMWARE=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    Qboot,
    Seabios,
    /// qboot, falling back to SeaBIOS if the console stays silent.
    Auto,
}

impl Firmware {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "qboot" => Ok(Firmware::Qboot),
            "seabios" => Ok(Firmware::Seabios),
            "auto" => Ok(Firmware::Auto),
            _ => Err(format!(
                "FIRMWARE: expected qboot, seabios or auto, got {s:?}"
            )),
        }
    }

    fn file(self) -> &'static str {
        match self {
            Firmware::Seabios => "firmware-seabios.args",
            _ => "firmware-qboot.args",
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firmware::Qboot => "qboot",
            Firmware::Seabios => "seabios",
            Firmware::Auto => "auto",
        })
    }
}

/// Everything needed to boot one VM.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// Directory holding the `*.args` files.
    pub conf_dir: PathBuf,
    pub kernel: PathBuf,
    /// Number of NICs / nodes (selects `net-<n>.args`).
    pub nodes: u8,
    /// The kernel command line (`-append`).
    pub append: String,
    pub accel: Accel,
    pub firmware: Firmware,
    /// Write one pcap per NIC into this directory.
    pub pcap_dir: Option<PathBuf>,
    /// Wall-clock limit for the whole run.
    pub timeout: Duration,
    /// NIC topology file instead of `net-<nodes>.args` (e.g. `net-vm.args`).
    pub net_file: Option<String>,
    /// `@NAME@` placeholders of the `*.args` files and their values.
    pub vars: Vec<(String, String)>,
    /// More QEMU arguments, added before `-kernel` (e.g. `-fw_cfg ...`).
    pub extra_args: Vec<String>,
    /// Set by another thread to kill QEMU and end the run (`Verdict::Cancelled`).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Receives QEMU's process id while it runs (0 before and after).
    pub pid: Option<Arc<AtomicU32>>,
}

impl QemuConfig {
    /// Defaults for this workspace: `qemu-conf/` and the release image.
    pub fn new(nodes: u8, append: impl Into<String>) -> Self {
        let root = workspace_root();
        QemuConfig {
            conf_dir: root.join("qemu-conf"),
            kernel: default_kernel(),
            nodes,
            append: append.into(),
            accel: Accel::Tcg,
            firmware: Firmware::Auto,
            pcap_dir: None,
            timeout: Duration::from_secs(60),
            net_file: None,
            vars: Vec::new(),
            extra_args: Vec::new(),
            cancel: None,
            pid: None,
        }
    }
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `make image` puts the image.
pub fn default_kernel() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("x86_64-unknown-none/release/dsoftbus")
}

/// Reads one `*.args` file into arguments, honouring `?pcap` lines and `@PCAP_DIR@`.
pub fn read_args(path: &Path, pcap_dir: Option<&Path>) -> Result<Vec<String>, String> {
    read_args_with(path, pcap_dir, &[])
}

/// [`read_args`], also replacing each `@NAME@` of `vars`; a placeholder left
/// over is an error naming it.
pub fn read_args_with(
    path: &Path,
    pcap_dir: Option<&Path>,
    vars: &[(String, String)],
) -> Result<Vec<String>, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut args = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let line = match line.strip_prefix("?pcap ") {
            Some(rest) => match pcap_dir {
                Some(dir) => rest.replace("@PCAP_DIR@", &dir.display().to_string()),
                None => continue,
            },
            None => line.to_string(),
        };
        let mut line = line;
        for (name, value) in vars {
            line = line.replace(&format!("@{name}@"), value);
        }
        if let Some(start) = line.find('@') {
            let rest = line.get(start + 1..).unwrap_or("");
            if let Some(end) = rest.find('@') {
                let name = rest.get(..end).unwrap_or("");
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                    return Err(format!(
                        "{}: placeholder @{name}@ has no value",
                        path.display()
                    ));
                }
            }
        }
        args.extend(line.split_whitespace().map(str::to_string));
    }
    Ok(args)
}

/// The full QEMU argument list for `cfg` with the given firmware.
pub fn command_args(cfg: &QemuConfig, firmware: Firmware) -> Result<Vec<String>, String> {
    let pcap = cfg.pcap_dir.as_deref();
    let mut args = Vec::new();
    let net = cfg
        .net_file
        .clone()
        .unwrap_or_else(|| format!("net-{}.args", cfg.nodes));
    for file in [
        "machine.args".to_string(),
        cfg.accel.file().to_string(),
        firmware.file().to_string(),
        net,
    ] {
        args.extend(read_args_with(&cfg.conf_dir.join(&file), pcap, &cfg.vars)?);
    }
    args.extend(cfg.extra_args.iter().cloned());
    args.push("-kernel".into());
    args.push(cfg.kernel.display().to_string());
    args.push("-append".into());
    args.push(cfg.append.clone());
    Ok(args)
}

/// One serial line and when it arrived, measured from QEMU spawn.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Duration,
    pub text: String,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The guest reported success through isa-debug-exit.
    Pass,
    /// The guest reported failure through isa-debug-exit.
    GuestFailed,
    /// QEMU ended without a guest verdict (crash, reset, triple fault, bad args).
    NoVerdict(Option<i32>),
    /// The time limit ran out; QEMU was killed.
    Timeout,
    /// The run was cancelled (`QemuConfig::cancel`); QEMU was killed.
    Cancelled,
}

impl Verdict {
    pub fn is_pass(&self) -> bool {
        *self == Verdict::Pass
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => write!(f, "guest reported success"),
            Verdict::GuestFailed => write!(f, "guest reported failure"),
            Verdict::NoVerdict(Some(c)) => {
                write!(f, "QEMU exited with status {c} without a guest verdict")
            }
            Verdict::NoVerdict(None) => write!(f, "QEMU was killed by a signal"),
            Verdict::Timeout => write!(f, "time limit reached, QEMU killed"),
            Verdict::Cancelled => write!(f, "cancelled, QEMU killed"),
        }
    }
}

/// Everything observed during one boot.
#[derive(Clone, Debug)]
pub struct Run {
    pub lines: Vec<Line>,
    pub verdict: Verdict,
    /// The firmware that actually booted the kernel.
    pub firmware: Firmware,
    pub accel: Accel,
    /// QEMU's own stderr (argument errors and warnings).
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Time of the first line satisfying `pred`.
    pub fn time_of(&self, pred: impl Fn(&str) -> bool) -> Option<Duration> {
        self.lines.iter().find(|l| pred(&l.text)).map(|l| l.at)
    }

    /// The serial log as text, each line with its timestamp.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&format!(
                "[{:>8.3} ms] {}\n",
                l.at.as_secs_f64() * 1e3,
                l.text
            ));
        }
        s.push_str(&format!(
            "# accel={} firmware={} verdict: {} after {:.3} s\n",
            self.accel,
            self.firmware,
            self.verdict,
            self.elapsed.as_secs_f64()
        ));
        if !self.stderr.trim().is_empty() {
            s.push_str("# qemu stderr:\n");
            s.push_str(&self.stderr);
        }
        s
    }
}

enum Event {
    Line(Duration, String),
    Eof,
}

fn spawn(cfg: &QemuConfig, firmware: Firmware) -> Result<(Child, Instant), String> {
    if !cfg.kernel.is_file() {
        return Err(format!(
            "image {} not found (run `make image`)",
            cfg.kernel.display()
        ));
    }
    if let Some(dir) = &cfg.pcap_dir {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let args = command_args(cfg, firmware)?;
    let started = Instant::now();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill QEMU
    // when the thread that started it dies (the launcher was killed), so no
    // QEMU outlives a crashed or SIGKILLed launcher.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    if cfg.cancel.is_some() {
        // The caller stops this QEMU (`cancel`): keep it out of the
        // terminal's process group, so a Ctrl-C reaches only the caller,
        // which then stops every VM in order and reports how they ended.
        cmd.process_group(0);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e} (install qemu-system-x86)"))?;
    if let Some(pid) = &cfg.pid {
        pid.store(child.id(), Ordering::Relaxed);
    }
    Ok((child, started))
}

/// Reads stdout into line events on a thread; bytes are split on '\n', CR dropped.
fn reader(mut out: impl Read + Send + 'static, started: Instant, tx: mpsc::Sender<Event>) {
    thread::spawn(move || {
        let mut r = BufReader::new(&mut out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let at = started.elapsed();
                    buf.truncate(MAX_LINE_LEN);
                    let text = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    if tx.send(Event::Line(at, text)).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Event::Eof);
    });
}

/// Boots once with `firmware`; `on_line` sees each line as it arrives.
/// Returns `Ok(None)` when qboot stayed silent (caller may fall back).
fn boot_once(
    cfg: &QemuConfig,
    firmware: Firmware,
    silence_limit: Option<Duration>,
    on_line: &mut dyn FnMut(&Line),
) -> Result<Option<Run>, String> {
    let (mut child, started) = spawn(cfg, firmware)?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().ok_or("qemu stdout missing")?;
    reader(stdout, started, tx);
    let mut stderr_pipe = child.stderr.take().ok_or("qemu stderr missing")?;
    let stderr_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });

    let mut lines: Vec<Line> = Vec::new();
    let mut timed_out = false;
    let mut cancelled = false;
    loop {
        let limit = match (silence_limit, lines.is_empty()) {
            (Some(s), true) => s.min(cfg.timeout),
            _ => cfg.timeout,
        };
        let mut left = limit.saturating_sub(started.elapsed());
        if let Some(cancel) = &cfg.cancel {
            if cancel.load(Ordering::Relaxed) {
                cancelled = true;
                let _ = child.kill();
                break;
            }
            if left > CANCEL_POLL {
                left = CANCEL_POLL;
            }
        }
        match rx.recv_timeout(left) {
            Ok(Event::Line(at, text)) => {
                let line = Line { at, text };
                on_line(&line);
                if lines.len() < MAX_LINES {
                    lines.push(line);
                }
            }
            Ok(Event::Eof) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < limit => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if lines.is_empty() && silence_limit.is_some() && started.elapsed() < cfg.timeout {
                    let _ = child.kill();
                    let _ = child.wait();
                    if let Some(pid) = &cfg.pid {
                        pid.store(0, Ordering::Relaxed);
                    }
                    return Ok(None);
                }
                timed_out = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for qemu: {e}"))?;
    if let Some(pid) = &cfg.pid {
        pid.store(0, Ordering::Relaxed);
    }
    let elapsed = started.elapsed();
    let stderr = stderr_thread.join().unwrap_or_default();
    let verdict = if cancelled {
        Verdict::Cancelled
    } else if timed_out {
        Verdict::Timeout
    } else {
        match status.code() {
            Some(GUEST_EXIT_SUCCESS) => Verdict::Pass,
            Some(GUEST_EXIT_FAILURE) => Verdict::GuestFailed,
            other => Verdict::NoVerdict(other),
        }
    };
    Ok(Some(Run {
        lines,
        verdict,
        firmware,
        accel: cfg.accel.resolve(),
        stderr,
        elapsed,
    }))
}

/// Boots the image as configured. With `Firmware::Auto`, a silent console under
/// qboot triggers one retry with SeaBIOS (noted through `on_note`).
pub fn boot(
    cfg: &QemuConfig,
    on_line: &mut dyn FnMut(&Line),
    on_note: &mut dyn FnMut(&str),
) -> Result<Run, String> {
    match cfg.firmware {
        Firmware::Auto => {
            if let Some(run) = boot_once(cfg, Firmware::Qboot, Some(QBOOT_SILENCE_LIMIT), on_line)?
            {
                return Ok(run);
            }
            on_note(&format!(
                "qemu-run: qboot stayed silent for {} s; booting again with SeaBIOS",
                QBOOT_SILENCE_LIMIT.as_secs()
            ));
            boot_once(cfg, Firmware::Seabios, None, on_line)?
                .ok_or_else(|| "SeaBIOS boot produced no run".to_string())
        }
        fw => boot_once(cfg, fw, None, on_line)?.ok_or_else(|| "boot produced no run".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_files_parse_with_and_without_pcap() {
        let dir = workspace_root().join("qemu-conf");
        let plain = read_args(&dir.join("net-2.args"), None).unwrap();
        assert!(plain.iter().any(|a| a.contains("restrict=on")));
        assert!(!plain.iter().any(|a| a.contains("filter-dump")));
        let with = read_args(&dir.join("net-2.args"), Some(Path::new("/tmp/x"))).unwrap();
        assert_eq!(with.iter().filter(|a| a.contains("filter-dump")).count(), 2);
        assert!(with.iter().any(|a| a.contains("file=/tmp/x/nic1.pcap")));
    }

    #[test]
    fn every_user_netdev_is_restricted() {
        let dir = workspace_root().join("qemu-conf");
        for n in 1..=3 {
            let args = read_args(&dir.join(format!("net-{n}.args")), None).unwrap();
            for a in args.iter().filter(|a| a.starts_with("user,")) {
                assert!(a.contains("restrict=on"), "net-{n}.args: {a}");
            }
        }
    }

    #[test]
    fn command_has_kernel_and_append_last() {
        let cfg = QemuConfig::new(1, "nodes=1 transport=auto");
        let args = command_args(&cfg, Firmware::Seabios).unwrap();
        let n = args.len();
        assert_eq!(args[n - 2], "-append");
        assert_eq!(args[n - 1], "nodes=1 transport=auto");
        assert!(!args.iter().any(|a| a.contains("qboot")));
        let args = command_args(&cfg, Firmware::Qboot).unwrap();
        assert!(args.iter().any(|a| a.contains("qboot.rom")));
    }
}
