//! Shared helpers for the mux tests: a seeded RNG, a pump that moves bytes
//! between two `Mux` instances with arbitrary chunking, and a frame builder.
#![allow(dead_code)]

use dsb_transports::mux::{
    ChannelError, ChannelId, Frame, Mux, MuxConfig, MuxError, MuxEvent, Role,
    MAX_CONTROL_FRAME_LEN, NOISE_MAX_PLAINTEXT,
};
use smoltcp::time::{Duration, Instant};

/// splitmix64: tiny, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
    /// Random bytes, length uniform in `lo..=hi`.
    pub fn bytes_in(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let n = self.range(lo, hi);
        self.bytes(n)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// FNV-1a 64: a content hash for comparing large transfers.
pub fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Encodes one frame.
pub fn frame(f: Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0; f.buffer_len()];
    let n = f.emit(&mut buf).expect("frame fits");
    buf.truncate(n);
    buf
}

/// Drains every event of `m`.
pub fn events(m: &mut Mux) -> Vec<MuxEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Everything `m` wants to send, in one vector (buffer of `chunk` bytes per poll).
pub fn drain_tx(m: &mut Mux, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0; chunk];
    loop {
        let n = m.poll_transmit(&mut buf);
        if n == 0 {
            return out;
        }
        assert!(n <= chunk);
        out.extend_from_slice(&buf[..n]);
    }
}

pub const T0: Instant = Instant::ZERO;

/// Two authenticated muxes (a = session initiator, b = responder) and a clock.
pub struct Pair {
    pub a: Mux,
    pub b: Mux,
    pub now: Instant,
    pub rng: Rng,
    /// Largest transmit buffer handed to `poll_transmit`.
    pub max_tx: usize,
    /// Largest chunk fed to `handle_bytes` at once.
    pub max_rx: usize,
}

impl Pair {
    /// Both sides with `config`, authenticated, both accepting `services`.
    pub fn new(config: MuxConfig, seed: u64, services: &[&str]) -> Pair {
        Pair::with(config, config, seed, services)
    }

    /// Like `new` with a different config per side.
    pub fn with(config_a: MuxConfig, config_b: MuxConfig, seed: u64, services: &[&str]) -> Pair {
        let mut a = Mux::new(Role::Initiator, config_a, T0).unwrap();
        let mut b = Mux::new(Role::Responder, config_b, T0).unwrap();
        for s in services {
            a.register_service(s).unwrap();
            b.register_service(s).unwrap();
        }
        a.set_authenticated(T0);
        b.set_authenticated(T0);
        Pair {
            a,
            b,
            now: T0,
            rng: Rng::new(seed),
            max_tx: NOISE_MAX_PLAINTEXT,
            max_rx: 70_000,
        }
    }

    /// Moves one round of bytes each way with random buffer sizes and chunking.
    /// Returns how many bytes moved.
    pub fn step(&mut self) -> Result<usize, MuxError> {
        let ab = Self::transfer(
            &mut self.rng,
            self.now,
            &mut self.a,
            &mut self.b,
            self.max_tx,
            self.max_rx,
        )?;
        let ba = Self::transfer(
            &mut self.rng,
            self.now,
            &mut self.b,
            &mut self.a,
            self.max_tx,
            self.max_rx,
        )?;
        Ok(ab + ba)
    }

    fn transfer(
        rng: &mut Rng,
        now: Instant,
        from: &mut Mux,
        to: &mut Mux,
        max_tx: usize,
        max_rx: usize,
    ) -> Result<usize, MuxError> {
        let size = rng.range(MAX_CONTROL_FRAME_LEN, max_tx);
        let mut buf = vec![0; size];
        let n = from.poll_transmit(&mut buf);
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let take = rng.range(1, rest.len().min(max_rx));
            to.handle_bytes(now, &rest[..take])?;
            rest = &rest[take..];
        }
        Ok(n)
    }

    /// Steps until nothing moves any more.
    pub fn settle(&mut self) -> Result<(), MuxError> {
        for _ in 0..100_000 {
            if self.step()? == 0 {
                return Ok(());
            }
        }
        panic!("pump did not settle");
    }

    /// Advances the clock of both sides.
    pub fn advance(&mut self, d: Duration) -> Result<(), MuxError> {
        self.now += d;
        self.a.handle_timeout(self.now)?;
        self.b.handle_timeout(self.now)?;
        Ok(())
    }

    /// a opens `name`, b sees it; returns the id.
    pub fn open_ab(&mut self, name: &str) -> ChannelId {
        let id = self.a.open(name).unwrap();
        self.settle().unwrap();
        id
    }
}

/// Reads everything currently available on `id` into `sink`; true once EOF.
pub fn read_all(m: &mut Mux, id: ChannelId, sink: &mut Vec<u8>, chunk: usize) -> bool {
    let mut buf = vec![0; chunk];
    loop {
        match m.read(id, &mut buf) {
            Ok(0) => return true,
            Ok(n) => sink.extend_from_slice(&buf[..n]),
            Err(ChannelError::WouldBlock) => return false,
            Err(ChannelError::Closed) => return true,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Writes as much of `data[*sent..]` as accepted; advances `sent`.
pub fn write_some(m: &mut Mux, id: ChannelId, data: &[u8], sent: &mut usize, max: usize) {
    while *sent < data.len() {
        let end = (*sent + max).min(data.len());
        match m.write(id, &data[*sent..end]) {
            Ok(n) => *sent += n,
            Err(ChannelError::WouldBlock) => return,
            Err(e) => panic!("write failed: {e}"),
        }
    }
}
