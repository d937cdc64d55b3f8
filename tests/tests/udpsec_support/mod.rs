//! Shared helpers for the udp-sec tests: a [`Handshake`] over bare `snow`
//! (Noise_XK_25519_ChaChaPoly_BLAKE2s, seeded RNG, optional pinned peer
//! identity), a connection pair on a simulated link, and a bulk transfer
//! that checks every byte.
#![allow(dead_code)]

use dsb_noise::TrustStore;
use dsb_tests::link::{Link, LinkConfig, Sim};
use dsb_transports::udpsec::{
    CloseReason, Config, Connection, Event, Handshake, HsError, SessionKeys, MAX_DATAGRAM,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use smoltcp::time::{Duration, Instant};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

pub const PATTERN: &str = "Noise_XK_25519_ChaChaPoly_BLAKE2s";

/// SECURITY: test keys, not for production — deterministic RNG for snow.
struct SeededResolver(u64);

struct SnowRng(ChaCha20Rng);

impl Random for SnowRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SnowRng(ChaCha20Rng::seed_from_u64(self.0))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

fn builder(seed: u64) -> snow::Builder<'static> {
    snow::Builder::with_resolver(PATTERN.parse().unwrap(), Box::new(SeededResolver(seed)))
}

/// A static X25519 key pair `(private, public)` derived from `seed`.
/// SECURITY: test keys, not for production.
pub fn keypair(seed: u64) -> ([u8; 32], [u8; 32]) {
    let kp = builder(seed).generate_keypair().unwrap();
    (
        kp.private.try_into().unwrap(),
        kp.public.try_into().unwrap(),
    )
}

/// Noise XK over snow; the responder may pin the initiator's static key
/// (a stand-in for the identity binding of the real adapter).
pub struct SnowXk {
    hs: snow::HandshakeState,
    expect_remote: Option<[u8; 32]>,
}

impl SnowXk {
    /// Initiator with static key `s`, knowing the responder's `rs`.
    pub fn initiator(seed: u64, s: &[u8; 32], rs: &[u8; 32]) -> Self {
        let hs = builder(seed)
            .local_private_key(s)
            .unwrap()
            .remote_public_key(rs)
            .unwrap()
            .build_initiator()
            .unwrap();
        SnowXk {
            hs,
            expect_remote: None,
        }
    }

    /// Responder with static key `s`, accepting only `expect` as initiator (if given).
    pub fn responder(seed: u64, s: &[u8; 32], expect: Option<[u8; 32]>) -> Self {
        let hs = builder(seed)
            .local_private_key(s)
            .unwrap()
            .build_responder()
            .unwrap();
        SnowXk {
            hs,
            expect_remote: expect,
        }
    }
}

impl Handshake for SnowXk {
    fn write_message(&mut self, out: &mut [u8]) -> Result<usize, HsError> {
        self.hs
            .write_message(&[], out)
            .map_err(|_| HsError::new("noise-write"))
    }

    fn read_message(
        &mut self,
        _now: Instant,
        msg: &[u8],
        _trust: &mut dyn TrustStore,
    ) -> Result<(), HsError> {
        let mut payload = [0u8; MAX_DATAGRAM];
        self.hs
            .read_message(msg, &mut payload)
            .map_err(|_| HsError::new("noise-decrypt"))?;
        if let (Some(expect), Some(got)) = (self.expect_remote, self.hs.get_remote_static()) {
            if got != expect {
                return Err(HsError::new("identity-mismatch"));
            }
        }
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.hs.is_handshake_finished()
    }

    fn is_my_turn(&self) -> bool {
        self.hs.is_my_turn()
    }

    fn take_keys(&mut self) -> Result<SessionKeys, HsError> {
        if !self.hs.is_handshake_finished() {
            return Err(HsError::new("handshake-unfinished"));
        }
        let (i2r, r2i) = self.hs.dangerously_get_raw_split();
        let mut hash = [0u8; 32];
        hash.copy_from_slice(self.hs.get_handshake_hash());
        Ok(SessionKeys {
            initiator_to_responder: i2r,
            responder_to_initiator: r2i,
            handshake_hash: hash,
        })
    }
}

pub type Conn = Connection<SnowXk>;
pub type Pair = Sim<Conn, Conn>;

pub const SESSION_ID: u64 = 0x5eed_0000_0000_0001;

/// Initiator A and responder B with fresh keys derived from `seed`.
pub fn conn_pair(config: &Config, seed: u64, now: Instant) -> (Conn, Conn) {
    let (si, _pi) = keypair(seed.wrapping_mul(3) + 1);
    let (sr, pr) = keypair(seed.wrapping_mul(3) + 2);
    let a = Connection::connect(
        config.clone(),
        SESSION_ID,
        SnowXk::initiator(seed ^ 0xa, &si, &pr),
        now,
    )
    .unwrap();
    let b = Connection::accept(
        config.clone(),
        SESSION_ID,
        SnowXk::responder(seed ^ 0xb, &sr, None),
        now,
    );
    (a, b)
}

/// A connected-to-be pair on a link with `link_cfg`, randomness from `seed`.
pub fn pair(config: &Config, link_cfg: LinkConfig, seed: u64) -> Pair {
    let now = Instant::from_millis(0);
    let (a, b) = conn_pair(config, seed, now);
    Sim::new(now, a, b, Link::new(link_cfg, seed), MAX_DATAGRAM)
}

/// Byte `i` of the test stream.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// The first `len` bytes of the test stream.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern_byte).collect()
}

/// Events seen by each side.
#[derive(Default, Debug)]
pub struct Seen {
    pub a: Vec<(Instant, Event)>,
    pub b: Vec<(Instant, Event)>,
}

impl Seen {
    pub fn collect(&mut self, sim: &mut Pair) {
        while let Some(e) = sim.a.poll_event() {
            self.a.push((sim.now, e));
        }
        while let Some(e) = sim.b.poll_event() {
            self.b.push((sim.now, e));
        }
    }
    pub fn a_connected(&self) -> bool {
        self.a
            .iter()
            .any(|(_, e)| matches!(e, Event::Connected { .. }))
    }
    pub fn b_connected(&self) -> bool {
        self.b
            .iter()
            .any(|(_, e)| matches!(e, Event::Connected { .. }))
    }
    pub fn a_closed(&self) -> Option<CloseReason> {
        self.a.iter().find_map(|(_, e)| match e {
            Event::Closed { reason } => Some(*reason),
            _ => None,
        })
    }
    pub fn b_closed(&self) -> Option<CloseReason> {
        self.b.iter().find_map(|(_, e)| match e {
            Event::Closed { reason } => Some(*reason),
            _ => None,
        })
    }
}

/// Outcome of [`transfer`].
#[derive(Debug)]
pub struct TransferResult {
    pub completed: bool,
    /// From the start (connect) to the last byte read by B.
    pub elapsed: Duration,
    pub bytes: usize,
    pub seen: Seen,
}

impl TransferResult {
    /// Goodput in Mbit/s over `elapsed`.
    pub fn mbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.total_micros().max(1) as f64
    }
}

/// Send `len` bytes A → B, checking each byte read; stops at `deadline`.
pub fn transfer(sim: &mut Pair, len: usize, deadline: Instant) -> TransferResult {
    let start = sim.now;
    let data = pattern(len);
    let mut written = 0usize;
    let mut read = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Seen::default();
    let completed = sim.run_until(deadline, |sim| {
        seen.collect(sim);
        while written < len {
            let n = sim.a.write(&data[written..]);
            if n == 0 {
                break;
            }
            written += n;
        }
        loop {
            let n = sim.b.read(&mut buf);
            if n == 0 {
                break;
            }
            assert_eq!(
                &buf[..n],
                &data[read..read + n],
                "stream corrupted at offset {read}"
            );
            read += n;
        }
        read == len
    });
    seen.collect(sim);
    TransferResult {
        completed,
        elapsed: sim.now - start,
        bytes: read,
        seen,
    }
}
