//! Fuzz the udp-sec datagram header and the frame decoder: never panics, the
//! header re-emits to the same bytes, frames re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_transports_fuzz::run_udpsec_packet(data);
});
