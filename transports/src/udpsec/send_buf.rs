//! The bounded send buffer of the stream: bytes written by the application
//! stay here until acknowledged. Tracks the next new byte to send, the
//! acknowledged ranges above the lowest unacknowledged byte, and the ranges
//! queued for retransmission (lost data always goes out in new packets).

use alloc::collections::VecDeque;

use super::range_set::RangeSet;

/// What to put in the next STREAM frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Stream offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: usize,
    /// True when these bytes were sent before.
    pub retransmit: bool,
}

/// Send buffer with a fixed capacity.
#[derive(Debug)]
pub struct SendBuf {
    data: VecDeque<u8>,
    /// Stream offset of `data[0]` (lowest unacknowledged byte).
    base: u64,
    /// Next byte never sent.
    unsent: u64,
    acked: RangeSet,
    retransmit: RangeSet,
    capacity: usize,
}

impl SendBuf {
    /// An empty buffer holding at most `capacity` unacknowledged bytes.
    pub fn new(capacity: usize) -> Self {
        SendBuf {
            data: VecDeque::new(),
            base: 0,
            unsent: 0,
            acked: RangeSet::new(),
            retransmit: RangeSet::new(),
            capacity,
        }
    }

    /// Offset one past the last byte written.
    pub fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    /// Free space for [`write`](Self::write).
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.data.len())
    }

    /// Append as much of `bytes` as fits; returns how many were taken.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        if let Some(b) = bytes.get(..n) {
            self.data.extend(b);
        }
        n
    }

    /// True when every written byte was acknowledged.
    pub fn is_fully_acked(&self) -> bool {
        self.data.is_empty()
    }

    /// True when there are bytes to retransmit.
    pub fn has_retransmit(&self) -> bool {
        !self.retransmit.is_empty()
    }

    /// True when something may be sent with the peer's credit `limit`.
    pub fn has_sendable(&self, limit: u64) -> bool {
        self.has_retransmit() || (self.unsent < self.end() && self.unsent < limit)
    }

    /// Offset of the next new byte.
    pub fn unsent(&self) -> u64 {
        self.unsent
    }

    /// Pick the next chunk of at most `max_len` bytes: retransmissions first,
    /// then new data below `limit`. Marks it as sent.
    pub fn next_chunk(&mut self, max_len: usize, limit: u64) -> Option<Chunk> {
        if max_len == 0 {
            return None;
        }
        if let Some(r) = self.retransmit.pop_first(max_len as u64) {
            return Some(Chunk {
                offset: r.start,
                len: (r.end - r.start) as usize,
                retransmit: true,
            });
        }
        let end = self.end().min(limit);
        if self.unsent >= end {
            return None;
        }
        let len = ((end - self.unsent) as usize).min(max_len);
        let c = Chunk {
            offset: self.unsent,
            len,
            retransmit: false,
        };
        self.unsent += len as u64;
        Some(c)
    }

    /// Copy the bytes of `chunk` into `out[..chunk.len]`.
    pub fn copy(&self, offset: u64, out: &mut [u8]) -> bool {
        let Some(start) = offset.checked_sub(self.base) else {
            return false;
        };
        let Ok(start) = usize::try_from(start) else {
            return false;
        };
        if start.saturating_add(out.len()) > self.data.len() {
            return false;
        }
        let (a, b) = self.data.as_slices();
        let from_a = a.len().saturating_sub(start).min(out.len());
        let (out_a, out_b) = out.split_at_mut(from_a);
        let (Some(src_a), Some(src_b)) = (
            a.get(start.min(a.len())..start.min(a.len()) + from_a),
            b.get(start + from_a - a.len().min(start + from_a)..)
                .and_then(|s| s.get(..out_b.len())),
        ) else {
            return false;
        };
        out_a.copy_from_slice(src_a);
        out_b.copy_from_slice(src_b);
        true
    }

    /// `offset..offset+len` was acknowledged; returns bytes freed.
    pub fn ack(&mut self, offset: u64, len: u64) -> usize {
        let end = offset.saturating_add(len);
        self.retransmit.remove(offset, end);
        if end <= self.base {
            return 0;
        }
        self.acked.insert(offset.max(self.base), end);
        let mut freed = 0;
        if let Some(first) = self.acked.first() {
            if first.start <= self.base {
                let n = (first.end - self.base) as usize;
                let n = n.min(self.data.len());
                self.data.drain(..n);
                self.base += n as u64;
                freed = n;
                self.acked.remove_below(self.base);
            }
        }
        freed
    }

    /// `offset..offset+len` was lost: queue what is not acknowledged for resending.
    pub fn lost(&mut self, offset: u64, len: u64) {
        let start = offset.max(self.base);
        let end = offset.saturating_add(len).min(self.unsent);
        if start >= end {
            return;
        }
        self.retransmit.insert(start, end);
        for r in self.acked.iter().collect::<alloc::vec::Vec<_>>() {
            self.retransmit.remove(r.start, r.end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_write_and_in_order_ack_frees_space() {
        let mut b = SendBuf::new(10);
        assert_eq!(b.write(b"0123456789abc"), 10);
        assert_eq!(b.free(), 0);
        let c = b.next_chunk(4, u64::MAX).unwrap();
        assert_eq!((c.offset, c.len, c.retransmit), (0, 4, false));
        let mut out = [0u8; 4];
        assert!(b.copy(c.offset, &mut out));
        assert_eq!(&out, b"0123");
        assert_eq!(b.ack(0, 4), 4);
        assert_eq!(b.free(), 4);
    }

    #[test]
    fn lost_ranges_are_resent_first_and_acked_parts_skipped() {
        let mut b = SendBuf::new(100);
        b.write(&[7u8; 30]);
        let c1 = b.next_chunk(10, u64::MAX).unwrap();
        let c2 = b.next_chunk(10, u64::MAX).unwrap();
        let _c3 = b.next_chunk(10, u64::MAX).unwrap();
        assert_eq!(b.ack(c2.offset, 10), 0); // out of order: nothing freed yet
        b.lost(0, 30);
        let r = b.next_chunk(100, u64::MAX).unwrap();
        assert_eq!((r.offset, r.len, r.retransmit), (0, 10, true));
        let r = b.next_chunk(100, u64::MAX).unwrap();
        assert_eq!((r.offset, r.len, r.retransmit), (20, 10, true));
        assert!(b.next_chunk(100, u64::MAX).is_none());
        assert_eq!(b.ack(c1.offset, 10), 20);
    }

    #[test]
    fn new_data_respects_the_credit_limit() {
        let mut b = SendBuf::new(100);
        b.write(&[1u8; 50]);
        let c = b.next_chunk(100, 20).unwrap();
        assert_eq!(c.len, 20);
        assert!(b.next_chunk(100, 20).is_none());
        assert!(!b.has_sendable(20));
        assert!(b.has_sendable(21));
    }
}
