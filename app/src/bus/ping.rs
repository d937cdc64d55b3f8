//! `ping`: an RPC echo. The request body is at most [`PING_MAX`] opaque
//! bytes; the answer is `Ok` with the same bytes.

use alloc::vec::Vec;

use super::rpc::{code, RpcResult};

/// Service name.
pub const PING_SERVICE: &str = "ping";
/// Longest echo payload.
pub const PING_MAX: usize = 64;

/// The server's answer to a ping request body.
pub fn answer(body: &[u8]) -> RpcResult {
    if body.len() > PING_MAX {
        RpcResult::err(code::TOO_LARGE, "ping payload over 64 bytes")
    } else {
        RpcResult::Ok(Vec::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_echoes_up_to_64_bytes() {
        assert_eq!(answer(b"abc"), RpcResult::Ok(b"abc".to_vec()));
        assert_eq!(answer(&[7; 64]), RpcResult::Ok([7; 64].to_vec()));
        assert!(matches!(answer(&[7; 65]), RpcResult::Err(e) if e.code == code::TOO_LARGE));
    }
}
