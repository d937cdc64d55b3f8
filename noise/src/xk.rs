//! The Noise protocol choice and a thin, bounds-checked wrapper over snow.
//!
//! Everything protocol-specific that is *not* ours lives here: the protocol
//! name, the prologue, snow's builder with [`SeededResolver`], message size
//! checks and the split. The attested handshake (`handshake.rs`) and the
//! cacophony test vector both drive this wrapper.

use snow::{HandshakeState, TransportState};
use zeroize::Zeroizing;

use crate::resolver::SeededResolver;
use crate::session::SessionKeys;
use crate::NoiseError;

/// The Noise protocol name (pattern XK, X25519, ChaCha20-Poly1305, BLAKE2s).
pub const PROTOCOL_NAME: &str = "Noise_XK_25519_ChaChaPoly_BLAKE2s";
/// Prologue mixed into every handshake; bump the version on any wire change.
pub const PROLOGUE: &[u8] = b"dsoftbus-lite/xk/v1";
/// Largest Noise message (the spec's limit, also the frame limit).
pub const MAX_MESSAGE_LEN: usize = 65535;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Largest plaintext in one transport message.
pub const MAX_PLAINTEXT_LEN: usize = MAX_MESSAGE_LEN - TAG_LEN;
/// X25519 public key length.
pub const DH_LEN: usize = 32;
/// Handshake hash length (BLAKE2s).
pub const HASH_LEN: usize = 32;

/// One side of a raw XK handshake (no attestation, no identity checks).
pub struct RawHandshake {
    hs: HandshakeState,
}

#[cfg_attr(not(feature = "test-keys"), allow(dead_code))]
impl RawHandshake {
    /// Initiator knowing the responder's static key (XK pre-message).
    pub(crate) fn initiator(
        local_static: &[u8; 32],
        remote_static: &[u8; 32],
        prologue: &[u8],
        resolver: SeededResolver,
        fixed_ephemeral: Option<&[u8; 32]>,
    ) -> Result<Self, NoiseError> {
        Self::build(
            local_static,
            Some(remote_static),
            prologue,
            resolver,
            fixed_ephemeral,
        )
    }

    /// Responder with its own static key.
    pub(crate) fn responder(
        local_static: &[u8; 32],
        prologue: &[u8],
        resolver: SeededResolver,
        fixed_ephemeral: Option<&[u8; 32]>,
    ) -> Result<Self, NoiseError> {
        Self::build(local_static, None, prologue, resolver, fixed_ephemeral)
    }

    /// The initiator is the side that knows the remote static key in advance.
    fn build(
        local_static: &[u8; 32],
        remote_static: Option<&[u8; 32]>,
        prologue: &[u8],
        resolver: SeededResolver,
        fixed_ephemeral: Option<&[u8; 32]>,
    ) -> Result<Self, NoiseError> {
        let params = PROTOCOL_NAME.parse().map_err(|_| NoiseError::Crypto)?;
        let mut b = snow::Builder::with_resolver(params, alloc::boxed::Box::new(resolver))
            .local_private_key(local_static)
            .and_then(|b| b.prologue(prologue))
            .map_err(|_| NoiseError::Crypto)?;
        if let Some(r) = remote_static {
            b = b.remote_public_key(r).map_err(|_| NoiseError::Crypto)?;
        }
        if let Some(e) = fixed_ephemeral {
            b = b.fixed_ephemeral_key_for_testing_only(e);
        }
        let hs = match remote_static {
            Some(_) => b.build_initiator(),
            None => b.build_responder(),
        }
        .map_err(|_| NoiseError::Crypto)?;
        Ok(RawHandshake { hs })
    }

    /// Write the next handshake message carrying `payload`; returns its length.
    ///
    /// The caller must size `out` for the whole message (snow can panic on a
    /// buffer that holds the static key but not its tag).
    pub fn write(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        self.hs.write_message(payload, out).map_err(|e| match e {
            snow::Error::Input => NoiseError::BufferTooSmall,
            snow::Error::State(_) => NoiseError::BadState,
            _ => NoiseError::Crypto,
        })
    }

    /// Read the next handshake message into `payload`; returns the payload length.
    pub fn read(&mut self, message: &[u8], payload: &mut [u8]) -> Result<usize, NoiseError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::Oversized);
        }
        self.hs
            .read_message(message, payload)
            .map_err(map_read_error)
    }

    /// The current handshake hash `h`.
    pub fn handshake_hash(&self) -> [u8; HASH_LEN] {
        let mut h = [0u8; HASH_LEN];
        let src = self.hs.get_handshake_hash();
        if let (Some(dst), Some(src)) = (h.get_mut(..), src.get(..HASH_LEN)) {
            dst.copy_from_slice(src);
        }
        h
    }

    /// The remote static key, once known.
    pub fn remote_static(&self) -> Option<[u8; DH_LEN]> {
        let rs = self.hs.get_remote_static()?;
        rs.try_into().ok()
    }

    /// True once all three messages went through.
    pub fn is_finished(&self) -> bool {
        self.hs.is_handshake_finished()
    }

    /// True when the initiator role.
    pub fn is_initiator(&self) -> bool {
        self.hs.is_initiator()
    }

    /// Split into the transport state plus the raw keys and final hash.
    pub(crate) fn into_parts(mut self) -> Result<(TransportState, SessionKeys), NoiseError> {
        if !self.hs.is_handshake_finished() {
            return Err(NoiseError::BadState);
        }
        let hash = self.handshake_hash();
        let initiator = self.hs.is_initiator();
        let (k1, k2) = self.hs.dangerously_get_raw_split();
        let keys = SessionKeys::new(Zeroizing::new(k1), Zeroizing::new(k2), hash, initiator);
        let transport = self
            .hs
            .into_transport_mode()
            .map_err(|_| NoiseError::BadState)?;
        Ok((transport, keys))
    }
}

impl core::fmt::Debug for RawHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RawHandshake(<redacted>)")
    }
}

/// Maps snow's read errors onto our labels.
fn map_read_error(e: snow::Error) -> NoiseError {
    match e {
        snow::Error::Decrypt => NoiseError::DecryptFailed,
        snow::Error::Input => NoiseError::Malformed,
        snow::Error::State(_) => NoiseError::BadState,
        _ => NoiseError::Crypto,
    }
}
