//! `dsb call <id> <service> [request]`: one RPC request/response. Services
//! whose messages `dsb` knows (`sd`) take and print JSON; any other gets
//! the request as text (or `--hex`) and its answer printed as text when it
//! is UTF-8, else hex.

use std::time::Duration;

use dsb_app::bus::rpc::RpcError;
use dsb_app::bus::sd::{SdRequest, SdResponse, SD_SERVICE};
use dsb_app::node::NodeEvent;
use serde_json::Value;

use crate::error::{Failure, Result};
use crate::host::{device_id, Host, Link};

/// Most request bytes accepted from the command line.
const MAX_REQUEST: usize = 16 * 1024;

/// The request body for `service`.
fn encode(service: &str, request: Option<&str>, hex: bool) -> Result<Vec<u8>> {
    if service == SD_SERVICE {
        let text = request.unwrap_or("\"List\"");
        let req: SdRequest = serde_json::from_str(text).map_err(|e| {
            Failure::usage(format!("bad sd request {text:?} ({e}); try '\"List\"'"))
        })?;
        return dsb_app::bus::codec::encode(&req)
            .map_err(|e| Failure::error(format!("cannot encode the request: {e}")));
    }
    let text = request.unwrap_or("");
    let body = if hex {
        decode_hex(text).ok_or_else(|| Failure::usage(format!("--hex: not hex: {text:?}")))?
    } else {
        text.as_bytes().to_vec()
    };
    if body.len() > MAX_REQUEST {
        return Err(Failure::usage(format!(
            "request of {} bytes is over {MAX_REQUEST}",
            body.len()
        )));
    }
    Ok(body)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The answer as JSON.
fn decode(service: &str, body: &[u8]) -> Value {
    if service == SD_SERVICE {
        if let Ok(r) = SdResponse::decode(body) {
            return serde_json::to_value(&r).unwrap_or(Value::Null);
        }
    }
    match std::str::from_utf8(body) {
        Ok(t) if !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            Value::String(t.to_string())
        }
        _ => {
            serde_json::json!({ "hex": body.iter().map(|b| format!("{b:02x}")).collect::<String>() })
        }
    }
}

/// What a failed call means for the user.
pub fn call_failure(peer: &str, service: &str, e: &RpcError) -> Failure {
    match e {
        RpcError::Denied => Failure::denied(format!("{peer} denies us {service} (access-denied)")),
        RpcError::UnknownService => Failure::error(format!("{peer} does not publish {service}")),
        RpcError::Timeout => {
            Failure::unreachable(format!("{peer} did not answer {service} in time"))
        }
        other => Failure::error(format!("{service} on {peer} failed: {other}")),
    }
}

pub fn run<N: Link>(
    host: &mut Host<N>,
    peer: &str,
    service: &str,
    request: Option<&str>,
    hex: bool,
    timeout: Duration,
) -> Result<()> {
    let id = device_id(peer)?;
    let body = encode(service, request, hex)?;
    host.session(&id, timeout)?;
    let t = smoltcp::time::Duration::from_micros(timeout.as_micros() as u64);
    let call = host
        .node
        .call(&id, service, &body, t)
        .map_err(|e| Failure::error(format!("cannot call {service} on {peer}: {}", e.label())))?;
    let secs = timeout.as_secs_f64() + 1.0;
    let answer = host.run(
        timeout + Duration::from_secs(1),
        || format!("{peer} did not answer {service} within {secs:.0} s"),
        |node, ev| match ev {
            Some(NodeEvent::CallDone(c)) if *c == call => node.take_call(call).map(Ok),
            _ => None,
        },
    )?;
    match answer {
        Ok(bytes) => {
            println!("{}", decode(service, &bytes));
            Ok(())
        }
        Err(e) => Err(call_failure(peer, service, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_and_answers_decode() {
        assert_eq!(encode("sd", None, false).unwrap(), vec![0]);
        assert!(encode("sd", Some("{\"Nope\":1}"), false).is_err());
        assert_eq!(encode("echo", Some("hi"), false).unwrap(), b"hi");
        assert_eq!(
            encode("echo", Some("0aff"), true).unwrap(),
            vec![0x0a, 0xff]
        );
        assert!(encode("echo", Some("0g"), true).is_err());
        assert_eq!(decode("echo", b"hello"), Value::String("hello".into()));
        assert_eq!(decode("echo", &[0, 1]), serde_json::json!({"hex": "0001"}));
    }
}
