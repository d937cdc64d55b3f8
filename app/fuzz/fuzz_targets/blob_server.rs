//! Fuzz the blob store's server end against a hostile client: the input is
//! what the client writes (chunks, FIN, RESET as in `rpc_peer`), after an
//! optional valid `Put` header so the fuzzer reaches uploads at once. Never
//! panics; the store never holds more than its caps; the server's own
//! buffers stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_app_fuzz::run_blob_server(data);
});
