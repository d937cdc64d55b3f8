//! Shared helpers for the discovery tests.
//!
//! SECURITY: test keys, not for production (fixed seeds, public in this file).
#![allow(dead_code)]

use core::num::NonZeroU16;

use dsb_discovery::{
    AnnounceRepr, DeviceId, Discovery, DiscoveryConfig, ServiceName, Services, SigningKey,
};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint};

/// SECURITY: test keys, not for production.
pub fn test_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// SECURITY: test keys, not for production (a key per 32-bit index).
pub fn test_key_n(n: u32) -> SigningKey {
    let mut seed = [0x5au8; 32];
    seed[..4].copy_from_slice(&n.to_be_bytes());
    SigningKey::from_bytes(&seed)
}

pub fn id(s: &str) -> DeviceId {
    DeviceId::try_from(s).unwrap()
}

pub fn svc(s: &str) -> ServiceName {
    ServiceName::try_from(s).unwrap()
}

pub fn services(names: &[&str]) -> Services {
    names.iter().map(|s| svc(s)).collect()
}

pub fn port(p: u16) -> Option<NonZeroU16> {
    NonZeroU16::new(p)
}

pub fn ms(v: i64) -> Instant {
    Instant::from_millis(v)
}

pub fn src(a: u8, b: u8, c: u8, d: u8) -> IpEndpoint {
    IpEndpoint::new(IpAddress::v4(a, b, c, d), 37020)
}

pub fn src_n(n: u32) -> IpEndpoint {
    // 10.x.y.z, never .0 or .255 in the last octet.
    let b = n.to_be_bytes();
    IpEndpoint::new(IpAddress::v4(10, b[1], b[2], 1 + b[3] % 254), 37020)
}

/// The announce content of `device` signed by `key` with `seq`.
pub fn repr(device: &str, key: &SigningKey, seq: u64) -> AnnounceRepr {
    AnnounceRepr {
        device_id: id(device),
        device_key: key.verifying_key().to_bytes(),
        noise_static: [0x42; 32],
        tcp_port: port(37021),
        udp_sec_port: port(37022),
        services: services(&["dsoftbus.ping"]),
        seq,
    }
}

/// A signed announce as bytes.
pub fn announce(device: &str, key: &SigningKey, seq: u64) -> Vec<u8> {
    repr(device, key, seq).to_bytes(key).unwrap()
}

/// A node with default config (TOFU on) keyed by `seed`.
pub fn node(device: &str, seed: u8, now: Instant) -> Discovery {
    let cfg = DiscoveryConfig::new(id(device), [seed; 32]);
    Discovery::new(cfg, test_key(seed), now)
}

pub fn node_with(cfg: DiscoveryConfig, seed: u8, now: Instant) -> Discovery {
    Discovery::new(cfg, test_key(seed), now)
}
