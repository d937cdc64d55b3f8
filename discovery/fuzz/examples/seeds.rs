//! Writes the seed corpora of both targets into `seeds/<target>/` (small,
//! deterministic, committed): the two golden vectors, and datagram scripts
//! of validly signed announces (new peers, refreshes, replays, a key
//! mismatch, a pinned peer, a tampered copy, a flood that fills every table).
//! Run: `cargo +nightly run --release --example seeds` in `discovery/fuzz`.
//! SECURITY: test keys, not for production.

use std::fs;
use std::path::Path;

use dsb_discovery_fuzz::{SignedRecord, Writer, PINNED_ID};

const GOLDEN_FULL: &str = "4453424101066e6f64652d6103a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b84242424242424242424242424242424242424242424242424242424242424242909d909e020d64736f66746275732e70696e67036d75780000000700000003dc1eaf2ae5c550d1cee1d09bee1756144c8e9e7a4ebf8c48c3656cc8fabb850b7384089939554d5c01d31724dda201e15fef6d4597547db6bb1ebf3346fd5e01";
const GOLDEN_MINIMAL: &str = "4453424101016229e5833a915a6429a4e3a7948475c338ef436eb82be89c92f059704403db9d55202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f000000000000000000000000019f1f97c3aff2d99126a0f9eb6558d5cffd608793bb44c9b5870b4c249c13b6e5432dbb86cf2ec930894247b1fc5793c6012ef910bbe7123c23d6b9e47befc10a";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn rec(key: u8, id: &str, seq: u64) -> SignedRecord {
    SignedRecord {
        key,
        id: id.as_bytes().to_vec(),
        noise: key.wrapping_mul(7),
        tcp: 37021,
        udp: 37022,
        services: vec![b"dsoftbus.ping".to_vec(), b"mux".to_vec()],
        seq,
        tamper: 0,
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let parse = root.join("announce_parse");
    let dgram = root.join("discovery_datagram");
    fs::create_dir_all(&parse).expect("mkdir");
    fs::create_dir_all(&dgram).expect("mkdir");
    fs::write(parse.join("golden_full"), hex(GOLDEN_FULL)).expect("write");
    fs::write(parse.join("golden_minimal"), hex(GOLDEN_MINIMAL)).expect("write");

    let a = [10, 0, 2, 15];
    let b = [10, 0, 2, 16];
    let c = [192, 168, 1, 9];

    // Golden vectors as received datagrams (TOFU on).
    let mut w = Writer(vec![0]);
    w.raw(a, 10, &hex(GOLDEN_FULL));
    w.raw(b, 10, &hex(GOLDEN_MINIMAL));
    w.poll(100);
    fs::write(dgram.join("golden"), w.0).expect("write");

    // One peer: found, refreshed, updated, duplicate, replay, tampered, key mismatch.
    let mut w = Writer(vec![0]);
    w.signed(a, 0, &rec(1, "node-a", 5));
    w.signed(a, 1000, &rec(1, "node-a", 6));
    let mut moved = rec(1, "node-a", 7);
    moved.udp = 40000;
    w.signed(b, 1000, &moved);
    w.signed(b, 5, &moved);
    w.signed(a, 5, &rec(1, "node-a", 3));
    let mut bad = rec(1, "node-a", 9);
    bad.tamper = 0x0140;
    w.signed(a, 5, &bad);
    w.signed(c, 5, &rec(2, "node-a", 10));
    w.signed(a, 5, &rec(0, PINNED_ID, 1));
    w.signed(a, 5, &rec(3, PINNED_ID, 2));
    w.signed(a, 5, &rec(6, "fuzz", 1));
    w.forget(a, 5, b"node-a");
    w.poll(6000);
    fs::write(dgram.join("one_peer"), w.0).expect("write");

    // Many ids from many sources: fills the peer table, the TOFU store and
    // the source limiter, then expiry and eviction (TOFU forgetting on).
    for (name, flags) in [("flood_fail_closed", 0u8), ("flood_forget", 2u8)] {
        let mut w = Writer(vec![flags]);
        for i in 0..12u8 {
            let id = format!("peer-{i}");
            w.signed([10, 0, 3, i + 1], 300, &rec(1 + i % 5, &id, 1));
        }
        w.poll(7000);
        for i in 0..12u8 {
            let id = format!("peer-{i}");
            w.signed([10, 0, 4, i + 1], 400, &rec(1 + i % 5, &id, 2));
        }
        fs::write(dgram.join(name), w.0).expect("write");
    }

    // Pinned-only mode: an unpinned id is refused, the pinned one accepted.
    let mut w = Writer(vec![1]);
    w.signed(a, 0, &rec(2, "stranger", 1));
    w.signed(a, 10, &rec(0, PINNED_ID, 1));
    fs::write(dgram.join("pinned_only"), w.0).expect("write");
    println!("seeds written to {}", root.display());
}
