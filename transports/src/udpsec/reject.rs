//! HS_REJECT: the responder's explicit, unauthenticated refusal of a handshake.
//!
//! Without it a refused initiator would only learn of the refusal when its
//! own handshake timer expired. The packet is a bare header (type 5, the
//! initiator's session id) and a 2-byte little-endian code. It carries no
//! authentication (there may be no keys to authenticate it with), so an
//! initiator honours it only while its handshake is unconfirmed, only for
//! its own session id and only from the address it is talking to: an
//! off-path attacker would have to guess the 64-bit session id, and an
//! on-path one could simply drop packets instead. It is never larger than
//! the message 1 it answers (no amplification), and the endpoint sends at
//! most a bounded number of them per unit of time.

use super::handshake::HsError;

/// Payload length of an HS_REJECT packet.
pub const REJECT_PAYLOAD_LEN: usize = 2;

/// Why a responder refused a handshake (wire code in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// A reason this version does not name (0).
    Other,
    /// A handshake message did not decrypt: e.g. message 1 for a Noise static
    /// key the responder does not hold (a stale announce) (1).
    DecryptFailed,
    /// A handshake message or attestation broke the format (2).
    Malformed,
    /// The initiator's id is bound to another device key (3).
    IdentityMismatch,
    /// The initiator's attestation signature did not verify (4).
    BadSignature,
    /// No binding for the initiator's id and none may be created (5).
    UnknownPeer,
    /// The responder holds (or is opening) the session that wins for this pair (6).
    SessionExists,
    /// The responder takes no new sessions now (not listening, or full) (7).
    NotAccepting,
    /// The handshake ran past the responder's deadline (8).
    HandshakeTimeout,
}

impl RejectCode {
    /// Every code, in wire order.
    pub const ALL: [RejectCode; 9] = [
        RejectCode::Other,
        RejectCode::DecryptFailed,
        RejectCode::Malformed,
        RejectCode::IdentityMismatch,
        RejectCode::BadSignature,
        RejectCode::UnknownPeer,
        RejectCode::SessionExists,
        RejectCode::NotAccepting,
        RejectCode::HandshakeTimeout,
    ];

    /// The wire value.
    pub fn code(self) -> u16 {
        match self {
            RejectCode::Other => 0,
            RejectCode::DecryptFailed => 1,
            RejectCode::Malformed => 2,
            RejectCode::IdentityMismatch => 3,
            RejectCode::BadSignature => 4,
            RejectCode::UnknownPeer => 5,
            RejectCode::SessionExists => 6,
            RejectCode::NotAccepting => 7,
            RejectCode::HandshakeTimeout => 8,
        }
    }

    /// The code for a wire value (unknown values are `Other`).
    pub fn from_code(v: u16) -> RejectCode {
        RejectCode::ALL
            .iter()
            .copied()
            .find(|c| c.code() == v)
            .unwrap_or(RejectCode::Other)
    }

    /// Stable label (the same words as the handshake error it reports).
    pub fn label(self) -> &'static str {
        match self {
            RejectCode::Other => "other",
            RejectCode::DecryptFailed => "decrypt-failed",
            RejectCode::Malformed => "malformed",
            RejectCode::IdentityMismatch => "identity-mismatch",
            RejectCode::BadSignature => "bad-signature",
            RejectCode::UnknownPeer => "unknown-peer",
            RejectCode::SessionExists => "session-exists",
            RejectCode::NotAccepting => "not-accepting",
            RejectCode::HandshakeTimeout => "handshake-timeout",
        }
    }

    /// Label of the refusal as the initiator reports it (`refused-<label>`).
    pub fn refusal_label(self) -> &'static str {
        match self {
            RejectCode::Other => "refused-other",
            RejectCode::DecryptFailed => "refused-decrypt-failed",
            RejectCode::Malformed => "refused-malformed",
            RejectCode::IdentityMismatch => "refused-identity-mismatch",
            RejectCode::BadSignature => "refused-bad-signature",
            RejectCode::UnknownPeer => "refused-unknown-peer",
            RejectCode::SessionExists => "refused-session-exists",
            RejectCode::NotAccepting => "refused-not-accepting",
            RejectCode::HandshakeTimeout => "refused-handshake-timeout",
        }
    }

    /// The code that reports a local handshake failure to the initiator.
    pub fn for_error(e: HsError) -> RejectCode {
        let label = e.label();
        RejectCode::ALL
            .iter()
            .copied()
            .find(|c| c.label() == label)
            .unwrap_or(match label {
                "oversized" | "truncated" => RejectCode::Malformed,
                _ => RejectCode::Other,
            })
    }

    /// The 2-byte payload.
    pub fn to_payload(self) -> [u8; REJECT_PAYLOAD_LEN] {
        self.code().to_le_bytes()
    }

    /// Parses the payload (its length was checked with the header).
    pub fn from_payload(p: &[u8]) -> Option<RejectCode> {
        let b: [u8; REJECT_PAYLOAD_LEN] = p.try_into().ok()?;
        Some(RejectCode::from_code(u16::from_le_bytes(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_labels_are_distinct() {
        for c in RejectCode::ALL {
            assert_eq!(RejectCode::from_code(c.code()), c);
            assert_eq!(RejectCode::from_payload(&c.to_payload()), Some(c));
            assert_eq!(RejectCode::for_error(HsError::new(c.label())), c);
        }
        let mut labels: alloc::vec::Vec<_> = RejectCode::ALL.iter().map(|c| c.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RejectCode::ALL.len());
        assert_eq!(RejectCode::from_code(999), RejectCode::Other);
        assert_eq!(RejectCode::from_payload(&[1]), None);
        assert_eq!(
            RejectCode::for_error(HsError::new("oversized")),
            RejectCode::Malformed
        );
    }
}
