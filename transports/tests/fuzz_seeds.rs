//! The fuzz harnesses of `transports/fuzz` built with the ordinary tests, so
//! they cannot drift from the code they drive (the fuzz crates build only
//! on nightly), and every committed seed (`fuzz/seeds/<target>/`: the
//! tests' own valid messages, plus any input that once crashed a target)
//! replayed through its harness with every assertion on.

#[allow(dead_code, unused_imports)]
#[path = "../fuzz/src/lib.rs"]
mod harness;
// The harness modules name these `crate::…`.
use harness::{put_blob, Input};

/// Runs `run` on every seed of `target`; there must be some.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("seed entry").path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in seeds {
        let data = std::fs::read(&seed).expect("seed readable");
        eprintln!("{target}: {}", seed.display());
        run(&data);
    }
}

#[test]
fn mux_frame_seeds() {
    replay("mux_frame", harness::run_mux_frame);
}

#[test]
fn mux_session_seeds() {
    replay("mux_session", harness::run_mux_session);
}

#[test]
fn udpsec_endpoint_seeds() {
    replay("udpsec_endpoint", harness::run_udpsec_endpoint);
}

#[test]
fn udpsec_noise_seeds() {
    replay("udpsec_noise", harness::run_udpsec_noise);
}

#[test]
fn udpsec_packet_seeds() {
    replay("udpsec_packet", harness::run_udpsec_packet);
}
