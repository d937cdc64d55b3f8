//! Noise XK sessions with device attestation and identity binding
//! (sans-IO, `no_std` + `alloc`).
//!
//! Every byte between two nodes goes through this layer. A session exists only
//! after a `Noise_XK_25519_ChaChaPoly_BLAKE2s` handshake in which both sides
//! attested their device id and Ed25519 device key over the handshake hash,
//! and the authenticated keys matched the keys bound to that device id.
//!
//! - [`Identity`]: local keys; [`Binding`] / [`TrustStore`]: who owns which keys.
//! - [`Initiator`], [`Responder`], [`Handshake`]: the three-message handshake.
//! - [`Session`]: transport encryption; [`SessionKeys`]: raw split keys (udp-sec).
//! - [`FrameDecoder`], [`FramedSession`]: 2-byte length framing over a stream.
//! - [`HandshakeLimiter`]: cap on half-open handshakes.
//!
//! The wire format is specified in `docs/protocol.md`.
#![no_std]

extern crate alloc;

mod attest;
mod device_id;
mod error;
mod frame;
mod framed;
mod handshake;
mod identity;
mod identity_file;
mod limiter;
mod resolver;
mod session;
mod xk;

pub use attest::{
    ATTESTATION_VERSION, INITIATOR_CONTEXT, MAX_ATTESTATION_LEN, MIN_ATTESTATION_LEN,
    RESPONDER_CONTEXT,
};
pub use device_id::{DeviceId, MAX_DEVICE_ID_LEN};
pub use error::NoiseError;
pub use frame::{encode_frame, write_frame_with, FrameDecoder, FRAME_HEADER_LEN};
pub use framed::{sealed_len, FramedSession};
pub use handshake::{
    Handshake, HandshakeConfig, HandshakeStatus, Initiator, Responder, DEFAULT_HANDSHAKE_TIMEOUT,
    MAX_HANDSHAKE_MESSAGE_LEN, MAX_MSG2_LEN, MAX_MSG3_LEN, MSG1_LEN,
};
pub use identity::{
    Binding, Identity, NoTrust, StaticTrust, TrustStore, MAX_STATIC_TRUST, TEST_KEYS_WARNING,
};
pub use identity_file::{
    parse_identity_file, IdentityFileError, IDENTITY_FILE_HEADER, MAX_IDENTITY_FILE_LEN,
};
pub use limiter::{HandshakeLimiter, HandshakeTicket, DEFAULT_MAX_HALF_OPEN, MAX_HALF_OPEN_CAP};
pub use resolver::SeededResolver;
pub use session::{Session, SessionKeys, SessionState};
pub use xk::{
    DH_LEN, HASH_LEN, MAX_MESSAGE_LEN, MAX_PLAINTEXT_LEN, PROLOGUE, PROTOCOL_NAME, TAG_LEN,
};

/// Hooks for conformance tests: the raw XK wrapper with fixed ephemeral keys.
/// Only with the `test-keys` feature.
// SECURITY: test keys, not for production
#[cfg(feature = "test-keys")]
#[doc(hidden)]
pub mod testing {
    pub use crate::xk::RawHandshake;
    use crate::{DeviceId, NoiseError, SeededResolver, Session};

    impl RawHandshake {
        /// Initiator with a fixed ephemeral key (test vectors only).
        // SECURITY: test keys, not for production
        pub fn initiator_for_test(
            local_static: &[u8; 32],
            remote_static: &[u8; 32],
            prologue: &[u8],
            fixed_ephemeral: &[u8; 32],
        ) -> Result<Self, NoiseError> {
            let resolver = SeededResolver::new([0; 32]);
            Self::initiator(
                local_static,
                remote_static,
                prologue,
                resolver,
                Some(fixed_ephemeral),
            )
        }

        /// Responder with a fixed ephemeral key (test vectors only).
        // SECURITY: test keys, not for production
        pub fn responder_for_test(
            local_static: &[u8; 32],
            prologue: &[u8],
            fixed_ephemeral: &[u8; 32],
        ) -> Result<Self, NoiseError> {
            let resolver = SeededResolver::new([0; 32]);
            Self::responder(local_static, prologue, resolver, Some(fixed_ephemeral))
        }

        /// A session without any identity check (test vectors only).
        // SECURITY: test keys, not for production
        pub fn into_unbound_session_for_test(self, label: &str) -> Result<Session, NoiseError> {
            let peer = DeviceId::new(label)?;
            let rs = self.remote_static().ok_or(NoiseError::BadState)?;
            let (transport, keys) = self.into_parts()?;
            Ok(Session::new(transport, keys, peer, rs))
        }
    }
}
