//! A sorted set of disjoint half-open `u64` ranges.
//!
//! Used for acknowledged / to-retransmit stream ranges, received stream
//! ranges and received packet numbers. The set merges touching ranges, so its
//! length is the number of gaps plus one; callers cap it.

use alloc::vec::Vec;
use core::ops::Range;

/// Disjoint, non-touching, sorted half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// An empty set.
    pub const fn new() -> Self {
        RangeSet { ranges: Vec::new() }
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Remove everything.
    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Add `start..end` (merging with neighbours).
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // First range that ends at or after `start` (touching ranges merge).
        let i = self.ranges.partition_point(|r| r.1 < start);
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while let Some(&(rs, re)) = self.ranges.get(j) {
            if rs > end {
                break;
            }
            s = s.min(rs);
            e = e.max(re);
            j += 1;
        }
        self.ranges.splice(i..j, core::iter::once((s, e)));
    }

    /// Remove `start..end`, splitting ranges as needed.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let i = self.ranges.partition_point(|r| r.1 <= start);
        let mut j = i;
        let mut pieces: [(u64, u64); 2] = [(0, 0); 2];
        let mut n = 0;
        while let Some(&(rs, re)) = self.ranges.get(j) {
            if rs >= end {
                break;
            }
            if rs < start {
                pieces[0] = (rs, start);
                n = 1;
            }
            if re > end {
                if let Some(p) = pieces.get_mut(n) {
                    *p = (end, re);
                }
                n += 1;
            }
            j += 1;
        }
        let keep = pieces.get(..n.min(2)).unwrap_or(&[]);
        self.ranges.splice(i..j, keep.iter().copied());
    }

    /// Remove everything below `x`.
    pub fn remove_below(&mut self, x: u64) {
        self.remove(0, x);
    }

    /// True when `x` is in the set.
    pub fn contains(&self, x: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.1 <= x);
        self.ranges.get(i).is_some_and(|r| r.0 <= x)
    }

    /// True when `start..end` overlaps or touches a range of the set.
    pub fn touches(&self, start: u64, end: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.1 < start);
        self.ranges.get(i).is_some_and(|r| r.0 <= end)
    }

    /// The lowest range.
    pub fn first(&self) -> Option<Range<u64>> {
        self.ranges.first().map(|r| r.0..r.1)
    }

    /// The highest range.
    pub fn last(&self) -> Option<Range<u64>> {
        self.ranges.last().map(|r| r.0..r.1)
    }

    /// Remove and return at most `max_len` values from the start of the lowest range.
    pub fn pop_first(&mut self, max_len: u64) -> Option<Range<u64>> {
        let first = self.ranges.first_mut()?;
        let take = (first.1 - first.0).min(max_len);
        let out = first.0..first.0 + take;
        first.0 += take;
        if first.0 >= first.1 {
            self.ranges.remove(0);
        }
        Some(out)
    }

    /// Drop the lowest range (used to enforce a cap on the number of ranges).
    pub fn pop_lowest(&mut self) -> Option<Range<u64>> {
        if self.ranges.is_empty() {
            return None;
        }
        let r = self.ranges.remove(0);
        Some(r.0..r.1)
    }

    /// Ranges in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Range<u64>> + Clone + '_ {
        self.ranges.iter().map(|r| r.0..r.1)
    }

    /// Sum of the lengths of all ranges.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.1 - r.0).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn v(s: &RangeSet) -> Vec<(u64, u64)> {
        s.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn insert_merges_overlapping_and_touching_ranges() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(20, 25);
        assert_eq!(v(&s), vec![(10, 25), (30, 40)]);
        s.insert(5, 35);
        assert_eq!(v(&s), vec![(5, 40)]);
        s.insert(50, 50);
        assert_eq!(v(&s), vec![(5, 40)]);
    }

    #[test]
    fn remove_splits_ranges() {
        let mut s = RangeSet::new();
        s.insert(0, 100);
        s.remove(10, 20);
        assert_eq!(v(&s), vec![(0, 10), (20, 100)]);
        s.remove(5, 30);
        assert_eq!(v(&s), vec![(0, 5), (30, 100)]);
        s.remove(0, 1000);
        assert!(s.is_empty());
    }

    #[test]
    fn pop_first_takes_a_bounded_prefix() {
        let mut s = RangeSet::new();
        s.insert(0, 10);
        s.insert(20, 25);
        assert_eq!(s.pop_first(4), Some(0..4));
        assert_eq!(s.pop_first(100), Some(4..10));
        assert_eq!(s.pop_first(100), Some(20..25));
        assert_eq!(s.pop_first(100), None);
    }

    #[test]
    fn contains_and_total() {
        let mut s = RangeSet::new();
        s.insert(3, 5);
        s.insert(8, 9);
        assert!(s.contains(3) && s.contains(4) && s.contains(8));
        assert!(!s.contains(5) && !s.contains(2) && !s.contains(9));
        assert_eq!(s.total(), 3);
        assert!(s.touches(5, 6) && s.touches(0, 3) && s.touches(9, 20));
        assert!(s.touches(6, 8) && !s.touches(6, 7) && !s.touches(0, 2) && !s.touches(10, 20));
    }
}
