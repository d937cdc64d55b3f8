//! Fuzz the announce parser: never panics; whatever parses re-emits canonically.
#![no_main]

use dsb_discovery::{AnnounceError, SignedAnnounce, MAX_ANNOUNCE_LEN, SIGNATURE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match SignedAnnounce::parse(data) {
        Ok(a) => {
            // Structural parse is canonical: its length is exactly what emit would write.
            assert_eq!(a.repr.buffer_len(), data.len());
            assert!(data.len() <= MAX_ANNOUNCE_LEN);
            assert_eq!(&a.signature[..], &data[data.len() - SIGNATURE_LEN..]);
            // Verification must not panic either (it almost always fails here).
            let _ = a.verify();
        }
        Err(AnnounceError::Oversized) => assert!(data.len() > MAX_ANNOUNCE_LEN),
        Err(e) => {
            let _ = e.label();
        }
    }
});
