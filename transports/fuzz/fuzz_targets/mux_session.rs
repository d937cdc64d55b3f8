//! Fuzz `Mux::handle_bytes` on an authenticated session, interleaved with
//! the application calls, timers and `poll_transmit`; checks the memory caps
//! (`MuxStats::buffered_bytes <= MuxConfig::memory_bound`, channels, events)
//! and that everything we transmit is a valid frame. Format: `src/mux.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_transports_fuzz::run_mux_session(data);
});
