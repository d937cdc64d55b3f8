//! Typed rejections, each with a stable label (used in logs, markers and counters).

use core::fmt;

/// Why an incoming announce was dropped. Every variant has a stable [`label`](Self::label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnounceError {
    /// Structurally invalid: truncated, trailing bytes, bad length or charset, duplicate service.
    Malformed,
    /// Datagram longer than [`MAX_ANNOUNCE_LEN`](crate::MAX_ANNOUNCE_LEN).
    Oversized,
    /// Does not start with the announce magic (stray traffic on the port).
    BadMagic,
    /// Right magic, unsupported version.
    BadVersion,
    /// The Ed25519 signature (or the announced device key) does not verify strictly.
    BadSignature,
    /// Sequence number older than the newest one accepted for this device id.
    Replay,
    /// Over the per-source, per-device or new-device budget (checked before verification).
    RateLimited,
    /// The device id is bound to another device key (pinned or trust-on-first-use).
    KeyMismatch,
    /// No room for a new device (peer table or binding store full of entries that may not be evicted).
    TableFull,
    /// Our own announce (our device id), e.g. looped back by multicast.
    SelfAnnounce,
    /// Pinned-only mode and this device id is not pinned.
    Unpinned,
    /// Source address is not a unicast address (unspecified, broadcast or multicast).
    BadSource,
}

impl AnnounceError {
    /// Every variant, in counter order.
    pub const ALL: [AnnounceError; 12] = [
        AnnounceError::Malformed,
        AnnounceError::Oversized,
        AnnounceError::BadMagic,
        AnnounceError::BadVersion,
        AnnounceError::BadSignature,
        AnnounceError::Replay,
        AnnounceError::RateLimited,
        AnnounceError::KeyMismatch,
        AnnounceError::TableFull,
        AnnounceError::SelfAnnounce,
        AnnounceError::Unpinned,
        AnnounceError::BadSource,
    ];

    /// Stable label, e.g. `"bad-signature"` (for `announce ignored (<label>)`).
    pub fn label(&self) -> &'static str {
        match self {
            AnnounceError::Malformed => "malformed",
            AnnounceError::Oversized => "oversized",
            AnnounceError::BadMagic => "bad-magic",
            AnnounceError::BadVersion => "bad-version",
            AnnounceError::BadSignature => "bad-signature",
            AnnounceError::Replay => "replay",
            AnnounceError::RateLimited => "rate-limited",
            AnnounceError::KeyMismatch => "key-mismatch",
            AnnounceError::TableFull => "table-full",
            AnnounceError::SelfAnnounce => "self",
            AnnounceError::Unpinned => "unpinned",
            AnnounceError::BadSource => "bad-source",
        }
    }
}

impl fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why an announce could not be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// The output buffer is shorter than [`AnnounceRepr::buffer_len`](crate::AnnounceRepr::buffer_len).
    BufferTooSmall,
    /// The same service name is listed twice.
    DuplicateService,
}

impl EmitError {
    /// Stable label of this error.
    pub fn label(&self) -> &'static str {
        match self {
            EmitError::BufferTooSmall => "buffer-too-small",
            EmitError::DuplicateService => "duplicate-service",
        }
    }
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl core::error::Error for AnnounceError {}

impl core::error::Error for EmitError {}
