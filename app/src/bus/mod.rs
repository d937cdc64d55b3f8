//! The bus as a library: what applications use on top of the node's
//! authenticated sessions. Sans-IO, `no_std` + `alloc`, every buffer bounded.
//!
//! - [`channel`]: the byte-stream view services are written against.
//! - [`codec`]: length-prefixed postcard messages over a channel.
//! - [`rpc`]: typed, pipelined request/response with ids and deadlines.
//! - [`sd`], [`ping`]: the built-in RPC services (directory, echo).
//! - [`blob`]: the data plane (put/get/stat of named blobs, resumable,
//!   BLAKE2s-checked) and its bounded RAM store.
//!
//! Wire formats: `docs/protocol.md`, "Services: framing, RPC, directory, blob".

pub mod blob;
mod bounded;
pub mod channel;
pub mod codec;
pub mod ping;
pub mod rpc;
pub mod sd;
