//! Fuzz `Endpoint::handle_datagram` with no session, during a handshake and on
//! established sessions (the harness seals fuzzer-chosen frames with the
//! session keys), with timers, the stream API and `poll_transmit`; checks the
//! caps (connections, half-open, events, windows) and that everything we send
//! is well formed. Format: `src/udpsec.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_transports_fuzz::run_udpsec_endpoint(data);
});
