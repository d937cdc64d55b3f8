//! Writes the seed corpora of the Noise targets into `seeds/<target>/`
//! (small, deterministic, committed): frame streams, and the recorded honest
//! handshake (fixed ephemerals, seeded RNG) both as raw bytes and as the
//! harness's structured messages, plus each identity failure.
//! Run: `cargo +nightly run --release --example seeds` in `noise/fuzz`.
//! SECURITY: test keys, not for production.

use std::fs;
use std::path::Path;

use dsb_noise_fuzz::{recorded_initiator_messages, recorded_responder_message, Msg};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(name), bytes).expect("write");
    };

    // frame_decoder: [max u16 LE][n][cuts][stream]
    let (msg1, msg3) = recorded_initiator_messages();
    let mut stream = Vec::new();
    for m in [&msg1[..], &msg3[..], b"x"] {
        stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
        stream.extend_from_slice(m);
    }
    let mut f = vec![194, 0, 3, 0, 47, 200];
    f.extend_from_slice(&stream);
    write("frame_decoder", "handshake_frames", &f);
    let mut f = vec![0x10, 0x40, 0];
    f.extend_from_slice(&stream[..stream.len() - 1]);
    write("frame_decoder", "truncated_one_chunk", &f);
    write(
        "frame_decoder",
        "zero_and_oversized",
        &[4, 0, 1, 0, 0, 2, 1, 2, 0, 0],
    );

    // handshake_responder: [t1 u16][msg1][t3 u16][msg3]
    let resp = |t1: u16, m1: Msg, t3: u16, m3: Msg| {
        let mut v = t1.to_le_bytes().to_vec();
        m1.write(&mut v);
        v.extend_from_slice(&t3.to_le_bytes());
        m3.write(&mut v);
        v
    };
    write(
        "handshake_responder",
        "honest",
        &resp(1, Msg::Attest(0), 1, Msg::Attest(0)),
    );
    write(
        "handshake_responder",
        "recorded_raw",
        &resp(1, Msg::Raw(&msg1), 1, Msg::Raw(&msg3)),
    );
    for (name, sel) in [
        ("unknown_id", 1u8),
        ("wrong_device_key", 4),
        ("wrong_static", 0x10),
        ("other_context", 0x40),
        ("split_binding", 3),
        ("other_id", 2),
    ] {
        write(
            "handshake_responder",
            name,
            &resp(1, Msg::Attest(0), 1, Msg::Attest(sel)),
        );
    }
    write(
        "handshake_responder",
        "late",
        &resp(1, Msg::Attest(0), 6000, Msg::Attest(0)),
    );
    write(
        "handshake_responder",
        "sealed_garbage",
        &resp(1, Msg::Sealed(b""), 1, Msg::Sealed(&[1, 4, b'i'])),
    );

    // handshake_initiator: [expect u8][t2 u16][msg2]
    let msg2 = recorded_responder_message();
    let init = |expect: u8, t2: u16, m2: Msg| {
        let mut v = vec![expect];
        v.extend_from_slice(&t2.to_le_bytes());
        m2.write(&mut v);
        v
    };
    write("handshake_initiator", "honest", &init(0, 1, Msg::Attest(0)));
    write(
        "handshake_initiator",
        "recorded_raw",
        &init(0, 1, Msg::Raw(&msg2)),
    );
    write(
        "handshake_initiator",
        "wrong_expectation",
        &init(1, 1, Msg::Raw(&msg2)),
    );
    for (name, sel) in [
        ("wrong_id", 2u8),
        ("wrong_device_key", 4),
        ("wrong_static", 0x10),
        ("other_context", 0x40),
    ] {
        write("handshake_initiator", name, &init(0, 1, Msg::Attest(sel)));
    }
    write(
        "handshake_initiator",
        "sealed_empty",
        &init(0, 1, Msg::Sealed(b"")),
    );
    println!("seeds written to {}", root.display());
}
