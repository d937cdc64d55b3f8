//! The learning table: source MAC -> port, bounded and ageing.
//!
//! An entry older than the ageing time is treated as unknown (the frame is
//! flooded) and is purged when room is needed. When the table is full of live
//! entries, the least recently seen one is replaced: a flood of random source
//! addresses costs flooding, never memory.

use smoltcp::time::{Duration, Instant};
use std::collections::HashMap;

/// Default number of entries.
pub const DEFAULT_CAPACITY: usize = 1024;
/// Default ageing time (IEEE 802.1D's default is 300 s).
pub const DEFAULT_AGEING: Duration = Duration::from_secs(300);

/// A bounded source-MAC table.
#[derive(Debug)]
pub struct MacTable {
    entries: HashMap<[u8; 6], (usize, Instant)>,
    capacity: usize,
    ageing: Duration,
    /// Live entries replaced because the table was full.
    pub evicted: u64,
    /// A known MAC showed up on another port.
    pub moved: u64,
}

impl MacTable {
    /// A table of at most `capacity` (at least 1) entries ageing after `ageing`.
    pub fn new(capacity: usize, ageing: Duration) -> MacTable {
        MacTable {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            ageing,
            evicted: 0,
            moved: 0,
        }
    }

    /// Number of entries (live or not yet purged).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `mac` sent a frame on `port` at `now`.
    pub fn learn(&mut self, mac: [u8; 6], port: usize, now: Instant) {
        if let Some(e) = self.entries.get_mut(&mac) {
            if e.0 != port {
                self.moved += 1;
            }
            *e = (port, now);
            return;
        }
        if self.entries.len() >= self.capacity {
            let ageing = self.ageing;
            self.entries.retain(|_, (_, seen)| *seen + ageing > now);
        }
        if self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(m, _)| *m);
            if let Some(m) = oldest {
                self.entries.remove(&m);
                self.evicted += 1;
            }
        }
        self.entries.insert(mac, (port, now));
    }

    /// The port `mac` was last seen on, if that was within the ageing time.
    pub fn lookup(&self, mac: &[u8; 6], now: Instant) -> Option<usize> {
        let (port, seen) = self.entries.get(mac)?;
        (*seen + self.ageing > now).then_some(*port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> [u8; 6] {
        [0x52, 0x54, 0, 0x12, 0x34, n]
    }

    #[test]
    fn learns_moves_and_ages() {
        let mut t = MacTable::new(8, Duration::from_secs(10));
        let t0 = Instant::from_secs(1);
        t.learn(mac(1), 0, t0);
        assert_eq!(t.lookup(&mac(1), t0), Some(0));
        t.learn(mac(1), 2, t0);
        assert_eq!(t.lookup(&mac(1), t0), Some(2));
        assert_eq!(t.moved, 1);
        assert_eq!(t.lookup(&mac(1), t0 + Duration::from_secs(10)), None);
        assert_eq!(t.lookup(&mac(9), t0), None);
    }

    #[test]
    fn never_grows_past_capacity() {
        let mut t = MacTable::new(4, Duration::from_secs(300));
        for n in 0..100u8 {
            t.learn(mac(n), 1, Instant::from_millis(i64::from(n)));
            assert!(t.len() <= 4);
        }
        assert_eq!(t.evicted, 96);
        // The most recent ones survive.
        assert_eq!(t.lookup(&mac(99), Instant::from_millis(100)), Some(1));
        assert_eq!(t.lookup(&mac(0), Instant::from_millis(100)), None);
    }

    #[test]
    fn expired_entries_make_room_before_live_ones_are_evicted() {
        let mut t = MacTable::new(2, Duration::from_secs(1));
        t.learn(mac(1), 0, Instant::from_secs(0));
        t.learn(mac(2), 0, Instant::from_secs(5));
        t.learn(mac(3), 0, Instant::from_secs(5));
        assert_eq!(t.evicted, 0);
        assert_eq!(t.lookup(&mac(2), Instant::from_secs(5)), Some(0));
    }
}
