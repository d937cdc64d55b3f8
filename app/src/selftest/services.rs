//! The self-test's services and its client, written against the bus API:
//!
//! - `ping` (the node's built-in echo): the client writes an 8-byte nonce
//!   and reads it back; the round trip proves the session carries data.
//! - `bulk` (served here): the client streams `bulk_bytes` of a
//!   deterministic pattern, the server echoes every byte back, and the
//!   client checks the echo byte by byte (and an FNV-1a hash of it).
//! - `sink` (served here): a deliberately slow reader (a token bucket of
//!   `rate` bytes per second, 1/8 s deep). The client writes as fast as the
//!   channel lets it. It counts a *hold* only when a write is refused while
//!   the peer's credit for the channel is zero (the reader, not our own
//!   buffer, stops us). When the client finished, the sink reads the rest,
//!   then answers with a 12-byte report (bytes read `u64` BE, most bytes it
//!   ever had buffered on the channel `u32` BE) and finishes. Backpressure is
//!   proven only if the writer was held, the phase lasted at least as long
//!   as the sink's rate allows, and the reader's peak buffering reached at
//!   least half of its channel window without exceeding it.
//!
//! Every buffer is the mux's own (credit-bounded); the services hold none.

use crate::net::Network;
use dsb_noise::DeviceId;
use dsb_transports::mux::ChannelError;
use smoltcp::time::{Duration, Instant};

use crate::bus::channel::ChannelIo;
use crate::bus::{ApiError, ChannelRef};
use crate::node::NodeOn;

/// Service name of the echo the client pings (the node's built-in).
pub const PING_SERVICE: &str = crate::bus::api::PING;
/// Service name of the bulk echo.
pub const BULK_SERVICE: &str = "bulk";
/// Service name of the slow reader.
pub const SINK_SERVICE: &str = "sink";
/// Bytes moved per service step (stack buffer).
const CHUNK: usize = 4096;
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
        ch: ChannelRef,
        nonce: [u8; 8],
        sent: usize,
        got: usize,
        at: Instant,
    },
    Bulk {
        ch: ChannelRef,
        sent: u64,
        got: u64,
        finished: bool,
    },
    Sink {
        ch: ChannelRef,
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

/// The self-test client of one session: ping, then bulk, then (if any) the sink.
#[derive(Debug)]
pub struct Client {
    peer: DeviceId,
    step: Step,
    bulk_bytes: u64,
    sink_bytes: u64,
    seed: u32,
    sink_check: SinkCheck,
    tx_hash: Fnv,
    rx_hash: Fnv,
}

/// A channel call that would block is no progress, anything else ends the step.
fn blocked<T>(r: &Result<T, ApiError>) -> bool {
    matches!(r, Err(ApiError::Channel(ChannelError::WouldBlock)))
}

impl Client {
    /// A client for the session with `peer` that will move `bulk_bytes`
    /// through the bulk echo (pattern `seed`) and then, if `sink_bytes > 0`,
    /// push that much into the slow sink and judge it by `sink_check`.
    pub fn new(
        peer: DeviceId,
        bulk_bytes: u64,
        sink_bytes: u64,
        seed: u32,
        sink_check: SinkCheck,
    ) -> Self {
        Client {
            peer,
            step: Step::Start,
            bulk_bytes,
            sink_bytes,
            seed,
            sink_check,
            tx_hash: Fnv::default(),
            rx_hash: Fnv::default(),
        }
    }

    pub fn peer(&self) -> &DeviceId {
        &self.peer
    }

    pub fn is_done(&self) -> bool {
        matches!(self.step, Step::Done | Step::Failed)
    }

    /// The channel the client currently uses.
    pub fn channel(&self) -> Option<ChannelRef> {
        match self.step {
            Step::Ping { ch, .. } | Step::Bulk { ch, .. } | Step::Sink { ch, .. } => Some(ch),
            _ => None,
        }
    }

    /// The peer refused a channel the client opened.
    pub fn refused(&mut self, ch: ChannelRef) -> Option<ClientEvent> {
        if self.channel() != Some(ch) {
            return None;
        }
        let what = match self.step {
            Step::Ping { .. } => "ping refused",
            Step::Bulk { .. } => "bulk refused",
            _ => "sink refused",
        };
        self.step = Step::Failed;
        Some(ClientEvent::Failed(what))
    }

    /// Advances as far as the channels allow; returns a report if a step completed.
    pub fn poll<N: Network>(&mut self, now: Instant, node: &mut NodeOn<N>) -> Option<ClientEvent> {
        let r = self.step_once(now, node);
        if let Some(ClientEvent::Failed(_)) = r {
            self.step = Step::Failed;
        }
        r
    }

    fn step_once<N: Network>(&mut self, now: Instant, node: &mut NodeOn<N>) -> Option<ClientEvent> {
        let peer = self.peer;
        match &mut self.step {
            Step::Start => {
                let ch = match node.open(&peer, PING_SERVICE) {
                    Ok(ch) => ch,
                    Err(ApiError::Channel(ChannelError::TooManyChannels)) => return None,
                    Err(_) => return Some(ClientEvent::Failed("ping open")),
                };
                let t = now.total_micros() as u64;
                self.step = Step::Ping {
                    ch,
                    nonce: t.to_be_bytes(),
                    sent: 0,
                    got: 0,
                    at: now,
                };
                None
            }
            Step::Ping {
                ch,
                nonce,
                sent,
                got,
                at,
            } => {
                let ch = *ch;
                if *sent < nonce.len() {
                    let r = node.write(ch, nonce.get(*sent..).unwrap_or(&[]));
                    match r {
                        Ok(n) => *sent += n,
                        _ if blocked(&r) => {}
                        Err(_) => return Some(ClientEvent::Failed("ping write")),
                    }
                }
                let mut buf = [0u8; 8];
                let want = nonce.len() - *got;
                let r = node.read(ch, buf.get_mut(..want).unwrap_or(&mut []));
                match r {
                    Ok(0) if want > 0 => return Some(ClientEvent::Failed("ping echo short")),
                    Ok(n) => {
                        if buf.get(..n) != nonce.get(*got..*got + n) {
                            return Some(ClientEvent::Failed("ping echo mismatch"));
                        }
                        *got += n;
                    }
                    _ if blocked(&r) => {}
                    Err(_) => return Some(ClientEvent::Failed("ping read")),
                }
                if *got == nonce.len() {
                    let rtt = now - *at;
                    let _ = node.finish(ch);
                    let bulk = match node.open(&peer, BULK_SERVICE) {
                        Ok(b) => b,
                        Err(_) => return Some(ClientEvent::Failed("bulk open")),
                    };
                    self.step = Step::Bulk {
                        ch: bulk,
                        sent: 0,
                        got: 0,
                        finished: false,
                    };
                    return Some(ClientEvent::PingOk { rtt });
                }
                None
            }
            Step::Bulk {
                ch,
                sent,
                got,
                finished,
            } => {
                let ch = *ch;
                let mut buf = [0u8; CHUNK];
                // Send as much of the pattern as credit allows.
                while *sent < self.bulk_bytes {
                    let n = (self.bulk_bytes - *sent).min(CHUNK as u64) as usize;
                    for (k, b) in buf.iter_mut().take(n).enumerate() {
                        *b = pattern_byte(self.seed, *sent + k as u64);
                    }
                    let r = node.write(ch, buf.get(..n).unwrap_or(&[]));
                    match r {
                        Ok(0) => break,
                        Ok(w) => {
                            self.tx_hash.update(buf.get(..w).unwrap_or(&[]));
                            *sent += w as u64;
                        }
                        _ if blocked(&r) => break,
                        Err(_) => return Some(ClientEvent::Failed("bulk write")),
                    }
                }
                if *sent == self.bulk_bytes && !*finished {
                    match node.finish(ch) {
                        Ok(()) => *finished = true,
                        r if blocked(&r) => {}
                        Err(_) => return Some(ClientEvent::Failed("bulk finish")),
                    }
                }
                // Check the echo.
                loop {
                    let r = node.read(ch, &mut buf);
                    match r {
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
                        _ if blocked(&r) => break,
                        Err(ApiError::StaleChannel) => break,
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
                        match node.open(&peer, SINK_SERVICE) {
                            Ok(ch) => {
                                self.step = Step::Sink {
                                    ch,
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
                ch,
                sent,
                blocked: held,
                finished,
                started,
                report,
                got,
            } => {
                let ch = *ch;
                let buf = [0x5au8; CHUNK];
                while *sent < self.sink_bytes {
                    let n = (self.sink_bytes - *sent).min(CHUNK as u64) as usize;
                    let r = node.write(ch, buf.get(..n).unwrap_or(&[]));
                    match r {
                        Ok(w) if w > 0 => *sent += w as u64,
                        _ if blocked(&r) || matches!(r, Ok(0)) => {
                            // Held by the reader only if its credit ran out;
                            // a full send buffer of our own is not a hold.
                            if node.send_credit(ch) == Some(0) {
                                *held = held.saturating_add(1);
                            }
                            break;
                        }
                        _ => return Some(ClientEvent::Failed("sink write")),
                    }
                }
                if *sent == self.sink_bytes && !*finished {
                    match node.finish(ch) {
                        Ok(()) => *finished = true,
                        r if blocked(&r) => {}
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
                        let r = node.read(ch, &mut probe);
                        match r {
                            Ok(0) | Err(ApiError::StaleChannel) => break true,
                            Ok(_) => return Some(ClientEvent::Failed("sink report too long")),
                            _ if blocked(&r) => break false,
                            Err(_) => return Some(ClientEvent::Failed("sink read")),
                        }
                    }
                    let r = node.read(ch, room);
                    match r {
                        Ok(0) | Err(ApiError::StaleChannel) => {
                            return Some(ClientEvent::Failed("sink report short"))
                        }
                        Ok(n) => *got += n,
                        _ if blocked(&r) => break false,
                        Err(_) => return Some(ClientEvent::Failed("sink read")),
                    }
                };
                if !(*finished && eof) {
                    return None;
                }
                let (bytes, held, elapsed) = (*sent, *held, now - *started);
                let mut read = [0u8; 8];
                read.copy_from_slice(report.get(..8).unwrap_or(&[0; 8]));
                let mut peak = [0u8; 4];
                peak.copy_from_slice(report.get(8..12).unwrap_or(&[0; 4]));
                let (read, peak) = (u64::from_be_bytes(read), u32::from_be_bytes(peak) as usize);
                self.step = Step::Done;
                let check = self.sink_check;
                Some(if read != bytes {
                    ClientEvent::Failed("sink lost bytes")
                } else if held == 0 {
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
                        blocked: held,
                        peak_buffered: peak,
                        elapsed,
                    }
                })
            }
            Step::Done | Step::Failed => None,
        }
    }
}

/// One channel the self-test serves: a bulk echo or a slow sink.
#[derive(Clone, Copy, Debug)]
pub struct Served {
    pub ch: ChannelRef,
    /// A `sink` channel (drained slowly) rather than an echo.
    sink: bool,
    /// The peer finished its side.
    peer_done: bool,
    /// Sink: bytes read and the most ever buffered on the channel.
    read: u64,
    peak: usize,
    /// Sink: bytes of the report already written.
    reported: usize,
}

impl Served {
    pub fn new(ch: ChannelRef, sink: bool) -> Served {
        Served {
            ch,
            sink,
            peer_done: false,
            read: 0,
            peak: 0,
            reported: 0,
        }
    }

    /// Whether this is a slow sink (it needs the clock, not only the network).
    pub fn is_sink(&self) -> bool {
        self.sink
    }

    /// Serves the channel as far as it goes; true when it is done. A sink
    /// reads at most `*tokens` bytes (the node's shared sink budget).
    pub fn poll(&mut self, io: &mut impl ChannelIo, readable: usize, tokens: &mut u64) -> bool {
        if self.sink {
            self.drain_sink(io, readable, tokens)
        } else {
            self.echo(io)
        }
    }

    /// Reads within the token budget; once the peer finished and everything
    /// was read, writes the report and finishes. True when done.
    fn drain_sink(&mut self, io: &mut impl ChannelIo, readable: usize, tokens: &mut u64) -> bool {
        self.peak = self.peak.max(readable);
        let mut buf = [0u8; CHUNK];
        while *tokens > 0 && !self.peer_done {
            let n = (*tokens as usize).min(CHUNK);
            match io.read(buf.get_mut(..n).unwrap_or(&mut [])) {
                Ok(0) => self.peer_done = true,
                Ok(n) => {
                    self.read += n as u64;
                    *tokens -= n as u64;
                }
                Err(ChannelError::WouldBlock) => break,
                Err(_) => return true,
            }
        }
        if !self.peer_done {
            return false;
        }
        let mut report = [0u8; SINK_REPORT_LEN];
        report[..8].copy_from_slice(&self.read.to_be_bytes());
        let peak = u32::try_from(self.peak).unwrap_or(u32::MAX);
        report[8..].copy_from_slice(&peak.to_be_bytes());
        while self.reported < SINK_REPORT_LEN {
            match io.write(report.get(self.reported..).unwrap_or(&[])) {
                Ok(n) if n > 0 => self.reported += n,
                Ok(_) | Err(ChannelError::WouldBlock) => return false,
                Err(_) => return true,
            }
        }
        !matches!(io.finish(), Err(ChannelError::WouldBlock))
    }

    /// Echoes what the write side can take; finishes after the peer did and
    /// everything was echoed. True when done.
    fn echo(&mut self, io: &mut impl ChannelIo) -> bool {
        let mut buf = [0u8; CHUNK];
        loop {
            let room = io.write_capacity().min(CHUNK);
            if room == 0 {
                break;
            }
            match io.read(buf.get_mut(..room).unwrap_or(&mut [])) {
                Ok(0) => {
                    self.peer_done = true;
                    break;
                }
                Ok(n) => match io.write(buf.get(..n).unwrap_or(&[])) {
                    Ok(w) if w == n => {}
                    _ => {
                        // write_capacity said it fits; anything else ends the channel.
                        io.reset(2);
                        return true;
                    }
                },
                Err(ChannelError::WouldBlock) => break,
                Err(_) => return true,
            }
        }
        if self.peer_done {
            return !matches!(io.finish(), Err(ChannelError::WouldBlock));
        }
        false
    }
}

/// The sinks' shared read budget: `rate` bytes per second, at most 1/8 s
/// (or one chunk) saved up, so a sink stays slow after idling.
#[derive(Clone, Copy, Debug)]
pub struct SinkBudget {
    rate: u64,
    tokens: u64,
    at: Option<Instant>,
}

impl SinkBudget {
    pub fn new(rate: u64) -> SinkBudget {
        SinkBudget {
            rate: rate.max(1),
            tokens: 0,
            at: None,
        }
    }

    fn burst(&self) -> u64 {
        (self.rate / 8).max(CHUNK as u64)
    }

    /// When a sink with an empty budget may read again (one chunk's worth of
    /// refill): a loop that halts when idle must wake for it, since the peer
    /// is waiting for our credit and sends nothing.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.tokens > 0 {
            return None;
        }
        let us = (CHUNK as u64).saturating_mul(1_000_000) / self.rate;
        Some(self.at? + Duration::from_micros(us.max(1)))
    }

    /// Refills for the time since the last call; returns the tokens.
    pub fn refill(&mut self, now: Instant) -> &mut u64 {
        match self.at {
            Some(at) => {
                let dt = (now - at).total_micros();
                let add = self.rate.saturating_mul(dt) / 1_000_000;
                if add > 0 {
                    self.tokens = (self.tokens + add).min(self.burst());
                    self.at = Some(now);
                }
            }
            None => self.at = Some(now),
        }
        &mut self.tokens
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

    #[test]
    fn the_sink_budget_refills_at_its_rate_and_caps_its_burst() {
        let mut b = SinkBudget::new(8000);
        assert_eq!(*b.refill(Instant::from_millis(0)), 0);
        assert_eq!(*b.refill(Instant::from_millis(100)), 800);
        // 10 s idle: capped at one chunk (rate/8 = 1000 < 4096).
        assert_eq!(*b.refill(Instant::from_secs(10)), CHUNK as u64);
    }
}
