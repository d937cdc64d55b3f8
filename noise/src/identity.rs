//! Local keys (`Identity`) and the binding of a device id to its keys.
//!
//! A node has one Ed25519 *device key* (signs attestations and announces) and
//! one X25519 *Noise static key* (authenticates the Noise handshake). A
//! [`Binding`] is the pair of public keys an initiator expects of the peer it
//! dials (from its signed announce); a responder asks its [`TrustStore`]
//! whether the device key an initiator proved may speak for the id it claimed.

use core::fmt;

use ed25519_dalek::SigningKey;
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::{DeviceId, NoiseError};

/// Printed by the app at boot when it runs with deterministic test keys.
pub const TEST_KEYS_WARNING: &str = "SECURITY: test keys, not for production";

/// The public keys a device id is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// Ed25519 device public key (verifies attestations).
    pub device_key: [u8; 32],
    /// X25519 Noise static public key (authenticated by the handshake).
    pub noise_static: [u8; 32],
}

/// The responder's identity decision for message 3.
///
/// The initiator's attestation has already verified when this is asked: the
/// holder of `device_key` signed this very handshake (its hash and the
/// authenticated Noise static key) as `device_id`. What remains is whether
/// that key may speak for that id here: a pinned binding, an earlier
/// trust-on-first-use binding, or a TOFU binding the store creates now.
pub trait TrustStore {
    /// `Ok(())` admits the initiator (the id is bound to exactly this key,
    /// now or before). Errors: `identity-mismatch` (the id is bound to
    /// another key), `unknown-peer` (no binding and none may be created:
    /// pinned-only, or the store is full), `session-exists` (local policy
    /// declines a second session with this peer).
    fn admit(&mut self, device_id: &DeviceId, device_key: &[u8; 32]) -> Result<(), NoiseError>;
}

impl<T: TrustStore + ?Sized> TrustStore for &mut T {
    fn admit(&mut self, device_id: &DeviceId, device_key: &[u8; 32]) -> Result<(), NoiseError> {
        (**self).admit(device_id, device_key)
    }
}

/// A trust store that knows nobody (initiator-only nodes, tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTrust;

impl TrustStore for NoTrust {
    fn admit(&mut self, _device_id: &DeviceId, _device_key: &[u8; 32]) -> Result<(), NoiseError> {
        Err(NoiseError::UnknownPeer)
    }
}

/// Most bindings a [`StaticTrust`] holds.
pub const MAX_STATIC_TRUST: usize = 64;

/// A fixed list of (device id, device key) pins, nothing learned
/// (tests, benchmarks, tools with provisioned trust).
#[derive(Clone, Debug, Default)]
pub struct StaticTrust {
    pins: alloc::vec::Vec<(DeviceId, [u8; 32])>,
}

impl StaticTrust {
    /// An empty store.
    pub fn new() -> Self {
        StaticTrust::default()
    }

    /// Adds a pin (ignored beyond [`MAX_STATIC_TRUST`]; a later pin for the same id replaces it).
    pub fn with(mut self, device_id: &DeviceId, device_key: [u8; 32]) -> Self {
        self.pins.retain(|(d, _)| d != device_id);
        if self.pins.len() < MAX_STATIC_TRUST {
            self.pins.push((*device_id, device_key));
        }
        self
    }

    /// Pins the device key of `identity`.
    pub fn with_identity(self, identity: &Identity) -> Self {
        let key = identity.device_public_key();
        self.with(identity.device_id(), key)
    }
}

impl TrustStore for StaticTrust {
    fn admit(&mut self, device_id: &DeviceId, device_key: &[u8; 32]) -> Result<(), NoiseError> {
        match self.pins.iter().find(|(d, _)| d == device_id) {
            Some((_, k)) if k == device_key => Ok(()),
            Some(_) => Err(NoiseError::IdentityMismatch),
            None => Err(NoiseError::UnknownPeer),
        }
    }
}

/// This node's device id and secret keys. `Debug` is redacted; secrets are
/// zeroized on drop (both dalek key types zeroize themselves).
pub struct Identity {
    device_id: DeviceId,
    device_key: SigningKey,
    noise_static: StaticSecret,
    noise_static_public: [u8; 32],
}

impl Identity {
    /// Fresh keys from a caller-supplied CSPRNG.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(
        device_id: &str,
        rng: &mut R,
    ) -> Result<Self, NoiseError> {
        let mut device_seed = Zeroizing::new([0u8; 32]);
        let mut static_seed = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(&mut device_seed[..])
            .map_err(|_| NoiseError::Crypto)?;
        rng.try_fill_bytes(&mut static_seed[..])
            .map_err(|_| NoiseError::Crypto)?;
        Self::from_secret_bytes(device_id, &device_seed, &static_seed)
    }

    /// Keys from stored secret bytes (Ed25519 seed, X25519 secret scalar bytes).
    pub fn from_secret_bytes(
        device_id: &str,
        device_key_seed: &[u8; 32],
        noise_static_secret: &[u8; 32],
    ) -> Result<Self, NoiseError> {
        let device_id = DeviceId::new(device_id)?;
        let device_key = SigningKey::from_bytes(device_key_seed);
        let noise_static = StaticSecret::from(*noise_static_secret);
        let noise_static_public = PublicKey::from(&noise_static).to_bytes();
        Ok(Identity {
            device_id,
            device_key,
            noise_static,
            noise_static_public,
        })
    }

    /// Deterministic keys derived from the device id with BLAKE2s (distinct
    /// labels for the two keys). Anyone who knows the id knows the keys.
    // SECURITY: test keys, not for production
    #[cfg(feature = "test-keys")]
    pub fn from_test_seed(device_id: &str) -> Result<Self, NoiseError> {
        // SECURITY: test keys, not for production
        let device_seed = test_seed(b"dsoftbus-lite/test-keys/v1/ed25519", device_id);
        let static_seed = test_seed(b"dsoftbus-lite/test-keys/v1/x25519", device_id);
        Self::from_secret_bytes(device_id, &device_seed, &static_seed)
    }

    /// This node's device id.
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// Ed25519 device public key.
    pub fn device_public_key(&self) -> [u8; 32] {
        self.device_key.verifying_key().to_bytes()
    }

    /// X25519 Noise static public key.
    pub fn noise_static_public(&self) -> [u8; 32] {
        self.noise_static_public
    }

    /// The binding peers should hold for this node (what an announce publishes).
    pub fn binding(&self) -> Binding {
        Binding {
            device_key: self.device_public_key(),
            noise_static: self.noise_static_public,
        }
    }

    /// The Ed25519 signing key (e.g. for a discovery layer that signs with
    /// its own code; never log it).
    pub fn device_signing_key(&self) -> &SigningKey {
        &self.device_key
    }

    /// Ed25519 signature by the device key over `msg` (e.g. an announce).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.device_key.sign(msg).to_bytes()
    }

    /// Copy of the X25519 secret bytes for snow's builder (zeroized on drop).
    pub(crate) fn noise_static_secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.noise_static.to_bytes())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.device_id)
            .field("device_key", &"<redacted>")
            .field("noise_static", &"<redacted>")
            .finish()
    }
}

/// BLAKE2s-256(label || len(id) || id).
// SECURITY: test keys, not for production
#[cfg(feature = "test-keys")]
fn test_seed(label: &[u8], device_id: &str) -> Zeroizing<[u8; 32]> {
    use blake2::{Blake2s256, Digest};
    let mut h = Blake2s256::new();
    h.update(label);
    h.update([device_id.len() as u8]);
    h.update(device_id.as_bytes());
    Zeroizing::new(h.finalize().into())
}
