//! The two services every node serves and exercises over a session:
//!
//! - `ping`: the client writes an 8-byte nonce, the server echoes it; the
//!   round trip proves the session carries data both ways.
//! - `bulk`: the client streams `bulk_bytes` of a deterministic pattern, the
//!   server echoes every byte back, and the client checks the echo byte by
//!   byte (and an FNV-1a hash of it) before the marker.
//!
//! - `sink`: a deliberately slow reader (a token bucket of `rate` bytes per
//!   second, 1/8 s deep). The client writes as fast as the mux lets it; credit runs out,
//!   `write` reports `WouldBlock`, and the client counts how often it was held
//!   back and the most the two muxes ever buffered (backpressure).
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
    /// Every byte reached the slow reader; `blocked` writes were held back by credit.
    BackpressureOk {
        bytes: u64,
        blocked: u32,
        peak_buffered: usize,
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
    tx_hash: Fnv,
    rx_hash: Fnv,
    echo_buf_max: usize,
}

impl Client {
    /// A client that will move `bulk_bytes` through the bulk echo (pattern
    /// `seed`) and then, if `sink_bytes > 0`, push that much into the slow sink.
    pub fn new(bulk_bytes: u64, sink_bytes: u64, seed: u32) -> Self {
        Client {
            step: Step::Start,
            bulk_bytes,
            sink_bytes,
            seed,
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
            } => {
                let buf = [0x5au8; CHUNK];
                while *sent < self.sink_bytes {
                    let n = (self.sink_bytes - *sent).min(CHUNK as u64) as usize;
                    match mux.write(*id, buf.get(..n).unwrap_or(&[])) {
                        Ok(0) | Err(ChannelError::WouldBlock) => {
                            *blocked = blocked.saturating_add(1);
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
                // The sink finishes its side once it has read everything.
                let mut probe = [0u8; 1];
                let eof = match mux.read(*id, &mut probe) {
                    Ok(0) | Err(ChannelError::Finished | ChannelError::Closed) => true,
                    Ok(_) => return Some(ClientEvent::Failed("sink sent data")),
                    Err(ChannelError::WouldBlock) => false,
                    Err(_) => return Some(ClientEvent::Failed("sink read")),
                };
                if *finished && eof {
                    let (bytes, blocked) = (*sent, *blocked);
                    self.step = Step::Done;
                    return Some(ClientEvent::BackpressureOk {
                        bytes,
                        blocked,
                        peak_buffered: self.echo_buf_max,
                    });
                }
                None
            }
            Step::Done | Step::Failed => None,
        }
    }
}

/// Serves the peer's channels: echoes `ping` and `bulk`, drains `sink` slowly.
#[derive(Debug)]
pub struct EchoServer {
    /// (channel, peer finished its side, is a sink)
    channels: heapless::Vec<(ChannelId, bool, bool), MAX_ECHO_CHANNELS>,
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
                let sink = name.as_str() == SINK_SERVICE;
                if self.channels.push((id, false, sink)).is_err() {
                    let _ = mux.reset(id, 1);
                }
                None
            }
            MuxEvent::Finished { id } => {
                match self.channels.iter_mut().find(|(c, _, _)| *c == id) {
                    Some(slot) => {
                        slot.1 = true;
                        None
                    }
                    None => Some(ev),
                }
            }
            MuxEvent::Reset { id, .. } => {
                if let Some(pos) = self.channels.iter().position(|(c, _, _)| *c == id) {
                    self.channels.swap_remove(pos);
                    None
                } else {
                    Some(ev)
                }
            }
            other => Some(other),
        }
    }

    /// When the sink may read again: the next refill of one chunk while a
    /// sink channel is open and its bucket is empty (a halted loop must wake
    /// for it; nothing else would, the peer is waiting for credit).
    pub fn poll_at(&self) -> Option<Instant> {
        let sinking = self.channels.iter().any(|(_, _, sink)| *sink);
        if !sinking || self.sink_tokens > 0 {
            return None;
        }
        let at = self.sink_at?;
        let us = (CHUNK as u64).saturating_mul(1_000_000) / self.sink_rate;
        Some(at + Duration::from_micros(us.max(1)))
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
            let Some(&(id, peer_done, sink)) = self.channels.get(i) else {
                break;
            };
            let mut gone = false;
            while sink && self.sink_tokens > 0 {
                let n = (self.sink_tokens as usize).min(CHUNK);
                match mux.read(id, buf.get_mut(..n).unwrap_or(&mut [])) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.sunk += n as u64;
                        self.sink_tokens -= n as u64;
                    }
                    Err(_) => break,
                }
            }
            loop {
                if sink {
                    break;
                }
                let room = mux.write_capacity(id).min(CHUNK);
                if room == 0 {
                    break;
                }
                match mux.read(id, buf.get_mut(..room).unwrap_or(&mut [])) {
                    Ok(0) => break,
                    Ok(n) => match mux.write(id, buf.get(..n).unwrap_or(&[])) {
                        Ok(w) if w == n => self.echoed += n as u64,
                        _ => {
                            // write_capacity said it fits; anything else ends the channel.
                            let _ = mux.reset(id, 2);
                            gone = true;
                            break;
                        }
                    },
                    Err(ChannelError::WouldBlock) => break,
                    Err(_) => break,
                }
            }
            if !gone && peer_done && mux.readable_len(id) == 0 {
                match mux.finish(id) {
                    Ok(()) | Err(ChannelError::Finished) | Err(ChannelError::Closed) => gone = true,
                    Err(ChannelError::WouldBlock) => {}
                    Err(_) => gone = true,
                }
            }
            if gone {
                self.channels.swap_remove(i);
            } else {
                i += 1;
            }
        }
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
    fn fnv_known_value_and_server_default() {
        let _ = EchoServer::new(0);
        let mut h = Fnv::default();
        h.update(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
    }
}
