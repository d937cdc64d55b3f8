//! Shared code of the Noise fuzz targets: fixed test identities, a trust
//! store, attestation construction, the input formats and the harnesses, so
//! the seed generator (`examples/seeds.rs`) writes exactly what the targets
//! read and every recorded handshake replays byte for byte (fixed
//! ephemerals, seeded RNGs).
//!
//! SECURITY: test keys, not for production.

use std::sync::OnceLock;

use dsb_noise::testing::RawHandshake;
use dsb_noise::{
    DeviceId, FrameDecoder, HandshakeConfig, HandshakeStatus, Identity, Initiator, NoiseError,
    Responder, Session, TrustStore, FRAME_HEADER_LEN, INITIATOR_CONTEXT, MAX_HANDSHAKE_MESSAGE_LEN,
    MAX_MSG2_LEN, MAX_MSG3_LEN, MSG1_LEN, PROLOGUE, RESPONDER_CONTEXT,
};
use ed25519_dalek::{Signer, SigningKey};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use smoltcp::time::Instant;

/// Largest payload the harness's peer seals (snow needs room for it and its tag).
const MAX_PAYLOAD: usize = 1024;

// ----------------------------------------------------------------- input

#[path = "../../../tests/support/fuzz_input.rs"]
mod input;
pub use input::{put_blob, Input};

// ------------------------------------------------------------ frame decoder

/// What a one-shot decoder makes of a whole stream.
fn reference_frames(stream: &[u8], max: usize) -> (Vec<&[u8]>, Result<(), NoiseError>) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        match rest {
            [] => return (frames, Ok(())),
            [_] => return (frames, Err(NoiseError::Truncated)),
            [a, b, tail @ ..] => {
                let len = usize::from(u16::from_be_bytes([*a, *b]));
                if len == 0 {
                    return (frames, Err(NoiseError::Malformed));
                }
                if len > max {
                    return (frames, Err(NoiseError::Oversized));
                }
                if tail.len() < len {
                    return (frames, Err(NoiseError::Truncated));
                }
                let (f, t) = tail.split_at(len);
                frames.push(f);
                rest = t;
            }
        }
    }
}

/// `frame_decoder`: `[max u16 LE][n u8][n cut sizes u8][stream]`.
pub fn run_frame_decoder(data: &[u8]) {
    let mut inp = Input(data);
    let (Some(max), Some(n)) = (inp.u16(), inp.u8()) else {
        return;
    };
    let Some(cuts) = inp.bytes(usize::from(n % 16)) else {
        return;
    };
    let stream = inp.0;
    let mut dec = FrameDecoder::new(usize::from(max));
    let max = dec.max_message();
    assert!((1..=65535).contains(&max));
    let (want, want_end) = reference_frames(stream, max);

    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut error = None;
    let mut rest = stream;
    let mut cut = cuts.iter().cycle();
    'outer: while !rest.is_empty() {
        let size = cut
            .next()
            .map_or(rest.len(), |&c| usize::from(c) + 1)
            .min(rest.len());
        let (mut chunk, tail) = rest.split_at(size);
        rest = tail;
        while !chunk.is_empty() {
            match dec.feed(chunk) {
                Ok((used, frame)) => {
                    assert!(used <= chunk.len());
                    assert!(used > 0 || frame.is_some(), "no progress");
                    if let Some(f) = frame {
                        assert!(!f.is_empty() && f.len() <= max);
                        got.push(f.to_vec());
                    }
                    chunk = &chunk[used..];
                    assert!(dec.buffered() <= FRAME_HEADER_LEN + max);
                }
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(dec.feed(b"\x00\x01x").map(|_| ()), Err(e));
                    assert_eq!(dec.finish(), Err(e));
                    error = Some(e);
                    break 'outer;
                }
            }
        }
    }
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(&g[..], *w);
    }
    match (error, want_end) {
        (Some(e), Err(w)) => assert_eq!(e, w),
        (None, Ok(())) => assert_eq!(dec.finish(), Ok(())),
        (None, Err(NoiseError::Truncated)) => assert_eq!(dec.finish(), Err(NoiseError::Truncated)),
        (got, want) => panic!("decoder {got:?}, reference {want:?}"),
    }
}

// --------------------------------------------------------------- identities

/// Device ids of the fixed identities.
pub const INIT_ID: &str = "init";
pub const RESP_ID: &str = "resp";
pub const OTHER_ID: &str = "other";
/// An id the trust store binds to the initiator's device key but another static key.
pub const SPLIT_ID: &str = "split";

/// `(device id, Ed25519 seed, X25519 secret)` of the three identities.
// SECURITY: test keys, not for production.
pub const SECRETS: [(&str, [u8; 32], [u8; 32]); 3] = [
    (INIT_ID, [0x11; 32], [0x12; 32]),
    (RESP_ID, [0x21; 32], [0x22; 32]),
    (OTHER_ID, [0x31; 32], [0x32; 32]),
];
/// Fixed ephemeral keys of the harness's honest peer.
pub const EPH_INIT: [u8; 32] = [0x13; 32];
pub const EPH_RESP: [u8; 32] = [0x23; 32];
/// Seed of the RNG handed to the handshake under test.
pub const RNG_SEED: [u8; 32] = [0x5a; 32];

/// The three identities, built once.
pub fn identities() -> &'static [Identity; 3] {
    static IDS: OnceLock<[Identity; 3]> = OnceLock::new();
    IDS.get_or_init(|| {
        SECRETS.map(|(id, dev, st)| Identity::from_secret_bytes(id, &dev, &st).expect("test id"))
    })
}

/// Who the responder under test trusts: pinned (device id, device key)
/// pairs, nothing learned.
pub struct FuzzTrust;

impl FuzzTrust {
    /// The device key pinned for `device_id`.
    pub fn pinned(device_id: &str) -> Option<[u8; 32]> {
        let ids = identities();
        match device_id {
            INIT_ID => Some(ids[0].device_public_key()),
            OTHER_ID => Some(ids[2].device_public_key()),
            // Another id for the responder's own device key.
            SPLIT_ID => Some(ids[1].device_public_key()),
            _ => None,
        }
    }
}

impl TrustStore for FuzzTrust {
    fn admit(&mut self, device_id: &DeviceId, device_key: &[u8; 32]) -> Result<(), NoiseError> {
        match FuzzTrust::pinned(device_id.as_str()) {
            Some(k) if &k == device_key => Ok(()),
            Some(_) => Err(NoiseError::IdentityMismatch),
            None => Err(NoiseError::UnknownPeer),
        }
    }
}

/// Whether the responder must admit the initiator-side attestation
/// `attestation(sel, 0, h2, false)` sent by the honest peer (identity 0):
/// the claimed id is pinned to the key that signed, the signed static key
/// is the peer's own, and the context is the initiator's.
pub fn admissible(sel: u8) -> bool {
    let ids = [INIT_ID, RESP_ID, OTHER_ID, SPLIT_ID];
    let id = ids[usize::from(sel & 3)];
    let signer = identities()[usize::from((sel >> 2) & 3) % 3].device_public_key();
    FuzzTrust::pinned(id) == Some(signer) && usize::from((sel >> 4) & 3) % 3 == 0 && sel & 0x40 == 0
}

/// An attestation from choices: `sel` picks the id (bits 0-1), the signing
/// device key (bits 2-3), the static key signed over (bits 4-5) and the
/// context (bit 6: the other role's). `sel = 0` with `who` gives `who`'s
/// honest attestation.
pub fn attestation(sel: u8, who: usize, h: &[u8; 32], responder: bool) -> Vec<u8> {
    let ids = [INIT_ID, RESP_ID, OTHER_ID, SPLIT_ID];
    let pick = |bits: u8| (who + usize::from(bits)) % 3;
    let id = if sel & 3 == 0 {
        ids[who]
    } else {
        ids[usize::from(sel & 3)]
    };
    let (_, dev, _) = SECRETS[pick((sel >> 2) & 3)];
    let noise_static = identities()[pick((sel >> 4) & 3)].noise_static_public();
    let ctx: &[u8] = if (sel & 0x40 != 0) != responder {
        RESPONDER_CONTEXT
    } else {
        INITIATOR_CONTEXT
    };
    let key = SigningKey::from_bytes(&dev);
    let mut msg = Vec::new();
    msg.extend_from_slice(ctx);
    msg.extend_from_slice(h);
    msg.extend_from_slice(&noise_static);
    msg.push(id.len() as u8);
    msg.extend_from_slice(id.as_bytes());
    let sig = key.sign(&msg).to_bytes();
    let mut out = vec![1, id.len() as u8];
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&key.verifying_key().to_bytes());
    out.extend_from_slice(&sig);
    out
}

/// How the harness builds the peer's message at one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// These bytes, as they are.
    Raw(&'a [u8]),
    /// The honest peer's next message carrying this payload.
    Sealed(&'a [u8]),
    /// The honest peer's next message carrying [`attestation`]`(sel, ..)`.
    Attest(u8),
}

impl<'a> Msg<'a> {
    fn read(inp: &mut Input<'a>) -> Option<Self> {
        Some(match inp.u8()? % 3 {
            0 => Msg::Raw(inp.blob()?),
            1 => Msg::Sealed(inp.blob()?),
            _ => Msg::Attest(inp.u8()?),
        })
    }

    /// Encoder for the seed generator.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Msg::Raw(b) => {
                out.push(0);
                put_blob(out, b);
            }
            Msg::Sealed(b) => {
                out.push(1);
                put_blob(out, b);
            }
            Msg::Attest(sel) => out.extend_from_slice(&[2, *sel]),
        }
    }
}

fn t(ms: u16) -> Instant {
    // Up to ~65 s, on both sides of the 5 s handshake deadline.
    Instant::from_millis(i64::from(ms))
}

/// Both sessions of a finished handshake carry a message each way.
fn check_sessions(a: &mut Session, b: &mut Session) {
    let mut ct = [0u8; 64];
    let mut pt = [0u8; 64];
    for a_sends in [true, false] {
        let (x, y) = if a_sends {
            (&mut *a, &mut *b)
        } else {
            (&mut *b, &mut *a)
        };
        let n = x.encrypt(b"ping", &mut ct).expect("encrypt");
        let m = y
            .decrypt(&ct[..n], &mut pt)
            .expect("the two sessions share keys");
        assert_eq!(&pt[..m], b"ping");
    }
}

/// Honest peer's view: a failed handshake rejects everything afterwards.
fn assert_failed_for_good(status: HandshakeStatus, again: Result<(), NoiseError>) {
    assert_eq!(status, HandshakeStatus::Failed);
    assert_eq!(again, Err(NoiseError::BadState));
}

// ------------------------------------------------------------------ responder

/// `handshake_responder`: `[t1 u16][msg1][t3 u16][msg3]`, each message a
/// [`Msg`] (`[0][blob]` raw, `[1][blob]` sealed payload, `[2][sel]` attestation).
pub fn run_responder(data: &[u8]) {
    let mut inp = Input(data);
    let (Some(t1), Some(m1)) = (inp.u16(), Msg::read(&mut inp)) else {
        return;
    };
    let ids = identities();
    let cfg = HandshakeConfig::default();
    let deadline = t(0) + cfg.timeout;
    let mut rng = ChaCha20Rng::from_seed(RNG_SEED);
    let mut r = Responder::new(&ids[1], &mut rng, t(0), &cfg).expect("responder");
    let mut peer = RawHandshake::initiator_for_test(
        &SECRETS[0].2,
        &ids[1].noise_static_public(),
        PROLOGUE,
        &EPH_INIT,
    )
    .expect("peer");
    let mut buf = [0u8; 2048];
    let mut payload = [0u8; 2048];

    // Message 1.
    let (msg1, honest): (&[u8], bool) = match m1 {
        Msg::Raw(b) => (b, false),
        Msg::Sealed(p) if p.len() <= MAX_PAYLOAD => {
            let Ok(n) = peer.write(p, &mut buf) else {
                return;
            };
            (&buf[..n], p.is_empty())
        }
        Msg::Sealed(_) => return,
        Msg::Attest(_) => {
            let n = peer.write(&[], &mut buf).expect("msg1");
            (&buf[..n], true)
        }
    };
    let msg1 = msg1.to_vec();
    let res = r.read_message(t(t1), &msg1, &mut FuzzTrust);
    if honest && t(t1) < deadline {
        assert_eq!(res, Ok(()), "honest message 1 refused");
    }
    if res.is_err() {
        let again = r.read_message(t(t1), &msg1, &mut FuzzTrust);
        return assert_failed_for_good(r.status(), again);
    }
    assert!(msg1.len() <= MSG1_LEN);
    assert_eq!(r.status(), HandshakeStatus::WantWrite);
    let n = r
        .write_message(&mut buf)
        .expect("message 2 after an accepted message 1");
    assert!(n <= MAX_MSG2_LEN);
    let msg2 = buf[..n].to_vec();
    let peer_ok = match peer.read(&msg2, &mut payload) {
        Ok(p) => {
            // The responder attests as itself.
            assert_eq!(&payload[2..2 + RESP_ID.len()], RESP_ID.as_bytes());
            assert!(p > 2);
            true
        }
        // Only when message 1 did not come from the honest peer.
        Err(_) => {
            assert!(!honest, "honest peer cannot read message 2");
            false
        }
    };

    // Message 3.
    let (Some(t3), Some(m3)) = (inp.u16(), Msg::read(&mut inp)) else {
        return;
    };
    let t3 = t1.saturating_add(t3);
    let h2 = peer.handshake_hash();
    let (msg3, valid, from_peer) = match m3 {
        Msg::Raw(b) => (b.to_vec(), false, false),
        Msg::Sealed(p) if peer_ok && p.len() <= MAX_PAYLOAD => match peer.write(p, &mut buf) {
            Ok(n) => (buf[..n].to_vec(), false, true),
            Err(_) => return,
        },
        Msg::Attest(sel) if peer_ok => {
            let att = attestation(sel, 0, &h2, false);
            let n = peer.write(&att, &mut buf).expect("msg3");
            (buf[..n].to_vec(), sel & 0x7f == 0, true)
        }
        _ => return,
    };
    let res = r.read_message(t(t3), &msg3, &mut FuzzTrust);
    if valid && t(t3) < deadline {
        assert_eq!(res, Ok(()), "honest message 3 refused");
    }
    if let (Msg::Attest(sel), true) = (m3, peer_ok && t(t3) < deadline) {
        // Admitted exactly when the attestation deserves it.
        assert_eq!(
            res.is_ok(),
            admissible(sel),
            "attestation {sel:#04x}: {res:?}"
        );
    }
    match res {
        Ok(()) => {
            assert!(msg3.len() <= MAX_MSG3_LEN);
            assert_eq!(r.status(), HandshakeStatus::Finished);
            let claimed = *r.claimed_peer().expect("claimed id");
            let mut ours = r.into_session().expect("session");
            // Only an id pinned in the trust store gets a session.
            assert!(FuzzTrust::pinned(claimed.as_str()).is_some());
            assert_eq!(ours.peer_device_id(), &claimed);
            if !from_peer {
                return; // a replayed recording: the harness's peer did not take part
            }
            let mut theirs = peer
                .into_unbound_session_for_test(RESP_ID)
                .expect("peer session");
            check_sessions(&mut ours, &mut theirs);
        }
        Err(_) => {
            let again = r.read_message(t(t3), &msg3, &mut FuzzTrust);
            assert_failed_for_good(r.status(), again);
        }
    }
}

// ------------------------------------------------------------------ initiator

/// `handshake_initiator`: `[expect u8][t2 u16][msg2]`. `expect` bit 0 makes
/// the initiator expect the wrong binding (another identity's keys).
pub fn run_initiator(data: &[u8]) {
    let mut inp = Input(data);
    let (Some(expect), Some(t2), Some(m2)) = (inp.u8(), inp.u16(), Msg::read(&mut inp)) else {
        return;
    };
    let ids = identities();
    let cfg = HandshakeConfig::default();
    let deadline = t(0) + cfg.timeout;
    let mut rng = ChaCha20Rng::from_seed(RNG_SEED);
    let expected = if expect & 1 == 0 {
        ids[1].binding()
    } else {
        ids[2].binding()
    };
    let peer_id = DeviceId::new(RESP_ID).expect("id");
    let mut i = Initiator::new(&ids[0], &peer_id, expected, &mut rng, t(0), &cfg).expect("init");
    let mut peer =
        RawHandshake::responder_for_test(&SECRETS[1].2, PROLOGUE, &EPH_RESP).expect("peer");
    let mut buf = [0u8; 2048];
    let mut payload = [0u8; 2048];
    let n = i.write_message(&mut buf).expect("message 1");
    assert_eq!(n, MSG1_LEN);
    let msg1 = buf[..n].to_vec();
    // The honest responder reads message 1 only if the initiator expects its key.
    let peer_ok = peer.read(&msg1, &mut payload).is_ok();
    assert_eq!(peer_ok, expect & 1 == 0);
    let h1 = peer.handshake_hash();
    let (msg2, valid, from_peer) = match m2 {
        Msg::Raw(b) => (b.to_vec(), false, false),
        Msg::Sealed(p) if peer_ok && p.len() <= MAX_PAYLOAD => match peer.write(p, &mut buf) {
            Ok(n) => (buf[..n].to_vec(), false, true),
            Err(_) => return,
        },
        Msg::Attest(sel) if peer_ok => {
            let att = attestation(sel, 1, &h1, true);
            let n = peer.write(&att, &mut buf).expect("msg2");
            (buf[..n].to_vec(), sel & 0x7f == 0, true)
        }
        _ => return,
    };
    let res = i.read_message(t(t2), &msg2);
    if valid && t(t2) < deadline {
        assert_eq!(res, Ok(()), "honest message 2 refused");
    }
    if res.is_err() {
        let again = i.read_message(t(t2), &msg2);
        return assert_failed_for_good(i.status(), again);
    }
    assert!(msg2.len() <= MAX_MSG2_LEN);
    // Only the responder holding the expected keys can write an acceptable message 2.
    assert!(peer_ok, "accepted message 2 without the honest responder");
    assert_eq!(i.status(), HandshakeStatus::WantWrite);
    let n = i.write_message(&mut buf).expect("message 3");
    assert!(n <= MAX_HANDSHAKE_MESSAGE_LEN);
    if !from_peer {
        return; // a replayed recording: the harness's peer did not write message 2
    }
    let p = peer
        .read(&buf[..n], &mut payload)
        .expect("honest responder reads message 3");
    assert_eq!(&payload[2..2 + INIT_ID.len()], INIT_ID.as_bytes());
    assert!(p > 2);
    let mut ours = i.into_session().expect("session");
    let mut theirs = peer
        .into_unbound_session_for_test(INIT_ID)
        .expect("peer session");
    check_sessions(&mut ours, &mut theirs);
}

/// The recorded honest handshake's messages (for the seed corpus):
/// `(msg1 as the initiator-side harness writes it, msg3 with a valid attestation)`.
pub fn recorded_initiator_messages() -> (Vec<u8>, Vec<u8>) {
    let ids = identities();
    let mut peer = RawHandshake::initiator_for_test(
        &SECRETS[0].2,
        &ids[1].noise_static_public(),
        PROLOGUE,
        &EPH_INIT,
    )
    .expect("peer");
    let cfg = HandshakeConfig::default();
    let mut rng = ChaCha20Rng::from_seed(RNG_SEED);
    let mut r = Responder::new(&ids[1], &mut rng, t(0), &cfg).expect("responder");
    let mut buf = [0u8; 2048];
    let mut payload = [0u8; 2048];
    let n = peer.write(&[], &mut buf).expect("msg1");
    let msg1 = buf[..n].to_vec();
    r.read_message(t(1), &msg1, &mut FuzzTrust)
        .expect("read msg1");
    let n = r.write_message(&mut buf).expect("msg2");
    peer.read(&buf[..n], &mut payload).expect("read msg2");
    let att = attestation(0, 0, &peer.handshake_hash(), false);
    let n = peer.write(&att, &mut buf).expect("msg3");
    (msg1, buf[..n].to_vec())
}

/// The recorded honest message 2 the initiator under test receives.
pub fn recorded_responder_message() -> Vec<u8> {
    let ids = identities();
    let cfg = HandshakeConfig::default();
    let mut rng = ChaCha20Rng::from_seed(RNG_SEED);
    let peer_id = DeviceId::new(RESP_ID).expect("id");
    let mut i =
        Initiator::new(&ids[0], &peer_id, ids[1].binding(), &mut rng, t(0), &cfg).expect("init");
    let mut peer =
        RawHandshake::responder_for_test(&SECRETS[1].2, PROLOGUE, &EPH_RESP).expect("peer");
    let mut buf = [0u8; 2048];
    let mut payload = [0u8; 2048];
    let n = i.write_message(&mut buf).expect("msg1");
    peer.read(&buf[..n], &mut payload).expect("read msg1");
    let att = attestation(0, 1, &peer.handshake_hash(), true);
    let n = peer.write(&att, &mut buf).expect("msg2");
    buf[..n].to_vec()
}
