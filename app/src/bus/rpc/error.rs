//! Typed RPC errors with stable labels.

use alloc::string::String;
use core::fmt;

use super::wire::{code, RemoteError};

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// The peer's access policy refused the channel (set by the node, see [`super::RpcClient::abort`]).
    Denied,
    /// The peer does not offer the service (set by the node).
    UnknownService,
    /// No answer before the call's deadline.
    Timeout,
    /// The body exceeds the local cap, or the server answered `too-large`.
    TooLarge,
    /// [`super::RpcConfig::max_in_flight`] calls are already in flight.
    TooManyInFlight,
    /// The service answered an error.
    Remote { code: u16, message: String },
    /// The channel ended before the answer (reset, finished, session down).
    ChannelClosed,
    /// The peer sent a frame that is not a valid response (the channel is reset).
    Malformed,
}

impl RpcError {
    /// Stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            RpcError::Denied => "denied",
            RpcError::UnknownService => "unknown-service",
            RpcError::Timeout => "timeout",
            RpcError::TooLarge => "too-large",
            RpcError::TooManyInFlight => "too-many-in-flight",
            RpcError::Remote { .. } => "remote-error",
            RpcError::ChannelClosed => "channel-closed",
            RpcError::Malformed => "malformed",
        }
    }

    /// The error a client reports for a remote answer.
    pub(crate) fn from_remote(e: RemoteError) -> RpcError {
        match e.code {
            code::TOO_LARGE => RpcError::TooLarge,
            c => RpcError::Remote {
                code: c,
                message: e.message,
            },
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Remote { code, message } => write!(f, "remote-error {code}: {message}"),
            e => f.write_str(e.label()),
        }
    }
}

/// Why [`super::RpcServer::respond`] could not queue an answer as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespondError {
    /// No unanswered request has this id.
    UnknownId,
    /// The answer exceeds the frame cap; `too-large` was answered instead.
    TooLarge,
}

impl RespondError {
    /// Stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            RespondError::UnknownId => "unknown-id",
            RespondError::TooLarge => "too-large",
        }
    }
}

impl fmt::Display for RespondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl core::error::Error for RpcError {}

impl core::error::Error for RespondError {}
