//! The cacophony test vector for `Noise_XK_25519_ChaChaPoly_BLAKE2s` through
//! our snow wrapper (resolver, builder, message plumbing, split, `Session`).
//!
//! Numbers copied from the cacophony vectors as published in the snow 0.10.0
//! crate (`tests/vectors/cacophony.txt`, entry
//! `"protocol_name": "Noise_XK_25519_ChaChaPoly_BLAKE2s"`). The vector uses its
//! own prologue ("John Galt") and payloads, not ours.
//!
//! Note: an older revision of that file in snow's git history (commit
//! 62fbfae2c84b644a0432ce497a4a47e4fa139a2d) has the same keys and messages
//! but `handshake_hash` 9cff74db...; the value below (899891a0...) is the one
//! in the 0.10.0 crate and is also what the Noise spec's MixHash chain over
//! the vector's own prologue, pre-message and message bytes gives (checked
//! independently with BLAKE2s alone). snow's own vector test does not compare
//! the handshake hash.

use dsb_noise::testing::RawHandshake;
use dsb_noise::PROTOCOL_NAME;

const PROLOGUE: &str = "4a6f686e2047616c74";
const INIT_STATIC: &str = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
const INIT_EPHEMERAL: &str = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
const INIT_REMOTE_STATIC: &str = "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62";
const RESP_STATIC: &str = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
const RESP_EPHEMERAL: &str = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
const HANDSHAKE_HASH: &str = "899891a0f1a8db67f8bfa46b8bced371c1c25de377f20cf882fdd06fc15517fd";

/// (payload, ciphertext); messages 1..3 are the handshake, 4..6 transport.
/// Senders alternate, starting with the initiator.
const MESSAGES: [(&str, &str); 6] = [
    (
        "4c756477696720766f6e204d69736573",
        "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944e953bb4cd3450eecab157a8ce632f74fcac39a3fcd5be08267d5923ca353d4f0",
    ),
    (
        "4d757272617920526f746862617264",
        "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884382521c3ea09af48bfa39627819b007e7c0e179dad4a9a7482841bae32ec8eb",
    ),
    (
        "462e20412e20486179656b",
        "f032de86c8d3c2099478fefb9b2e6a1fef904d3b2470949858ae9f497ff068dbb6ff7cb43fa51946bcd8a87863849aa7f0e663cd83961c752ce3be41384de8a849e4d130d9a2d717a5c7e8",
    ),
    ("4361726c204d656e676572", "cb54ca2168a55a150760c409e2157b9e57ceab823d897bff36eeab"),
    (
        "4a65616e2d426170746973746520536179",
        "948e26c8a5348aec2711343de8e7c8faa7cae4b6bf51e9026eab234ed4f3e8e8fc",
    ),
    (
        "457567656e2042f6686d20766f6e2042617765726b",
        "dbf0cedc457d87e0eaa4629b7167a7e552ac5197d5436a20a1b5ba001ca21116e22669773c",
    ),
];

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key(s: &str) -> [u8; 32] {
    hex(s).try_into().unwrap()
}

#[test]
fn protocol_name_is_the_vectors_protocol() {
    assert_eq!(PROTOCOL_NAME, "Noise_XK_25519_ChaChaPoly_BLAKE2s");
}

#[test]
fn cacophony_xk_25519_chachapoly_blake2s() {
    let prologue = hex(PROLOGUE);
    let mut init = RawHandshake::initiator_for_test(
        &key(INIT_STATIC),
        &key(INIT_REMOTE_STATIC),
        &prologue,
        &key(INIT_EPHEMERAL),
    )
    .unwrap();
    let mut resp =
        RawHandshake::responder_for_test(&key(RESP_STATIC), &prologue, &key(RESP_EPHEMERAL))
            .unwrap();

    let mut buf = [0u8; 1024];
    let mut got = [0u8; 1024];
    // Handshake: both sides must produce / accept exactly the vector's bytes.
    for (i, (payload, ciphertext)) in MESSAGES[..3].iter().enumerate() {
        let (payload, ciphertext) = (hex(payload), hex(ciphertext));
        let (w, r) = if i % 2 == 0 {
            (&mut init, &mut resp)
        } else {
            (&mut resp, &mut init)
        };
        let n = w.write(&payload, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &ciphertext[..],
            "handshake message {} ciphertext",
            i + 1
        );
        let m = r.read(&ciphertext, &mut got).unwrap();
        assert_eq!(
            &got[..m],
            &payload[..],
            "handshake message {} payload",
            i + 1
        );
    }
    assert!(init.is_finished() && resp.is_finished());
    assert_eq!(init.handshake_hash().to_vec(), hex(HANDSHAKE_HASH));
    assert_eq!(resp.handshake_hash().to_vec(), hex(HANDSHAKE_HASH));
    // Each side authenticated the other's static key.
    let resp_public = init.remote_static().unwrap();
    assert_eq!(resp_public, key(INIT_REMOTE_STATIC));
    let init_secret = x25519_dalek::StaticSecret::from(key(INIT_STATIC));
    let init_public = x25519_dalek::PublicKey::from(&init_secret).to_bytes();
    assert_eq!(resp.remote_static().unwrap(), init_public);

    // Transport phase through our Session type.
    let mut init = init.into_unbound_session_for_test("vector-init").unwrap();
    let mut resp = resp.into_unbound_session_for_test("vector-resp").unwrap();
    assert_eq!(init.handshake_hash().to_vec(), hex(HANDSHAKE_HASH));
    for (i, (payload, ciphertext)) in MESSAGES[3..].iter().enumerate() {
        let (payload, ciphertext) = (hex(payload), hex(ciphertext));
        // Message 4 is the responder's (senders alternate).
        let (w, r) = if i % 2 == 0 {
            (&mut resp, &mut init)
        } else {
            (&mut init, &mut resp)
        };
        let n = w.encrypt(&payload, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &ciphertext[..],
            "transport message {} ciphertext",
            i + 4
        );
        let m = r.decrypt(&ciphertext, &mut got).unwrap();
        assert_eq!(
            &got[..m],
            &payload[..],
            "transport message {} payload",
            i + 4
        );
    }
}

#[test]
fn a_single_changed_vector_byte_is_detected() {
    // The test above can fail: a flipped bit in message 1 is rejected.
    let prologue = hex(PROLOGUE);
    let mut resp =
        RawHandshake::responder_for_test(&key(RESP_STATIC), &prologue, &key(RESP_EPHEMERAL))
            .unwrap();
    let mut ct = hex(MESSAGES[0].1);
    *ct.last_mut().unwrap() ^= 1;
    assert!(resp.read(&ct, &mut [0u8; 256]).is_err());
}

#[test]
fn vector_handshake_hash_is_the_mixhash_chain_of_its_bytes() {
    // Independent of snow: h = HASH(name) (name > 32 bytes), then MixHash of
    // prologue, responder static (pre-message) and every message token.
    use blake2::{Blake2s256, Digest};
    let mix = |h: [u8; 32], data: &[u8]| -> [u8; 32] {
        Blake2s256::new()
            .chain_update(h)
            .chain_update(data)
            .finalize()
            .into()
    };
    let mut h: [u8; 32] = Blake2s256::digest(PROTOCOL_NAME.as_bytes()).into();
    h = mix(h, &hex(PROLOGUE));
    h = mix(h, &key(INIT_REMOTE_STATIC));
    let (m1, m2, m3) = (hex(MESSAGES[0].1), hex(MESSAGES[1].1), hex(MESSAGES[2].1));
    for part in [
        &m1[..32],
        &m1[32..],
        &m2[..32],
        &m2[32..],
        &m3[..48],
        &m3[48..],
    ] {
        h = mix(h, part);
    }
    assert_eq!(h.to_vec(), hex(HANDSHAKE_HASH));
}
