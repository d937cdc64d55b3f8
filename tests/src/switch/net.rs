//! The switch on real sockets: every port is one datagram socket on the
//! loopback interface (UDP) or a unix datagram socket; one datagram carries
//! one raw Ethernet frame (no length prefix, no FCS, no virtio header).
//!
//! A port sends to its configured peer address, or, without one, to the
//! source address of the last datagram it received (so a tool can attach to
//! a free port just by sending to it). One thread, `poll(2)` on every socket,
//! time from a monotonic clock; the switch core does the rest.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use smoltcp::time::Instant;

use super::core::{PortStats, Switch, SwitchConfig, MAX_PORTS};
use super::pcap::PcapFile;

/// Datagrams read from one port per loop turn (so one busy port cannot starve the rest).
pub const RX_BURST: usize = 64;
/// Kernel socket buffer asked for on every port, bytes.
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Longest wait in `poll(2)`, so a stop request is seen promptly.
const MAX_WAIT_MS: i32 = 100;

/// Where one port lives, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSpec {
    /// `udp:<loopback ip>:<port>[,peer=<loopback ip>:<port>]`.
    Udp {
        local: SocketAddr,
        peer: Option<SocketAddr>,
    },
    /// `unix:<path>[,peer=<path>]`.
    Unix {
        local: PathBuf,
        peer: Option<PathBuf>,
    },
}

impl PortSpec {
    /// Parses one `--port` value; one-line errors. UDP addresses must be loopback.
    pub fn parse(s: &str) -> Result<PortSpec, String> {
        let (main, peer) = match s.split_once(",peer=") {
            Some((m, p)) => (m, Some(p)),
            None => (s, None),
        };
        if let Some(addr) = main.strip_prefix("udp:") {
            let local = parse_loopback(s, addr)?;
            let peer = peer.map(|p| parse_loopback(s, p)).transpose()?;
            Ok(PortSpec::Udp { local, peer })
        } else if let Some(path) = main.strip_prefix("unix:") {
            if path.is_empty() || peer.is_some_and(str::is_empty) {
                return Err(format!("port {s:?}: empty unix socket path"));
            }
            Ok(PortSpec::Unix {
                local: PathBuf::from(path),
                peer: peer.map(PathBuf::from),
            })
        } else {
            Err(format!(
                "port {s:?}: expected udp:<127.x.x.x>:<port>[,peer=...] or unix:<path>[,peer=<path>]"
            ))
        }
    }
}

fn parse_loopback(spec: &str, addr: &str) -> Result<SocketAddr, String> {
    let a: SocketAddr = addr
        .parse()
        .map_err(|_| format!("port {spec:?}: {addr:?} is not an ip:port address"))?;
    if !a.ip().is_loopback() {
        return Err(format!(
            "port {spec:?}: {} is not a loopback address (guest traffic must stay on this machine)",
            a.ip()
        ));
    }
    Ok(a)
}

enum Sock {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Peer {
    Udp(SocketAddr),
    Unix(PathBuf),
}

/// One bound port.
pub struct BoundPort {
    sock: Sock,
    peer: Option<Peer>,
    /// The peer was configured (not learnt from traffic).
    peer_fixed: bool,
    /// Our unix socket file, removed when the port is dropped.
    unlink: Option<PathBuf>,
}

impl BoundPort {
    /// Binds one port as specified. A stale unix socket file at the path is replaced.
    pub fn bind(spec: &PortSpec) -> Result<BoundPort, String> {
        let port = match spec {
            PortSpec::Udp { local, peer } => {
                let s = UdpSocket::bind(local)
                    .map_err(|e| format!("port udp:{local}: cannot bind: {e}"))?;
                BoundPort {
                    sock: Sock::Udp(s),
                    peer: peer.map(Peer::Udp),
                    peer_fixed: peer.is_some(),
                    unlink: None,
                }
            }
            PortSpec::Unix { local, peer } => {
                remove_stale_socket(local)?;
                let s = UnixDatagram::bind(local)
                    .map_err(|e| format!("port unix:{}: cannot bind: {e}", local.display()))?;
                BoundPort {
                    sock: Sock::Unix(s),
                    peer: peer.clone().map(Peer::Unix),
                    peer_fixed: peer.is_some(),
                    unlink: Some(local.clone()),
                }
            }
        };
        match &port.sock {
            Sock::Udp(s) => s.set_nonblocking(true),
            Sock::Unix(s) => s.set_nonblocking(true),
        }
        .map_err(|e| format!("port: cannot make the socket non-blocking: {e}"))?;
        set_buffers(port.fd());
        Ok(port)
    }

    fn fd(&self) -> i32 {
        match &self.sock {
            Sock::Udp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }

    /// The local address, e.g. `udp 127.0.0.1:40000` or `unix /tmp/sw0.sock`.
    pub fn local(&self) -> String {
        match &self.sock {
            Sock::Udp(s) => match s.local_addr() {
                Ok(a) => format!("udp {a}"),
                Err(_) => "udp ?".into(),
            },
            Sock::Unix(s) => match s
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            {
                Some(p) => format!("unix {}", p.display()),
                None => "unix ?".into(),
            },
        }
    }

    /// The local UDP address (for ports bound to port 0).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        match &self.sock {
            Sock::Udp(s) => s.local_addr().ok(),
            Sock::Unix(_) => None,
        }
    }

    fn describe(&self) -> String {
        let peer = match &self.peer {
            Some(Peer::Udp(a)) => format!("{a}"),
            Some(Peer::Unix(p)) => p.display().to_string(),
            None => "-".into(),
        };
        format!(
            "{} peer {}{}",
            self.local(),
            peer,
            if self.peer_fixed || self.peer.is_none() {
                ""
            } else {
                " (learnt)"
            }
        )
    }

    /// Reads one datagram into `buf`; learns the peer unless it is fixed.
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let (n, from) = match &self.sock {
            Sock::Udp(s) => match s.recv_from(buf) {
                Ok((n, a)) => (n, Some(Peer::Udp(a))),
                Err(_) => return None,
            },
            Sock::Unix(s) => match s.recv_from(buf) {
                Ok((n, a)) => (n, a.as_pathname().map(|p| Peer::Unix(p.to_path_buf()))),
                Err(_) => return None,
            },
        };
        if !self.peer_fixed {
            if let Some(f) = from {
                self.peer = Some(f);
            }
        }
        Some(n)
    }

    fn send(&self, frame: &[u8]) -> Result<(), SendError> {
        let r = match (&self.sock, &self.peer) {
            (_, None) => return Err(SendError::NoPeer),
            (Sock::Udp(s), Some(Peer::Udp(a))) => s.send_to(frame, a),
            (Sock::Unix(s), Some(Peer::Unix(p))) => s.send_to(frame, p),
            _ => return Err(SendError::Failed),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                Err(SendError::NoPeer)
            }
            Err(_) => Err(SendError::Failed),
        }
    }
}

impl Drop for BoundPort {
    fn drop(&mut self) {
        if let Some(p) = &self.unlink {
            let _ = std::fs::remove_file(p);
        }
    }
}

enum SendError {
    NoPeer,
    Failed,
}

fn remove_stale_socket(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(|e| {
            format!(
                "port unix:{}: cannot remove stale socket: {e}",
                path.display()
            )
        }),
        Ok(_) => Err(format!(
            "port unix:{}: path exists and is not a socket",
            path.display()
        )),
        Err(_) => Ok(()),
    }
}

fn set_buffers(fd: i32) {
    let size = SOCKET_BUFFER as libc::c_int;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: `fd` is an open socket we own; the option value is a c_int of
        // the size passed. Failure only leaves the default size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Binds every port; at most [`MAX_PORTS`].
pub fn bind_all(specs: &[PortSpec]) -> Result<Vec<BoundPort>, String> {
    if specs.is_empty() || specs.len() > MAX_PORTS {
        return Err(format!(
            "ports: {} given, expected 1..={MAX_PORTS}",
            specs.len()
        ));
    }
    specs.iter().map(BoundPort::bind).collect()
}

/// Options of one run of the socket loop.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Write every frame received (before faults) to this pcap file.
    pub pcap: Option<PathBuf>,
    /// Print the counters this often.
    pub stats_every: Option<std::time::Duration>,
    /// Stop by itself after this long.
    pub duration: Option<std::time::Duration>,
}

/// Flags another thread or a signal handler sets.
#[derive(Debug, Default)]
pub struct Control {
    /// Stop the loop (counters are printed once more).
    pub stop: AtomicBool,
    /// Print the counters now.
    pub report: AtomicBool,
}

/// Final counters of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per port, in port order.
    pub ports: Vec<PortStats>,
    /// Frames written to the pcap.
    pub pcap_frames: u64,
}

/// Prints one `switch: port <i> ...` line per port and a `switch: total ...` line.
pub fn report_lines(sw: &Switch, ports: &[BoundPort]) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        if let Some(s) = sw.stats(i) {
            lines.push(format!("switch: port {i} {s} ({})", p.describe()));
        }
    }
    lines.push(format!(
        "switch: total {} macs={} in_flight={}",
        sw.totals(),
        sw.table().len(),
        sw.in_flight()
    ));
    lines
}

/// Runs the switch on `ports` until `control.stop` (or `opts.duration`);
/// `log` gets every status line (startup, periodic and final counters).
pub fn run(
    mut ports: Vec<BoundPort>,
    cfg: SwitchConfig,
    opts: &RunOptions,
    control: &Control,
    log: &mut dyn FnMut(&str),
) -> Result<Report, String> {
    let mut cfg = cfg;
    cfg.ports = ports.len();
    let mut sw = Switch::new(cfg)?;
    let mut pcap = opts.pcap.as_deref().map(PcapFile::create).transpose()?;
    let started = std::time::Instant::now();
    let wall_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    log(&format!(
        "switch: {} ports, seed {}, faults {}{}",
        ports.len(),
        sw.config().seed,
        sw.config().faults.describe(),
        match &opts.pcap {
            Some(p) => format!(", pcap {}", p.display()),
            None => String::new(),
        }
    ));
    for (i, p) in ports.iter().enumerate() {
        log(&format!("switch: port {i} {}", p.describe()));
    }
    let mut buf = vec![0u8; 65_536];
    let mut next_stats = opts.stats_every.map(|d| started + d);
    let mut fds: Vec<libc::pollfd> = ports
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        if control.stop.load(Ordering::Relaxed) {
            break;
        }
        let elapsed = started.elapsed();
        if opts.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        let now = Instant::from_micros(elapsed.as_micros() as i64);
        // Wait for a datagram, the next due frame, the next report or a stop.
        let mut wait = MAX_WAIT_MS;
        if let Some(at) = sw.poll_at() {
            let ms = (at - now.min(at)).total_micros().div_ceil(1000);
            wait = wait.min(ms as i32);
        }
        if let Some(t) = next_stats {
            let ms = t
                .saturating_duration_since(std::time::Instant::now())
                .as_millis();
            wait = wait.min(ms as i32);
        }
        for f in fds.iter_mut() {
            f.revents = 0;
        }
        // SAFETY: `fds` is a valid array of pollfd of the given length for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait.max(0)) };
        let now = Instant::from_micros(started.elapsed().as_micros() as i64);
        let wall = Instant::from_micros(wall_start + now.total_micros());
        if n > 0 {
            for (i, f) in fds.iter().enumerate() {
                if f.revents & libc::POLLIN == 0 {
                    continue;
                }
                let Some(port) = ports.get_mut(i) else {
                    continue;
                };
                for _ in 0..RX_BURST {
                    let Some(len) = port.recv(&mut buf) else {
                        break;
                    };
                    let frame = buf.get(..len).unwrap_or(&[]);
                    if let Some(p) = pcap.as_mut() {
                        p.record(wall, frame);
                    }
                    sw.ingress(now, i, frame);
                }
            }
        }
        while let Some((i, frame)) = sw.poll_transmit(now) {
            match ports.get(i).map(|p| p.send(&frame)) {
                Some(Ok(())) => {}
                Some(Err(SendError::NoPeer)) | None => sw.note_no_peer(i, frame.len()),
                Some(Err(SendError::Failed)) => sw.note_send_error(i, frame.len()),
            }
        }
        let due = next_stats.is_some_and(|t| std::time::Instant::now() >= t);
        if due || control.report.swap(false, Ordering::Relaxed) {
            for l in report_lines(&sw, &ports) {
                log(&l);
            }
            if let Some(p) = pcap.as_mut() {
                smoltcp::phy::PcapSink::flush(p);
            }
            if due {
                next_stats = opts.stats_every.map(|d| std::time::Instant::now() + d);
            }
        }
    }
    for l in report_lines(&sw, &ports) {
        log(&l);
    }
    let mut pcap_frames = 0;
    if let Some(p) = pcap.as_mut() {
        smoltcp::phy::PcapSink::flush(p);
        pcap_frames = p.frames;
        if let Some(e) = p.take_error() {
            log(&format!("switch: pcap write failed: {e}"));
        }
    }
    Ok(Report {
        ports: (0..sw.ports())
            .filter_map(|i| sw.stats(i).cloned())
            .collect(),
        pcap_frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_and_refuse_non_loopback() {
        assert_eq!(
            PortSpec::parse("udp:127.0.0.1:4000").unwrap(),
            PortSpec::Udp {
                local: "127.0.0.1:4000".parse().unwrap(),
                peer: None
            }
        );
        assert_eq!(
            PortSpec::parse("udp:127.0.0.1:4000,peer=127.0.0.1:4001").unwrap(),
            PortSpec::Udp {
                local: "127.0.0.1:4000".parse().unwrap(),
                peer: Some("127.0.0.1:4001".parse().unwrap())
            }
        );
        assert_eq!(
            PortSpec::parse("unix:/tmp/a.sock,peer=/tmp/b.sock").unwrap(),
            PortSpec::Unix {
                local: "/tmp/a.sock".into(),
                peer: Some("/tmp/b.sock".into())
            }
        );
        let e = PortSpec::parse("udp:0.0.0.0:4000").unwrap_err();
        assert!(e.contains("not a loopback address"), "{e}");
        let e = PortSpec::parse("udp:127.0.0.1:4000,peer=10.0.0.1:5").unwrap_err();
        assert!(e.contains("not a loopback address"), "{e}");
        assert!(PortSpec::parse("tcp:127.0.0.1:1")
            .unwrap_err()
            .contains("expected udp:"));
        assert!(PortSpec::parse("udp:localhost").is_err());
        assert!(PortSpec::parse("unix:").is_err());
    }
}
