//! The blob store: complete blobs and partial uploads in RAM, bounded.
//!
//! Accounting is by reservation: a partial upload reserves its full `size`
//! when it starts (its buffer is allocated at that size up front, so it never
//! grows), and a complete blob holds its size. `used()` = the sum of both and
//! never exceeds `total_cap`; no blob exceeds `blob_cap`. When a new upload
//! does not fit, the least recently touched partial uploads are dropped first;
//! complete blobs are never evicted (the upload is refused `store-full`).
//! A blob replaced by a new `Put` of the same name keeps counting until the
//! new one commits.

use alloc::string::String;
use alloc::vec::Vec;

use blake2::{Blake2s256, Digest};
use smoltcp::time::Instant;

use super::wire::{valid_name, BlobCode, Hash};

/// Default per-blob cap.
pub const BLOB_CAP_DEFAULT: u64 = 16 * 1024 * 1024;
/// Default total cap (complete blobs plus partial reservations).
pub const STORE_CAP_DEFAULT: u64 = 32 * 1024 * 1024;
/// Most complete blobs (default and upper limit).
pub const MAX_BLOBS: usize = 64;
/// Most partial uploads kept (default and upper limit).
pub const MAX_PARTIALS: usize = 8;

/// Caps of a [`BlobStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Largest blob accepted (clamped to `total_cap`).
    pub blob_cap: u64,
    /// Most bytes held by blobs and partial uploads together.
    pub total_cap: u64,
    /// Most complete blobs (clamped to `1..=MAX_BLOBS`).
    pub max_blobs: usize,
    /// Most partial uploads (clamped to `1..=MAX_PARTIALS`).
    pub max_partials: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            blob_cap: BLOB_CAP_DEFAULT,
            total_cap: STORE_CAP_DEFAULT,
            max_blobs: MAX_BLOBS,
            max_partials: MAX_PARTIALS,
        }
    }
}

/// What `Stat` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatInfo {
    pub size: u64,
    /// Bytes stored: `size` when complete, else what a partial upload holds.
    pub have: u64,
    pub hash: Hash,
}

/// Counters of a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Blobs committed (verified).
    pub committed: u64,
    /// Uploads refused at commit because the hash did not match.
    pub bad_hash: u64,
    /// Partial uploads dropped to make room (oldest first).
    pub evicted_partials: u64,
    /// Uploads refused `too-large` or `store-full`.
    pub refused: u64,
}

#[derive(Debug)]
struct Blob {
    name: String,
    data: Vec<u8>,
    hash: Hash,
    gen: u64,
}

#[derive(Debug)]
struct Partial {
    id: u64,
    name: String,
    size: u64,
    hash: Hash,
    data: Vec<u8>,
    hasher: Blake2s256,
    touched: Instant,
}

/// How a `Put` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Begin {
    /// The same blob (name, size, hash) is already complete.
    AlreadyStored,
    /// Send bytes `[have, size)` into partial `id`.
    Upload { id: u64, have: u64 },
}

/// Complete blobs and partial uploads, within the configured caps.
#[derive(Debug)]
pub struct BlobStore {
    cfg: StoreConfig,
    blobs: Vec<Blob>,
    partials: Vec<Partial>,
    used: u64,
    next_id: u64,
    stats: StoreStats,
}

impl Default for BlobStore {
    fn default() -> Self {
        BlobStore::new(StoreConfig::default())
    }
}

impl BlobStore {
    /// An empty store (caps clamped as documented on [`StoreConfig`]).
    pub fn new(cfg: StoreConfig) -> BlobStore {
        let cfg = StoreConfig {
            blob_cap: cfg.blob_cap.min(cfg.total_cap),
            total_cap: cfg.total_cap,
            max_blobs: cfg.max_blobs.clamp(1, MAX_BLOBS),
            max_partials: cfg.max_partials.clamp(1, MAX_PARTIALS),
        };
        BlobStore {
            cfg,
            blobs: Vec::new(),
            partials: Vec::new(),
            used: 0,
            next_id: 1,
            stats: StoreStats::default(),
        }
    }

    /// The caps in force.
    pub fn config(&self) -> StoreConfig {
        self.cfg
    }

    /// Bytes reserved by complete blobs and partial uploads (`<= total_cap`).
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Bytes of buffers actually allocated (`<= used()`).
    pub fn allocated(&self) -> usize {
        self.blobs.iter().map(|b| b.data.capacity()).sum::<usize>()
            + self
                .partials
                .iter()
                .map(|p| p.data.capacity())
                .sum::<usize>()
    }

    /// Complete blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when no complete blob is stored.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Partial uploads kept.
    pub fn partials(&self) -> usize {
        self.partials.len()
    }

    /// Names of the complete blobs.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.blobs.iter().map(|b| b.name.as_str())
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// The content and hash of a complete blob.
    pub fn get(&self, name: &str) -> Option<(&[u8], Hash)> {
        self.blob(name).map(|b| (b.data.as_slice(), b.hash))
    }

    /// Size, stored bytes and hash of a complete blob, else of a partial upload.
    pub fn stat(&self, name: &str) -> Option<StatInfo> {
        if let Some(b) = self.blob(name) {
            let size = b.data.len() as u64;
            return Some(StatInfo {
                size,
                have: size,
                hash: b.hash,
            });
        }
        self.partials
            .iter()
            .find(|p| p.name == name)
            .map(|p| StatInfo {
                size: p.size,
                have: p.data.len() as u64,
                hash: p.hash,
            })
    }

    /// Stores `data` under `name` locally (replacing a blob of that name).
    pub fn insert(&mut self, name: &str, data: Vec<u8>, now: Instant) -> Result<Hash, BlobCode> {
        let hash = super::wire::blob_hash(&data);
        let size = data.len() as u64;
        match self.begin_put(name, size, hash, 0, now)? {
            Begin::AlreadyStored => Ok(hash),
            Begin::Upload { id, .. } => {
                self.append(id, &data, now)?;
                self.commit(id)?;
                Ok(hash)
            }
        }
    }

    /// Removes a complete blob; true if there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.blobs.iter().position(|b| b.name == name) {
            Some(i) => {
                let b = self.blobs.swap_remove(i);
                self.used = self.used.saturating_sub(b.data.len() as u64);
                true
            }
            None => false,
        }
    }

    fn blob(&self, name: &str) -> Option<&Blob> {
        self.blobs.iter().find(|b| b.name == name)
    }

    /// Generation, size and hash of a complete blob (the generation changes
    /// when it is replaced, so a reader can notice).
    pub(crate) fn lookup(&self, name: &str) -> Option<(u64, u64, Hash)> {
        self.blob(name)
            .map(|b| (b.gen, b.data.len() as u64, b.hash))
    }

    /// Bytes of blob `name` generation `gen` from `pos` (at most `max`).
    pub(crate) fn chunk(&self, name: &str, gen: u64, pos: u64, max: usize) -> Option<&[u8]> {
        let b = self.blob(name).filter(|b| b.gen == gen)?;
        let start = usize::try_from(pos).ok()?;
        let end = start.saturating_add(max).min(b.data.len());
        b.data.get(start..end)
    }

    fn drop_partial(&mut self, i: usize) {
        if i < self.partials.len() {
            let p = self.partials.swap_remove(i);
            self.used = self.used.saturating_sub(p.size);
        }
    }

    /// Drops the least recently touched partial upload; false if none.
    fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .partials
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| (p.touched, p.id))
            .map(|(i, _)| i);
        match oldest {
            Some(i) => {
                self.drop_partial(i);
                self.stats.evicted_partials += 1;
                true
            }
            None => false,
        }
    }

    fn refuse(&mut self, code: BlobCode) -> Result<Begin, BlobCode> {
        self.stats.refused += 1;
        Err(code)
    }

    /// Starts or continues an upload (checks name, caps and offset before
    /// any data is accepted).
    pub(crate) fn begin_put(
        &mut self,
        name: &str,
        size: u64,
        hash: Hash,
        offset: u64,
        now: Instant,
    ) -> Result<Begin, BlobCode> {
        if !valid_name(name) {
            return Err(BlobCode::BadName);
        }
        if size > self.cfg.blob_cap || usize::try_from(size).is_err() {
            return self.refuse(BlobCode::TooLarge);
        }
        if offset > size {
            return Err(BlobCode::BadOffset);
        }
        if self
            .blob(name)
            .is_some_and(|b| b.data.len() as u64 == size && b.hash == hash)
        {
            return Ok(Begin::AlreadyStored);
        }
        if let Some(i) = self.partials.iter().position(|p| p.name == name) {
            let p = self.partials.get_mut(i).ok_or(BlobCode::Aborted)?;
            if p.size == size && p.hash == hash {
                let have = p.data.len() as u64;
                if offset == have || offset == 0 {
                    if offset == 0 {
                        p.data.clear();
                        p.hasher = Blake2s256::new();
                    }
                    // A fresh id: a server still writing the old upload stops.
                    p.id = self.next_id;
                    self.next_id += 1;
                    p.touched = now;
                    return Ok(Begin::Upload {
                        id: p.id,
                        have: offset,
                    });
                }
                return Err(BlobCode::BadOffset);
            }
            if offset != 0 {
                return Err(BlobCode::BadOffset);
            }
            self.drop_partial(i);
        } else if offset != 0 {
            return Err(BlobCode::BadOffset);
        }
        if self.blob(name).is_none() && self.blobs.len() >= self.cfg.max_blobs {
            return self.refuse(BlobCode::StoreFull);
        }
        while self.used.saturating_add(size) > self.cfg.total_cap {
            if !self.evict_oldest() {
                return self.refuse(BlobCode::StoreFull);
            }
        }
        while self.partials.len() >= self.cfg.max_partials {
            if !self.evict_oldest() {
                break;
            }
        }
        let mut data = Vec::new();
        let Ok(len) = usize::try_from(size) else {
            return self.refuse(BlobCode::TooLarge);
        };
        if data.try_reserve_exact(len).is_err() {
            return self.refuse(BlobCode::StoreFull);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.used += size;
        self.partials.push(Partial {
            id,
            name: String::from(name),
            size,
            hash,
            data,
            hasher: Blake2s256::new(),
            touched: now,
        });
        Ok(Begin::Upload { id, have: 0 })
    }

    /// Appends bytes to upload `id`; returns the bytes now held.
    pub(crate) fn append(&mut self, id: u64, bytes: &[u8], now: Instant) -> Result<u64, BlobCode> {
        let p = self
            .partials
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or(BlobCode::Aborted)?;
        if p.data.len() as u64 + bytes.len() as u64 > p.size {
            return Err(BlobCode::BadOffset);
        }
        p.data.extend_from_slice(bytes);
        p.hasher.update(bytes);
        p.touched = now;
        Ok(p.data.len() as u64)
    }

    /// Verifies and commits a complete upload. A hash mismatch drops it
    /// (`bad-hash`): nothing unverified is ever stored.
    pub(crate) fn commit(&mut self, id: u64) -> Result<(), BlobCode> {
        let i = self
            .partials
            .iter()
            .position(|p| p.id == id)
            .ok_or(BlobCode::Aborted)?;
        if self
            .partials
            .get(i)
            .is_some_and(|p| (p.data.len() as u64) < p.size)
        {
            return Err(BlobCode::Incomplete);
        }
        let p = self.partials.swap_remove(i);
        self.used = self.used.saturating_sub(p.size);
        let got: Hash = p.hasher.finalize().into();
        if got != p.hash {
            self.stats.bad_hash += 1;
            return Err(BlobCode::BadHash);
        }
        self.remove(&p.name);
        if self.blobs.len() >= self.cfg.max_blobs {
            self.stats.refused += 1;
            return Err(BlobCode::StoreFull);
        }
        self.used += p.size;
        let gen = self.next_id;
        self.next_id += 1;
        self.blobs.push(Blob {
            name: p.name,
            data: p.data,
            hash: p.hash,
            gen,
        });
        self.stats.committed += 1;
        Ok(())
    }

    /// The upload `id` still exists (not evicted or replaced).
    pub(crate) fn has_upload(&self, id: u64) -> bool {
        self.partials.iter().any(|p| p.id == id)
    }
}
