//! Errors of the blob clients.

use alloc::string::String;
use core::fmt;

use super::wire::BlobCode;

/// Why a [`super::BlobPut`] or [`super::BlobGet`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobError {
    /// The server refused with this code.
    Remote { code: BlobCode, message: String },
    /// The name is not 1..=64 bytes of `[A-Za-z0-9._-]` (checked locally).
    BadName,
    /// The blob is larger than the caller's cap (Get; nothing buffered).
    TooLarge,
    /// The received bytes do not hash to the announced hash (Get).
    BadHash,
    /// A resumed Get found another blob under the name (size or hash changed).
    Changed,
    /// The peer sent something that is not a valid answer (channel reset).
    Malformed,
    /// The data ended before the announced size (Get; kept for resume).
    Truncated,
    /// The channel ended before the operation completed.
    ChannelClosed,
    /// No progress for the idle timeout (channel reset).
    Timeout,
    /// The peer's access policy refused the `blob` channel.
    Denied,
    /// The peer does not serve `blob`.
    UnknownService,
}

impl BlobError {
    /// Stable label for logs and counters (a remote refusal uses its code's label).
    pub fn label(&self) -> &'static str {
        match self {
            BlobError::Remote { code, .. } => code.label(),
            BlobError::BadName => "bad-name",
            BlobError::TooLarge => "too-large",
            BlobError::BadHash => "bad-hash",
            BlobError::Changed => "changed",
            BlobError::Malformed => "malformed",
            BlobError::Truncated => "truncated",
            BlobError::ChannelClosed => "channel-closed",
            BlobError::Timeout => "timeout",
            BlobError::Denied => "denied",
            BlobError::UnknownService => "unknown-service",
        }
    }
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::Remote { message, .. } if !message.is_empty() => {
                write!(f, "{}: {message}", self.label())
            }
            e => f.write_str(e.label()),
        }
    }
}

impl core::error::Error for BlobError {}
