//! `dsb` as one more node on the bus: the image's node runtime
//! (`dsb_app::node::NodeOn`) with its own identity, over either a userspace
//! smoltcp stack on a switch port of a segment, or the operating system's
//! sockets on a real LAN (`dsb_host`), driven by a loop that sleeps until
//! the node's next deadline or the next packet.

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use dsb_app::net::{GatewayPing, NetStack, NetStackConfig, Network};
use dsb_app::node::{Direction, NodeConfig, NodeEvent, NodeOn};
use dsb_host::HostStack;
use dsb_noise::{DeviceId, Identity};
use dsb_transports::transport::{TransportError, TransportKind};
use dsb_transports::udpsec::RejectCode;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};

use crate::device::SwitchPort;
use crate::error::{Failure, Result};
use crate::segment::Segment;

/// Set by SIGINT / SIGTERM.
pub static STOP: AtomicBool = AtomicBool::new(false);
/// Node events kept for the command at most (oldest dropped).
const EVENT_CAP: usize = 4096;
/// Longest sleep between polls.
const MAX_SLEEP: StdDuration = StdDuration::from_millis(20);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM end the current command cleanly.
pub fn catch_signals() {
    let handler = on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// 32 bytes from the OS's random source.
pub fn os_seed() -> Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| Failure::error(format!("cannot read /dev/urandom: {e}")))?;
    Ok(seed)
}

/// Reads and checks an identity file (`dsb keygen`, the VMs' fw_cfg files).
pub fn load_identity(path: &Path) -> Result<Identity> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(dsb_noise::MAX_IDENTITY_FILE_LEN as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| {
            Failure::error(format!("cannot read identity file {}: {e}", path.display()))
        })?;
    let identity = dsb_noise::parse_identity_file(&bytes).map_err(|e| {
        Failure::error(format!(
            "{}: not a usable identity file ({e})",
            path.display()
        ))
    });
    // The secret bytes are dropped here; `Identity` zeroizes its own.
    bytes.iter_mut().for_each(|b| *b = 0);
    identity
}

/// How `dsb` joins.
pub struct HostOptions {
    pub identity: Option<std::path::PathBuf>,
    /// Segment mode: our address on the segment.
    pub ip: Option<Ipv4Cidr>,
    /// LAN mode: the local address to use (default: the default route's).
    pub bind: Option<Ipv4Address>,
    pub tcp_port: u16,
    pub udpsec_port: u16,
}

/// What lies beneath our node, and how to wait for it.
pub trait Link: Network {
    /// Sleeps until a packet may be waiting or `timeout` passed.
    fn wait(&self, timeout: StdDuration);
}

impl Link for NetStack<SwitchPort> {
    fn wait(&self, timeout: StdDuration) {
        self.device().wait(timeout);
    }
}

impl Link for HostStack {
    fn wait(&self, timeout: StdDuration) {
        if HostStack::wait(self, timeout).is_err() {
            std::thread::sleep(timeout.min(MAX_SLEEP));
        }
    }
}

/// Our identity: the file given, the segment's workstation identity, or
/// keys made for this run.
fn identity(path: Option<&Path>, rng: &mut ChaCha20Rng) -> Result<Identity> {
    match path {
        Some(p) => load_identity(p),
        None => {
            let id = format!("dsb-{:04x}", std::process::id() & 0xffff);
            Identity::generate(&id, rng)
                .map_err(|e| Failure::error(format!("cannot make keys: {e}")))
        }
    }
}

fn node_config(identity: &Identity, opts: &HostOptions) -> NodeConfig {
    let mut cfg = NodeConfig::new(opts.tcp_port);
    cfg.udpsec_port = Some(opts.udpsec_port);
    cfg.boot_epoch = next_epoch(identity.device_id().as_str());
    cfg
}

/// Parses `a.b.c.d/p` (or `a.b.c.d`, /24).
pub fn parse_ip(s: &str) -> Result<Ipv4Cidr> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, p.parse::<u8>().ok()),
        None => (s, Some(24)),
    };
    match (addr.parse::<Ipv4Address>(), prefix) {
        (Ok(a), Some(p)) if (8..=30).contains(&p) && !a.is_unspecified() => Ok(Ipv4Cidr::new(a, p)),
        _ => Err(Failure::usage(format!(
            "bad --ip {s:?}: expected a.b.c.d/8..30"
        ))),
    }
}

/// One node of ours and its loop.
pub struct Host<N: Link> {
    pub node: NodeOn<N>,
    rng: ChaCha20Rng,
    start: std::time::Instant,
    events: VecDeque<NodeEvent>,
}

impl Host<HostStack> {
    /// Joins a real LAN through the operating system's sockets.
    pub fn lan(opts: &HostOptions) -> Result<Host<HostStack>> {
        let mut rng = ChaCha20Rng::from_seed(os_seed()?);
        let identity = identity(opts.identity.as_deref(), &mut rng)?;
        let bind = opts.bind.map(|a| std::net::Ipv4Addr::from(a.octets()));
        let stack = HostStack::new(bind).map_err(|e| {
            Failure::error(format!(
                "cannot use the LAN ({}); pass --bind <an address of this host>",
                e.label()
            ))
        })?;
        let cfg = node_config(&identity, opts);
        Ok(Host {
            node: NodeOn::new(stack, identity, cfg),
            rng,
            start: std::time::Instant::now(),
            events: VecDeque::new(),
        })
    }
}

impl Host<NetStack<SwitchPort>> {
    /// Attaches to `segment` with our identity.
    pub fn segment(segment: &Segment, opts: &HostOptions) -> Result<Host<NetStack<SwitchPort>>> {
        let mut rng = ChaCha20Rng::from_seed(os_seed()?);
        let identity = identity(
            opts.identity.as_deref().or(segment.identity.as_deref()),
            &mut rng,
        )?;
        let (port, k) = SwitchPort::attach_any(&segment.ports).map_err(Failure::unreachable)?;
        // One address per spare port, and one MAC per address: the port's
        // lock makes both unique among the `dsb`s on the segment, and a run
        // after another on the same port looks like the same station, so the
        // peers' neighbour caches stay right (a new MAC behind a cached
        // address would be unreachable until the cache entry expired).
        let k = u8::try_from(k).unwrap_or(u8::MAX).min(50);
        let cidr = opts
            .ip
            .unwrap_or_else(|| Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 200 + k), 24));
        let [_, _, _, last] = cidr.address().octets();
        let mac = EthernetAddress([0x02, 0x64, 0x73, 0x62, 0x00, last]);
        let mut stack_cfg = NetStackConfig::new(mac, rand_core::RngCore::next_u64(&mut rng));
        stack_cfg.fallback = Some(cidr);
        stack_cfg.gateway_ping = GatewayPing::Optional;
        stack_cfg.dhcp_timeout = if segment.dhcp {
            Duration::from_secs(3)
        } else {
            Duration::from_millis(1)
        };
        let start = std::time::Instant::now();
        let stack = NetStack::new(port, stack_cfg, Instant::ZERO)
            .map_err(|e| Failure::error(format!("network stack: {}", e.label())))?;
        let cfg = node_config(&identity, opts);
        Ok(Host {
            node: NodeOn::new(stack, identity, cfg),
            rng,
            start,
            events: VecDeque::new(),
        })
    }
}

impl<N: Link> Host<N> {
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    /// Polls the node, keeps its events, sleeps until there is work.
    pub fn step(&mut self) {
        let now = self.now();
        self.node.poll(now, &mut self.rng);
        while let Some(e) = self.node.next_event() {
            if self.events.len() >= EVENT_CAP {
                self.events.pop_front();
            }
            self.events.push_back(e);
        }
        if !self.events.is_empty() {
            return;
        }
        let now = self.now();
        let sleep = self
            .node
            .poll_at(now)
            .map_or(MAX_SLEEP, |t| {
                StdDuration::from_micros((t - now.min(t)).total_micros())
            })
            .min(MAX_SLEEP);
        self.node.stack().wait(sleep);
    }

    pub fn next_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// Steps until `f` returns `Some` (given each event, then `None` once
    /// per step) or `limit` passes (`Err` unreachable with `what`).
    pub fn run<T>(
        &mut self,
        limit: StdDuration,
        what: impl Fn() -> String,
        mut f: impl FnMut(&mut NodeOn<N>, Option<&NodeEvent>) -> Option<Result<T>>,
    ) -> Result<T> {
        let end = std::time::Instant::now() + limit;
        loop {
            if STOP.load(Ordering::Relaxed) {
                return Err(Failure::error("interrupted"));
            }
            while let Some(e) = self.next_event() {
                if let Some(r) = f(&mut self.node, Some(&e)) {
                    return r;
                }
            }
            if let Some(r) = f(&mut self.node, None) {
                return r;
            }
            if std::time::Instant::now() >= end {
                return Err(Failure::unreachable(what()));
            }
            self.step();
        }
    }

    /// Closes every session before the process exits, so that peers free
    /// its connection at once instead of after their idle timeout: GOAWAY,
    /// then the transport's FIN or CLOSE, with at most [`LEAVE_TIME`] to let
    /// them out and be answered.
    pub fn leave(&mut self) {
        let peers: Vec<DeviceId> = self.node.sessions().map(|s| s.peer).collect();
        if peers.is_empty() {
            return;
        }
        for p in &peers {
            self.node.disconnect(p);
        }
        let end = std::time::Instant::now() + LEAVE_TIME;
        while std::time::Instant::now() < end {
            self.step();
            self.events.clear();
        }
    }

    /// Waits until discovery knows `peer`.
    pub fn find(&mut self, peer: &DeviceId, limit: StdDuration) -> Result<()> {
        let secs = limit.as_secs_f64();
        self.run(
            limit,
            || {
                format!(
                    "unknown peer {}: not heard on the segment within {secs:.0} s",
                    peer.as_str()
                )
            },
            |node, _| {
                node.peers()
                    .any(|p| p.device_id.as_bytes() == peer.as_bytes())
                    .then_some(Ok(()))
            },
        )
    }

    /// A session with `peer`: found, dialled, authenticated. A refusal
    /// that names a trust reason is `denied` at once; a bare refusal (TCP
    /// carries no reason) is retried by the node and is `denied` only if no
    /// session came by the time limit; silence is `unreachable`.
    pub fn session(&mut self, peer: &DeviceId, limit: StdDuration) -> Result<TransportKind> {
        let end = std::time::Instant::now() + limit;
        self.find(peer, limit)?;
        if let Some(s) = self.node.session_stats(peer) {
            return Ok(s.kind);
        }
        // A peer with the lower id dials us as soon as it has our announce
        // (the protocol's tie-break); dialling it at the same time would
        // only cross the two handshakes. Give it a moment first.
        if peer.as_bytes() < self.node.device_id().as_bytes() {
            let grace = DIAL_GRACE.min(end.saturating_duration_since(std::time::Instant::now()));
            let up = self.run(grace, String::new, |node, _| {
                node.session_stats(peer).map(|s| Ok(s.kind))
            });
            if let Ok(kind) = up {
                return Ok(kind);
            }
        }
        self.node
            .connect(peer)
            .map_err(|e| Failure::error(format!("cannot dial {}: {}", peer.as_str(), e.label())))?;
        let left = end.saturating_duration_since(std::time::Instant::now());
        let secs = limit.as_secs_f64();
        let mut refusal: Option<&'static str> = None;
        let r = self.run(
            left,
            || format!("no session with {} within {secs:.0} s", peer.as_str()),
            |node, ev| match ev {
                Some(NodeEvent::SessionUp { peer: p, kind, .. }) if p == peer => Some(Ok(*kind)),
                Some(NodeEvent::HandshakeFailed {
                    peer: Some(p),
                    error,
                    direction: Direction::Outbound,
                }) if p == peer => match refusal_kind(error) {
                    Refusal::Trust => Some(Err(denied(peer, error.label()))),
                    Refusal::Retry => {
                        refusal = Some(error.label());
                        None
                    }
                    Refusal::None => None,
                },
                _ => node.session_stats(peer).map(|s| Ok(s.kind)),
            },
        );
        match (r, refusal) {
            // Refused every time and never dialled by the peer either.
            (Err(_), Some(label)) => Err(Failure::denied(format!(
                "{} refused every handshake we sent ({label}) and opened no session \
                 itself within {secs:.0} s: it does not trust this identity, or takes no sessions",
                peer.as_str()
            ))),
            (r, _) => r,
        }
    }
}

/// How long `dsb` lets its goodbyes out before exiting.
const LEAVE_TIME: StdDuration = StdDuration::from_millis(150);

/// How long `dsb` waits for a peer with a lower id to dial it.
const DIAL_GRACE: StdDuration = StdDuration::from_millis(1500);

/// What a failed outbound handshake means for `dsb session`.
enum Refusal {
    /// The peer does not trust us: stop now.
    Trust,
    /// Refused, reason unknown or passing (TCP RST, `session-exists`: the
    /// peer is opening the session itself, `not-accepting`): the node tries
    /// again; a denial only if no session comes at all.
    Retry,
    /// Not a refusal (timeout, unreachable): the node tries again.
    None,
}

fn refusal_kind(error: &TransportError) -> Refusal {
    match error {
        TransportError::Rejected(
            RejectCode::UnknownPeer | RejectCode::IdentityMismatch | RejectCode::BadSignature,
        ) => Refusal::Trust,
        e if e.is_identity_mismatch() => Refusal::Trust,
        e if e.is_refusal() => Refusal::Retry,
        _ => Refusal::None,
    }
}

fn denied(peer: &DeviceId, label: &str) -> Failure {
    Failure::denied(format!(
        "{} refused our session ({label}): it does not trust this identity",
        peer.as_str()
    ))
}

/// This run's boot epoch for `id`: announce sequence numbers must grow
/// from one run to the next (peers drop older ones as replays, and a newer
/// epoch tells them the old session is dead). The clock's seconds, but
/// always above the last run's, which is kept in
/// `<runtime dir>/dsoftbus/epoch-<id>` (two runs may start in one second).
fn next_epoch(id: &str) -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let Some(dir) = crate::segment::descriptor_path()
        .parent()
        .map(Path::to_path_buf)
    else {
        return now;
    };
    let path = dir.join(format!("epoch-{id}"));
    let last = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    let epoch = match last {
        Some(l) if l >= now => l.saturating_add(1),
        _ => now,
    };
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(&path, epoch.to_string());
    epoch
}

/// Parses a device id argument.
pub fn device_id(s: &str) -> Result<DeviceId> {
    DeviceId::new(s).map_err(|_| {
        Failure::usage(format!(
            "bad device id {s:?}: 1..=32 bytes of [A-Za-z0-9._-]"
        ))
    })
}
