//! Fuzz the mux frame decoder: `Frame::parse` never panics, agrees with
//! the header checks, and whatever parses re-emits to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_transports_fuzz::run_mux_frame(data);
});
