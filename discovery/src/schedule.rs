//! When to send our own announce: a quick burst, then a steady, id-derived phase.
//!
//! No randomness: the steady phase is a hash of the device id modulo the interval,
//! so two nodes started together do not stay in lock-step, and every run with the
//! same id and start time sends at the same instants. A change of our announced
//! content restarts the burst so peers learn it quickly.

use smoltcp::time::{Duration, Instant};

use crate::name::DeviceId;

/// Offsets of the start-up (and change) burst, from the moment it starts.
pub const BURST_OFFSETS_MS: [u64; 4] = [0, 50, 150, 350];
/// Default steady announce interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(1000);
/// Least time between two announces sent in answer to newcomers
/// ([`AnnounceSchedule::answer`]).
pub const ANSWER_GAP: Duration = Duration::from_millis(100);
/// Shortest steady interval accepted (shorter values are raised to it).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// 64-bit FNV-1a (stable across versions and platforms; documented in the wire doc).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Sans-IO announce timer.
#[derive(Debug, Clone)]
pub struct AnnounceSchedule {
    interval_us: u64,
    /// Start of the steady grid: origin + hash(id) % interval.
    grid_start_us: i64,
    burst_start_us: i64,
    /// Next burst slot to use; `BURST_OFFSETS_MS.len()` once the burst is over.
    burst_idx: usize,
    next: Instant,
    /// When the last announce went out.
    last_sent: Option<Instant>,
}

impl AnnounceSchedule {
    /// A schedule for `id` whose burst starts at `now`.
    pub fn new(id: &DeviceId, interval: Duration, now: Instant) -> Self {
        let interval_us = interval.total_micros().max(MIN_INTERVAL.total_micros());
        let phase = fnv1a64(id.as_bytes()) % interval_us;
        let phase = i64::try_from(phase).unwrap_or(0);
        AnnounceSchedule {
            interval_us,
            grid_start_us: now.total_micros().saturating_add(phase),
            burst_start_us: now.total_micros(),
            burst_idx: 0,
            next: now,
            last_sent: None,
        }
    }

    /// The steady interval in use.
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }

    /// The steady phase offset (hash of the id modulo the interval).
    pub fn phase(&self) -> Duration {
        let phase = self.grid_start_us.saturating_sub(self.burst_start_us);
        Duration::from_micros(u64::try_from(phase).unwrap_or(0))
    }

    /// When the next announce is due.
    pub fn poll_at(&self) -> Instant {
        self.next
    }

    /// True if an announce is due at `now`.
    pub fn should_send(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Records that an announce was sent at `now` and picks the next instant.
    ///
    /// Missed slots are skipped (never a backlog of announces).
    pub fn on_sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        let now_us = now.total_micros();
        while let Some(off) = BURST_OFFSETS_MS.get(self.burst_idx) {
            let at = self
                .burst_start_us
                .saturating_add_unsigned(off.saturating_mul(1000));
            if at > now_us {
                self.next = Instant::from_micros(at);
                return;
            }
            self.burst_idx += 1;
        }
        self.next = Instant::from_micros(self.grid_after(now_us));
    }

    /// Sends now if due: true means "emit an announce" (and the schedule advanced).
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.should_send(now) {
            self.on_sent(now);
            true
        } else {
            false
        }
    }

    /// Restarts the burst at `now` (our announced content changed).
    pub fn trigger(&mut self, now: Instant) {
        self.burst_start_us = now.total_micros();
        self.burst_idx = 0;
        self.next = now;
    }

    /// A new peer was heard: make sure an announce goes out within
    /// [`ANSWER_GAP`] (at once, unless one went out less than that ago), so
    /// the newcomer learns us in about one trip instead of at our next steady
    /// slot. Several newcomers within the gap share one announce; the steady
    /// grid is not moved.
    pub fn answer(&mut self, now: Instant) {
        let at = match self.last_sent {
            Some(t) if t + ANSWER_GAP > now => t + ANSWER_GAP,
            _ => now,
        };
        if at < self.next {
            self.next = at;
        }
    }

    /// First steady slot strictly after `t_us`.
    fn grid_after(&self, t_us: i64) -> i64 {
        if t_us < self.grid_start_us {
            return self.grid_start_us;
        }
        let since = u64::try_from(t_us.saturating_sub(self.grid_start_us)).unwrap_or(0);
        let k = (since / self.interval_us).saturating_add(1);
        let off = i64::try_from(k.saturating_mul(self.interval_us)).unwrap_or(i64::MAX);
        self.grid_start_us.saturating_add(off)
    }
}
