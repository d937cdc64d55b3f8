//! The bus as a library: what applications use on top of the node's
//! authenticated sessions. Sans-IO, `no_std` + `alloc`, every buffer bounded.
//!
//! - [`access`]: deny-by-default access policies of published services;
//! - [`api`]: channel handles, errors, the published-service table;
//! - [`channel`]: the byte-stream view services are written against;
//! - [`codec`]: length-prefixed postcard messages over a channel.
//! - [`rpc`]: typed, pipelined request/response with ids and deadlines.
//! - [`sd`]: the built-in service directory (an RPC service);
//! - [`blob`]: the data plane (put/get/stat of named blobs, resumable,
//!   BLAKE2s-checked) and its bounded RAM store.
//!
//! Wire formats: `docs/protocol.md`, "Services: framing, RPC, directory, blob".
//!
//! Driving them: one state machine per channel, polled on every loop with
//! `now` and the channel as a [`channel::ChannelIo`]
//! ([`channel::MuxChannel`]), woken at the latest at its `poll_at()`. The
//! node does this itself for `ping` (byte echo), `sd`, `blob` and the
//! application's `Node::call` / `blob_put` / `blob_get`; an application
//! serving RPC on a service of its own does it with `Node::channel`:
//! - accepted RPC channel (`sd`, an application's): [`rpc::RpcServer`],
//!   `poll` → [`rpc::Incoming`] → `respond`; drop it once `status()` is not
//!   `Open`;
//! - accepted `blob` channel: [`blob::BlobServer::poll`] with the node's one
//!   [`blob::BlobStore`] until `None` (events), drop it once `is_done()`;
//! - opened channels: [`rpc::RpcClient`] (`call`, `poll` → `CallDone`;
//!   `abort(Denied | UnknownService)` when the peer refused the channel),
//!   [`blob::BlobPut`], [`blob::BlobGet`] (`poll` → result once).

pub mod access;
pub mod api;
pub mod blob;
mod bounded;
pub mod channel;
pub mod codec;
pub mod rpc;
pub mod sd;

pub use access::{Access, MAX_ALLOWED};
pub use api::{ApiError, ChannelRef, Handler, Published, ServiceList, Services, MAX_PUBLISHED};
