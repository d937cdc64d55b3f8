//! Fuzz the responder's `read_message` at both of its steps (message 1 and
//! message 3) against an honest initiator with fixed keys whose messages the
//! fuzzer can replace by raw bytes, re-seal with any payload, or fill with an
//! attestation built from chosen id / key / context. Input format and checks:
//! `src/lib.rs` (`run_responder`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_noise_fuzz::run_responder(data);
});
