//! Token buckets and a bounded per-source limiter, consulted before signature checks.
//!
//! A bucket holds up to `burst` tokens and refills at `per_sec` tokens per second;
//! all arithmetic is integer (milli-tokens) and saturating, and time going
//! backwards never panics (it just refills nothing).

use alloc::vec::Vec;

use smoltcp::time::Instant;
use smoltcp::wire::IpAddress;

/// Size and refill rate of a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketConfig {
    /// Largest number of tokens (the burst a quiet sender may spend at once).
    pub burst: u32,
    /// Tokens added per second.
    pub per_sec: u32,
}

const MILLI: u64 = 1000;

/// Microseconds from `since` to `now`, zero if `now` is earlier.
pub(crate) fn micros_between(since: Instant, now: Instant) -> u64 {
    let d = now.total_micros().saturating_sub(since.total_micros());
    u64::try_from(d).unwrap_or(0)
}

/// A token bucket (starts full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    milli_tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket as of `now`.
    pub fn new(cfg: BucketConfig, now: Instant) -> Self {
        TokenBucket {
            milli_tokens: u64::from(cfg.burst).saturating_mul(MILLI),
            last: now,
        }
    }

    fn refill(&mut self, cfg: BucketConfig, now: Instant) {
        let cap = u64::from(cfg.burst).saturating_mul(MILLI);
        let micros = micros_between(self.last, now);
        // tokens/s * us * 1000 milli / 1e6 us = per_sec * us / 1000.
        let add = micros.saturating_mul(u64::from(cfg.per_sec)) / 1000;
        if add > 0 || self.milli_tokens >= cap {
            self.last = now;
        }
        self.milli_tokens = self.milli_tokens.saturating_add(add).min(cap);
    }

    /// True if a token is available at `now` (refills, does not spend).
    pub fn check(&mut self, cfg: BucketConfig, now: Instant) -> bool {
        self.refill(cfg, now);
        self.milli_tokens >= MILLI
    }

    /// Spends one token if available.
    pub fn take(&mut self, cfg: BucketConfig, now: Instant) -> bool {
        if self.check(cfg, now) {
            self.milli_tokens = self.milli_tokens.saturating_sub(MILLI);
            true
        } else {
            false
        }
    }

    /// True once the bucket has refilled completely (its state carries no information).
    pub fn is_full(&mut self, cfg: BucketConfig, now: Instant) -> bool {
        self.refill(cfg, now);
        self.milli_tokens >= u64::from(cfg.burst).saturating_mul(MILLI)
    }
}

#[derive(Debug, Clone)]
struct SourceEntry {
    addr: IpAddress,
    bucket: TokenBucket,
    last_used: Instant,
}

/// Per-source-address buckets in a table of at most `cap` entries.
///
/// A new source takes the slot of the least recently used one when the table is
/// full; a source is then treated as new (full bucket), which is why a global
/// budget sits behind this one.
#[derive(Debug, Clone)]
pub struct SourceLimiter {
    cfg: BucketConfig,
    cap: usize,
    entries: Vec<SourceEntry>,
}

impl SourceLimiter {
    /// An empty limiter for at most `cap` sources (`cap` of 0 disables per-source limits).
    pub fn new(cfg: BucketConfig, cap: usize) -> Self {
        SourceLimiter {
            cfg,
            cap,
            entries: Vec::with_capacity(cap),
        }
    }

    /// Number of tracked sources (never above the cap).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The configured cap.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    fn slot(&mut self, addr: IpAddress, now: Instant) -> Option<&mut SourceEntry> {
        if self.cap == 0 {
            return None;
        }
        let idx = match self.entries.iter().position(|e| e.addr == addr) {
            Some(i) => i,
            None => {
                let fresh = SourceEntry {
                    addr,
                    bucket: TokenBucket::new(self.cfg, now),
                    last_used: now,
                };
                if self.entries.len() < self.cap {
                    self.entries.push(fresh);
                    self.entries.len() - 1
                } else {
                    let lru = self
                        .entries
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| e.last_used)
                        .map(|(i, _)| i)?;
                    *self.entries.get_mut(lru)? = fresh;
                    lru
                }
            }
        };
        let e = self.entries.get_mut(idx)?;
        e.last_used = now;
        Some(e)
    }

    /// True if `addr` has a token at `now` (tracks the source, does not spend).
    pub fn check(&mut self, addr: IpAddress, now: Instant) -> bool {
        let cfg = self.cfg;
        match self.slot(addr, now) {
            Some(e) => e.bucket.check(cfg, now),
            None => true,
        }
    }

    /// Spends one token of `addr` if available.
    pub fn take(&mut self, addr: IpAddress, now: Instant) -> bool {
        let cfg = self.cfg;
        match self.slot(addr, now) {
            Some(e) => e.bucket.take(cfg, now),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    const CFG: BucketConfig = BucketConfig {
        burst: 3,
        per_sec: 2,
    };

    fn ms(v: i64) -> Instant {
        Instant::from_millis(v)
    }

    #[test]
    fn bucket_spends_its_burst_then_refills_at_its_rate() {
        let mut b = TokenBucket::new(CFG, ms(0));
        assert!(b.take(CFG, ms(0)));
        assert!(b.take(CFG, ms(0)));
        assert!(b.take(CFG, ms(0)));
        assert!(!b.take(CFG, ms(0)));
        assert!(!b.take(CFG, ms(499)));
        assert!(b.take(CFG, ms(500)));
        assert!(!b.take(CFG, ms(500)));
        // Never above the burst, however long the pause.
        assert!(b.is_full(CFG, ms(1_000_000)));
        for _ in 0..3 {
            assert!(b.take(CFG, ms(1_000_000)));
        }
        assert!(!b.take(CFG, ms(1_000_000)));
    }

    #[test]
    fn bucket_survives_time_going_backwards_and_extremes() {
        let mut b = TokenBucket::new(CFG, Instant::from_micros(i64::MAX));
        assert!(b.take(CFG, Instant::from_micros(i64::MIN)));
        let mut b = TokenBucket::new(CFG, Instant::from_micros(i64::MIN));
        assert!(b.is_full(CFG, Instant::from_micros(i64::MAX)));
    }

    #[test]
    fn small_refills_accumulate() {
        let cfg = BucketConfig {
            burst: 1,
            per_sec: 1,
        };
        let mut b = TokenBucket::new(cfg, ms(0));
        assert!(b.take(cfg, ms(0)));
        for t in 1..1000 {
            assert!(!b.take(cfg, Instant::from_micros(t * 1000)));
        }
        assert!(b.take(cfg, ms(1000)));
    }

    #[test]
    fn source_table_stays_at_its_cap() {
        let mut l = SourceLimiter::new(CFG, 4);
        for i in 0..1000u32 {
            let a = IpAddress::Ipv4(Ipv4Address::from(i.to_be_bytes()));
            assert!(l.take(a, ms(i64::from(i))));
            assert!(l.len() <= 4);
        }
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn one_source_is_limited_independently() {
        let mut l = SourceLimiter::new(CFG, 4);
        let a = IpAddress::v4(10, 0, 0, 1);
        let b = IpAddress::v4(10, 0, 0, 2);
        for _ in 0..3 {
            assert!(l.take(a, ms(0)));
        }
        assert!(!l.take(a, ms(0)));
        assert!(l.take(b, ms(0)));
    }
}
