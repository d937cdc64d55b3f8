//! Blob messages, error codes, names and the content hash.

use alloc::string::String;

use blake2::{Blake2s256, Digest};
use serde::{Deserialize, Serialize};

use super::BLOB_NAME_MAX;
use crate::bus::bounded::truncate;
use crate::bus::codec::{self, CodecError};
use crate::bus::rpc::REMOTE_MESSAGE_MAX;

/// BLAKE2s-256 of a blob's content.
pub type Hash = [u8; 32];

/// BLAKE2s-256 of `data`.
pub fn blob_hash(data: &[u8]) -> Hash {
    Blake2s256::digest(data).into()
}

/// A blob name: 1..=64 bytes of `[A-Za-z0-9._-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=BLOB_NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// What a client asks (postcard enum: tag 0, 1, 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobRequest {
    /// Store `name` (`size` bytes hashing to `hash`); bytes `[offset, size)`
    /// follow raw, then FIN. `offset` > 0 continues a partial upload.
    Put {
        name: String,
        size: u64,
        hash: Hash,
        offset: u64,
    },
    /// Send `name` from `offset`.
    Get { name: String, offset: u64 },
    /// Report `name`'s size, hash and how much of it is stored.
    Stat { name: String },
}

/// The server's answer (postcard enum: tag 0..=3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobResponse {
    /// The `Put` was verified and committed.
    Stored { size: u64, hash: Hash },
    /// The `Get` is answered; bytes `[offset, size)` follow raw, then FIN.
    Data { size: u64, hash: Hash },
    /// `have` = bytes of a partial upload kept for resume, or `size` if complete.
    Stat { size: u64, have: u64, hash: Hash },
    /// Refused (`code`: [`BlobCode`], `message` at most 64 bytes).
    Err { code: u16, message: String },
}

impl BlobRequest {
    /// Decodes a request frame.
    pub fn decode(bytes: &[u8]) -> Result<BlobRequest, CodecError> {
        codec::decode(bytes)
    }
}

impl BlobResponse {
    /// An error answer (message cut to 64 bytes).
    pub fn err(code: BlobCode, message: &str) -> BlobResponse {
        BlobResponse::Err {
            code: code.code(),
            message: String::from(truncate(message, REMOTE_MESSAGE_MAX)),
        }
    }

    /// Decodes a response frame, refusing an over-long message.
    pub fn decode(bytes: &[u8]) -> Result<BlobResponse, CodecError> {
        match codec::decode(bytes)? {
            BlobResponse::Err { message, .. } if message.len() > REMOTE_MESSAGE_MAX => {
                Err(CodecError::Malformed)
            }
            r => Ok(r),
        }
    }
}

/// Why the server refused (`u16` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobCode {
    /// 1: no complete blob of that name.
    NotFound,
    /// 2: `size` is over the per-blob cap (checked before any data).
    TooLarge,
    /// 3: the total cap (or the blob table) cannot take it.
    StoreFull,
    /// 4: the data does not hash to the announced hash; nothing committed.
    BadHash,
    /// 5: `offset` is not 0 and not where the partial upload stopped, or past `size`.
    BadOffset,
    /// 6: the name is not 1..=64 bytes of `[A-Za-z0-9._-]`.
    BadName,
    /// 7: FIN before `size` bytes; what came is kept for resume.
    Incomplete,
    /// 8: the partial upload was dropped under us (evicted or replaced).
    Aborted,
    /// A code this implementation does not know.
    Other(u16),
}

impl BlobCode {
    /// The wire code.
    pub fn code(&self) -> u16 {
        match self {
            BlobCode::NotFound => 1,
            BlobCode::TooLarge => 2,
            BlobCode::StoreFull => 3,
            BlobCode::BadHash => 4,
            BlobCode::BadOffset => 5,
            BlobCode::BadName => 6,
            BlobCode::Incomplete => 7,
            BlobCode::Aborted => 8,
            BlobCode::Other(c) => *c,
        }
    }

    /// The code for a wire value.
    pub fn from_code(c: u16) -> BlobCode {
        match c {
            1 => BlobCode::NotFound,
            2 => BlobCode::TooLarge,
            3 => BlobCode::StoreFull,
            4 => BlobCode::BadHash,
            5 => BlobCode::BadOffset,
            6 => BlobCode::BadName,
            7 => BlobCode::Incomplete,
            8 => BlobCode::Aborted,
            c => BlobCode::Other(c),
        }
    }

    /// Stable label.
    pub fn label(&self) -> &'static str {
        match self {
            BlobCode::NotFound => "not-found",
            BlobCode::TooLarge => "too-large",
            BlobCode::StoreFull => "store-full",
            BlobCode::BadHash => "bad-hash",
            BlobCode::BadOffset => "bad-offset",
            BlobCode::BadName => "bad-name",
            BlobCode::Incomplete => "incomplete",
            BlobCode::Aborted => "aborted",
            BlobCode::Other(_) => "remote-error",
        }
    }
}

impl core::fmt::Display for BlobCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.label())
    }
}
