//! Fuzz the initiator's `read_message` (message 2) against an honest
//! responder with fixed keys, whose message 2 the fuzzer can replace by raw
//! bytes, re-seal with any payload, or fill with an attestation built from
//! chosen id / key / context; then message 3 and the session. Input format
//! and checks: `src/lib.rs` (`run_initiator`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_noise_fuzz::run_initiator(data);
});
