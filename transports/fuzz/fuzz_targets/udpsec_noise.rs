//! Fuzz the udp-sec endpoint with the real attested Noise handshake against
//! a second endpoint over a wire the fuzzer controls (deliver, drop,
//! duplicate, corrupt, inject); checks the caps and that only the honest
//! peer is ever bound to a session. Format: `src/udpsec_noise.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_transports_fuzz::run_udpsec_noise(data);
});
