//! The fuzz harnesses of `noise/fuzz` built with the ordinary tests, so
//! they cannot drift from the code they drive (the fuzz crates build only
//! on nightly), and every committed seed (`fuzz/seeds/<target>/`: the
//! tests' own valid messages, plus any input that once crashed a target)
//! replayed through its harness with every assertion on.

#[allow(dead_code, unused_imports)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

#[macro_use]
#[path = "../../tests/support/fuzz_replay.rs"]
mod fuzz_replay;

seed_tests!(
    frame_decoder => run_frame_decoder,
    handshake_initiator => run_initiator,
    handshake_responder => run_responder,
);
