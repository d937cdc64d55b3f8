//! Bounded reassembly of the receive stream.
//!
//! Out-of-order STREAM data is written into a ring buffer of `window` bytes
//! at its stream offset; a [`RangeSet`] records what arrived. The
//! application reads the contiguous prefix. Nothing beyond `read + window`
//! is accepted (that is the credit advertised with MAX_DATA), and the number
//! of gaps is capped by [`MAX_ASSEMBLER_RANGES`].

use alloc::vec;
use alloc::vec::Vec;

use super::range_set::RangeSet;
use super::stats::DropReason;

/// Most disjoint received ranges (gaps + 1) held at once.
pub const MAX_ASSEMBLER_RANGES: usize = 256;

/// Receive-side stream reassembly.
#[derive(Debug)]
pub struct Assembler {
    /// Ring buffer, allocated on the first insert (half-open handshakes cost no buffer).
    buf: Vec<u8>,
    window: usize,
    /// Next offset the application reads.
    read: u64,
    /// Received ranges at or above `read`.
    received: RangeSet,
}

impl Assembler {
    /// A reassembly buffer of `window` bytes (at least 1).
    pub fn new(window: usize) -> Self {
        Assembler {
            buf: Vec::new(),
            window: window.max(1),
            read: 0,
            received: RangeSet::new(),
        }
    }

    /// Window size in bytes.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Highest offset (exclusive) that fits: `read + window`.
    pub fn limit(&self) -> u64 {
        self.read + self.window as u64
    }

    /// Offset of the next byte the application will read.
    pub fn read_offset(&self) -> u64 {
        self.read
    }

    /// Would `offset..offset+len` be accepted?
    pub fn check(&self, offset: u64, len: usize) -> Result<(), DropReason> {
        let end = offset.saturating_add(len as u64);
        if end > self.limit() {
            return Err(DropReason::FlowControl);
        }
        if end <= self.read {
            return Ok(());
        }
        let start = offset.max(self.read);
        // A new disjoint range when it neither touches nor overlaps any range.
        if !self.received.touches(start, end) && self.received.len() >= MAX_ASSEMBLER_RANGES {
            return Err(DropReason::ReassemblyFull);
        }
        Ok(())
    }

    /// Store `data` at `offset` (after [`check`](Self::check)); returns
    /// true when the readable prefix grew.
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<bool, DropReason> {
        self.check(offset, data.len())?;
        let end = offset + data.len() as u64;
        if end <= self.read {
            return Ok(false);
        }
        let skip = self.read.saturating_sub(offset) as usize;
        let data = data.get(skip..).unwrap_or(&[]);
        let start = offset + skip as u64;
        let before = self.readable();
        if self.buf.is_empty() {
            self.buf = vec![0u8; self.window];
        }
        let w = self.buf.len();
        let mut pos = (start % w as u64) as usize;
        let mut rest = data;
        while !rest.is_empty() {
            let n = rest.len().min(w - pos);
            let (now, later) = rest.split_at(n);
            if let Some(dst) = self.buf.get_mut(pos..pos + n) {
                dst.copy_from_slice(now);
            }
            rest = later;
            pos = 0;
        }
        self.received.insert(start, end);
        Ok(self.readable() > before)
    }

    /// Contiguous bytes ready to read.
    pub fn readable(&self) -> usize {
        match self.received.first() {
            Some(r) if r.start <= self.read => (r.end - self.read) as usize,
            _ => 0,
        }
    }

    /// Copy readable bytes into `out`; returns how many.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = self.readable().min(out.len());
        let w = self.buf.len().max(1);
        let mut pos = (self.read % w as u64) as usize;
        let mut done = 0;
        while done < n {
            let k = (n - done).min(w - pos);
            if let (Some(dst), Some(src)) =
                (out.get_mut(done..done + k), self.buf.get(pos..pos + k))
            {
                dst.copy_from_slice(src);
            }
            done += k;
            pos = 0;
        }
        self.read += n as u64;
        self.received.remove_below(self.read);
        n
    }

    /// Number of disjoint received ranges.
    pub fn ranges(&self) -> usize {
        self.received.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reorders_and_delivers_contiguous_prefix() {
        let mut a = Assembler::new(16);
        assert!(!a.insert(4, b"efgh").unwrap());
        assert_eq!(a.readable(), 0);
        assert!(a.insert(0, b"abcd").unwrap());
        let mut out = [0u8; 16];
        assert_eq!(a.read(&mut out), 8);
        assert_eq!(&out[..8], b"abcdefgh");
        // wraps around the ring
        assert!(a.insert(8, b"0123456789").unwrap());
        assert_eq!(a.read(&mut out), 10);
        assert_eq!(&out[..10], b"0123456789");
        // duplicates of consumed data are ignored
        assert!(!a.insert(0, b"zz").unwrap());
    }

    #[test]
    fn enforces_window_and_range_cap() {
        let mut a = Assembler::new(1000);
        assert_eq!(
            a.insert(990, &[0u8; 11]).unwrap_err(),
            DropReason::FlowControl
        );
        for i in 0..MAX_ASSEMBLER_RANGES as u64 {
            a.insert(1 + i * 2, &[1]).unwrap();
        }
        assert_eq!(a.insert(900, &[1]).unwrap_err(), DropReason::ReassemblyFull);
        // filling a gap is always possible
        a.insert(0, &[1]).unwrap();
    }
}
