//! Fuzz the whole receive path with raw datagrams *and* announces the harness
//! signs with test keys (so the fuzzer reaches verification, TOFU, eviction
//! and every table cap), from arbitrary sources at arbitrary times. Checks
//! that nothing panics, every table stays within its cap and nothing that
//! fails verification is accepted. Input format: `src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_discovery_fuzz::run_datagrams(data);
});
