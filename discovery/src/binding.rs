//! Identity bindings: device id -> device key, kept apart from (and longer than) peer entries.
//!
//! Pinned bindings come from configuration and are never removed. Trust-on-first-use
//! (TOFU) bindings are created by the first verified announce for an unknown id and
//! live in a bounded store. When that store is full, new ids are refused
//! (`table-full`) unless the app opted into forgetting bindings idle for a long
//! time. A binding also holds the newest accepted sequence number (replay
//! protection outlives the peer entry) and the device's own rate budgets: one for
//! announces from its last accepted source address, one for any other source.

use alloc::vec::Vec;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

use crate::error::AnnounceError;
use crate::name::DeviceId;
use crate::rate_limit::{micros_between, BucketConfig, TokenBucket};
use crate::wire::KEY_LEN;

/// Most pinned bindings a configuration may hold.
pub const MAX_PINNED: usize = 32;

/// One device id bound to one device key.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The bound id.
    pub device_id: DeviceId,
    /// The only Ed25519 device key accepted for this id.
    pub device_key: [u8; KEY_LEN],
    /// From configuration (never evicted) rather than trust-on-first-use.
    pub pinned: bool,
    /// Newest accepted sequence number, if any announce was accepted yet.
    pub last_seq: Option<u64>,
    /// When the last announce for this id was accepted.
    pub last_accepted: Option<Instant>,
    /// Source address of the last accepted announce ("home").
    pub last_addr: Option<IpAddress>,
    /// Budget for announces from the home address.
    pub(crate) home_bucket: TokenBucket,
    /// Budget for announces from any other address (a forged flood from random
    /// sources drains this one, not the home budget).
    pub(crate) roam_bucket: TokenBucket,
}

impl Binding {
    fn new(
        device_id: DeviceId,
        device_key: [u8; KEY_LEN],
        pinned: bool,
        cfg: BucketConfig,
        now: Instant,
    ) -> Self {
        Binding {
            device_id,
            device_key,
            pinned,
            last_seq: None,
            last_accepted: None,
            last_addr: None,
            home_bucket: TokenBucket::new(cfg, now),
            roam_bucket: TokenBucket::new(cfg, now),
        }
    }

    /// The budget that an announce from `addr` spends.
    pub(crate) fn bucket_for(&mut self, addr: IpAddress) -> &mut TokenBucket {
        if self.last_addr == Some(addr) {
            &mut self.home_bucket
        } else {
            &mut self.roam_bucket
        }
    }
}

/// What the store says about an announced (id, key) pair, before verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Bound to this key; index into the store.
    Bound(BindingRef),
    /// Not bound yet.
    Unknown,
}

/// Index of a binding in its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindingRef {
    Pinned(usize),
    Tofu(usize),
}

/// Pinned and TOFU bindings, both bounded.
#[derive(Debug, Clone)]
pub struct BindingStore {
    pinned: Vec<Binding>,
    tofu: Vec<Binding>,
    tofu_cap: usize,
    forget_after: Option<Duration>,
    bucket_cfg: BucketConfig,
}

impl BindingStore {
    /// A store with the given pins (at most [`MAX_PINNED`], later duplicates ignored),
    /// room for `tofu_cap` TOFU bindings, and an optional idle time after which a
    /// TOFU binding may be replaced when the store is full.
    pub(crate) fn new(
        pins: &[(DeviceId, [u8; KEY_LEN])],
        tofu_cap: usize,
        forget_after: Option<Duration>,
        bucket_cfg: BucketConfig,
        now: Instant,
    ) -> Self {
        let mut pinned: Vec<Binding> = Vec::with_capacity(pins.len().min(MAX_PINNED));
        for (id, key) in pins.iter().take(MAX_PINNED) {
            if pinned.iter().any(|b| b.device_id == *id) {
                continue;
            }
            pinned.push(Binding::new(*id, *key, true, bucket_cfg, now));
        }
        BindingStore {
            pinned,
            tofu: Vec::with_capacity(tofu_cap),
            tofu_cap,
            forget_after,
            bucket_cfg,
        }
    }

    /// Number of pinned bindings.
    pub fn pinned_len(&self) -> usize {
        self.pinned.len()
    }

    /// Number of TOFU bindings (never above [`tofu_capacity`](Self::tofu_capacity)).
    pub fn tofu_len(&self) -> usize {
        self.tofu.len()
    }

    /// Most TOFU bindings held at once.
    pub fn tofu_capacity(&self) -> usize {
        self.tofu_cap
    }

    /// Every binding, pinned first.
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.pinned.iter().chain(self.tofu.iter())
    }

    /// The binding of `id`, if any.
    pub fn get(&self, id: &DeviceId) -> Option<&Binding> {
        self.iter().find(|b| b.device_id == *id)
    }

    fn find(&self, id: &DeviceId) -> Option<BindingRef> {
        if let Some(i) = self.pinned.iter().position(|b| b.device_id == *id) {
            return Some(BindingRef::Pinned(i));
        }
        self.tofu
            .iter()
            .position(|b| b.device_id == *id)
            .map(BindingRef::Tofu)
    }

    pub(crate) fn binding(&self, r: BindingRef) -> Option<&Binding> {
        match r {
            BindingRef::Pinned(i) => self.pinned.get(i),
            BindingRef::Tofu(i) => self.tofu.get(i),
        }
    }

    pub(crate) fn binding_mut(&mut self, r: BindingRef) -> Option<&mut Binding> {
        match r {
            BindingRef::Pinned(i) => self.pinned.get_mut(i),
            BindingRef::Tofu(i) => self.tofu.get_mut(i),
        }
    }

    /// Pre-verification check of an announced (id, key): `key-mismatch` if the id
    /// is bound to another key.
    pub(crate) fn lookup(
        &self,
        id: &DeviceId,
        key: &[u8; KEY_LEN],
    ) -> Result<Lookup, AnnounceError> {
        match self.find(id) {
            Some(r) => match self.binding(r) {
                Some(b) if b.device_key == *key => Ok(Lookup::Bound(r)),
                _ => Err(AnnounceError::KeyMismatch),
            },
            None => Ok(Lookup::Unknown),
        }
    }

    /// Index of a TOFU binding that may be replaced at `now`, if the policy allows.
    fn forgettable(&self, now: Instant) -> Option<usize> {
        let after = self.forget_after?.total_micros();
        self.tofu
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.last_accepted
                    .is_none_or(|t| micros_between(t, now) >= after)
            })
            .min_by_key(|(_, b)| b.last_accepted)
            .map(|(i, _)| i)
    }

    /// True if a new TOFU binding could be created at `now`.
    pub(crate) fn has_room(&self, now: Instant) -> bool {
        self.tofu.len() < self.tofu_cap || self.forgettable(now).is_some()
    }

    /// Creates a TOFU binding for an id that has none (`table-full` if no room).
    pub(crate) fn bind_tofu(
        &mut self,
        id: DeviceId,
        key: [u8; KEY_LEN],
        now: Instant,
    ) -> Result<BindingRef, AnnounceError> {
        let fresh = Binding::new(id, key, false, self.bucket_cfg, now);
        if self.tofu.len() < self.tofu_cap {
            self.tofu.push(fresh);
            return Ok(BindingRef::Tofu(self.tofu.len() - 1));
        }
        let i = self.forgettable(now).ok_or(AnnounceError::TableFull)?;
        let slot = self.tofu.get_mut(i).ok_or(AnnounceError::TableFull)?;
        *slot = fresh;
        Ok(BindingRef::Tofu(i))
    }

    /// Drops the TOFU binding of `id` (pins cannot be forgotten); true if one was dropped.
    pub(crate) fn forget(&mut self, id: &DeviceId) -> bool {
        match self.tofu.iter().position(|b| b.device_id == *id) {
            Some(i) => {
                self.tofu.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Budget configuration of the per-device buckets.
    pub(crate) fn bucket_cfg(&self) -> BucketConfig {
        self.bucket_cfg
    }
}
