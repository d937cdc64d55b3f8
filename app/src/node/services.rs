//! The two services every node serves and exercises over a session:
//!
//! - `ping`: the client writes an 8-byte nonce, the server echoes it; the
//!   round trip proves the session carries data both ways.
//! - `bulk`: the client streams `bulk_bytes` of a deterministic pattern, the
//!   server echoes every byte back, and the client checks the echo byte by
//!   byte (and an FNV-1a hash of it) before the marker.
//!
//! - `sink`: a deliberately slow reader (a token bucket of `rate` bytes per
//!   second, 1/8 s deep). The client writes as fast as the mux lets it. It
//!   counts a *hold* only when a write is refused while the peer's credit
//!   for the channel is zero (the reader, not our own buffer, stops us).
//!   When the client finished, the sink reads the rest, then answers with a
//!   12-byte report (bytes read `u64` BE, most bytes it ever had buffered on
//!   the channel `u32` BE) and finishes. Backpressure is proven only if the
//!   writer was held, the phase lasted at least as long as the sink's rate
//!   allows, and the reader's peak buffering reached at least half of its
//!   channel window without exceeding it.
//!
//! The ping and bulk servers are the same echo: read what the write side can
//! take, write it back, finish after the peer finished and everything was
//! echoed. Every buffer is the mux's own (credit-bounded); the services hold none.

use smoltcp::time::{Duration, Instant};

use dsb_transports::mux::{ChannelError, ChannelId, Mux, MuxEvent};

/// Service name of the ping/pong round trip.
pub const PING_SERVICE: &str = "ping";
/// Service name of the bulk echo.
pub const BULK_SERVICE: &str = "bulk";
/// Service name of the slow reader.
pub const SINK_SERVICE: &str = "sink";
/// Bytes moved per service step (stack buffer).
const CHUNK: usize = 4096;
/// Most channels a node echoes for one peer at a time.
pub const MAX_ECHO_CHANNELS: usize = 8;
/// Length of the sink's report: bytes read (u64 BE) and peak buffered (u32 BE).
pub const SINK_REPORT_LEN: usize = 12;

/// What the client requires of the slow sink (the peer runs the same
/// configuration as we do: the self-test is symmetric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkCheck {
    /// The sink phase cannot finish sooner than this at the sink's rate.
    pub min_duration: Duration,
    /// The reader's channel window: its peak buffering must stay within it...
    pub window: usize,
    /// ...and reach at least this (the reader really filled up).
    pub min_peak: usize,
}

impl SinkCheck {
    /// Expectations for `bytes` pushed into a sink reading `rate` bytes/s
    /// through a channel window of `window` bytes.
    pub fn new(bytes: u64, rate: u64, window: usize) -> SinkCheck {
        let rate = rate.max(1);
        let burst = (rate / 8).max(CHUNK as u64);
        // The window and the sink's first burst go through at once; the rest at `rate`.
        let paced = bytes.saturating_sub(window as u64 + burst);
        SinkCheck {
            min_duration: Duration::from_micros(paced.saturating_mul(1_000_000) / rate),
            window,
            min_peak: window / 2,
        }
    }
}

/// Byte `i` of the bulk pattern for `seed`.
pub fn pattern_byte(seed: u32, i: u64) -> u8 {
    let x = (i as u32).wrapping_mul(2_654_435_761) ^ seed ^ ((i >> 32) as u32);
    (x >> 24) as u8 ^ (x as u8)
}

/// FNV-1a, 64 bit, over a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// What the client side reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    PingOk {
        rtt: Duration,
    },
    BulkOk {
        bytes: u64,
        hash: u64,
    },
    /// Every byte reached the slow reader; `blocked` writes were refused
    /// while the peer's credit was zero; the reader buffered at most
    /// `peak_buffered` on the channel; the phase took `elapsed`.
    BackpressureOk {
        bytes: u64,
        blocked: u32,
        peak_buffered: usize,
        elapsed: Duration,
    },
    Failed(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Start,
    Ping {
        id: ChannelId,
        nonce: [u8; 8],
        sent: usize,
        got: usize,
        at: Instant,
    },
    Bulk {
        id: ChannelId,
        sent: u64,
        got: u64,
        finished: bool,
    },
    Sink {
        id: ChannelId,
        sent: u64,
        blocked: u32,
        finished: bool,
        started: Instant,
        report: [u8; SINK_REPORT_LEN],
        got: usize,
    },
    Done,
    Failed,
}

/// The self-test client of one session: ping, then bulk.
#[derive(Debug)]
pub struct Client {
    step: Step,
    bulk_bytes: u64,
    sink_bytes: u64,
    seed: u32,
    sink_check: SinkCheck,
    tx_hash: Fnv,
    rx_hash: Fnv,
    echo_buf_max: usize,
}

impl Client {
    /// A client that will move `bulk_bytes` through the bulk echo (pattern
    /// `seed`) and then, if `sink_bytes > 0`, push that much into the slow
    /// sink and judge its backpressure by `sink_check`.
    pub fn new(bulk_bytes: u64, sink_bytes: u64, seed: u32, sink_check: SinkCheck) -> Self {
        Client {
            step: Step::Start,
            bulk_bytes,
            sink_bytes,
            seed,
            sink_check,
            tx_hash: Fnv::default(),
            rx_hash: Fnv::default(),
            echo_buf_max: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.step, Step::Done)
    }

    /// Largest amount the mux held for us at once (for the memory-cap checks).
    pub fn max_buffered(&self) -> usize {
        self.echo_buf_max
    }

    /// Advances the client as far as the mux allows; returns a report if a step completed.
    pub fn poll(&mut self, now: Instant, mux: &mut Mux) -> Option<ClientEvent> {
        let r = self.step_once(now, mux);
        if let Some(ClientEvent::Failed(_)) = r {
            self.step = Step::Failed;
        }
        r
    }

    fn step_once(&mut self, now: Instant, mux: &mut Mux) -> Option<ClientEvent> {
        let stats = mux.stats();
        self.echo_buf_max = self
            .echo_buf_max
            .max(stats.recv_buffered + stats.send_buffered);
        match &mut self.step {
            Step::Start => {
                let id = match mux.open(PING_SERVICE) {
                    Ok(id) => id,
                    Err(ChannelError::WouldBlock) => return None,
                    Err(_) => return Some(ClientEvent::Failed("ping open")),
                };
                let t = now.total_micros() as u64;
                self.step = Step::Ping {
                    id,
                    nonce: t.to_be_bytes(),
                    sent: 0,
                    got: 0,
                    at: now,
                };
                None
            }
            Step::Ping {
                id,
                nonce,
                sent,
                got,
                at,
            } => {
                if *sent < nonce.len() {
                    match mux.write(*id, nonce.get(*sent..).unwrap_or(&[])) {
                        Ok(n) => *sent += n,
                        Err(ChannelError::WouldBlock) => {}
                        Err(_) => return Some(ClientEvent::Failed("ping write")),
                    }
                }
                let mut buf = [0u8; 8];
                let want = nonce.len() - *got;
                match mux.read(*id, buf.get_mut(..want).unwrap_or(&mut [])) {
                    Ok(n) => {
                        if buf.get(..n) != nonce.get(*got..*got + n) {
                            return Some(ClientEvent::Failed("ping echo mismatch"));
                        }
                        *got += n;
                    }
                    Err(ChannelError::WouldBlock) => {}
                    Err(_) => return Some(ClientEvent::Failed("ping read")),
                }
                if *got == nonce.len() {
                    let rtt = now - *at;
                    let id = *id;
                    let _ = mux.finish(id);
                    let bulk = match mux.open(BULK_SERVICE) {
                        Ok(b) => b,
                        Err(_) => return Some(ClientEvent::Failed("bulk open")),
                    };
                    self.step = Step::Bulk {
                        id: bulk,
                        sent: 0,
                        got: 0,
                        finished: false,
                    };
                    return Some(ClientEvent::PingOk { rtt });
                }
                None
            }
            Step::Bulk {
                id,
                sent,
                got,
                finished,
            } => {
                let mut buf = [0u8; CHUNK];
                // Send as much of the pattern as credit allows.
                while *sent < self.bulk_bytes {
                    let n = (self.bulk_bytes - *sent).min(CHUNK as u64) as usize;
                    for (k, b) in buf.iter_mut().take(n).enumerate() {
                        *b = pattern_byte(self.seed, *sent + k as u64);
                    }
                    match mux.write(*id, buf.get(..n).unwrap_or(&[])) {
                        Ok(0) | Err(ChannelError::WouldBlock) => break,
                        Ok(w) => {
                            self.tx_hash.update(buf.get(..w).unwrap_or(&[]));
                            *sent += w as u64;
                        }
                        Err(_) => return Some(ClientEvent::Failed("bulk write")),
                    }
                }
                if *sent == self.bulk_bytes && !*finished {
                    match mux.finish(*id) {
                        Ok(()) => *finished = true,
                        Err(ChannelError::WouldBlock) => {}
                        Err(_) => return Some(ClientEvent::Failed("bulk finish")),
                    }
                }
                // Check the echo.
                loop {
                    match mux.read(*id, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            let chunk = buf.get(..n).unwrap_or(&[]);
                            for (k, &b) in chunk.iter().enumerate() {
                                if b != pattern_byte(self.seed, *got + k as u64) {
                                    return Some(ClientEvent::Failed("bulk echo mismatch"));
                                }
                            }
                            self.rx_hash.update(chunk);
                            *got += n as u64;
                            if *got > self.bulk_bytes {
                                return Some(ClientEvent::Failed("bulk echo too long"));
                            }
                        }
                        // End of stream: the peer finished, or the slot was released.
                        Err(
                            ChannelError::WouldBlock
                            | ChannelError::Finished
                            | ChannelError::Closed,
                        ) => break,
                        Err(_) => return Some(ClientEvent::Failed("bulk read")),
                    }
                }
                if *got == self.bulk_bytes && *finished {
                    if self.rx_hash != self.tx_hash {
                        return Some(ClientEvent::Failed("bulk hash mismatch"));
                    }
                    let bytes = *got;
                    self.step = Step::Done;
                    if self.sink_bytes > 0 {
                        match mux.open(SINK_SERVICE) {
                            Ok(id) => {
                                self.step = Step::Sink {
                                    id,
                                    sent: 0,
                                    blocked: 0,
                                    finished: false,
                                    started: now,
                                    report: [0; SINK_REPORT_LEN],
                                    got: 0,
                                };
                            }
                            Err(_) => return Some(ClientEvent::Failed("sink open")),
                        }
                    }
                    return Some(ClientEvent::BulkOk {
                        bytes,
                        hash: self.rx_hash.0,
                    });
                }
                None
            }
            Step::Sink {
                id,
                sent,
                blocked,
                finished,
                started,
                report,
                got,
            } => {
                let buf = [0x5au8; CHUNK];
                while *sent < self.sink_bytes {
                    let n = (self.sink_bytes - *sent).min(CHUNK as u64) as usize;
                    match mux.write(*id, buf.get(..n).unwrap_or(&[])) {
                        Ok(0) | Err(ChannelError::WouldBlock) => {
                            // Held by the reader only if its credit ran out;
                            // a full send buffer of our own is not a hold.
                            if mux.send_credit(*id) == Some(0) {
                                *blocked = blocked.saturating_add(1);
                            }
                            break;
                        }
                        Ok(w) => *sent += w as u64,
                        Err(_) => return Some(ClientEvent::Failed("sink write")),
                    }
                }
                if *sent == self.sink_bytes && !*finished {
                    match mux.finish(*id) {
                        Ok(()) => *finished = true,
                        Err(ChannelError::WouldBlock) => {}
                        Err(_) => return Some(ClientEvent::Failed("sink finish")),
                    }
                }
                // The sink reports once it has read everything, then finishes.
                let eof = loop {
                    let Some(room) = report.get_mut(*got..) else {
                        return Some(ClientEvent::Failed("sink report"));
                    };
                    if room.is_empty() {
                        let mut probe = [0u8; 1];
                        match mux.read(*id, &mut probe) {
                            Ok(0) | Err(ChannelError::Finished | ChannelError::Closed) => {
                                break true
                            }
                            Ok(_) => return Some(ClientEvent::Failed("sink report too long")),
                            Err(ChannelError::WouldBlock) => break false,
                            Err(_) => return Some(ClientEvent::Failed("sink read")),
                        }
                    }
                    match mux.read(*id, room) {
                        Ok(0) | Err(ChannelError::Finished | ChannelError::Closed) => {
                            return Some(ClientEvent::Failed("sink report short"))
                        }
                        Ok(n) => *got += n,
                        Err(ChannelError::WouldBlock) => break false,
                        Err(_) => return Some(ClientEvent::Failed("sink read")),
                    }
                };
                if !(*finished && eof) {
                    return None;
                }
                let (bytes, blocked, elapsed) = (*sent, *blocked, now - *started);
                let mut read = [0u8; 8];
                read.copy_from_slice(report.get(..8).unwrap_or(&[0; 8]));
                let mut peak = [0u8; 4];
                peak.copy_from_slice(report.get(8..12).unwrap_or(&[0; 4]));
                let (read, peak) = (u64::from_be_bytes(read), u32::from_be_bytes(peak) as usize);
                self.step = Step::Done;
                let check = self.sink_check;
                Some(if read != bytes {
                    ClientEvent::Failed("sink lost bytes")
                } else if blocked == 0 {
                    ClientEvent::Failed("sink never held the writer")
                } else if elapsed < check.min_duration {
                    ClientEvent::Failed("sink was not slow")
                } else if peak > check.window {
                    ClientEvent::Failed("sink buffered beyond its window")
                } else if peak < check.min_peak {
                    ClientEvent::Failed("sink never filled its window")
                } else {
                    ClientEvent::BackpressureOk {
                        bytes,
                        blocked,
                        peak_buffered: peak,
                        elapsed,
                    }
                })
            }
            Step::Done | Step::Failed => None,
        }
    }
}

/// One channel the server serves.
#[derive(Clone, Copy, Debug)]
struct Served {
    id: ChannelId,
    /// The peer finished its side.
    peer_done: bool,
    /// A `sink` channel (drained slowly) rather than an echo.
    sink: bool,
    /// Sink: bytes read and the most ever buffered on the channel.
    read: u64,
    peak: usize,
    /// Sink: bytes of the report already written.
    reported: usize,
}

/// Serves the peer's channels: echoes `ping` and `bulk`, drains `sink` slowly.
#[derive(Debug)]
pub struct EchoServer {
    channels: heapless::Vec<Served, MAX_ECHO_CHANNELS>,
    /// Bytes echoed in total.
    pub echoed: u64,
    /// Bytes the sink consumed in total.
    pub sunk: u64,
    /// Sink read rate, bytes per second.
    sink_rate: u64,
    /// Sink token bucket: bytes it may read now, and when it was refilled.
    sink_tokens: u64,
    sink_at: Option<Instant>,
    /// Most bytes the mux buffered for this session at once.
    pub peak_buffered: usize,
}

impl EchoServer {
    /// A server whose sink reads `sink_rate` bytes per second.
    pub fn new(sink_rate: u64) -> Self {
        EchoServer {
            channels: heapless::Vec::new(),
            echoed: 0,
            sunk: 0,
            sink_rate: sink_rate.max(1),
            sink_tokens: 0,
            sink_at: None,
            peak_buffered: 0,
        }
    }
}

impl EchoServer {
    /// Most the sink reads at once after idling: 1/8 s of its rate (at least
    /// one chunk), so it stays slow even when it sat idle before its channel opened.
    fn sink_burst(&self) -> u64 {
        (self.sink_rate / 8).max(CHUNK as u64)
    }

    /// Registers the services on a new session's mux.
    pub fn register(mux: &mut Mux) -> Result<(), ChannelError> {
        mux.register_service(PING_SERVICE)?;
        mux.register_service(BULK_SERVICE)?;
        mux.register_service(SINK_SERVICE)
    }

    /// Takes the mux events that concern served channels; returns the others.
    pub fn on_event(&mut self, mux: &mut Mux, ev: MuxEvent) -> Option<MuxEvent> {
        match ev {
            MuxEvent::ChannelOpened { id, name } => {
                let served = Served {
                    id,
                    peer_done: false,
                    sink: name.as_str() == SINK_SERVICE,
                    read: 0,
                    peak: 0,
                    reported: 0,
                };
                if self.channels.push(served).is_err() {
                    let _ = mux.reset(id, 1);
                }
                None
            }
            MuxEvent::Finished { id } => match self.channels.iter_mut().find(|c| c.id == id) {
                Some(slot) => {
                    slot.peer_done = true;
                    None
                }
                None => Some(ev),
            },
            MuxEvent::Reset { id, .. } => {
                if let Some(pos) = self.channels.iter().position(|c| c.id == id) {
                    self.channels.swap_remove(pos);
                    None
                } else {
                    Some(ev)
                }
            }
            other => Some(other),
        }
    }

    /// Moves bytes from each served channel's receive side to its send side
    /// (echo), or drains it at the sink rate.
    pub fn poll(&mut self, now: Instant, mux: &mut Mux) {
        let stats = mux.stats();
        self.peak_buffered = self
            .peak_buffered
            .max(stats.recv_buffered + stats.send_buffered);
        if let Some(at) = self.sink_at {
            let dt = (now - at).total_micros();
            let add = self.sink_rate.saturating_mul(dt) / 1_000_000;
            if add > 0 {
                self.sink_tokens = (self.sink_tokens + add).min(self.sink_burst());
                self.sink_at = Some(now);
            }
        } else {
            self.sink_at = Some(now);
        }
        let mut buf = [0u8; CHUNK];
        let mut i = 0;
        while i < self.channels.len() {
            let Some(c) = self.channels.get_mut(i) else {
                break;
            };
            let gone = if c.sink {
                Self::drain_sink(c, mux, &mut self.sink_tokens, &mut self.sunk, &mut buf)
            } else {
                Self::echo(c, mux, &mut self.echoed, &mut buf)
            };
            if gone {
                self.channels.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Reads a sink channel within the token budget; once the peer finished
    /// and everything was read, writes the report and finishes. True when done.
    fn drain_sink(
        c: &mut Served,
        mux: &mut Mux,
        tokens: &mut u64,
        sunk: &mut u64,
        buf: &mut [u8; CHUNK],
    ) -> bool {
        c.peak = c.peak.max(mux.readable_len(c.id));
        while *tokens > 0 {
            let n = (*tokens as usize).min(CHUNK);
            match mux.read(c.id, buf.get_mut(..n).unwrap_or(&mut [])) {
                Ok(0) => break,
                Ok(n) => {
                    *sunk += n as u64;
                    c.read += n as u64;
                    *tokens -= n as u64;
                }
                Err(_) => break,
            }
        }
        if !c.peer_done || mux.readable_len(c.id) > 0 {
            return false;
        }
        let mut report = [0u8; SINK_REPORT_LEN];
        report[..8].copy_from_slice(&c.read.to_be_bytes());
        let peak = u32::try_from(c.peak).unwrap_or(u32::MAX);
        report[8..].copy_from_slice(&peak.to_be_bytes());
        while c.reported < SINK_REPORT_LEN {
            match mux.write(c.id, report.get(c.reported..).unwrap_or(&[])) {
                Ok(n) if n > 0 => c.reported += n,
                Ok(_) | Err(ChannelError::WouldBlock) => return false,
                Err(_) => return true,
            }
        }
        !matches!(mux.finish(c.id), Err(ChannelError::WouldBlock))
    }

    /// Echoes what the write side can take; finishes after the peer did and
    /// everything was echoed. True when done.
    fn echo(c: &mut Served, mux: &mut Mux, echoed: &mut u64, buf: &mut [u8; CHUNK]) -> bool {
        loop {
            let room = mux.write_capacity(c.id).min(CHUNK);
            if room == 0 {
                break;
            }
            match mux.read(c.id, buf.get_mut(..room).unwrap_or(&mut [])) {
                Ok(0) => break,
                Ok(n) => match mux.write(c.id, buf.get(..n).unwrap_or(&[])) {
                    Ok(w) if w == n => *echoed += n as u64,
                    _ => {
                        // write_capacity said it fits; anything else ends the channel.
                        let _ = mux.reset(c.id, 2);
                        return true;
                    }
                },
                Err(_) => break,
            }
        }
        if c.peer_done && mux.readable_len(c.id) == 0 {
            return !matches!(mux.finish(c.id), Err(ChannelError::WouldBlock));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_varied() {
        let a: alloc::vec::Vec<u8> = (0..256).map(|i| pattern_byte(7, i)).collect();
        let b: alloc::vec::Vec<u8> = (0..256).map(|i| pattern_byte(7, i)).collect();
        let c: alloc::vec::Vec<u8> = (0..256).map(|i| pattern_byte(8, i)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let distinct = a.iter().collect::<std::collections::BTreeSet<_>>().len();
        assert!(distinct > 100, "{distinct}");
    }

    #[test]
    fn fnv_known_values() {
        let mut h = Fnv::default();
        assert_eq!(h.0, 0xcbf2_9ce4_8422_2325, "offset basis");
        h.update(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv::default();
        h.update(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn sink_expectations_follow_rate_window_and_burst() {
        // 256 KiB at 256 KiB/s through a 64 KiB window, 32 KiB first burst:
        // 160 KiB must be paced, 625 ms.
        let c = SinkCheck::new(256 * 1024, 256 * 1024, 64 * 1024);
        assert_eq!(c.min_duration, Duration::from_millis(625));
        assert_eq!((c.window, c.min_peak), (64 * 1024, 32 * 1024));
        // Less than window + burst: nothing to pace.
        assert_eq!(
            SinkCheck::new(1000, 100, 64 * 1024).min_duration,
            Duration::ZERO
        );
        // A zero rate does not divide by zero.
        let _ = SinkCheck::new(1 << 20, 0, 1024);
    }
}
