//! snow's crypto resolver with an injected RNG.
//!
//! snow without `use-getrandom` has no randomness of its own. [`SeededResolver`]
//! delegates DH / cipher / hash to snow's `DefaultResolver` (X25519,
//! ChaCha20-Poly1305, BLAKE2s) and hands snow a ChaCha20 RNG seeded with 32
//! bytes drawn from the caller's CSPRNG. The seed can be taken once: a second
//! `resolve_rng` returns `None`, so one seed never feeds two handshakes.

use alloc::boxed::Box;
use core::cell::Cell;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroizing;

use crate::NoiseError;

/// snow resolver: default primitives plus a one-shot seeded ChaCha20 RNG.
pub struct SeededResolver {
    seed: Cell<Option<Zeroizing<[u8; 32]>>>,
}

impl SeededResolver {
    /// A resolver whose RNG is seeded with `seed` (must be secret and uniform).
    pub fn new(seed: [u8; 32]) -> Self {
        SeededResolver {
            seed: Cell::new(Some(Zeroizing::new(seed))),
        }
    }

    /// A resolver seeded with 32 bytes drawn from `rng`.
    pub fn from_rng<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, NoiseError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(&mut seed[..])
            .map_err(|_| NoiseError::Crypto)?;
        Ok(Self::new(*seed))
    }
}

impl core::fmt::Debug for SeededResolver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SeededResolver(<redacted>)")
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let seed = self.seed.take()?;
        Some(Box::new(SnowRng(ChaCha20Rng::from_seed(*seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// Adapter from a rand_core RNG to snow's `Random`.
struct SnowRng(ChaCha20Rng);

impl Random for SnowRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.try_fill_bytes(dest).map_err(|_| snow::Error::Rng)
    }
}
