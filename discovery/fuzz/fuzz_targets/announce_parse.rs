//! Fuzz the announce parser: never panics, and whatever parses re-emits
//! canonically (`emit(parse(b)) == b`, with the received signature).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_discovery_fuzz::run_announce_parse(data);
});
