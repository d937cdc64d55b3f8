//! Shared helpers for the integration tests: identities, a map trust store,
//! a driver for both sides in one process, and a hand-rolled "evil"
//! initiator built from the raw XK wrapper and the documented wire format.
#![allow(dead_code)]

use dsb_noise::testing::RawHandshake;
use dsb_noise::*;
use ed25519_dalek::{Signer, SigningKey};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use smoltcp::time::Instant;

/// An identity with known secret bytes (so tests can play a thief).
pub struct Keys {
    pub id: Identity,
    pub device_seed: [u8; 32],
    pub static_secret: [u8; 32],
}

pub fn keys(name: &str, seed: u8) -> Keys {
    let device_seed = [seed; 32];
    let static_secret = [seed.wrapping_add(100); 32];
    Keys {
        id: Identity::from_secret_bytes(name, &device_seed, &static_secret).unwrap(),
        device_seed,
        static_secret,
    }
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn t(ms: i64) -> Instant {
    Instant::from_millis(ms)
}

pub fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

/// A trust store backed by a list.
#[derive(Default, Clone)]
pub struct MapTrust(pub Vec<(String, Binding)>);

impl MapTrust {
    pub fn with(mut self, name: &str, b: Binding) -> Self {
        self.0.push((name.to_string(), b));
        self
    }
}

impl TrustStore for MapTrust {
    fn admit(&mut self, device_id: &DeviceId, device_key: &[u8; 32]) -> Result<(), NoiseError> {
        match self.0.iter().find(|(n, _)| n == device_id.as_str()) {
            Some((_, b)) if b.device_key == *device_key => Ok(()),
            Some(_) => Err(NoiseError::IdentityMismatch),
            None => Err(NoiseError::UnknownPeer),
        }
    }
}

/// Which side rejected.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Side {
    Initiator,
    Responder,
}

/// Run a whole handshake in memory: `a` connects to `b` expecting `expected`;
/// `b` checks `a` against `trust`.
pub fn handshake(
    a: &Identity,
    b: &Identity,
    expected: Binding,
    trust: &MapTrust,
    seed: u64,
) -> Result<(Session, Session), (Side, NoiseError)> {
    let mut r = rng(seed);
    let cfg = HandshakeConfig::default();
    let mut init = Initiator::new(a, b.device_id(), expected, &mut r, t(0), &cfg).unwrap();
    let mut resp = Responder::new(b, &mut r, t(0), &cfg).unwrap();
    let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE_LEN];
    let n = init.write_message(&mut buf).unwrap();
    resp.read_message(t(1), &buf[..n], &mut trust.clone())
        .map_err(|e| (Side::Responder, e))?;
    let n = resp.write_message(&mut buf).unwrap();
    init.read_message(t(2), &buf[..n])
        .map_err(|e| (Side::Initiator, e))?;
    let n = init.write_message(&mut buf).unwrap();
    resp.read_message(t(3), &buf[..n], &mut trust.clone())
        .map_err(|e| (Side::Responder, e))?;
    Ok((init.into_session().unwrap(), resp.into_session().unwrap()))
}

/// The three handshake messages of an honest run (for tampering).
pub struct Transcript {
    pub msg1: Vec<u8>,
    pub msg2: Vec<u8>,
    pub msg3: Vec<u8>,
}

/// Encode an attestation exactly as `docs/protocol.md` specifies.
pub fn encode_attestation(device_id: &str, device_key: &[u8; 32], sig: &[u8; 64]) -> Vec<u8> {
    let mut v = vec![1u8, device_id.len() as u8];
    v.extend_from_slice(device_id.as_bytes());
    v.extend_from_slice(device_key);
    v.extend_from_slice(sig);
    v
}

/// Sign as the spec says: context || h || static || len(id) || id.
pub fn sign_attestation(
    context: &[u8],
    key: &SigningKey,
    h: &[u8; 32],
    noise_static: &[u8; 32],
    device_id: &str,
) -> [u8; 64] {
    let mut m = context.to_vec();
    m.extend_from_slice(h);
    m.extend_from_slice(noise_static);
    m.push(device_id.len() as u8);
    m.extend_from_slice(device_id.as_bytes());
    key.sign(&m).to_bytes()
}

/// An initiator written from the spec on top of the raw XK wrapper, so tests
/// can put any message-3 payload on the wire.
pub struct EvilInitiator {
    pub raw: RawHandshake,
    pub h1: [u8; 32],
}

impl EvilInitiator {
    /// Start towards `responder_static` with our static secret; returns msg1.
    pub fn start(
        static_secret: &[u8; 32],
        responder_static: &[u8; 32],
        eph: u8,
    ) -> (Self, Vec<u8>) {
        let mut raw =
            RawHandshake::initiator_for_test(static_secret, responder_static, PROLOGUE, &[eph; 32])
                .unwrap();
        let mut buf = [0u8; 256];
        let n = raw.write(&[], &mut buf).unwrap();
        let h1 = raw.handshake_hash();
        (EvilInitiator { raw, h1 }, buf[..n].to_vec())
    }

    /// Read msg2 (no checks).
    pub fn read_msg2(&mut self, msg2: &[u8]) {
        let mut p = [0u8; 256];
        self.raw.read(msg2, &mut p).unwrap();
    }

    /// Handshake hash at the point of writing msg3.
    pub fn h2(&self) -> [u8; 32] {
        self.raw.handshake_hash()
    }

    /// Write msg3 with an arbitrary payload.
    pub fn msg3(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let n = self.raw.write(payload, &mut buf).unwrap();
        buf[..n].to_vec()
    }
}

/// Responder side of an evil-initiator run: returns the responder after msg2
/// plus msg2.
pub fn responder_after_msg2(
    b: &Identity,
    msg1: &[u8],
    trust: &MapTrust,
    seed: u64,
) -> (Responder, Vec<u8>) {
    let mut resp = Responder::new(b, &mut rng(seed), t(0), &HandshakeConfig::default()).unwrap();
    resp.read_message(t(1), msg1, &mut trust.clone()).unwrap();
    let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE_LEN];
    let n = resp.write_message(&mut buf).unwrap();
    (resp, buf[..n].to_vec())
}
