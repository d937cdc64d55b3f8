//! Counters the app can read: one per rejection label plus the accept path.

use crate::error::AnnounceError;

/// Discovery counters (monotonic, wrapping never expected in practice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to `handle_datagram`.
    pub received: u64,
    /// Signature verifications performed (the expensive step; bounded by the rate limits).
    pub verified: u64,
    /// Announces accepted (verified, newer sequence number, stored).
    pub accepted: u64,
    /// Accepted announces that created a peer entry.
    pub found: u64,
    /// Accepted announces that changed a peer entry.
    pub updated: u64,
    /// Same sequence number as the newest accepted one (dropped quietly, not an error).
    pub duplicate: u64,
    /// Handshake identities admitted by [`Discovery::admit`](crate::Discovery::admit)
    /// (bound already, or a TOFU binding created).
    pub admitted: u64,
    /// Handshake identities refused by `admit` (key mismatch, unpinned, table full).
    pub admit_refused: u64,
    /// Own announces sent.
    pub sent: u64,
    /// Peer entries removed after the TTL.
    pub expired: u64,
    /// Peer entries evicted to make room.
    pub evicted: u64,
    /// Lost-peer events dropped because the app did not drain the event queue.
    pub events_dropped: u64,
    /// `malformed` rejections.
    pub malformed: u64,
    /// `oversized` rejections.
    pub oversized: u64,
    /// `bad-magic` rejections.
    pub bad_magic: u64,
    /// `bad-version` rejections.
    pub bad_version: u64,
    /// `bad-signature` rejections.
    pub bad_signature: u64,
    /// `replay` rejections.
    pub replay: u64,
    /// `rate-limited` rejections.
    pub rate_limited: u64,
    /// `key-mismatch` rejections.
    pub key_mismatch: u64,
    /// `table-full` rejections.
    pub table_full: u64,
    /// `self` rejections.
    pub self_announce: u64,
    /// `unpinned` rejections.
    pub unpinned: u64,
    /// `bad-source` rejections.
    pub bad_source: u64,
}

impl Counters {
    fn slot(&mut self, e: AnnounceError) -> &mut u64 {
        match e {
            AnnounceError::Malformed => &mut self.malformed,
            AnnounceError::Oversized => &mut self.oversized,
            AnnounceError::BadMagic => &mut self.bad_magic,
            AnnounceError::BadVersion => &mut self.bad_version,
            AnnounceError::BadSignature => &mut self.bad_signature,
            AnnounceError::Replay => &mut self.replay,
            AnnounceError::RateLimited => &mut self.rate_limited,
            AnnounceError::KeyMismatch => &mut self.key_mismatch,
            AnnounceError::TableFull => &mut self.table_full,
            AnnounceError::SelfAnnounce => &mut self.self_announce,
            AnnounceError::Unpinned => &mut self.unpinned,
            AnnounceError::BadSource => &mut self.bad_source,
        }
    }

    /// Counts one rejection.
    pub(crate) fn reject(&mut self, e: AnnounceError) {
        let c = self.slot(e);
        *c = c.saturating_add(1);
    }

    /// How many announces were rejected with `e`.
    pub fn rejected(&self, e: AnnounceError) -> u64 {
        match e {
            AnnounceError::Malformed => self.malformed,
            AnnounceError::Oversized => self.oversized,
            AnnounceError::BadMagic => self.bad_magic,
            AnnounceError::BadVersion => self.bad_version,
            AnnounceError::BadSignature => self.bad_signature,
            AnnounceError::Replay => self.replay,
            AnnounceError::RateLimited => self.rate_limited,
            AnnounceError::KeyMismatch => self.key_mismatch,
            AnnounceError::TableFull => self.table_full,
            AnnounceError::SelfAnnounce => self.self_announce,
            AnnounceError::Unpinned => self.unpinned,
            AnnounceError::BadSource => self.bad_source,
        }
    }

    /// All rejections together.
    pub fn total_rejected(&self) -> u64 {
        AnnounceError::ALL
            .iter()
            .fold(0u64, |acc, e| acc.saturating_add(self.rejected(*e)))
    }

    /// `(label, count)` for every rejection label, in [`AnnounceError::ALL`] order.
    pub fn by_label(&self) -> [(&'static str, u64); AnnounceError::ALL.len()] {
        AnnounceError::ALL.map(|e| (e.label(), self.rejected(e)))
    }
}

/// Increments a counter without overflow.
pub(crate) fn bump(c: &mut u64) {
    *c = c.saturating_add(1);
}
