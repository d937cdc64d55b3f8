//! The image's random number generator: ChaCha20 seeded once at boot.
//!
//! The platform supplies a 32-byte seed and says where it came from
//! ([`EntropySource`]). Layers take `&mut NodeRng` (or any
//! `RngCore + CryptoRng`). A seed without hardware entropy is predictable, so
//! [`NodeRng::check_long_term_keys`] refuses long-term key generation from it
//! unless the `test-keys` feature is on.

use core::fmt;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use zeroize::Zeroize;

/// Where the boot seed came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropySource {
    /// The CPU's RDRAND instruction.
    Rdrand,
    /// No hardware entropy: the seed is predictable (timestamps only).
    None,
}

impl EntropySource {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            EntropySource::Rdrand => "rdrand",
            EntropySource::None => "none",
        }
    }

    /// Whether an attacker could reproduce the seed.
    pub fn is_predictable(self) -> bool {
        matches!(self, EntropySource::None)
    }
}

/// Long-term key generation was refused: the RNG has no hardware entropy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PredictableRng;

impl PredictableRng {
    /// Stable label.
    pub fn label(&self) -> &'static str {
        "predictable-rng"
    }
}

impl fmt::Display for PredictableRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refusing long-term keys: RNG has no hardware entropy")
    }
}

/// ChaCha20 CSPRNG plus the provenance of its seed.
pub struct NodeRng {
    inner: ChaCha20Rng,
    source: EntropySource,
}

impl NodeRng {
    /// Seeds the generator; `seed` is wiped afterwards.
    pub fn from_seed(mut seed: [u8; 32], source: EntropySource) -> NodeRng {
        let inner = ChaCha20Rng::from_seed(seed);
        seed.zeroize();
        NodeRng { inner, source }
    }

    /// Where the seed came from.
    pub fn source(&self) -> EntropySource {
        self.source
    }

    /// `Ok` when long-term keys may be generated from this RNG: the seed came
    /// from hardware, or the `test-keys` feature is on.
    pub fn check_long_term_keys(&self) -> Result<(), PredictableRng> {
        if self.source.is_predictable() && !cfg!(feature = "test-keys") {
            Err(PredictableRng)
        } else {
            Ok(())
        }
    }

    /// An independent generator (for one node), seeded from this one; keeps the provenance.
    pub fn fork(&mut self) -> NodeRng {
        let mut seed = [0u8; 32];
        self.inner.fill_bytes(&mut seed);
        NodeRng::from_seed(seed, self.source)
    }
}

impl fmt::Debug for NodeRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRng")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl RngCore for NodeRng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.inner.try_fill_bytes(dest)
    }
}

impl CryptoRng for NodeRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn same_seed_same_stream_and_forks_differ() {
        let mut a = NodeRng::from_seed([7; 32], EntropySource::Rdrand);
        let mut b = NodeRng::from_seed([7; 32], EntropySource::Rdrand);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut fa = a.fork();
        assert_ne!(fa.next_u64(), a.next_u64());
        assert_eq!(fa.source(), EntropySource::Rdrand);
    }

    #[test]
    fn hardware_seed_allows_long_term_keys() {
        let rng = NodeRng::from_seed([1; 32], EntropySource::Rdrand);
        assert_eq!(rng.check_long_term_keys(), Ok(()));
    }

    #[test]
    fn predictable_seed_refuses_long_term_keys_without_test_keys() {
        let rng = NodeRng::from_seed([1; 32], EntropySource::None);
        let verdict = rng.check_long_term_keys();
        if cfg!(feature = "test-keys") {
            assert_eq!(verdict, Ok(()));
        } else {
            assert_eq!(verdict.map_err(|e| e.label()), Err("predictable-rng"));
        }
    }

    #[test]
    fn debug_does_not_leak_state() {
        let rng = NodeRng::from_seed([0xab; 32], EntropySource::Rdrand);
        let text = format!("{rng:?}");
        assert_eq!(text, "NodeRng { source: Rdrand, .. }");
    }
}
