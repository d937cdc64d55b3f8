//! Discovery for DSoftBus-lite: signed announce v1, bounded peer table, rate limiting.
//!
//! Peers find each other by sending signed announces (device id, Ed25519 device key,
//! Noise static key, session ports, services, sequence number) to a UDP multicast
//! group. This crate is sans-IO (`no_std` + `alloc`): the app hands it datagrams
//! and the time, and pulls announces to send, peer events and deadlines. Every
//! table is bounded, every rejection is typed and counted, and an id once bound
//! to a device key never changes key. The wire format is in `docs/protocol.md`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod binding;
mod config;
mod counters;
mod discovery;
mod error;
mod name;
mod peer_table;
mod rate_limit;
mod schedule;
mod wire;

pub use binding::{Binding, BindingStore, MAX_PINNED};
pub use config::{
    DiscoveryConfig, DEFAULT_EVICT_PROTECT, DEFAULT_MAX_SOURCES, DEFAULT_MAX_TOFU_BINDINGS,
    DEFAULT_NEW_DEVICES, DEFAULT_PEER_TTL, DEFAULT_PER_DEVICE, DEFAULT_PER_SOURCE, DISCOVERY_GROUP,
    DISCOVERY_PORT,
};
pub use counters::Counters;
pub use discovery::{sequence, Discovery, LostReason, PeerEvent, EVENT_QUEUE_CAP};
pub use error::{AnnounceError, EmitError};
pub use name::{check_name, is_name_byte, DeviceId, NameError, ServiceName, MAX_NAME_LEN};
pub use peer_table::{PeerInfo, PeerTable, DEFAULT_MAX_PEERS};
pub use rate_limit::{BucketConfig, SourceLimiter, TokenBucket};
pub use schedule::{
    fnv1a64, AnnounceSchedule, ANSWER_GAP, BURST_OFFSETS_MS, DEFAULT_INTERVAL, MIN_INTERVAL,
};
pub use wire::{
    AnnounceRepr, Services, SignedAnnounce, KEY_LEN, MAGIC, MAX_ANNOUNCE_LEN, MAX_SERVICES,
    MAX_VALID_ANNOUNCE_LEN, MIN_ANNOUNCE_LEN, SIGNATURE_CONTEXT, SIGNATURE_LEN, VERSION,
};

// Re-exported so callers name the same types as this crate.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
