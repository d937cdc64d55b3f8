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

#[macro_use]
#[path = "../../tests/support/fuzz_replay.rs"]
mod fuzz_replay;

seed_tests!(
    mux_frame => run_mux_frame,
    mux_session => run_mux_session,
    udpsec_endpoint => run_udpsec_endpoint,
    udpsec_noise => run_udpsec_noise,
    udpsec_packet => run_udpsec_packet,
);
