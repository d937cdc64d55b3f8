//! The bus options of the command line: the node's role (`mode`), its
//! device id, the keys it trusts, and who may use which service.

use dsb_noise::DeviceId;
use dsb_transports::mux::ServiceName;

/// Most `trust=` entries.
pub const MAX_TRUST: usize = 16;
/// Most `allow=` entries.
pub const MAX_ALLOW: usize = 16;

/// What the image does once its network is up (`mode=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Run the self-test of the scenario, print its verdict, exit.
    #[default]
    Selftest,
    /// A long-running node: serve the bus until QEMU is stopped.
    Serve,
}

/// Whom an `allow=` entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// `*`: any authenticated peer.
    Any,
    /// One device id.
    Id(DeviceId),
}

/// One `allow=<service>:<id>|*` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    pub service: ServiceName,
    pub who: Who,
}

/// `id=`: a device id (1..=32 of `[A-Za-z0-9._-]`).
pub(crate) fn parse_id(v: &[u8]) -> Option<DeviceId> {
    DeviceId::new(core::str::from_utf8(v).ok()?).ok()
}

/// 64 hex digits.
fn parse_key(v: &[u8]) -> Option<[u8; 32]> {
    if v.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(v.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *slot = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// `trust=<id>:<64 hex Ed25519 device key>,...`
pub(crate) fn parse_trust(v: &[u8]) -> Option<heapless::Vec<(DeviceId, [u8; 32]), MAX_TRUST>> {
    let mut out = heapless::Vec::new();
    for item in v.split(|b| *b == b',') {
        let colon = item.iter().position(|b| *b == b':')?;
        let (id, key) = (item.get(..colon)?, item.get(colon + 1..)?);
        let id = parse_id(id)?;
        if out.iter().any(|(d, _): &(DeviceId, [u8; 32])| *d == id) {
            return None;
        }
        out.push((id, parse_key(key)?)).ok()?;
    }
    Some(out)
}

/// `allow=<service>:<id>|*,...`
pub(crate) fn parse_allow(v: &[u8]) -> Option<heapless::Vec<AllowEntry, MAX_ALLOW>> {
    let mut out = heapless::Vec::new();
    for item in v.split(|b| *b == b',') {
        let colon = item.iter().position(|b| *b == b':')?;
        let (svc, who) = (item.get(..colon)?, item.get(colon + 1..)?);
        let service = ServiceName::new(svc)?;
        let who = if who == b"*" {
            Who::Any
        } else {
            Who::Id(parse_id(who)?)
        };
        out.push(AllowEntry { service, who }).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_and_allow_lists_parse_with_limits() {
        let k = "ab".repeat(32);
        let t = parse_trust(alloc::format!("node-1:{k},node-2:{k}").as_bytes()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].1, [0xab; 32]);
        assert!(parse_trust(alloc::format!("node-1:{k},node-1:{k}").as_bytes()).is_none());
        assert!(parse_trust(b"node-1:abcd").is_none());
        assert!(parse_trust(alloc::format!("no de:{k}").as_bytes()).is_none());
        let a = parse_allow(b"blob:node-b,sd:*").unwrap();
        assert_eq!(a[0].who, Who::Id(DeviceId::new("node-b").unwrap()));
        assert_eq!(a[1].who, Who::Any);
        assert!(parse_allow(b"blob").is_none());
        assert!(parse_allow(b"bad name:*").is_none());
        let many = (0..=MAX_ALLOW)
            .map(|i| alloc::format!("s{i}:*"))
            .collect::<alloc::vec::Vec<_>>()
            .join(",");
        assert!(parse_allow(many.as_bytes()).is_none());
    }
}
