//! The node's randomness in OS mode: the kernel's CSPRNG (getrandom(2)).

use rand_core::{CryptoRng, RngCore};

use crate::error::HostError;
use crate::sys;

/// Randomness straight from getrandom(2), for `Node::poll`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl RngCore for OsRandom {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    /// getrandom(2) does not fail once the kernel's pool is initialised
    /// (it blocks until then); should it fail anyway, this aborts rather
    /// than hand out predictable bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if sys::getrandom(dest).is_err() {
            std::process::abort();
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        sys::getrandom(dest).map_err(|_| {
            rand_core::Error::from(
                core::num::NonZeroU32::new(rand_core::Error::CUSTOM_START)
                    .unwrap_or(core::num::NonZeroU32::MIN),
            )
        })
    }
}

impl CryptoRng for OsRandom {}

/// Checks once that the kernel hands out randomness.
pub fn check_random() -> Result<(), HostError> {
    let mut b = [0u8; 8];
    sys::getrandom(&mut b).map_err(|_| HostError::Random)
}
