//! One error type for the whole layer, each variant with a stable label.
//!
//! Labels are what the node logs and counts (`dsoftbusd: ... (<label>)`); they
//! never change meaning once published.

use core::fmt;

/// Every way a handshake, a session or the framing can refuse input or a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoiseError {
    /// A handshake payload or device id does not follow the wire format.
    Malformed,
    /// A frame, message or plaintext is larger than the configured limit.
    Oversized,
    /// The byte stream ended in the middle of a frame.
    Truncated,
    /// AEAD authentication failed (tampered, replayed, reordered or foreign bytes).
    DecryptFailed,
    /// An attestation signature does not verify for this handshake.
    BadSignature,
    /// The authenticated keys are not the keys bound to the claimed device id.
    IdentityMismatch,
    /// The trust store has no binding for the claimed device id and may not create one.
    UnknownPeer,
    /// The responder's policy declines the session: it already holds (or is
    /// opening) the session that wins for this pair of peers.
    SessionExists,
    /// The handshake deadline passed before it completed.
    HandshakeTimeout,
    /// The half-open handshake limit is reached.
    HandshakeLimit,
    /// A call that the current state does not allow (wrong turn, finished, failed).
    BadState,
    /// The session ended after an earlier failure; it accepts no more calls.
    SessionDead,
    /// The caller's output buffer is too small (nothing was consumed).
    BufferTooSmall,
    /// The crypto backend failed (no RNG, bad key material, nonce exhausted).
    Crypto,
}

impl NoiseError {
    /// Stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            NoiseError::Malformed => "malformed",
            NoiseError::Oversized => "oversized",
            NoiseError::Truncated => "truncated",
            NoiseError::DecryptFailed => "decrypt-failed",
            NoiseError::BadSignature => "bad-signature",
            NoiseError::IdentityMismatch => "identity-mismatch",
            NoiseError::UnknownPeer => "unknown-peer",
            NoiseError::SessionExists => "session-exists",
            NoiseError::HandshakeTimeout => "handshake-timeout",
            NoiseError::HandshakeLimit => "handshake-limit",
            NoiseError::BadState => "bad-state",
            NoiseError::SessionDead => "session-dead",
            NoiseError::BufferTooSmall => "buffer-too-small",
            NoiseError::Crypto => "crypto",
        }
    }

    /// True for the rejections that mean "this peer did not prove the identity
    /// bound to its device id" (the node prints `identity mismatch peer=<id>`).
    pub fn is_identity_failure(&self) -> bool {
        matches!(
            self,
            NoiseError::IdentityMismatch | NoiseError::BadSignature | NoiseError::UnknownPeer
        )
    }
}

impl fmt::Display for NoiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl core::error::Error for NoiseError {}
