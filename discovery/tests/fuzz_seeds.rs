//! The fuzz harnesses of `discovery/fuzz` built with the ordinary tests, so
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
    announce_parse => run_announce_parse,
    discovery_datagram => run_datagrams,
);
