//! `blob`: the data plane. Put, get and stat named blobs in a bounded RAM
//! store, with a BLAKE2s-256 content hash checked end to end and uploads
//! that resume where an interrupted one stopped.
//!
//! On a channel the client sends request frames (codec: `len: u32` BE +
//! postcard [`BlobRequest`]) and the server answers each with one
//! [`BlobResponse`] frame. Any number of `Stat`s may come first; a `Put` or
//! `Get` is the channel's last request. The bulk bytes flow raw on the
//! stream, not framed: after a `Put` header the client sends bytes
//! `[offset, size)` then FIN and the server answers `Stored`; a `Get` is
//! answered `Data` followed by bytes `[offset, size)` then FIN.
//!
//! - [`wire`]: messages, codes, names.
//! - [`store`]: [`BlobStore`], the bounded store (per-blob and total caps,
//!   partial uploads kept for resume).
//! - [`server`]: [`BlobServer`], one per accepted channel.
//! - [`put`], [`get`]: the client state machines [`BlobPut`], [`BlobGet`].

mod error;
pub mod get;
pub mod put;
pub mod server;
pub mod store;
pub mod wire;

pub use error::BlobError;
pub use get::{BlobGet, GetDone, GetResume};
pub use put::{BlobPut, PutDone};
pub use server::{BlobEvent, BlobServer, ServerEnd};
pub use store::{BlobStore, StatInfo, StoreConfig, StoreStats};
pub use wire::{blob_hash, valid_name, BlobCode, BlobRequest, BlobResponse, Hash};

use smoltcp::time::Duration;

/// Service name.
pub const BLOB_SERVICE: &str = "blob";
/// Largest request/response frame payload (a `Put` header is at most 118 bytes).
pub const BLOB_MSG_CAP: usize = 256;
/// Longest blob name.
pub const BLOB_NAME_MAX: usize = 64;
/// Bytes moved per read/write call on the raw stream (stack buffer).
pub const BLOB_IO_CHUNK: usize = 4096;
/// A transfer with no progress for this long is reset (`reset_code::TIMEOUT`).
pub const BLOB_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest idle timeout accepted by `set_idle_timeout`.
pub const BLOB_IDLE_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3600);
/// Most bytes a server discards after answering an error early (a refused
/// `Put`); past that it stops reading, so flow control halts the sender.
pub const BLOB_DRAIN_MAX: u64 = 256 * 1024;

#[cfg(test)]
mod tests;
