//! What the benchmarks share: the payload pattern, the median, the path, the
//! mux configuration, a one-peer trust store and the bulk sender / receiver
//! that run on one mux channel.

use dsb_noise::{Binding, DeviceId, NoiseError, TrustStore};
use dsb_transports::mux::{ChannelError, ChannelId, Mux, MuxConfig, MuxEvent};
use smoltcp::time::{Duration, Instant};

/// Bytes moved per run.
pub const LEN: usize = 8 << 20;
/// Largest UDP payload udp-sec and QUIC put on the link.
pub const MAX_DATAGRAM: usize = 1200;
/// IPv4 + UDP headers: what a UDP datagram costs on the wire beyond its
/// payload. The link charges it to every udp-sec and QUIC datagram.
pub const UDP_IP_OVERHEAD: usize = 28;
/// Largest IP packet on the link, for every transport: a 1200-byte UDP
/// payload with its headers, or a TCP segment with its IP and TCP headers
/// (so TCP's MSS is 1188). Every transport pays its headers the same way.
pub const MAX_IP_PACKET: usize = MAX_DATAGRAM + UDP_IP_OVERHEAD;
/// Service the bulk channel is opened for.
pub const SERVICE: &str = "bulk";
/// Simulated-time limit of one run (smoltcp TCP at 10 % loss needs ~25 min).
pub const DEADLINE: Instant = Instant::from_micros_const(4 * 3600 * 1_000_000);

/// The benchmark path for UDP transports: each datagram (a UDP payload)
/// also pays [`UDP_IP_OVERHEAD`] bytes of serialization (`BENCH_OVERHEAD`
/// overrides it); `BENCH_DELAY_MS` sets the one-way delay (default 5, the
/// standard link; other values are for diagnostics only).
pub fn path(loss: f64) -> crate::link::PathConfig {
    let overhead = std::env::var("BENCH_OVERHEAD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(UDP_IP_OVERHEAD);
    path_with(loss, overhead)
}

/// The benchmark path for TCP: its datagrams are whole IP packets, headers
/// included, so nothing more is charged.
pub fn ip_path(loss: f64) -> crate::link::PathConfig {
    path_with(loss, 0)
}

fn path_with(loss: f64, overhead: usize) -> crate::link::PathConfig {
    let standard = crate::link::PathConfig::benchmark(loss);
    crate::link::PathConfig {
        overhead_bytes: overhead,
        delay: std::env::var("BENCH_DELAY_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(standard.delay, Duration::from_millis),
        ..standard
    }
}

/// `BENCH_VERBOSE=1`: print each run's recovery counters to stderr.
pub fn verbose() -> bool {
    std::env::var_os("BENCH_VERBOSE").is_some()
}

/// Time-weighted averages of sampled values (diagnostics only).
#[derive(Default)]
pub struct TimeAvg {
    last: Option<(Instant, [f64; 3])>,
    sums: [f64; 3],
    total: f64,
}

impl TimeAvg {
    /// Record `v` as the value from `now` on.
    pub fn sample(&mut self, now: Instant, v: [f64; 3]) {
        if let Some((t, prev)) = self.last {
            let dt = (now - t).total_micros() as f64;
            for (s, p) in self.sums.iter_mut().zip(prev) {
                *s += p * dt;
            }
            self.total += dt;
        }
        self.last = Some((now, v));
    }

    /// The averages.
    pub fn avg(&self) -> [f64; 3] {
        self.sums.map(|s| s / self.total.max(1.0))
    }
}

/// Sender stalls (diagnostics only): gaps of more than [`Stalls::GAP`]
/// between two instants at which the sender's packet count had grown.
#[derive(Default)]
pub struct Stalls {
    last: Option<(Instant, u64)>,
    count: u64,
    total_us: i64,
}

impl Stalls {
    /// A gap longer than this (1.5 × the path's 10 ms RTT) is a stall.
    pub const GAP: Duration = Duration::from_millis(15);

    /// Record that `sent` packets had been sent by `now`.
    pub fn sample(&mut self, now: Instant, sent: u64) {
        match self.last {
            Some((t, n)) if n == sent => {
                let _ = t;
            }
            Some((t, _)) => {
                let gap = now - t;
                if gap > Self::GAP {
                    self.count += 1;
                    self.total_us += gap.total_micros() as i64;
                }
                self.last = Some((now, sent));
            }
            None => self.last = Some((now, sent)),
        }
    }
}

impl std::fmt::Display for Stalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} ms)", self.count, self.total_us / 1000)
    }
}

/// Byte `i` of the payload.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// The first `len` bytes of the payload.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern_byte).collect()
}

/// Median (upper median for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// CPU time this thread has used so far (`CLOCK_THREAD_CPUTIME_ID`), in ns.
/// Every CPU figure of the bench is a difference of two readings of this one
/// clock, taken in the same thread around one whole simulated transfer.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// Goodput, Mbit/s (simulated time).
    pub mbps: f64,
    /// Thread CPU time of the whole transfer (both endpoints, the link, the
    /// checking receiver) per payload byte, ns.
    pub cpu_ns_per_byte: f64,
}

impl Run {
    /// A run that moved `bytes` in `elapsed` simulated time, using `cpu_ns` of CPU.
    pub fn new(bytes: usize, elapsed: Duration, cpu_ns: u64) -> Self {
        Run {
            mbps: mbit_per_s(bytes, elapsed),
            cpu_ns_per_byte: cpu_ns as f64 / bytes.max(1) as f64,
        }
    }
}

/// Goodput of `bytes` delivered in `elapsed`, Mbit/s.
pub fn mbit_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / elapsed.total_micros().max(1) as f64
}

/// The mux configuration of the benchmarks: defaults, except windows and
/// send buffers large enough (1 MiB per channel, 2 MiB per session) that the
/// mux never limits a single channel on this path (BDP 125 kB, up to ~200 kB
/// with a full 64-datagram queue). With the 64 KiB default channel window the
/// mux alone would cap goodput near 64 KiB / RTT.
pub fn mux_config() -> MuxConfig {
    MuxConfig {
        recv_window: 1 << 20,
        session_window: 2 << 20,
        send_buffer: 1 << 20,
        max_pending_send: 2 << 20,
        idle_timeout: Duration::from_secs(600),
        keepalive_interval: Duration::from_secs(10),
        ..MuxConfig::default()
    }
}

/// A trust store that knows at most one peer (the responder's view of the initiator).
pub struct Trust(pub Option<(DeviceId, Binding)>);

impl TrustStore for Trust {
    fn admit(&mut self, device_id: &DeviceId, device_key: &[u8; 32]) -> Result<(), NoiseError> {
        match self.0 {
            Some((d, b)) if d == *device_id && b.device_key == *device_key => Ok(()),
            Some((d, _)) if d == *device_id => Err(NoiseError::IdentityMismatch),
            _ => Err(NoiseError::UnknownPeer),
        }
    }
}

/// Writes the payload into one channel it opens once the mux is authenticated.
pub struct BulkSender {
    data: Vec<u8>,
    id: Option<ChannelId>,
    written: usize,
}

impl BulkSender {
    /// Sends `data`.
    pub fn new(data: Vec<u8>) -> Self {
        BulkSender {
            data,
            id: None,
            written: 0,
        }
    }

    /// Opens the channel (once) and writes what the mux accepts.
    pub fn poll(&mut self, mux: &mut Mux) {
        while mux.poll_event().is_some() {}
        if !mux.is_authenticated() {
            return;
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = mux.open(SERVICE).expect("open bulk channel");
                self.id = Some(id);
                id
            }
        };
        while self.written < self.data.len() {
            match mux.write(id, &self.data[self.written..]) {
                Ok(n) => self.written += n,
                Err(ChannelError::WouldBlock) => break,
                Err(e) => panic!("mux write: {e:?}"),
            }
        }
        if self.written == self.data.len() {
            let _ = mux.finish(id);
        }
    }
}

/// Reads the channel the peer opens and checks every byte.
pub struct BulkReceiver {
    id: Option<ChannelId>,
    /// Bytes read so far.
    pub read: usize,
    buf: Vec<u8>,
}

impl Default for BulkReceiver {
    fn default() -> Self {
        BulkReceiver {
            id: None,
            read: 0,
            buf: vec![0; 64 * 1024],
        }
    }
}

impl BulkReceiver {
    /// Accepts the channel and reads everything available.
    pub fn poll(&mut self, mux: &mut Mux) {
        while let Some(ev) = mux.poll_event() {
            if let MuxEvent::ChannelOpened { id, .. } = ev {
                self.id = Some(id);
            }
        }
        let Some(id) = self.id else { return };
        loop {
            match mux.read(id, &mut self.buf) {
                Ok(0) | Err(ChannelError::WouldBlock) | Err(ChannelError::Closed) => break,
                Ok(n) => {
                    for (k, &b) in self.buf[..n].iter().enumerate() {
                        assert_eq!(
                            b,
                            pattern_byte((self.read + k) as u64),
                            "stream corrupted at offset {}",
                            self.read + k
                        );
                    }
                    self.read += n;
                }
                Err(e) => panic!("mux read: {e:?}"),
            }
        }
    }
}
