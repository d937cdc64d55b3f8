//! The sans-IO discovery endpoint: datagrams and time in, announces and peer events out.
//!
//! Checks run cheapest first, and nothing that costs a signature verification or
//! changes state happens before the rate limits:
//!
//! 1. size and structure (`oversized`, `bad-magic`, `bad-version`, `malformed`);
//! 2. `self`, `bad-source`;
//! 3. binding and sequence: `key-mismatch`, duplicate (quiet), `replay`,
//!    `unpinned`, `table-full` (stateless, so an unsigned packet is dropped here too);
//! 4. budgets: per source address, then per bound id (split: its last accepted
//!    address / any other address) or the global new-id budget (`rate-limited`);
//! 5. `verify_strict` (`bad-signature`);
//! 6. commit: bind (TOFU), remember the sequence number, insert/update the peer.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroU16;

use ed25519_dalek::SigningKey;
use smoltcp::time::Instant;
use smoltcp::wire::IpEndpoint;

use crate::binding::{Binding, BindingRef, BindingStore, Lookup};
use crate::config::DiscoveryConfig;
use crate::counters::{bump, Counters};
use crate::error::AnnounceError;
use crate::name::DeviceId;
use crate::peer_table::{PeerInfo, PeerTable, Upsert};
use crate::rate_limit::{BucketConfig, SourceLimiter, TokenBucket};
use crate::schedule::AnnounceSchedule;
use crate::wire::{AnnounceRepr, Services, SignedAnnounce, KEY_LEN};

/// Most undrained peer events kept (the oldest is dropped and counted beyond this).
pub const EVENT_QUEUE_CAP: usize = 32;

/// Why a peer left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// No accepted announce within the TTL.
    Expired,
    /// Its slot went to a newcomer (LRU).
    Evicted,
    /// The app called [`Discovery::forget`].
    Forgotten,
}

/// A change in the peer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// A new peer entry (print `discovery peer found device=<id>`).
    Found(DeviceId),
    /// Address, ports, Noise static key or services of a peer changed.
    Updated(DeviceId),
    /// A peer entry was removed.
    Lost(DeviceId, LostReason),
}

/// Our sequence number for a boot epoch and a per-boot counter: `epoch << 32 | counter`.
pub const fn sequence(boot_epoch: u32, counter: u32) -> u64 {
    ((boot_epoch as u64) << 32) | counter as u64
}

/// The discovery endpoint of one node.
pub struct Discovery {
    signing_key: SigningKey,
    local: AnnounceRepr,
    boot_epoch: u32,
    counter: u32,
    schedule: AnnounceSchedule,
    peers: PeerTable,
    bindings: BindingStore,
    sources: SourceLimiter,
    new_devices: TokenBucket,
    new_devices_cfg: BucketConfig,
    trust_on_first_use: bool,
    events: VecDeque<PeerEvent>,
    counters: Counters,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("device_id", &self.local.device_id)
            .field("signing_key", &"<redacted>")
            .field("peers", &self.peers.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// A node announcing as `config.device_id`, signing with `signing_key`, started at `now`.
    pub fn new(config: DiscoveryConfig, signing_key: SigningKey, now: Instant) -> Self {
        let local = AnnounceRepr {
            device_id: config.device_id,
            device_key: signing_key.verifying_key().to_bytes(),
            noise_static: config.noise_static,
            tcp_port: config.tcp_port,
            udp_sec_port: config.udp_sec_port,
            services: config.services,
            seq: sequence(config.boot_epoch, 0),
        };
        let pins: Vec<(DeviceId, [u8; KEY_LEN])> = config
            .pinned
            .into_iter()
            .filter(|(id, _)| *id != config.device_id)
            .collect();
        Discovery {
            signing_key,
            schedule: AnnounceSchedule::new(&local.device_id, config.announce_interval, now),
            local,
            boot_epoch: config.boot_epoch,
            counter: 0,
            peers: PeerTable::new(config.max_peers, config.peer_ttl, config.evict_protect),
            bindings: BindingStore::new(
                &pins,
                config.max_tofu_bindings,
                config.tofu_forget_after.map(|d| {
                    if d < config.peer_ttl {
                        config.peer_ttl
                    } else {
                        d
                    }
                }),
                config.per_device,
                now,
            ),
            sources: SourceLimiter::new(config.per_source, config.max_sources),
            new_devices: TokenBucket::new(config.new_devices, now),
            new_devices_cfg: config.new_devices,
            trust_on_first_use: config.trust_on_first_use,
            events: VecDeque::with_capacity(EVENT_QUEUE_CAP),
            counters: Counters::default(),
        }
    }

    /// Our device id.
    pub fn device_id(&self) -> &DeviceId {
        &self.local.device_id
    }

    /// Our current announce content (its `seq` is the last one sent).
    pub fn local_announce(&self) -> &AnnounceRepr {
        &self.local
    }

    /// Handles one datagram received on the discovery port from `src`.
    ///
    /// `Ok(Some(Found | Updated))` for a new or changed peer, `Ok(None)` for a
    /// refresh or a duplicate, `Err(reason)` for a dropped announce (already
    /// counted). Also expires stale peers first.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        src: IpEndpoint,
        bytes: &[u8],
    ) -> Result<Option<PeerEvent>, AnnounceError> {
        bump(&mut self.counters.received);
        self.expire(now);
        let result = self.process(now, src, bytes);
        if let Err(e) = result {
            self.counters.reject(e);
        }
        result
    }

    fn process(
        &mut self,
        now: Instant,
        src: IpEndpoint,
        bytes: &[u8],
    ) -> Result<Option<PeerEvent>, AnnounceError> {
        let announce = SignedAnnounce::parse(bytes)?;
        let repr = &announce.repr;
        if repr.device_id == self.local.device_id {
            return Err(AnnounceError::SelfAnnounce);
        }
        if !src.addr.is_unicast() {
            return Err(AnnounceError::BadSource);
        }

        let bound = match self.bindings.lookup(&repr.device_id, &repr.device_key)? {
            Lookup::Bound(r) => {
                let last = self.bindings.binding(r).and_then(|b| b.last_seq);
                match last {
                    Some(s) if repr.seq == s => {
                        bump(&mut self.counters.duplicate);
                        return Ok(None);
                    }
                    Some(s) if repr.seq < s => return Err(AnnounceError::Replay),
                    _ => Some(r),
                }
            }
            Lookup::Unknown if !self.trust_on_first_use => return Err(AnnounceError::Unpinned),
            Lookup::Unknown if !self.bindings.has_room(now) => {
                return Err(AnnounceError::TableFull)
            }
            Lookup::Unknown => None,
        };
        let pinned = matches!(bound, Some(BindingRef::Pinned(_)));
        if !self.peers.has_room_for(&repr.device_id, pinned, now) {
            return Err(AnnounceError::TableFull);
        }

        self.spend_budget(now, src, bound)?;
        bump(&mut self.counters.verified);
        let device_key = announce.verify()?;

        let r = match bound {
            Some(r) => r,
            None => self
                .bindings
                .bind_tofu(repr.device_id, repr.device_key, now)?,
        };
        if let Some(b) = self.bindings.binding_mut(r) {
            b.last_seq = Some(repr.seq);
            b.last_accepted = Some(now);
            b.last_addr = Some(src.addr);
        }
        let info = PeerInfo {
            device_id: repr.device_id,
            addr: src.addr,
            tcp_port: repr.tcp_port,
            udp_sec_port: repr.udp_sec_port,
            device_key,
            noise_static: repr.noise_static,
            services: repr.services.clone(),
            seq: repr.seq,
            pinned,
            first_seen: now,
            last_seen: now,
        };
        let outcome = self.peers.upsert(info).ok_or(AnnounceError::TableFull)?;
        bump(&mut self.counters.accepted);
        Ok(match outcome {
            Upsert::Inserted { evicted } => {
                // A newcomer may not have heard us yet (its boot came after our
                // burst, or our announce was lost): answer soon rather than at
                // the next steady slot.
                self.schedule.answer(now);
                if let Some(id) = evicted {
                    bump(&mut self.counters.evicted);
                    self.push_event(PeerEvent::Lost(id, LostReason::Evicted));
                }
                bump(&mut self.counters.found);
                Some(PeerEvent::Found(repr.device_id))
            }
            Upsert::Changed => {
                bump(&mut self.counters.updated);
                Some(PeerEvent::Updated(repr.device_id))
            }
            Upsert::Refreshed => None,
        })
    }

    /// Checks the source budget and the device (or new-device) budget, and spends
    /// one token of each only if both have one.
    fn spend_budget(
        &mut self,
        now: Instant,
        src: IpEndpoint,
        bound: Option<BindingRef>,
    ) -> Result<(), AnnounceError> {
        let source_ok = self.sources.check(src.addr, now);
        let device_cfg = self.bindings.bucket_cfg();
        let device_ok = match bound {
            Some(r) => self
                .bindings
                .binding_mut(r)
                .is_some_and(|b| b.bucket_for(src.addr).check(device_cfg, now)),
            None => self.new_devices.check(self.new_devices_cfg, now),
        };
        if !(source_ok && device_ok) {
            return Err(AnnounceError::RateLimited);
        }
        self.sources.take(src.addr, now);
        match bound {
            Some(r) => {
                if let Some(b) = self.bindings.binding_mut(r) {
                    b.bucket_for(src.addr).take(device_cfg, now);
                }
            }
            None => {
                self.new_devices.take(self.new_devices_cfg, now);
            }
        }
        Ok(())
    }

    fn push_event(&mut self, e: PeerEvent) {
        if self.events.len() >= EVENT_QUEUE_CAP {
            self.events.pop_front();
            bump(&mut self.counters.events_dropped);
        }
        self.events.push_back(e);
    }

    /// Removes peers unheard for the TTL (queues `Lost(_, Expired)` events).
    pub fn expire(&mut self, now: Instant) {
        let mut lost: heapless::Vec<DeviceId, EVENT_QUEUE_CAP> = heapless::Vec::new();
        let mut extra = 0u64;
        self.peers.expire(now, |id| {
            if lost.push(id).is_err() {
                extra = extra.saturating_add(1);
            }
        });
        for id in lost {
            bump(&mut self.counters.expired);
            self.push_event(PeerEvent::Lost(id, LostReason::Expired));
        }
        self.counters.expired = self.counters.expired.saturating_add(extra);
        self.counters.events_dropped = self.counters.events_dropped.saturating_add(extra);
    }

    /// Next queued `Lost` event (found/updated come back from `handle_datagram`).
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Our next announce if one is due at `now` (signed, ready to send to the
    /// multicast group or broadcast address, port [`DISCOVERY_PORT`](crate::DISCOVERY_PORT)).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if !self.schedule.poll(now) {
            return None;
        }
        self.local.seq = sequence(self.boot_epoch, self.counter);
        self.counter = self.counter.saturating_add(1);
        let bytes = self.local.to_bytes(&self.signing_key).ok()?;
        bump(&mut self.counters.sent);
        Some(bytes)
    }

    /// The earliest instant at which `poll_transmit` or `expire` has work.
    pub fn poll_at(&self) -> Instant {
        let next = self.schedule.poll_at();
        match self.peers.next_expiry() {
            Some(t) if t < next => t,
            _ => next,
        }
    }

    /// Counters of sent, accepted and rejected announces.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The live peer with this id.
    pub fn peer(&self, id: &DeviceId) -> Option<&PeerInfo> {
        self.peers.get(id)
    }

    /// Every live peer.
    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo> {
        self.peers.iter()
    }

    /// The peer table (for its size and capacity).
    pub fn peer_table(&self) -> &PeerTable {
        &self.peers
    }

    /// The binding of `id` (pinned or TOFU), which outlives its peer entry.
    pub fn binding(&self, id: &DeviceId) -> Option<&Binding> {
        self.bindings.get(id)
    }

    /// The binding store (for its sizes and capacities).
    pub fn bindings(&self) -> &BindingStore {
        &self.bindings
    }

    /// The per-source limiter (for its size and capacity).
    pub fn source_limiter(&self) -> &SourceLimiter {
        &self.sources
    }

    /// Number of queued, undrained events (at most [`EVENT_QUEUE_CAP`]).
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// A session handshake proved that the holder of `device_key` speaks as
    /// `id` (its attestation verified). Admits it if `id` is bound to this
    /// key (pinned or TOFU); if `id` is unbound and trust on first use is on,
    /// creates the TOFU binding now, exactly as a first verified announce
    /// would. Errors: `key-mismatch` (bound to another key), `unpinned`
    /// (pinned-only mode), `table-full` (no binding slot), `self` (our own
    /// id). Counted in `admitted` / `admit_refused`, apart from announces.
    pub fn admit(
        &mut self,
        now: Instant,
        id: &DeviceId,
        device_key: &[u8; KEY_LEN],
    ) -> Result<(), AnnounceError> {
        let result = match self.bindings.lookup(id, device_key) {
            Ok(Lookup::Bound(_)) => Ok(()),
            Ok(Lookup::Unknown) if *id == self.local.device_id => Err(AnnounceError::SelfAnnounce),
            Ok(Lookup::Unknown) if !self.trust_on_first_use => Err(AnnounceError::Unpinned),
            Ok(Lookup::Unknown) => self.bindings.bind_tofu(*id, *device_key, now).map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => bump(&mut self.counters.admitted),
            Err(_) => bump(&mut self.counters.admit_refused),
        }
        result
    }

    /// Drops the TOFU binding and the peer entry of `id` (pins stay); true if anything was dropped.
    pub fn forget(&mut self, id: &DeviceId) -> bool {
        let unbound = self.bindings.forget(id);
        let removed = self.peers.remove(id);
        if removed {
            self.push_event(PeerEvent::Lost(*id, LostReason::Forgotten));
        }
        unbound || removed
    }

    /// Changes our published services and re-announces soon.
    pub fn set_services(&mut self, now: Instant, services: Services) {
        if self.local.services != services {
            self.local.services = services;
            self.schedule.trigger(now);
        }
    }

    /// Changes our session ports and re-announces soon.
    pub fn set_ports(
        &mut self,
        now: Instant,
        tcp_port: Option<NonZeroU16>,
        udp_sec_port: Option<NonZeroU16>,
    ) {
        if (self.local.tcp_port, self.local.udp_sec_port) != (tcp_port, udp_sec_port) {
            self.local.tcp_port = tcp_port;
            self.local.udp_sec_port = udp_sec_port;
            self.schedule.trigger(now);
        }
    }

    /// Rotates our announced Noise static key and re-announces soon.
    pub fn set_noise_static(&mut self, now: Instant, noise_static: [u8; KEY_LEN]) {
        if self.local.noise_static != noise_static {
            self.local.noise_static = noise_static;
            self.schedule.trigger(now);
        }
    }
}
