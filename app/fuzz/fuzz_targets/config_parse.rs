//! Fuzz the kernel command-line parser (`Config::parse`): never panics; a
//! parsed config is within every documented limit and round-trips through
//! its canonical command line; an error names a short printable option with
//! a stable label; white space (kind and amount) never changes the verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsb_app_fuzz::run_config_parse(data);
});
