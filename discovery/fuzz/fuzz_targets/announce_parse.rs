//! Fuzz the announce parser: never panics, and whatever parses re-emits
//! canonically (`emit(parse(b)) == b`, with the received signature).
#![no_main]

use dsb_discovery::{
    AnnounceError, SignedAnnounce, MAGIC, MAX_ANNOUNCE_LEN, MAX_VALID_ANNOUNCE_LEN,
    MIN_ANNOUNCE_LEN, SIGNATURE_LEN, VERSION,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match SignedAnnounce::parse(data) {
        Ok(a) => {
            assert_eq!(a.buffer_len(), data.len());
            assert!((MIN_ANNOUNCE_LEN..=MAX_VALID_ANNOUNCE_LEN).contains(&data.len()));
            assert_eq!(&a.signature[..], &data[data.len() - SIGNATURE_LEN..]);
            let mut out = [0u8; MAX_ANNOUNCE_LEN];
            let n = a.emit(&mut out).expect("a parsed announce re-emits");
            assert_eq!(&out[..n], data, "re-emission is not canonical");
            // Verification must not panic either (it almost always fails here).
            let _ = a.verify();
        }
        Err(AnnounceError::Oversized) => assert!(data.len() > MAX_ANNOUNCE_LEN),
        Err(AnnounceError::BadMagic) => assert_ne!(data.get(..4), Some(&MAGIC[..])),
        Err(AnnounceError::BadVersion) => assert_ne!(data.get(4), Some(&VERSION)),
        Err(e) => assert_eq!(e, AnnounceError::Malformed),
    }
});
