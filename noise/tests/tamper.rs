//! Every byte of every handshake message is covered: flipping, truncating or
//! extending any of them makes the receiving side reject cleanly (typed
//! error, `Failed`, no session, no panic).

mod common;

use common::*;
use dsb_noise::*;

struct Run {
    init: Initiator,
    resp: Responder,
}

/// Both sides with fixed randomness: identical messages on every run.
fn fresh(a: &Keys, b: &Keys) -> Run {
    let cfg = HandshakeConfig::default();
    let init = Initiator::new(
        &a.id,
        b.id.device_id(),
        b.id.binding(),
        &mut rng(1),
        t(0),
        &cfg,
    )
    .unwrap();
    let resp = Responder::new(&b.id, &mut rng(2), t(0), &cfg).unwrap();
    Run { init, resp }
}

fn trust(a: &Keys) -> MapTrust {
    MapTrust::default().with("node-a", a.id.binding())
}

/// The honest messages of the fixed run.
fn transcript(a: &Keys, b: &Keys) -> [Vec<u8>; 3] {
    let mut r = fresh(a, b);
    let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE_LEN];
    let n = r.init.write_message(&mut buf).unwrap();
    let m1 = buf[..n].to_vec();
    r.resp.read_message(t(1), &m1, &mut trust(a)).unwrap();
    let n = r.resp.write_message(&mut buf).unwrap();
    let m2 = buf[..n].to_vec();
    r.init.read_message(t(2), &m2).unwrap();
    let n = r.init.write_message(&mut buf).unwrap();
    let m3 = buf[..n].to_vec();
    r.resp.read_message(t(3), &m3, &mut trust(a)).unwrap();
    assert!(r.init.into_session().is_ok() && r.resp.into_session().is_ok());
    [m1, m2, m3]
}

/// Replay the honest run up to message `index` (0-based), deliver `bad`
/// instead, and return the receiver's verdict; asserts it ends Failed.
fn deliver(a: &Keys, b: &Keys, honest: &[Vec<u8>; 3], index: usize, bad: &[u8]) -> NoiseError {
    let mut r = fresh(a, b);
    let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE_LEN];
    let mut tr = trust(a);
    r.init.write_message(&mut buf).unwrap();
    if index == 0 {
        let e = r.resp.read_message(t(1), bad, &mut tr).unwrap_err();
        assert_eq!(r.resp.status(), HandshakeStatus::Failed);
        assert!(r.resp.into_session().is_err());
        return e;
    }
    r.resp.read_message(t(1), &honest[0], &mut tr).unwrap();
    r.resp.write_message(&mut buf).unwrap();
    if index == 1 {
        let e = r.init.read_message(t(2), bad).unwrap_err();
        assert_eq!(r.init.status(), HandshakeStatus::Failed);
        assert_eq!(r.init.write_message(&mut buf), Err(NoiseError::BadState));
        assert!(r.init.into_session().is_err());
        return e;
    }
    r.init.read_message(t(2), &honest[1]).unwrap();
    r.init.write_message(&mut buf).unwrap();
    let e = r.resp.read_message(t(3), bad, &mut tr).unwrap_err();
    assert_eq!(r.resp.status(), HandshakeStatus::Failed);
    assert!(r.resp.into_session().is_err());
    e
}

#[test]
fn every_flipped_bit_pattern_at_every_position_is_rejected() {
    let (a, b) = (keys("node-a", 1), keys("node-b", 2));
    let honest = transcript(&a, &b);
    let mut cases = 0;
    for (index, msg) in honest.iter().enumerate() {
        for pos in 0..msg.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = msg.clone();
                bad[pos] ^= mask;
                let e = deliver(&a, &b, &honest, index, &bad);
                assert_eq!(
                    e,
                    NoiseError::DecryptFailed,
                    "msg{} byte {pos} ^ {mask:#x}",
                    index + 1
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 3 * honest.iter().map(Vec::len).sum::<usize>());
}

#[test]
fn every_truncation_and_extension_is_rejected() {
    let (a, b) = (keys("node-a", 1), keys("node-b", 2));
    let honest = transcript(&a, &b);
    for (index, msg) in honest.iter().enumerate() {
        for len in 0..msg.len() {
            let e = deliver(&a, &b, &honest, index, &msg[..len]);
            assert!(
                matches!(e, NoiseError::DecryptFailed | NoiseError::Malformed),
                "msg{} cut to {len}: {e:?}",
                index + 1
            );
        }
        let mut longer = msg.clone();
        longer.push(0);
        let e = deliver(&a, &b, &honest, index, &longer);
        assert!(
            matches!(e, NoiseError::DecryptFailed | NoiseError::Oversized),
            "msg{} + 1 byte: {e:?}",
            index + 1
        );
    }
}

#[test]
fn oversized_handshake_messages_are_refused_before_crypto() {
    let (a, b) = (keys("node-a", 1), keys("node-b", 2));
    let honest = transcript(&a, &b);
    let huge = vec![0u8; 70_000];
    for index in 0..3 {
        assert_eq!(
            deliver(&a, &b, &honest, index, &huge),
            NoiseError::Oversized
        );
    }
}

#[test]
fn messages_from_another_run_are_rejected() {
    // A message 2 or 3 recorded from a different handshake never fits.
    let (a, b) = (keys("node-a", 1), keys("node-b", 2));
    let honest = transcript(&a, &b);
    let cfg = HandshakeConfig::default();
    let mut other_i = Initiator::new(
        &a.id,
        b.id.device_id(),
        b.id.binding(),
        &mut rng(50),
        t(0),
        &cfg,
    )
    .unwrap();
    let mut other_r = Responder::new(&b.id, &mut rng(51), t(0), &cfg).unwrap();
    let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE_LEN];
    let n = other_i.write_message(&mut buf).unwrap();
    other_r
        .read_message(t(1), &buf[..n], &mut trust(&a))
        .unwrap();
    let n = other_r.write_message(&mut buf).unwrap();
    let other_m2 = buf[..n].to_vec();
    other_i.read_message(t(2), &other_m2).unwrap();
    let n = other_i.write_message(&mut buf).unwrap();
    let other_m3 = buf[..n].to_vec();
    assert_eq!(
        deliver(&a, &b, &honest, 1, &other_m2),
        NoiseError::DecryptFailed
    );
    assert_eq!(
        deliver(&a, &b, &honest, 2, &other_m3),
        NoiseError::DecryptFailed
    );
}
