//! A station on a segment switch (`docs/protocol.md`, "Segment switch port
//! protocol"): a smoltcp `phy::Device` over one unix datagram socket, one
//! Ethernet frame per datagram. Our socket is bound to a private path
//! (removed on drop); frames go to the switch's port, which learns our
//! address from the first one and forwards the segment's frames back.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

/// Largest frame on the segment (1514 bytes plus a VLAN tag).
pub const MAX_FRAME: usize = 1518;
/// Frames read ahead of the stack at most.
const RX_QUEUE: usize = 64;

/// Counters of the port.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames the kernel would not take (socket buffer full): dropped, as a
    /// wire would.
    pub tx_dropped: u64,
}

/// Our end of a switch port.
pub struct SwitchPort {
    sock: UnixDatagram,
    /// `<port>.lock`, held with `flock` while we use the port.
    _lock: std::fs::File,
    own: PathBuf,
    port: PathBuf,
    rx: VecDeque<Vec<u8>>,
    pub stats: PortStats,
}

impl SwitchPort {
    /// Takes the first of `ports` no other `dsb` holds; returns it and its
    /// index in `ports`.
    pub fn attach_any(ports: &[PathBuf]) -> Result<(SwitchPort, usize), String> {
        let mut last = String::from("no switch port given");
        for (i, p) in ports.iter().enumerate() {
            match SwitchPort::attach(p) {
                Ok(s) => return Ok((s, i)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Locks the switch port `port` (`<port>.lock`), binds our socket in
    /// `$TMPDIR` and aims it at the port.
    pub fn attach(port: &Path) -> Result<SwitchPort, String> {
        use std::os::fd::AsRawFd as _;
        if !port.exists() {
            return Err(format!(
                "no switch port at {} (is `make run VMS=N` running?)",
                port.display()
            ));
        }
        let mut lock_path = port.as_os_str().to_os_string();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot lock {}: {e}", port.display()))?;
        // SAFETY: a valid open file descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!(
                "switch port {} is in use by another dsb (one station per port)",
                port.display()
            ));
        }
        let own = std::env::temp_dir().join(format!("dsb-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&own);
        let sock =
            UnixDatagram::bind(&own).map_err(|e| format!("cannot bind {}: {e}", own.display()))?;
        sock.set_nonblocking(true)
            .map_err(|e| format!("cannot make {} non-blocking: {e}", own.display()))?;
        Ok(SwitchPort {
            sock,
            _lock: lock,
            own,
            port: port.to_path_buf(),
            rx: VecDeque::new(),
            stats: PortStats::default(),
        })
    }

    /// Reads what the switch sent, up to the queue's cap.
    fn fill(&mut self) {
        let mut buf = [0u8; MAX_FRAME + 1];
        while self.rx.len() < RX_QUEUE {
            match self.sock.recv(&mut buf) {
                Ok(n) if (14..=MAX_FRAME).contains(&n) => {
                    self.stats.rx_frames += 1;
                    self.rx.push_back(buf[..n].to_vec());
                }
                Ok(_) => {} // not a frame: ignore
                Err(_) => break,
            }
        }
    }

    /// Waits until a frame arrives or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        if !self.rx.is_empty() {
            return;
        }
        let mut fd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(1000) as libc::c_int;
        // SAFETY: one valid pollfd, its count, a bounded timeout.
        unsafe {
            libc::poll(&mut fd, 1, ms);
        }
    }

    fn send(&mut self, frame: &[u8]) {
        match self.sock.send_to(frame, &self.port) {
            Ok(_) => self.stats.tx_frames += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => self.stats.tx_dropped += 1,
            Err(_) => self.stats.tx_dropped += 1,
        }
    }
}

impl Drop for SwitchPort {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.own);
    }
}

pub struct Rx(Vec<u8>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

pub struct Tx<'a>(&'a mut SwitchPort);

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.send(&frame);
        r
    }
}

impl Device for SwitchPort {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.rx.is_empty() {
            self.fill();
        }
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(self)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        Some(Tx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps.max_burst_size = None;
        caps
    }
}
