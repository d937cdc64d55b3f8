//! `sd`: the service directory (like samgr's lookup). One RPC: the caller
//! sends [`SdRequest::List`], the node answers [`SdResponse`]: every service
//! it publishes and whether this caller may open it (node API: see the Bus
//! API section for how `allowed` is decided).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Deserializer, Serialize};

use super::bounded::de_seq_max;
use super::codec::{self, CodecError};
use super::rpc::{code, RpcResult};

/// Service name.
pub const SD_SERVICE: &str = "sd";
/// Most entries in one answer (the mux registers at most 16 services).
pub const SD_MAX_ENTRIES: usize = 16;
/// Longest service name (a mux channel name).
pub const SD_NAME_MAX: usize = 32;

/// A directory request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SdRequest {
    /// List the node's services.
    List,
}

/// One published service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdEntry {
    pub name: String,
    /// Whether the caller may open it.
    pub allowed: bool,
}

/// The directory answer: at most [`SD_MAX_ENTRIES`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdResponse {
    #[serde(deserialize_with = "de_entries")]
    pub services: Vec<SdEntry>,
}

fn de_entries<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SdEntry>, D::Error> {
    de_seq_max(d, SD_MAX_ENTRIES)
}

impl SdResponse {
    /// Decodes an answer body: at most 16 entries, names of 1..=32 bytes.
    pub fn decode(body: &[u8]) -> Result<SdResponse, CodecError> {
        let r: SdResponse = codec::decode(body)?;
        if r.services
            .iter()
            .any(|e| e.name.is_empty() || e.name.len() > SD_NAME_MAX)
        {
            return Err(CodecError::Malformed);
        }
        Ok(r)
    }

    /// True if `name` is listed and allowed.
    pub fn allows(&self, name: &str) -> bool {
        self.services.iter().any(|e| e.name == name && e.allowed)
    }
}

/// The node's answer to an `sd` request body, from its published services
/// as `(name, allowed for this caller)` (the first 16 are listed).
pub fn answer<'a>(body: &[u8], services: impl IntoIterator<Item = (&'a str, bool)>) -> RpcResult {
    match codec::decode::<SdRequest>(body) {
        Ok(SdRequest::List) => {
            let services = services
                .into_iter()
                .filter(|(n, _)| !n.is_empty() && n.len() <= SD_NAME_MAX)
                .take(SD_MAX_ENTRIES)
                .map(|(name, allowed)| SdEntry {
                    name: String::from(name),
                    allowed,
                })
                .collect();
            RpcResult::encode_ok(&SdResponse { services })
                .unwrap_or_else(|_| RpcResult::err(code::BAD_REQUEST, "cannot encode"))
        }
        Err(_) => RpcResult::err(code::BAD_REQUEST, "not an sd request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_lists_at_most_16_services_and_refuses_longer_lists() {
        let req = codec::encode(&SdRequest::List).unwrap();
        let names: Vec<String> = (0..20).map(|i| alloc::format!("svc{i}")).collect();
        let RpcResult::Ok(body) = answer(&req, names.iter().map(|n| (n.as_str(), true))) else {
            panic!("sd refused a list request");
        };
        let r = SdResponse::decode(&body).unwrap();
        assert_eq!(r.services.len(), SD_MAX_ENTRIES);
        assert!(r.allows("svc3"));

        let too_many = SdResponse {
            services: (0..17)
                .map(|i| SdEntry {
                    name: alloc::format!("s{i}"),
                    allowed: false,
                })
                .collect(),
        };
        let bytes = codec::encode(&too_many).unwrap();
        assert_eq!(SdResponse::decode(&bytes), Err(CodecError::Malformed));
        // A huge announced count is refused before anything is allocated.
        assert_eq!(
            SdResponse::decode(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(CodecError::Malformed)
        );
    }

    #[test]
    fn sd_answers_bad_request_to_garbage() {
        assert!(matches!(answer(&[9], []), RpcResult::Err(e) if e.code == code::BAD_REQUEST));
    }
}
