//! Announce v1 wire format: golden bytes, strict parsing, signatures.

mod common;

use common::*;
use dsb_discovery::*;
use proptest::prelude::*;

// Produced by tests/golden/gen_announce.py, an independent encoder written from
// docs/protocol.md and signing with pyca/cryptography (a second Ed25519).
// GOLDEN_FULL: key seed 00 01 .. 1f, "node-a", noise static 0x42*32, tcp 37021,
// udp-sec 37022, services ["dsoftbus.ping", "mux"], seq = 7 << 32 | 3.
const GOLDEN_FULL: [u8; 171] = [
    0x44, 0x53, 0x42, 0x41, 0x01, 0x06, 0x6e, 0x6f, 0x64, 0x65, 0x2d, 0x61, 0x03, 0xa1, 0x07, 0xbf,
    0xf3, 0xce, 0x10, 0xbe, 0x1d, 0x70, 0xdd, 0x18, 0xe7, 0x4b, 0xc0, 0x99, 0x67, 0xe4, 0xd6, 0x30,
    0x9b, 0xa5, 0x0d, 0x5f, 0x1d, 0xdc, 0x86, 0x64, 0x12, 0x55, 0x31, 0xb8, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x90, 0x9d, 0x90, 0x9e,
    0x02, 0x0d, 0x64, 0x73, 0x6f, 0x66, 0x74, 0x62, 0x75, 0x73, 0x2e, 0x70, 0x69, 0x6e, 0x67, 0x03,
    0x6d, 0x75, 0x78, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x03, 0xdc, 0x1e, 0xaf, 0x2a, 0xe5,
    0xc5, 0x50, 0xd1, 0xce, 0xe1, 0xd0, 0x9b, 0xee, 0x17, 0x56, 0x14, 0x4c, 0x8e, 0x9e, 0x7a, 0x4e,
    0xbf, 0x8c, 0x48, 0xc3, 0x65, 0x6c, 0xc8, 0xfa, 0xbb, 0x85, 0x0b, 0x73, 0x84, 0x08, 0x99, 0x39,
    0x55, 0x4d, 0x5c, 0x01, 0xd3, 0x17, 0x24, 0xdd, 0xa2, 0x01, 0xe1, 0x5f, 0xef, 0x6d, 0x45, 0x97,
    0x54, 0x7d, 0xb6, 0xbb, 0x1e, 0xbf, 0x33, 0x46, 0xfd, 0x5e, 0x01,
];

// GOLDEN_MINIMAL: key seed a5*32, "b", noise static 20 21 .. 3f, no ports, no
// services, seq = 1. The shortest valid announce.
const GOLDEN_MINIMAL: [u8; 148] = [
    0x44, 0x53, 0x42, 0x41, 0x01, 0x01, 0x62, 0x29, 0xe5, 0x83, 0x3a, 0x91, 0x5a, 0x64, 0x29, 0xa4,
    0xe3, 0xa7, 0x94, 0x84, 0x75, 0xc3, 0x38, 0xef, 0x43, 0x6e, 0xb8, 0x2b, 0xe8, 0x9c, 0x92, 0xf0,
    0x59, 0x70, 0x44, 0x03, 0xdb, 0x9d, 0x55, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,
    0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x9f, 0x1f, 0x97, 0xc3, 0xaf, 0xf2, 0xd9, 0x91, 0x26, 0xa0, 0xf9, 0xeb,
    0x65, 0x58, 0xd5, 0xcf, 0xfd, 0x60, 0x87, 0x93, 0xbb, 0x44, 0xc9, 0xb5, 0x87, 0x0b, 0x4c, 0x24,
    0x9c, 0x13, 0xb6, 0xe5, 0x43, 0x2d, 0xbb, 0x86, 0xcf, 0x2e, 0xc9, 0x30, 0x89, 0x42, 0x47, 0xb1,
    0xfc, 0x57, 0x93, 0xc6, 0x01, 0x2e, 0xf9, 0x10, 0xbb, 0xe7, 0x12, 0x3c, 0x23, 0xd6, 0xb9, 0xe4,
    0x7b, 0xef, 0xc1, 0x0a,
];

fn golden_full_key() -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8;
    }
    SigningKey::from_bytes(&seed)
}

fn golden_full_repr() -> AnnounceRepr {
    let key = golden_full_key();
    AnnounceRepr {
        device_id: id("node-a"),
        device_key: key.verifying_key().to_bytes(),
        noise_static: [0x42; 32],
        tcp_port: port(37021),
        udp_sec_port: port(37022),
        services: services(&["dsoftbus.ping", "mux"]),
        seq: sequence(7, 3),
    }
}

fn golden_minimal_repr() -> (SigningKey, AnnounceRepr) {
    let key = SigningKey::from_bytes(&[0xa5; 32]);
    let mut noise = [0u8; 32];
    for (i, b) in noise.iter_mut().enumerate() {
        *b = 32 + i as u8;
    }
    let repr = AnnounceRepr {
        device_id: id("b"),
        device_key: key.verifying_key().to_bytes(),
        noise_static: noise,
        tcp_port: None,
        udp_sec_port: None,
        services: Services::new(),
        seq: 1,
    };
    (key, repr)
}

#[test]
fn emit_produces_the_golden_bytes() {
    let repr = golden_full_repr();
    assert_eq!(repr.buffer_len(), GOLDEN_FULL.len());
    assert_eq!(repr.to_bytes(&golden_full_key()).unwrap(), GOLDEN_FULL);

    let (key, repr) = golden_minimal_repr();
    assert_eq!(repr.to_bytes(&key).unwrap(), GOLDEN_MINIMAL);
    assert_eq!(GOLDEN_MINIMAL.len(), MIN_ANNOUNCE_LEN);
}

#[test]
fn golden_bytes_parse_and_verify() {
    let parsed = SignedAnnounce::parse(&GOLDEN_FULL).unwrap();
    assert_eq!(parsed.repr, golden_full_repr());
    assert_eq!(parsed.repr.seq, 0x0000_0007_0000_0003);
    let key = parsed.verify().unwrap();
    assert_eq!(key, golden_full_key().verifying_key());

    let parsed = AnnounceRepr::parse(&GOLDEN_MINIMAL).unwrap();
    assert_eq!(parsed.repr, golden_minimal_repr().1);
    parsed.verify().unwrap();
}

#[test]
fn the_signature_covers_the_context_string() {
    // Signing the body without the domain-separation prefix must not verify.
    use ed25519_dalek::Signer;
    let body = &GOLDEN_FULL[..GOLDEN_FULL.len() - SIGNATURE_LEN];
    let bare = golden_full_key().sign(body).to_bytes();
    let mut forged = body.to_vec();
    forged.extend_from_slice(&bare);
    let parsed = SignedAnnounce::parse(&forged).unwrap();
    assert_eq!(parsed.verify(), Err(AnnounceError::BadSignature));
}

#[test]
fn truncation_at_every_length_is_malformed() {
    for golden in [&GOLDEN_FULL[..], &GOLDEN_MINIMAL[..]] {
        for len in 0..golden.len() {
            assert_eq!(
                SignedAnnounce::parse(&golden[..len]),
                Err(AnnounceError::Malformed),
                "length {len}"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut b = GOLDEN_FULL.to_vec();
    b.push(0);
    assert_eq!(SignedAnnounce::parse(&b), Err(AnnounceError::Malformed));
}

#[test]
fn anything_longer_than_the_cap_is_oversized() {
    let mut b = GOLDEN_FULL.to_vec();
    b.resize(MAX_ANNOUNCE_LEN + 1, 0);
    assert_eq!(SignedAnnounce::parse(&b), Err(AnnounceError::Oversized));
    assert_eq!(
        SignedAnnounce::parse(&[0xff; 9000]),
        Err(AnnounceError::Oversized)
    );
    // At the cap it is judged on content, not size.
    b.truncate(MAX_ANNOUNCE_LEN);
    assert_eq!(SignedAnnounce::parse(&b), Err(AnnounceError::Malformed));
}

#[test]
fn wrong_magic_and_wrong_version_are_told_apart() {
    for i in 0..4 {
        let mut b = GOLDEN_FULL;
        b[i] ^= 0x20;
        assert_eq!(SignedAnnounce::parse(&b), Err(AnnounceError::BadMagic));
    }
    for v in [0u8, 2, 0x7f, 0xff] {
        let mut b = GOLDEN_FULL;
        b[4] = v;
        assert_eq!(SignedAnnounce::parse(&b), Err(AnnounceError::BadVersion));
    }
}

#[test]
fn every_flipped_signature_bit_is_a_bad_signature() {
    let sig_start = GOLDEN_FULL.len() - SIGNATURE_LEN;
    for bit in 0..SIGNATURE_LEN * 8 {
        let mut b = GOLDEN_FULL;
        b[sig_start + bit / 8] ^= 1 << (bit % 8);
        let parsed = SignedAnnounce::parse(&b).unwrap();
        assert_eq!(
            parsed.verify(),
            Err(AnnounceError::BadSignature),
            "bit {bit}"
        );
    }
}

#[test]
fn every_flipped_body_bit_is_rejected() {
    let body_len = GOLDEN_FULL.len() - SIGNATURE_LEN;
    for bit in 0..body_len * 8 {
        let mut b = GOLDEN_FULL;
        b[bit / 8] ^= 1 << (bit % 8);
        let verdict = SignedAnnounce::parse(&b).and_then(|a| a.verify());
        assert!(verdict.is_err(), "bit {bit} accepted");
    }
}

#[test]
fn non_canonical_signature_scalar_is_rejected_by_verify_strict() {
    // s' = s + L (the group order) verifies under lax rules, never under strict ones.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut b = GOLDEN_FULL;
    let s = GOLDEN_FULL.len() - 32;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(b[s + i]) + u16::from(L[i]) + carry;
        b[s + i] = v as u8;
        carry = v >> 8;
    }
    let parsed = SignedAnnounce::parse(&b).unwrap();
    assert_eq!(parsed.verify(), Err(AnnounceError::BadSignature));
}

#[test]
fn weak_or_invalid_device_keys_are_bad_signatures() {
    // The identity point (small order) and a y that is not on the curve.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut not_on_curve = [0u8; 32];
    not_on_curve[0] = 2;
    for device_key in [identity, not_on_curve] {
        let mut r = golden_full_repr();
        r.device_key = device_key;
        let bytes = r.to_bytes(&golden_full_key()).unwrap();
        let parsed = SignedAnnounce::parse(&bytes).unwrap();
        assert_eq!(parsed.verify(), Err(AnnounceError::BadSignature));
    }
}

#[test]
fn a_signature_by_another_key_is_a_bad_signature() {
    let r = golden_full_repr();
    let bytes = r.to_bytes(&test_key(9)).unwrap();
    let parsed = SignedAnnounce::parse(&bytes).unwrap();
    assert_eq!(parsed.verify(), Err(AnnounceError::BadSignature));
}

/// Offset of the id length byte, of the service count, and of the first service length.
const ID_LEN_AT: usize = 5;

fn service_count_at(repr: &AnnounceRepr) -> usize {
    6 + repr.device_id.len() + 32 + 32 + 4
}

#[test]
fn bad_names_and_counts_are_malformed() {
    let key = golden_full_key();
    let repr = golden_full_repr();
    let good = repr.to_bytes(&key).unwrap();
    let sc = service_count_at(&repr);
    assert_eq!(good[sc], 2);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("id length 0", {
            let mut b = good.clone();
            b[ID_LEN_AT] = 0;
            b
        }),
        ("id length 33", {
            let mut b = good.clone();
            b[ID_LEN_AT] = 33;
            b
        }),
        ("id with a space", {
            let mut b = good.clone();
            b[ID_LEN_AT + 2] = b' ';
            b
        }),
        ("id with a NUL", {
            let mut b = good.clone();
            b[ID_LEN_AT + 1] = 0;
            b
        }),
        ("service count 9", {
            let mut b = good.clone();
            b[sc] = 9;
            b
        }),
        ("service count 255", {
            let mut b = good.clone();
            b[sc] = 255;
            b
        }),
        ("service length 0", {
            let mut b = good.clone();
            b[sc + 1] = 0;
            b
        }),
        ("service with a slash", {
            let mut b = good.clone();
            b[sc + 3] = b'/';
            b
        }),
    ];
    for (what, bytes) in cases {
        assert_eq!(
            SignedAnnounce::parse(&bytes),
            Err(AnnounceError::Malformed),
            "{what}"
        );
    }
}

#[test]
fn duplicate_services_are_refused_both_ways() {
    let mut r = golden_full_repr();
    r.services = services(&["mux", "mux"]);
    assert_eq!(
        r.to_bytes(&golden_full_key()),
        Err(EmitError::DuplicateService)
    );
    // Hand-made bytes with the same service twice do not parse either.
    let mut r = golden_full_repr();
    r.services = services(&["mux", "mvx"]);
    let mut b = r.to_bytes(&golden_full_key()).unwrap();
    let sc = service_count_at(&r);
    b[sc + 1 + 1 + 3 + 1 + 1] = b'u';
    assert_eq!(SignedAnnounce::parse(&b), Err(AnnounceError::Malformed));
}

#[test]
fn emit_refuses_a_short_buffer() {
    let r = golden_full_repr();
    let mut buf = [0u8; 170];
    assert_eq!(
        r.emit(&golden_full_key(), &mut buf),
        Err(EmitError::BufferTooSmall)
    );
    let mut buf = [0u8; MAX_ANNOUNCE_LEN];
    assert_eq!(r.emit(&golden_full_key(), &mut buf), Ok(GOLDEN_FULL.len()));
    assert_eq!(&buf[..GOLDEN_FULL.len()], &GOLDEN_FULL[..]);
}

#[test]
fn the_largest_announce_fits_the_cap() {
    let key = test_key(3);
    let long = "x".repeat(32);
    let names: Vec<String> = (0..8).map(|i| format!("{i}{}", "s".repeat(31))).collect();
    let r = AnnounceRepr {
        device_id: id(&long),
        device_key: key.verifying_key().to_bytes(),
        noise_static: [7; 32],
        tcp_port: port(1),
        udp_sec_port: port(65535),
        services: names.iter().map(|s| svc(s)).collect(),
        seq: u64::MAX,
    };
    let b = r.to_bytes(&key).unwrap();
    assert_eq!(b.len(), MAX_VALID_ANNOUNCE_LEN);
    assert_eq!(MAX_VALID_ANNOUNCE_LEN, 443);
    assert!(b.len() <= MAX_ANNOUNCE_LEN);
    let parsed = SignedAnnounce::parse(&b).unwrap();
    assert_eq!(parsed.repr, r);
    parsed.verify().unwrap();
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,32}"
}

prop_compose! {
    fn arb_repr()(
        device in name_strategy(),
        noise in any::<[u8; 32]>(),
        tcp in any::<u16>(),
        udp in any::<u16>(),
        names in proptest::collection::btree_set(name_strategy(), 0..=MAX_SERVICES),
        seq in any::<u64>(),
        key_seed in any::<u8>(),
    ) -> (SigningKey, AnnounceRepr) {
        let key = test_key(key_seed);
        let repr = AnnounceRepr {
            device_id: id(&device),
            device_key: key.verifying_key().to_bytes(),
            noise_static: noise,
            tcp_port: port(tcp),
            udp_sec_port: port(udp),
            services: names.iter().map(|s| svc(s)).collect(),
            seq,
        };
        (key, repr)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn emit_then_parse_round_trips((key, repr) in arb_repr()) {
        let bytes = repr.to_bytes(&key).unwrap();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        prop_assert!(bytes.len() <= MAX_VALID_ANNOUNCE_LEN);
        let parsed = SignedAnnounce::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed.repr, &repr);
        prop_assert_eq!(parsed.verify().unwrap(), key.verifying_key());
        // Canonical: re-emitting the parsed content gives the same bytes.
        prop_assert_eq!(parsed.repr.to_bytes(&key).unwrap(), bytes);
    }

    // Uniform random bytes almost never get past the magic check, so the
    // inputs are golden vectors edited, cut and extended, or a valid header
    // followed by random bytes: every field of the parser is reached (see
    // `edited_announces_reach_every_parse_verdict`).
    #[test]
    fn random_bytes_never_panic(bytes in announce_like_bytes()) {
        check_parse_verdict(&bytes);
    }

    #[test]
    fn mutated_golden_never_verifies_as_something_else(
        edits in proptest::collection::vec((0usize..GOLDEN_FULL.len(), any::<u8>()), 1..6),
    ) {
        let mut b = GOLDEN_FULL.to_vec();
        for (at, v) in edits {
            b[at] = v;
        }
        if let Ok(a) = SignedAnnounce::parse(&b) {
            if a.verify().is_ok() {
                prop_assert_eq!(&b[..], &GOLDEN_FULL[..]);
            }
        }
    }
}

/// Bytes that look like an announce: a golden vector with random byte edits,
/// cut or extended at a random point; or magic + version + random tail; or
/// anything at all.
fn announce_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let golden = prop_oneof![Just(GOLDEN_FULL.to_vec()), Just(GOLDEN_MINIMAL.to_vec())];
    let edited = (
        golden,
        proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4),
        any::<proptest::sample::Index>(),
        proptest::collection::vec(any::<u8>(), 0..8),
        any::<bool>(),
    )
        .prop_map(|(mut b, edits, cut, tail, extend)| {
            for (at, v) in edits {
                let i = at.index(b.len());
                b[i] = v;
            }
            if extend {
                b.extend_from_slice(&tail);
            } else {
                b.truncate(cut.index(b.len() + 1));
            }
            b
        });
    let header_then_random = proptest::collection::vec(any::<u8>(), 0..500).prop_map(|tail| {
        let mut b = b"DSBA\x01".to_vec();
        b.extend_from_slice(&tail);
        b
    });
    prop_oneof![
        4 => edited,
        2 => header_then_random,
        1 => proptest::collection::vec(any::<u8>(), 0..700),
    ]
}

/// What every parse verdict must satisfy; returns the verdict's label
/// (`"ok"` when it parsed).
fn check_parse_verdict(bytes: &[u8]) -> &'static str {
    match SignedAnnounce::parse(bytes) {
        Ok(a) => {
            // Canonical: re-emitting what was parsed gives the same bytes.
            let mut out = [0u8; MAX_ANNOUNCE_LEN];
            let n = a.emit(&mut out).unwrap();
            assert_eq!(&out[..n], bytes);
            assert!((MIN_ANNOUNCE_LEN..=MAX_VALID_ANNOUNCE_LEN).contains(&bytes.len()));
            "ok"
        }
        Err(AnnounceError::Oversized) => {
            assert!(bytes.len() > MAX_ANNOUNCE_LEN);
            "oversized"
        }
        Err(e) => {
            assert!(bytes.len() <= MAX_ANNOUNCE_LEN);
            match e {
                AnnounceError::BadMagic => assert_ne!(bytes.get(..4), Some(&MAGIC[..])),
                AnnounceError::BadVersion => assert_ne!(bytes.get(4), Some(&VERSION)),
                other => assert_eq!(other, AnnounceError::Malformed),
            }
            e.label()
        }
    }
}

#[test]
fn edited_announces_reach_every_parse_verdict() {
    // A seeded xorshift instead of proptest: the point is the tally.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    for i in 0..4000u32 {
        let mut b = if i % 2 == 0 {
            GOLDEN_FULL.to_vec()
        } else {
            GOLDEN_MINIMAL.to_vec()
        };
        match next() % 4 {
            0 => {
                let at = next() as usize % b.len();
                b[at] = next() as u8;
            }
            1 => b.truncate(next() as usize % (b.len() + 1)),
            2 => b.extend((0..next() % 400).map(|_| next() as u8)),
            _ => {}
        }
        *seen.entry(check_parse_verdict(&b)).or_default() += 1;
    }
    for label in ["ok", "oversized", "bad-magic", "bad-version", "malformed"] {
        assert!(
            seen.get(label).copied().unwrap_or(0) > 0,
            "{label} never reached: {seen:?}"
        );
    }
}

#[test]
fn golden_vectors_re_emit_without_the_key() {
    for golden in [&GOLDEN_FULL[..], &GOLDEN_MINIMAL[..]] {
        let a = SignedAnnounce::parse(golden).unwrap();
        assert_eq!(a.buffer_len(), golden.len());
        let mut out = [0u8; MAX_ANNOUNCE_LEN];
        assert_eq!(
            a.emit(&mut out[..golden.len() - 1]),
            Err(EmitError::BufferTooSmall)
        );
        let n = a.emit(&mut out).unwrap();
        assert_eq!(&out[..n], golden);
    }
}
