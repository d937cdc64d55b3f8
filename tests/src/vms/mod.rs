//! The cross-VM harness behind `make run VMS=N`: one segment switch (in this
//! process, on a thread), optionally one slirp DHCP bridge (a guest-less QEMU),
//! and N QEMU processes with one virtio-net NIC each on their own switch port.
//!
//! - VM `k` (1-based) is a serving node (`mode=serve`) with its own identity
//!   and trust ([`plan`]), MAC `52:54:00:12:34:<k>` and the kernel command
//!   line `<plan options> <append> <per-VM template>`, the template's `{k}`,
//!   `{id}`, `{mac}` and `{ip}` filled in (see [`expand_template`]).
//! - Each console line is printed as `[vmK] <line>` while it arrives, and each
//!   VM's log (timestamps from its QEMU spawn) is kept in `<out>/vmK.log`.
//! - The run ends when every VM printed the lines of its goal (the full
//!   mesh: [`plan`]); serving nodes never exit on their own, so the harness
//!   then stops every QEMU. It also ends at the first forbidden line, when a
//!   QEMU exits on its own, at the time limit, or on Ctrl-C / SIGTERM. Then
//!   one summary line per VM and the switch counters. It passed only if every
//!   VM reached its goal.
//! - Sockets and identity files live in a fresh directory under the system
//!   temp dir (unix paths must be short), removed at the end.

mod plan;

pub use plan::{
    make_plans, matches, vm_id, VmPlan, VmScenario, Workstation, ALWAYS_FORBIDDEN, WORKSTATION_ID,
};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::qemu::{self, Accel, Firmware, Line, QemuConfig, Run};
use crate::switch::{net, Control, FaultConfig, PortSpec, PortStats, RunOptions, SwitchConfig};

/// Fewest and most VMs.
pub const MIN_VMS: usize = 2;
pub const MAX_VMS: usize = 8;

/// How VMs get their IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpMode {
    /// No DHCP server: each image falls back to its static address
    /// (`net: dhcp unavailable (fallback static 10.0.2.<100+k>/24)`).
    None,
    /// One restrict=on slirp on the segment (`qemu-conf/dhcp-bridge.args`).
    Slirp,
}

impl DhcpMode {
    pub fn parse(s: &str) -> Result<DhcpMode, String> {
        match s {
            "none" | "static" => Ok(DhcpMode::None),
            "slirp" => Ok(DhcpMode::Slirp),
            _ => Err(format!("DHCP: expected none or slirp, got {s:?}")),
        }
    }
}

/// Everything one harness run needs.
#[derive(Clone, Debug)]
pub struct VmsConfig {
    pub vms: usize,
    /// Command line common to every VM (`CMDLINE`).
    pub append: String,
    /// Per-VM options appended after `append`, with placeholders.
    pub vm_template: String,
    pub kernel: Option<PathBuf>,
    pub accel: Accel,
    pub firmware: Firmware,
    /// Wall-clock limit of each VM (and so of the run).
    pub timeout: Duration,
    pub faults: FaultConfig,
    pub seed: u64,
    /// Segment pcap file.
    pub pcap: Option<PathBuf>,
    pub dhcp: DhcpMode,
    /// Where the per-VM logs go.
    pub out_dir: PathBuf,
    /// Extra switch ports without a peer, for tools to attach (host CLI, ping).
    pub spare_ports: usize,
    /// Measure each QEMU's CPU time over this window once every VM reached
    /// its goal (the VMs are then idle: nothing more to do).
    pub idle_cpu: Option<Duration>,
    /// Console lines (substrings) every VM must print to pass, besides its
    /// goal.
    pub expect: Vec<String>,
    pub scenario: VmScenario,
    /// Bytes each VM echoes with every peer (hash-checked), 0: ping only.
    pub echo_bytes: u64,
    /// Keep the VMs serving after the goal, until Ctrl-C (no time limit).
    /// Also implied by `mode=serve` in `append`.
    pub stay: bool,
    /// Make a workstation identity for `dsb`, trusted by every VM, with a
    /// spare switch port and the segment descriptor ([`segment_file`]).
    /// Implied by `stay`.
    pub workstation: bool,
    /// Where to write the segment descriptor (default [`segment_file`]).
    pub descriptor: Option<PathBuf>,
}

impl VmsConfig {
    pub fn new(vms: usize) -> VmsConfig {
        VmsConfig {
            vms,
            append: String::new(),
            vm_template: String::new(),
            kernel: None,
            accel: Accel::Tcg,
            firmware: Firmware::Auto,
            timeout: Duration::from_secs(120),
            faults: FaultConfig::default(),
            seed: 1,
            pcap: None,
            dhcp: DhcpMode::None,
            out_dir: qemu::workspace_root().join("out/vms"),
            spare_ports: 0,
            idle_cpu: None,
            expect: Vec::new(),
            scenario: VmScenario::Mesh,
            echo_bytes: 0,
            stay: false,
            workstation: false,
            descriptor: None,
        }
    }
}

/// VM `k`'s MAC address (k = 1..=8).
pub fn vm_mac(k: usize) -> String {
    format!("52:54:00:12:34:{:02x}", k)
}

/// VM `k`'s address when no DHCP server answers: the image's documented rule
/// for `52:54:00:12:34:NN` is `10.0.2.(100 + NN)/24`.
pub fn vm_static_ip(k: usize) -> String {
    format!("10.0.2.{}", 100 + k)
}

/// Fills a per-VM template: `{k}` (1..N), `{id}` (`node-{k}`), `{mac}`, `{ip}`
/// (the static fallback address, without prefix).
pub fn expand_template(template: &str, k: usize) -> String {
    template
        .replace("{k}", &k.to_string())
        .replace("{id}", &format!("node-{k}"))
        .replace("{mac}", &vm_mac(k))
        .replace("{ip}", &vm_static_ip(k))
}

/// How long an image waits for DHCP before its static fallback when the
/// harness put no DHCP server on the segment (slirp answers in < 40 ms; the
/// image's own default is 5 s), unless the command line sets `dhcp_timeout_ms`.
pub const NO_DHCP_WAIT_MS: u32 = 1000;

/// VM `k`'s full kernel command line: its plan's options (mode, id,
/// trust), then `append`, then the per-VM template.
pub fn vm_append(cfg: &VmsConfig, k: usize, options: &str) -> String {
    let per_vm = expand_template(&cfg.vm_template, k);
    let mut line = [options.trim(), cfg.append.trim(), per_vm.trim()]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if cfg.dhcp == DhcpMode::None && !line.contains("dhcp_timeout_ms=") {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&format!("dhcp_timeout_ms={NO_DHCP_WAIT_MS}"));
    }
    line
}

/// What one VM did.
#[derive(Debug)]
pub struct VmResult {
    pub k: usize,
    /// Its device id (the impostor of `spoof` claims node-2).
    pub id: String,
    pub run: Result<Run, String>,
    /// QEMU CPU time share over the idle window, in percent of one core.
    pub idle_cpu_pct: Option<f64>,
    /// Expected lines this VM never printed.
    pub missing: Vec<String>,
    /// Forbidden lines it printed.
    pub forbidden: Vec<String>,
    /// From the first QEMU spawn to the last line of its goal.
    pub goal_at: Option<Duration>,
    /// From the first QEMU spawn to its last required `session up`.
    pub sessions_at: Option<Duration>,
}

impl VmResult {
    /// It printed every line of its goal and nothing forbidden, and was
    /// still running when the harness stopped it.
    pub fn passed(&self) -> bool {
        self.missing.is_empty()
            && self.forbidden.is_empty()
            && self.goal_at.is_some()
            && self
                .run
                .as_ref()
                .is_ok_and(|r| r.verdict == qemu::Verdict::Cancelled)
    }

    /// `vm1: pass (guest reported success, 812 ms, qboot) 10.0.2.101/24 (static)`.
    pub fn summary(&self) -> String {
        match &self.run {
            Ok(run) => {
                let addr = run
                    .lines
                    .iter()
                    .find_map(|l| {
                        if let Some(a) = l.text.strip_prefix("net: dhcp bound ") {
                            Some(format!(" {}", a.split(' ').next().unwrap_or(a)))
                        } else {
                            l.text
                                .strip_prefix("net: dhcp unavailable (fallback static ")
                                .map(|a| format!(" {} (static)", a.trim_end_matches(')')))
                        }
                    })
                    .unwrap_or_default();
                let cpu = self
                    .idle_cpu_pct
                    .map(|c| format!(" idle-cpu {c:.1}%"))
                    .unwrap_or_default();
                let missing = if self.missing.is_empty() {
                    String::new()
                } else {
                    format!(" missing {:?}", self.missing)
                };
                let forbidden = if self.forbidden.is_empty() {
                    String::new()
                } else {
                    format!(" printed forbidden {:?}", self.forbidden)
                };
                let goal = match self.goal_at {
                    Some(t) => format!("goal at {:.0} ms", t.as_secs_f64() * 1e3),
                    None => "goal not reached".into(),
                };
                let how = if run.verdict == qemu::Verdict::Cancelled {
                    "stopped by the harness".to_string()
                } else {
                    run.verdict.to_string()
                };
                format!(
                    "vm{} {}: {} ({goal}; {how}, {}){addr}{cpu}{missing}{forbidden}",
                    self.k,
                    self.id,
                    if self.passed() { "pass" } else { "FAIL" },
                    run.firmware
                )
            }
            Err(e) => format!("vm{} {}: FAIL ({e})", self.k, self.id),
        }
    }
}

/// The outcome of a harness run.
#[derive(Debug)]
pub struct Outcome {
    pub vms: Vec<VmResult>,
    /// Switch counters per port: VMs first (port k-1 = VM k), then the DHCP
    /// bridge (if any), then spare ports.
    pub switch: Vec<PortStats>,
    pub switch_lines: Vec<String>,
    pub cancelled: bool,
    /// The VMs served until Ctrl-C (then that is how a good run ends).
    pub stayed: bool,
}

impl Outcome {
    /// From the first spawn to the last VM reaching its goal.
    pub fn goal_at(&self) -> Option<Duration> {
        self.vms
            .iter()
            .map(|v| v.goal_at)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }

    /// From the first spawn to the last pair authenticated (every honest
    /// VM's last `session up`), once the goal was reached.
    pub fn sessions_at(&self) -> Option<Duration> {
        self.goal_at()?;
        self.vms
            .iter()
            .filter(|v| v.sessions_at.is_some())
            .map(|v| v.sessions_at)
            .max()
            .flatten()
    }
}

impl Outcome {
    pub fn passed(&self) -> bool {
        (self.stayed || !self.cancelled) && self.vms.iter().all(VmResult::passed)
    }
}

/// Where a running segment describes itself for `dsb` (`--segment auto`):
/// `$DSOFTBUS_SEGMENT` if set, else `$XDG_RUNTIME_DIR/dsoftbus/segment`,
/// else `/tmp/dsoftbus-<uid>/segment`.
/// Format (`docs/protocol.md`, "Segment descriptor"): `key=value` lines
/// `port=unix:<path>`, `identity=<path>`, `id=<device id>`, `dhcp=none|slirp`.
pub fn segment_file() -> PathBuf {
    if let Some(p) = std::env::var_os("DSOFTBUS_SEGMENT").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("dsoftbus"),
        // SAFETY: getuid has no preconditions.
        _ => std::env::temp_dir().join(format!("dsoftbus-{}", unsafe { libc::getuid() })),
    };
    dir.join("segment")
}

/// Spare switch ports a workstation run leaves for `dsb` processes (one
/// station per port; `dsb` takes a free one by locking `<port>.lock`).
pub const WORKSTATION_PORTS: usize = 4;

/// Writes the segment descriptor; removes it on drop (if it is still ours).
struct Descriptor {
    path: PathBuf,
    text: String,
}

impl Descriptor {
    fn write(
        path: PathBuf,
        ports: &[PathBuf],
        ws: &Workstation,
        dhcp: DhcpMode,
    ) -> Result<Descriptor, String> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let ports: String = ports
            .iter()
            .map(|p| format!("port=unix:{}\n", p.display()))
            .collect();
        let text = format!(
            "# dsoftbus segment: written by `make run VMS=N`, removed when it ends\n\
             {ports}identity={}\nid={}\ndhcp={}\n",
            ws.identity_file.display(),
            ws.id,
            match dhcp {
                DhcpMode::None => "none",
                DhcpMode::Slirp => "slirp",
            }
        );
        fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Descriptor { path, text })
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // Another run may have replaced it meanwhile: remove only our own.
        if fs::read_to_string(&self.path).is_ok_and(|t| t == self.text) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// CPU time (user + system) of process `pid` from `/proc/<pid>/stat`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / hz))
}

/// Removes the socket directory on drop.
struct SocketDir(PathBuf);

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Kills and reaps a helper process on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_dhcp_bridge(conf_dir: &Path, bridge: &Path, switch: &Path) -> Result<Helper, String> {
    use std::os::unix::process::CommandExt;
    let vars = vec![
        ("BRIDGE_SOCK".to_string(), bridge.display().to_string()),
        ("SWITCH_SOCK".to_string(), switch.display().to_string()),
    ];
    let args = qemu::read_args_with(&conf_dir.join("dhcp-bridge.args"), None, &vars)?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Like the VMs: the harness, not the terminal's Ctrl-C, stops it.
    cmd.process_group(0);
    // SAFETY: see qemu::spawn; the bridge dies with the harness.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the DHCP bridge (qemu-system-x86_64): {e}"))?;
    Ok(Helper(child))
}

/// Events from the VM threads to the main loop.
enum Msg {
    Line(usize, Line),
    Done(usize, Result<Run, String>),
}

/// Runs the whole thing. `print` gets every console line (already prefixed
/// `[vmK] `) and harness note; `stop` is polled (Ctrl-C / SIGTERM).
pub fn run(
    cfg: &VmsConfig,
    stop: &AtomicBool,
    print: &mut dyn FnMut(&str),
) -> Result<Outcome, String> {
    if !(MIN_VMS..=MAX_VMS).contains(&cfg.vms) {
        return Err(format!(
            "VMS: expected {MIN_VMS}..={MAX_VMS}, got {}",
            cfg.vms
        ));
    }
    fs::create_dir_all(&cfg.out_dir)
        .map_err(|e| format!("cannot create {}: {e}", cfg.out_dir.display()))?;
    let sock_dir = std::env::temp_dir().join(format!("dsb-vms-{}", std::process::id()));
    fs::create_dir_all(&sock_dir)
        .map_err(|e| format!("cannot create {}: {e}", sock_dir.display()))?;
    let sock_dir = SocketDir(sock_dir);
    let sock = |name: &str| sock_dir.0.join(name);

    // `mode=serve` on the common line: the user wants the VMs to stay.
    let user_serve = cfg.append.split_whitespace().any(|o| o == "mode=serve");
    let stay = cfg.stay || user_serve;
    let workstation = cfg.workstation || stay;
    // One station per switch port: room for a few `dsb` at once.
    let spare_ports = if workstation {
        cfg.spare_ports.max(WORKSTATION_PORTS)
    } else {
        cfg.spare_ports
    };
    // Identities, trust and goals first: nothing is running yet if this fails.
    let (mut plans, ws) = make_plans(
        cfg.vms,
        cfg.scenario,
        cfg.echo_bytes,
        workstation,
        &sock_dir.0,
    )?;
    if user_serve {
        for p in plans.iter_mut() {
            p.options = p.options.replacen("mode=serve ", "", 1);
        }
    }
    // Switch ports: VMs, then the DHCP bridge, then spare ports.
    let mut specs: Vec<PortSpec> = (1..=cfg.vms)
        .map(|k| PortSpec::Unix {
            local: sock(&format!("sw{k}")),
            peer: Some(sock(&format!("vm{k}"))),
        })
        .collect();
    if cfg.dhcp == DhcpMode::Slirp {
        specs.push(PortSpec::Unix {
            local: sock("sw-dhcp"),
            peer: Some(sock("dhcp")),
        });
    }
    for i in 1..=spare_ports {
        specs.push(PortSpec::Unix {
            local: sock(&format!("spare{i}")),
            peer: None,
        });
    }
    let ports = net::bind_all(&specs)?;
    if !workstation {
        for i in 1..=spare_ports {
            print(&format!(
                "vms: spare switch port unix:{} (attach by sending frames to it)",
                sock(&format!("spare{i}")).display()
            ));
        }
    }
    let mut sw_cfg = SwitchConfig::new(specs.len());
    sw_cfg.faults = cfg.faults;
    sw_cfg.seed = cfg.seed;
    let sw_opts = RunOptions {
        pcap: cfg.pcap.clone(),
        stats_every: None,
        duration: None,
    };
    if let Some(p) = &cfg.pcap {
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let control = Arc::new(Control::default());
    let (sw_log_tx, sw_log_rx) = mpsc::channel::<String>();
    let sw_control = control.clone();
    let switch = thread::spawn(move || {
        net::run(ports, sw_cfg, &sw_opts, &sw_control, &mut |l| {
            let _ = sw_log_tx.send(l.to_string());
        })
    });
    let stop_switch = |control: &Control| control.stop.store(true, Ordering::Relaxed);

    let conf_dir = qemu::workspace_root().join("qemu-conf");
    let _bridge = match cfg.dhcp {
        DhcpMode::Slirp => match start_dhcp_bridge(&conf_dir, &sock("dhcp"), &sock("sw-dhcp")) {
            Ok(b) => Some(b),
            Err(e) => {
                stop_switch(&control);
                let _ = switch.join();
                return Err(e);
            }
        },
        DhcpMode::None => None,
    };

    let _descriptor = match &ws {
        Some(ws) => {
            let ports: Vec<PathBuf> = (1..=spare_ports)
                .map(|i| sock(&format!("spare{i}")))
                .collect();
            let path = cfg.descriptor.clone().unwrap_or_else(segment_file);
            let d = Descriptor::write(path, &ports, ws, cfg.dhcp);
            match d {
                Ok(d) => {
                    print(&format!(
                        "vms: dsb attaches as `{}` through {} spare switch ports (described in {})",
                        ws.id,
                        ports.len(),
                        d.path.display()
                    ));
                    Some(d)
                }
                Err(e) => {
                    stop_switch(&control);
                    let _ = switch.join();
                    return Err(e);
                }
            }
        }
        None => None,
    };

    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut pids = Vec::new();
    let mut threads = Vec::new();
    let spawned = Instant::now();
    for plan in &plans {
        let k = plan.k;
        let mut q = QemuConfig::new(1, vm_append(cfg, k, &plan.options));
        if let Some(kernel) = &cfg.kernel {
            q.kernel = kernel.clone();
        }
        q.accel = cfg.accel;
        q.firmware = cfg.firmware;
        // A staying VM serves until Ctrl-C.
        q.timeout = if stay {
            Duration::from_secs(24 * 3600)
        } else {
            cfg.timeout
        };
        q.net_file = Some("net-vm.args".into());
        q.vars = vec![
            (
                "VM_SOCK".into(),
                sock(&format!("vm{k}")).display().to_string(),
            ),
            (
                "SWITCH_SOCK".into(),
                sock(&format!("sw{k}")).display().to_string(),
            ),
            ("MAC".into(), vm_mac(k)),
        ];
        q.extra_args = plan.qemu_args.clone();
        q.cancel = Some(cancel.clone());
        let pid = Arc::new(AtomicU32::new(0));
        q.pid = Some(pid.clone());
        pids.push(pid);
        let tx = tx.clone();
        let log_path = cfg.out_dir.join(format!("vm{k}.log"));
        threads.push(thread::spawn(move || {
            let line_tx = tx.clone();
            let mut on_line = |l: &Line| {
                let _ = line_tx.send(Msg::Line(k, l.clone()));
            };
            let note_tx = tx.clone();
            let mut on_note = |n: &str| {
                let _ = note_tx.send(Msg::Line(
                    k,
                    Line {
                        at: Duration::ZERO,
                        text: format!("# {n}"),
                    },
                ));
            };
            let run = qemu::boot(&q, &mut on_line, &mut on_note);
            if let Ok(r) = &run {
                let _ = fs::write(&log_path, r.log_text());
            }
            let _ = tx.send(Msg::Done(k, run));
        }));
    }
    drop(tx);

    let mut results: Vec<Option<Result<Run, String>>> = (0..cfg.vms).map(|_| None).collect();
    // Per VM: which required lines were seen, forbidden lines seen, when its
    // goal was complete.
    let required: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            p.required
                .iter()
                .chain(cfg.expect.iter())
                .cloned()
                .collect()
        })
        .collect();
    let forbidden: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            p.forbidden
                .iter()
                .cloned()
                .chain(ALWAYS_FORBIDDEN.iter().map(|f| f.to_string()))
                .collect()
        })
        .collect();
    let mut seen: Vec<Vec<bool>> = required.iter().map(|r| vec![false; r.len()]).collect();
    let mut bad: Vec<Vec<String>> = vec![Vec::new(); cfg.vms];
    let mut ready: Vec<Option<Duration>> = vec![None; cfg.vms];
    let mut sessions_at: Vec<Option<Duration>> = vec![None; cfg.vms];
    let mut stopping = false;
    let mut announced_stay = false;
    let mut idle_start: Option<(Instant, Vec<Option<Duration>>)> = None;
    let mut idle_cpu: Vec<Option<f64>> = vec![None; cfg.vms];
    let mut cancelled = false;
    loop {
        if stop.load(Ordering::Relaxed) && !cancelled {
            cancelled = true;
            print("vms: interrupted: stopping every VM");
            cancel.store(true, Ordering::Relaxed);
        }
        while let Ok(l) = sw_log_rx.try_recv() {
            if !l.starts_with("switch: port") && !l.starts_with("switch: total") {
                print(&l);
            }
        }
        // Idle CPU: sample every QEMU once all are ready, again after the window.
        if let Some(window) = cfg.idle_cpu {
            if idle_start.is_none() && ready.iter().all(Option::is_some) {
                let samples = pids
                    .iter()
                    .map(|p| process_cpu(p.load(Ordering::Relaxed)))
                    .collect();
                idle_start = Some((Instant::now(), samples));
                print(&format!(
                    "vms: every VM is up; measuring QEMU CPU time over {} s",
                    window.as_secs()
                ));
            }
            if let Some((t0, samples)) = &idle_start {
                if t0.elapsed() >= window && idle_cpu.iter().all(Option::is_none) {
                    let span = t0.elapsed();
                    for (i, p) in pids.iter().enumerate() {
                        let now = process_cpu(p.load(Ordering::Relaxed));
                        if !matches!((samples.get(i), now), (Some(Some(_)), Some(_))) {
                            print(&format!(
                                "vms: vm{} idle cpu unknown (no /proc sample)",
                                i + 1
                            ));
                        }
                        if let (Some(Some(a)), Some(b)) = (samples.get(i), now) {
                            let pct =
                                b.saturating_sub(*a).as_secs_f64() / span.as_secs_f64() * 100.0;
                            if let Some(slot) = idle_cpu.get_mut(i) {
                                *slot = Some(pct);
                            }
                            print(&format!(
                                "vms: vm{} idle cpu {pct:.1}% of one core over {:.1} s",
                                i + 1,
                                span.as_secs_f64()
                            ));
                        }
                    }
                }
            }
        }
        // Stop every VM: the goal is met (and the idle window, if any, is
        // over), or something failed.
        let all_ready = ready.iter().all(Option::is_some);
        let idle_done = cfg.idle_cpu.is_none() || idle_cpu.iter().any(Option::is_some);
        // A VM that ends before the harness stops it has failed; one that
        // ends after a Ctrl-C has been stopped.
        let failed = bad.iter().any(|b| !b.is_empty())
            || results.iter().any(Option::is_some) && !stopping && !cancelled;
        if stay && all_ready && !announced_stay {
            announced_stay = true;
            print(&format!(
                "vms: every VM reached its goal ({:.0} ms after the first spawn); serving until Ctrl-C. \
                 From another terminal: dsb peers, dsb ping node-1, dsb put node-1 <file>",
                ready.iter().flatten().max().unwrap_or(&Duration::ZERO).as_secs_f64() * 1e3
            ));
        }
        if cancelled {
            stopping = true;
        }
        if !stopping && ((all_ready && idle_done && !stay) || failed) {
            stopping = true;
            if failed {
                print("vms: a VM failed (forbidden line or exit): stopping every VM");
            } else {
                print(&format!(
                    "vms: every VM reached its goal ({:.0} ms after the first spawn): stopping them",
                    ready.iter().flatten().max().unwrap_or(&Duration::ZERO).as_secs_f64() * 1e3
                ));
            }
            cancel.store(true, Ordering::Relaxed);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Line(k, line)) => {
                let i = k - 1;
                if let (Some(req), Some(seen)) = (required.get(i), seen.get_mut(i)) {
                    for (want, s) in req.iter().zip(seen.iter_mut()) {
                        if !*s && matches(&line.text, want) {
                            *s = true;
                            if want.starts_with("dsoftbusd: session up") {
                                sessions_at[i] = Some(spawned.elapsed());
                            }
                        }
                    }
                    if ready[i].is_none() && seen.iter().all(|s| *s) {
                        ready[i] = Some(spawned.elapsed());
                    }
                }
                if let (Some(forb), Some(b)) = (forbidden.get(i), bad.get_mut(i)) {
                    for f in forb {
                        if line.text.contains(f.as_str()) && !b.contains(f) {
                            b.push(f.clone());
                        }
                    }
                }
                print(&format!("[vm{k}] {}", line.text));
            }
            Ok(Msg::Done(k, run)) => {
                if let Some(slot) = results.get_mut(k - 1) {
                    *slot = Some(run);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for t in threads {
        let _ = t.join();
    }
    drop(_bridge);
    stop_switch(&control);
    let report = switch
        .join()
        .map_err(|_| "switch thread panicked".to_string())??;
    let switch_lines: Vec<String> = sw_log_rx
        .try_iter()
        .filter(|l| l.starts_with("switch: port") || l.starts_with("switch: total"))
        .collect();
    let vms = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let run = r.unwrap_or_else(|| Err("no result".into()));
            let missing = required
                .get(i)
                .into_iter()
                .flatten()
                .zip(seen.get(i).into_iter().flatten())
                .filter(|(_, s)| !**s)
                .map(|(w, _)| w.trim_end().to_string())
                .collect();
            VmResult {
                k: i + 1,
                id: plans.get(i).map_or_else(String::new, |p| p.id.clone()),
                run,
                idle_cpu_pct: idle_cpu.get(i).copied().flatten(),
                missing,
                forbidden: bad.get(i).cloned().unwrap_or_default(),
                goal_at: ready.get(i).copied().flatten(),
                sessions_at: sessions_at.get(i).copied().flatten(),
            }
        })
        .collect();
    Ok(Outcome {
        vms,
        switch: report.ports,
        switch_lines,
        cancelled,
        stayed: stay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_and_addresses() {
        assert_eq!(vm_mac(3), "52:54:00:12:34:03");
        assert_eq!(vm_static_ip(8), "10.0.2.108");
        assert_eq!(
            expand_template("id={id} k={k} mac={mac} ip={ip}", 2),
            "id=node-2 k=2 mac=52:54:00:12:34:02 ip=10.0.2.102"
        );
        let mut cfg = VmsConfig::new(2);
        cfg.append = "log=info".into();
        cfg.vm_template = "id={id}".into();
        assert_eq!(
            vm_append(&cfg, 1, "mode=serve"),
            "mode=serve log=info id=node-1 dhcp_timeout_ms=1000"
        );
        cfg.dhcp = DhcpMode::Slirp;
        assert_eq!(vm_append(&cfg, 1, ""), "log=info id=node-1");
        cfg.append.clear();
        assert_eq!(vm_append(&cfg, 2, ""), "id=node-2");
        cfg.dhcp = DhcpMode::None;
        cfg.append = "dhcp_timeout_ms=300".into();
        assert_eq!(vm_append(&cfg, 2, ""), "dhcp_timeout_ms=300 id=node-2");
    }

    #[test]
    fn vm_args_have_no_leftover_placeholders() {
        let mut q = QemuConfig::new(1, "");
        q.net_file = Some("net-vm.args".into());
        assert!(qemu::command_args(&q, Firmware::Qboot)
            .unwrap_err()
            .contains("@VM_SOCK@"));
        q.vars = vec![
            ("VM_SOCK".into(), "/tmp/a".into()),
            ("SWITCH_SOCK".into(), "/tmp/b".into()),
            ("MAC".into(), vm_mac(1)),
        ];
        let args = qemu::command_args(&q, Firmware::Qboot).unwrap();
        assert!(args
            .iter()
            .any(|a| a.contains("local.path=/tmp/a") && a.contains("remote.path=/tmp/b")));
        assert!(args.iter().any(|a| a.ends_with("mac=52:54:00:12:34:01")));
        let bridge = qemu::read_args_with(
            &qemu::workspace_root().join("qemu-conf/dhcp-bridge.args"),
            None,
            &[
                ("BRIDGE_SOCK".into(), "/tmp/c".into()),
                ("SWITCH_SOCK".into(), "/tmp/d".into()),
            ],
        )
        .unwrap();
        assert!(bridge.iter().any(|a| a == "user,id=u0,restrict=on"));
    }

    #[test]
    fn proc_stat_of_ourselves_parses() {
        assert!(process_cpu(std::process::id()).is_some());
        assert!(process_cpu(0).is_none());
    }

    #[test]
    fn bad_vm_counts_are_refused() {
        let stop = AtomicBool::new(false);
        for n in [0, 1, 9] {
            let e = run(&VmsConfig::new(n), &stop, &mut |_| {}).unwrap_err();
            assert!(e.starts_with("VMS: expected 2..=8"), "{e}");
        }
    }
}
