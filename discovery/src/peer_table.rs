//! The bounded table of live peers: what the session layer looks up by device id.
//!
//! Entries expire `ttl` after their last accepted announce. When the table is full
//! a newcomer takes the slot of the least recently refreshed entry, but only of
//! one that has been quiet for at least `evict_protect` (so a flood of new ids
//! cannot churn out peers that keep announcing); pinned newcomers may evict any
//! unpinned entry, and unpinned newcomers never evict pinned ones.

use alloc::vec::Vec;
use core::num::NonZeroU16;

use ed25519_dalek::VerifyingKey;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::name::{DeviceId, ServiceName};
use crate::rate_limit::micros_between;
use crate::wire::{Services, KEY_LEN};

/// Default number of peers held at once.
pub const DEFAULT_MAX_PEERS: usize = 16;

/// Everything the session layer needs about one discovered peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's device id.
    pub device_id: DeviceId,
    /// Source address of its newest accepted announce.
    pub addr: IpAddress,
    /// Announced TCP session port.
    pub tcp_port: Option<NonZeroU16>,
    /// Announced udp-sec session port.
    pub udp_sec_port: Option<NonZeroU16>,
    /// Its Ed25519 device key (verified, bound to `device_id`).
    pub device_key: VerifyingKey,
    /// Its Noise static X25519 public key (as signed by the device key).
    pub noise_static: [u8; KEY_LEN],
    /// Published services.
    pub services: Services,
    /// Sequence number of the newest accepted announce.
    pub seq: u64,
    /// True if the binding of this id is pinned by configuration.
    pub pinned: bool,
    /// When the entry was created.
    pub first_seen: Instant,
    /// When the newest announce was accepted.
    pub last_seen: Instant,
}

impl PeerInfo {
    /// Where to open a TCP session, if the peer offers one.
    pub fn tcp_endpoint(&self) -> Option<IpEndpoint> {
        self.tcp_port.map(|p| IpEndpoint::new(self.addr, p.get()))
    }

    /// Where to open a udp-sec session, if the peer offers one.
    pub fn udp_sec_endpoint(&self) -> Option<IpEndpoint> {
        self.udp_sec_port
            .map(|p| IpEndpoint::new(self.addr, p.get()))
    }

    /// True if the peer publishes `service`.
    pub fn offers(&self, service: &ServiceName) -> bool {
        self.services.contains(service)
    }

    /// True if the session-relevant content differs (address, ports, keys, services).
    fn differs_from(&self, other: &PeerInfo) -> bool {
        self.addr != other.addr
            || self.tcp_port != other.tcp_port
            || self.udp_sec_port != other.udp_sec_port
            || self.device_key != other.device_key
            || self.noise_static != other.noise_static
            || self.services != other.services
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// New entry; `evicted` lost its slot to it.
    Inserted { evicted: Option<DeviceId> },
    /// Existing entry whose content changed.
    Changed,
    /// Existing entry, same content, newer sequence number.
    Refreshed,
}

/// Bounded peer table.
#[derive(Debug, Clone)]
pub struct PeerTable {
    cap: usize,
    ttl: Duration,
    evict_protect: Duration,
    entries: Vec<PeerInfo>,
}

impl PeerTable {
    /// An empty table of at most `cap` entries.
    pub(crate) fn new(cap: usize, ttl: Duration, evict_protect: Duration) -> Self {
        PeerTable {
            cap,
            ttl,
            evict_protect,
            entries: Vec::with_capacity(cap),
        }
    }

    /// Number of peers (never above [`capacity`](Self::capacity)).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no peers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Most peers held at once.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The peer with this id.
    pub fn get(&self, id: &DeviceId) -> Option<&PeerInfo> {
        self.entries.iter().find(|p| p.device_id == *id)
    }

    /// Every peer, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &PeerInfo> {
        self.entries.iter()
    }

    /// Peers publishing `service`.
    pub fn offering<'a>(&'a self, service: &'a ServiceName) -> impl Iterator<Item = &'a PeerInfo> {
        self.entries.iter().filter(move |p| p.offers(service))
    }

    fn expired(&self, p: &PeerInfo, now: Instant) -> bool {
        micros_between(p.last_seen, now) >= self.ttl.total_micros()
    }

    /// Removes entries whose last announce is `ttl` old; calls `lost` for each.
    pub(crate) fn expire(&mut self, now: Instant, mut lost: impl FnMut(DeviceId)) {
        let mut i = 0;
        while let Some(p) = self.entries.get(i) {
            if self.expired(p, now) {
                lost(p.device_id);
                self.entries.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// When the next entry expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.entries
            .iter()
            .map(|p| p.last_seen.total_micros())
            .min()
            .map(|t| Instant::from_micros(t.saturating_add_unsigned(self.ttl.total_micros())))
    }

    /// Slot a newcomer would take when the table is full (least recently refreshed
    /// among the entries it may evict).
    fn victim(&self, newcomer_pinned: bool, now: Instant) -> Option<usize> {
        let protect = self.evict_protect.total_micros();
        let quiet = |p: &PeerInfo| micros_between(p.last_seen, now) >= protect;
        let lru = |pred: &dyn Fn(&PeerInfo) -> bool| {
            self.entries
                .iter()
                .enumerate()
                .filter(|(_, p)| pred(p))
                .min_by_key(|(_, p)| p.last_seen)
                .map(|(i, _)| i)
        };
        if newcomer_pinned {
            lru(&|p| !p.pinned).or_else(|| lru(&|p| p.pinned && quiet(p)))
        } else {
            lru(&|p| !p.pinned && quiet(p))
        }
    }

    /// True if `id` is present or a newcomer with this pin status would get a slot.
    pub(crate) fn has_room_for(&self, id: &DeviceId, pinned: bool, now: Instant) -> bool {
        self.entries.len() < self.cap
            || self.get(id).is_some()
            || self.victim(pinned, now).is_some()
    }

    /// Inserts or updates `info` (`None` if the table is full of protected entries).
    pub(crate) fn upsert(&mut self, info: PeerInfo) -> Option<Upsert> {
        if let Some(p) = self
            .entries
            .iter_mut()
            .find(|p| p.device_id == info.device_id)
        {
            let changed = p.differs_from(&info);
            let first_seen = p.first_seen;
            *p = PeerInfo { first_seen, ..info };
            return Some(if changed {
                Upsert::Changed
            } else {
                Upsert::Refreshed
            });
        }
        if self.entries.len() < self.cap {
            self.entries.push(info);
            return Some(Upsert::Inserted { evicted: None });
        }
        let i = self.victim(info.pinned, info.last_seen)?;
        let slot = self.entries.get_mut(i)?;
        let evicted = slot.device_id;
        *slot = info;
        Some(Upsert::Inserted {
            evicted: Some(evicted),
        })
    }

    /// Removes the entry of `id`; true if there was one.
    pub(crate) fn remove(&mut self, id: &DeviceId) -> bool {
        match self.entries.iter().position(|p| p.device_id == *id) {
            Some(i) => {
                self.entries.swap_remove(i);
                true
            }
            None => false,
        }
    }
}
