//! The RPC envelope (postcard, inside one codec frame each).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::bus::bounded::{de_bytes, ser_bytes, truncate};
use crate::bus::codec::{self, CodecError};

/// Longest [`RemoteError::message`] in bytes (longer ones are cut on a char boundary).
pub const REMOTE_MESSAGE_MAX: usize = 64;

/// Error codes of the RPC layer in [`RemoteError::code`]; services use
/// `0x0100..`.
pub mod code {
    /// The request frame exceeded the server's cap (answered, then skipped),
    /// or the answer would exceed the frame cap.
    pub const TOO_LARGE: u16 = 1;
    /// The body does not decode as the service's request type.
    pub const BAD_REQUEST: u16 = 2;
    /// First code a service may use for its own errors.
    pub const SERVICE_BASE: u16 = 0x0100;
}

/// A call: `id` chosen by the client, unique among its calls in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcRequest {
    pub id: u32,
    #[serde(serialize_with = "ser_bytes", deserialize_with = "de_bytes")]
    pub body: Vec<u8>,
}

/// The answer to the request with the same `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcResponse {
    pub id: u32,
    pub result: RpcResult,
}

/// A service's answer: a body or an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RpcResult {
    Ok(#[serde(serialize_with = "ser_bytes", deserialize_with = "de_bytes")] Vec<u8>),
    Err(RemoteError),
}

/// An error answered by the remote service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    pub code: u16,
    /// At most [`REMOTE_MESSAGE_MAX`] bytes of UTF-8.
    pub message: String,
}

impl RemoteError {
    /// An error with `message` cut to [`REMOTE_MESSAGE_MAX`] bytes.
    pub fn new(code: u16, message: &str) -> RemoteError {
        RemoteError {
            code,
            message: String::from(truncate(message, REMOTE_MESSAGE_MAX)),
        }
    }
}

impl RpcResult {
    /// An `Ok` carrying `msg` encoded with postcard.
    pub fn encode_ok<T: Serialize + ?Sized>(msg: &T) -> Result<RpcResult, CodecError> {
        codec::encode(msg).map(RpcResult::Ok)
    }

    /// An `Err` with `code` and `message` (cut to [`REMOTE_MESSAGE_MAX`]).
    pub fn err(code: u16, message: &str) -> RpcResult {
        RpcResult::Err(RemoteError::new(code, message))
    }
}

impl RpcResponse {
    /// Decodes a response, refusing an over-long error message.
    pub fn decode(bytes: &[u8]) -> Result<RpcResponse, CodecError> {
        let r: RpcResponse = codec::decode(bytes)?;
        match &r.result {
            RpcResult::Err(e) if e.message.len() > REMOTE_MESSAGE_MAX => Err(CodecError::Malformed),
            _ => Ok(r),
        }
    }
}
