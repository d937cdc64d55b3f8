//! Discovery configuration: who we are, what we publish, and every cap and budget.

use alloc::vec::Vec;
use core::num::NonZeroU16;

use smoltcp::time::Duration;

use crate::name::DeviceId;
use crate::peer_table::DEFAULT_MAX_PEERS;
use crate::rate_limit::BucketConfig;
use crate::schedule::DEFAULT_INTERVAL;
use crate::wire::{Services, KEY_LEN};

/// UDP port of discovery announces.
pub const DISCOVERY_PORT: u16 = 37020;
/// IPv4 multicast group of discovery announces (broadcast is the fallback).
pub const DISCOVERY_GROUP: [u8; 4] = [239, 42, 0, 1];
/// Default TOFU binding capacity.
pub const DEFAULT_MAX_TOFU_BINDINGS: usize = 32;
/// Default per-source limiter capacity.
pub const DEFAULT_MAX_SOURCES: usize = 64;
/// Default peer TTL (five steady intervals).
pub const DEFAULT_PEER_TTL: Duration = Duration::from_millis(5000);
/// Default time a peer must be quiet before a newcomer may evict it.
pub const DEFAULT_EVICT_PROTECT: Duration = Duration::from_millis(2500);
/// Default budget per source address.
pub const DEFAULT_PER_SOURCE: BucketConfig = BucketConfig {
    burst: 8,
    per_sec: 4,
};
/// Default budget per bound device id.
pub const DEFAULT_PER_DEVICE: BucketConfig = BucketConfig {
    burst: 8,
    per_sec: 2,
};
/// Default global budget for announces of ids not bound yet.
pub const DEFAULT_NEW_DEVICES: BucketConfig = BucketConfig {
    burst: 8,
    per_sec: 4,
};

/// Everything [`Discovery`](crate::Discovery) needs besides the signing key.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Our device id.
    pub device_id: DeviceId,
    /// Our Noise static X25519 public key (announced, signed).
    pub noise_static: [u8; KEY_LEN],
    /// Our TCP session port, if we accept TCP sessions.
    pub tcp_port: Option<NonZeroU16>,
    /// Our udp-sec session port, if we accept udp-sec sessions.
    pub udp_sec_port: Option<NonZeroU16>,
    /// Services we publish.
    pub services: Services,
    /// High 32 bits of our sequence numbers; must grow on every boot (e.g. RTC seconds).
    pub boot_epoch: u32,
    /// Steady announce interval.
    pub announce_interval: Duration,
    /// Peer table capacity.
    pub max_peers: usize,
    /// A peer is dropped this long after its last accepted announce.
    pub peer_ttl: Duration,
    /// A peer must be quiet this long before a newcomer may evict it.
    pub evict_protect: Duration,
    /// Pinned (device id, Ed25519 device key) pairs; at most [`MAX_PINNED`](crate::MAX_PINNED).
    pub pinned: Vec<(DeviceId, [u8; KEY_LEN])>,
    /// Accept unknown ids on first verified announce (false = pinned ids only).
    pub trust_on_first_use: bool,
    /// TOFU binding capacity.
    pub max_tofu_bindings: usize,
    /// Let a new id replace a TOFU binding unheard for this long when the store is
    /// full (`None` = never: fail closed with `table-full`).
    pub tofu_forget_after: Option<Duration>,
    /// Per-source limiter capacity.
    pub max_sources: usize,
    /// Budget per source address.
    pub per_source: BucketConfig,
    /// Budget per bound device id.
    pub per_device: BucketConfig,
    /// Global budget for ids not bound yet.
    pub new_devices: BucketConfig,
}

impl DiscoveryConfig {
    /// Defaults: TOFU on, 16 peers, 32 TOFU bindings, 1 s interval, 5 s TTL.
    pub fn new(device_id: DeviceId, noise_static: [u8; KEY_LEN]) -> Self {
        DiscoveryConfig {
            device_id,
            noise_static,
            tcp_port: None,
            udp_sec_port: None,
            services: Services::new(),
            boot_epoch: 0,
            announce_interval: DEFAULT_INTERVAL,
            max_peers: DEFAULT_MAX_PEERS,
            peer_ttl: DEFAULT_PEER_TTL,
            evict_protect: DEFAULT_EVICT_PROTECT,
            pinned: Vec::new(),
            trust_on_first_use: true,
            max_tofu_bindings: DEFAULT_MAX_TOFU_BINDINGS,
            tofu_forget_after: None,
            max_sources: DEFAULT_MAX_SOURCES,
            per_source: DEFAULT_PER_SOURCE,
            per_device: DEFAULT_PER_DEVICE,
            new_devices: DEFAULT_NEW_DEVICES,
        }
    }
}
