//! Typed request/response on one channel, pipelined, with correlation ids.
//!
//! The opener runs an [`RpcClient`], the acceptor an [`RpcServer`]. Every
//! message is one codec frame (`len: u32` BE + postcard): the client sends
//! [`RpcRequest`]s, the server answers each with one [`RpcResponse`] carrying
//! the same `id`, in any order. Bodies are opaque bytes, normally a postcard
//! message of the service ([`encode`](super::codec::encode) /
//! [`decode`](super::codec::decode)). Every call has a deadline; calls in
//! flight, queued requests and frames are capped ([`RpcConfig`]).

mod client;
mod error;
mod server;
mod wire;

pub use client::{CallDone, CallId, RpcClient, RpcClientStats};
pub use error::{RespondError, RpcError};
pub use server::{Incoming, RpcServer, RpcServerStats, ServerStatus};
pub use wire::{code, RemoteError, RpcRequest, RpcResponse, RpcResult, REMOTE_MESSAGE_MAX};

/// Default largest frame payload (one request or response message).
pub const RPC_MSG_CAP: usize = 16 * 1024;
/// Default most calls a client has in flight (sent or queued, unanswered).
pub const RPC_MAX_IN_FLIGHT: usize = 16;
/// Default most requests a server holds unanswered (or answered, unsent).
pub const RPC_MAX_QUEUED: usize = 16;
/// Envelope bytes around a body, worst case for a frame cap of at most
/// 1 MiB: id varint (5) + result tag (1) + body length varint (3).
pub const RPC_ENVELOPE_MAX: usize = 9;

/// Caps of one RPC channel end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcConfig {
    /// Largest frame payload sent or accepted (clamped to `RPC_ENVELOPE_MAX + 1 ..= FRAME_CAP_LIMIT`).
    pub msg_cap: usize,
    /// Client: most calls in flight.
    pub max_in_flight: usize,
    /// Server: most requests held (unanswered or answered but unsent);
    /// beyond it the server stops reading (the peer sees backpressure).
    pub max_queued: usize,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            msg_cap: RPC_MSG_CAP,
            max_in_flight: RPC_MAX_IN_FLIGHT,
            max_queued: RPC_MAX_QUEUED,
        }
    }
}

impl RpcConfig {
    fn clamped(self) -> RpcConfig {
        RpcConfig {
            msg_cap: self
                .msg_cap
                .clamp(RPC_ENVELOPE_MAX + 1, super::codec::FRAME_CAP_LIMIT),
            max_in_flight: self.max_in_flight.max(1),
            max_queued: self.max_queued.max(1),
        }
    }

    /// Largest body a call or an answer may carry.
    pub fn max_body(&self) -> usize {
        self.clamped().msg_cap - RPC_ENVELOPE_MAX
    }
}

#[cfg(test)]
mod tests;
