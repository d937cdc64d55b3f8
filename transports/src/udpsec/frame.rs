//! Frames inside the decrypted payload of a data packet.
//!
//! A payload is a sequence of frames, each starting with a one-byte type.
//! All integers are little-endian. Parsing is a zero-copy iterator that
//! validates every field and never panics; a malformed frame rejects the
//! whole packet (the caller validates all frames before acting on any).
//!
//! | type | frame    | body |
//! |------|----------|------|
//! | 0x01 | PING     | — |
//! | 0x02 | ACK      | `delay:u16` (8 µs units), `n:u8` (1..=16), `n × {hi:u32, lo:u32}` |
//! | 0x03 | STREAM   | `offset:u64`, `len:u16` (≥ 1), `data[len]` |
//! | 0x04 | MAX_DATA | `max:u64` |
//! | 0x05 | CLOSE    | `code:u16`, `rlen:u8` (≤ 32), `reason[rlen]` (`[A-Za-z0-9._-]`) |
//! | 0x06 | IMMEDIATE_ACK | — (acknowledge this packet without delay) |

use super::stats::DropReason;

/// PING frame type.
pub const PING: u8 = 0x01;
/// ACK frame type.
pub const ACK: u8 = 0x02;
/// STREAM frame type.
pub const STREAM: u8 = 0x03;
/// MAX_DATA frame type.
pub const MAX_DATA: u8 = 0x04;
/// CLOSE frame type.
pub const CLOSE: u8 = 0x05;
/// IMMEDIATE_ACK frame type (as in draft-ietf-quic-ack-frequency).
pub const IMMEDIATE_ACK: u8 = 0x06;

/// Most ranges in one ACK frame.
pub const MAX_ACK_RANGES: usize = 16;
/// Bytes of an ACK frame before its ranges.
pub const ACK_OVERHEAD: usize = 4;
/// Bytes per ACK range.
pub const ACK_RANGE_LEN: usize = 8;
/// Bytes of a STREAM frame before its data.
pub const STREAM_OVERHEAD: usize = 11;
/// Bytes of a MAX_DATA frame.
pub const MAX_DATA_LEN: usize = 9;
/// Longest CLOSE reason.
pub const MAX_REASON_LEN: usize = 32;
/// Highest stream offset (2^62), far beyond any real transfer.
pub const MAX_STREAM_OFFSET: u64 = 1 << 62;
/// Units of the ACK `delay` field, in microseconds.
pub const ACK_DELAY_UNIT_US: u64 = 8;

/// Validated ACK ranges (inclusive `hi..=lo` pairs, strictly descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRanges<'a> {
    raw: &'a [u8],
}

impl<'a> AckRanges<'a> {
    /// Ranges as `(hi, lo)`, highest first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + 'a {
        self.raw.chunks_exact(ACK_RANGE_LEN).map(|c| {
            let mut hi = [0u8; 4];
            let mut lo = [0u8; 4];
            hi.copy_from_slice(c.get(..4).unwrap_or(&[0; 4]));
            lo.copy_from_slice(c.get(4..8).unwrap_or(&[0; 4]));
            (u32::from_le_bytes(hi), u32::from_le_bytes(lo))
        })
    }

    /// The highest acknowledged packet number.
    pub fn largest(&self) -> Option<u32> {
        self.iter().next().map(|(hi, _)| hi)
    }
}

/// One parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Ack-eliciting no-op (keepalive, probe).
    Ping,
    /// Acknowledged packet-number ranges and the ack delay.
    Ack {
        /// Delay in [`ACK_DELAY_UNIT_US`] units between receiving the largest and sending.
        delay: u16,
        /// The ranges.
        ranges: AckRanges<'a>,
    },
    /// Stream bytes at `offset`.
    Stream {
        /// Stream offset of `data[0]`.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// The receiver accepts stream bytes below `max`.
    MaxData(u64),
    /// The sender asks for an acknowledgement without delay (ack-eliciting).
    ImmediateAck,
    /// Connection close with a code and a short reason label.
    Close {
        /// 0 = normal close.
        code: u16,
        /// ASCII label.
        reason: &'a [u8],
    },
}

impl Frame<'_> {
    /// True for frames that require an acknowledgement.
    pub fn is_ack_eliciting(&self) -> bool {
        !matches!(self, Frame::Ack { .. } | Frame::Close { .. })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DropReason> {
        if self.buf.len() < n {
            return Err(DropReason::MalformedFrame);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DropReason> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    fn u16(&mut self) -> Result<u16, DropReason> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, DropReason> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

/// Iterator over the frames of a decrypted payload.
pub struct FrameIter<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> FrameIter<'a> {
    /// Iterate over `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        FrameIter {
            r: Reader { buf: payload },
            failed: false,
        }
    }

    fn parse_one(&mut self) -> Result<Frame<'a>, DropReason> {
        match self.r.u8()? {
            PING => Ok(Frame::Ping),
            IMMEDIATE_ACK => Ok(Frame::ImmediateAck),
            ACK => {
                let delay = self.r.u16()?;
                let n = usize::from(self.r.u8()?);
                if n == 0 || n > MAX_ACK_RANGES {
                    return Err(DropReason::MalformedFrame);
                }
                let raw = self.r.take(n * ACK_RANGE_LEN)?;
                let ranges = AckRanges { raw };
                let mut prev_lo: Option<u32> = None;
                for (hi, lo) in ranges.iter() {
                    if hi < lo || prev_lo.is_some_and(|p| hi >= p) {
                        return Err(DropReason::MalformedFrame);
                    }
                    prev_lo = Some(lo);
                }
                Ok(Frame::Ack { delay, ranges })
            }
            STREAM => {
                let offset = self.r.u64()?;
                let len = self.r.u16()?;
                if len == 0 {
                    return Err(DropReason::MalformedFrame);
                }
                let data = self.r.take(usize::from(len))?;
                match offset.checked_add(u64::from(len)) {
                    Some(end) if end <= MAX_STREAM_OFFSET => Ok(Frame::Stream { offset, data }),
                    _ => Err(DropReason::MalformedFrame),
                }
            }
            MAX_DATA => {
                let max = self.r.u64()?;
                if max > MAX_STREAM_OFFSET {
                    return Err(DropReason::MalformedFrame);
                }
                Ok(Frame::MaxData(max))
            }
            CLOSE => {
                let code = self.r.u16()?;
                let n = usize::from(self.r.u8()?);
                if n > MAX_REASON_LEN {
                    return Err(DropReason::MalformedFrame);
                }
                let reason = self.r.take(n)?;
                if !reason
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
                {
                    return Err(DropReason::MalformedFrame);
                }
                Ok(Frame::Close { code, reason })
            }
            _ => Err(DropReason::MalformedFrame),
        }
    }
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<Frame<'a>, DropReason>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.buf.is_empty() {
            return None;
        }
        let f = self.parse_one();
        if f.is_err() {
            self.failed = true;
        }
        Some(f)
    }
}

/// Appends frames to a plaintext buffer; every method returns false (and
/// writes nothing) when the frame does not fit.
pub struct FrameWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> FrameWriter<'a> {
    /// Write into `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        FrameWriter { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
            self.pos = end;
        }
    }

    /// PING.
    pub fn ping(&mut self) -> bool {
        if self.remaining() < 1 {
            return false;
        }
        self.put(&[PING]);
        true
    }

    /// IMMEDIATE_ACK.
    pub fn immediate_ack(&mut self) -> bool {
        if self.remaining() < 1 {
            return false;
        }
        self.put(&[IMMEDIATE_ACK]);
        true
    }

    /// ACK with `ranges` as `(hi, lo)` highest first (at most [`MAX_ACK_RANGES`] used).
    pub fn ack(&mut self, delay: u16, ranges: impl Iterator<Item = (u32, u32)> + Clone) -> bool {
        let n = ranges.clone().take(MAX_ACK_RANGES).count();
        if n == 0 || self.remaining() < ACK_OVERHEAD + n * ACK_RANGE_LEN {
            return false;
        }
        self.put(&[ACK]);
        self.put(&delay.to_le_bytes());
        self.put(&[n as u8]);
        for (hi, lo) in ranges.take(n) {
            self.put(&hi.to_le_bytes());
            self.put(&lo.to_le_bytes());
        }
        true
    }

    /// STREAM carrying `data` at `offset`.
    pub fn stream(&mut self, offset: u64, data: &[u8]) -> bool {
        if data.is_empty()
            || data.len() > usize::from(u16::MAX)
            || self.remaining() < STREAM_OVERHEAD + data.len()
        {
            return false;
        }
        self.put(&[STREAM]);
        self.put(&offset.to_le_bytes());
        self.put(&(data.len() as u16).to_le_bytes());
        self.put(data);
        true
    }

    /// STREAM of `len` bytes at `offset`, filled in place by `fill` (which
    /// returns false to abandon the frame).
    pub fn stream_with(
        &mut self,
        offset: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> bool {
        if len == 0 || len > usize::from(u16::MAX) || self.remaining() < STREAM_OVERHEAD + len {
            return false;
        }
        let start = self.pos;
        self.put(&[STREAM]);
        self.put(&offset.to_le_bytes());
        self.put(&(len as u16).to_le_bytes());
        let end = self.pos + len;
        let ok = match self.buf.get_mut(self.pos..end) {
            Some(dst) => fill(dst),
            None => false,
        };
        self.pos = if ok { end } else { start };
        ok
    }

    /// MAX_DATA.
    pub fn max_data(&mut self, max: u64) -> bool {
        if self.remaining() < MAX_DATA_LEN {
            return false;
        }
        self.put(&[MAX_DATA]);
        self.put(&max.to_le_bytes());
        true
    }

    /// CLOSE (reason truncated to [`MAX_REASON_LEN`]).
    pub fn close(&mut self, code: u16, reason: &str) -> bool {
        let r = reason.as_bytes();
        let r = r.get(..r.len().min(MAX_REASON_LEN)).unwrap_or(&[]);
        if self.remaining() < 4 + r.len() {
            return false;
        }
        self.put(&[CLOSE]);
        self.put(&code.to_le_bytes());
        self.put(&[r.len() as u8]);
        self.put(r);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn frames_round_trip() {
        let mut buf = [0u8; 200];
        let mut w = FrameWriter::new(&mut buf);
        assert!(w.ping());
        assert!(w.ack(3, [(10u32, 8u32), (5, 5)].into_iter()));
        assert!(w.stream(1000, b"hello"));
        assert!(w.max_data(65536));
        assert!(w.close(0, "done"));
        assert!(w.immediate_ack());
        let n = w.len();
        let frames: Vec<_> = FrameIter::new(&buf[..n]).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[5], Frame::ImmediateAck);
        assert!(frames[5].is_ack_eliciting());
        assert_eq!(buf[n - 1], 0x06);
        assert_eq!(frames[0], Frame::Ping);
        match frames[1] {
            Frame::Ack { delay, ranges } => {
                assert_eq!(delay, 3);
                assert_eq!(ranges.iter().collect::<Vec<_>>(), vec![(10, 8), (5, 5)]);
            }
            _ => panic!("not an ack"),
        }
        assert_eq!(
            frames[2],
            Frame::Stream {
                offset: 1000,
                data: b"hello"
            }
        );
        assert_eq!(frames[3], Frame::MaxData(65536));
        assert_eq!(
            frames[4],
            Frame::Close {
                code: 0,
                reason: b"done"
            }
        );
    }

    #[test]
    fn rejects_truncated_unknown_and_unordered() {
        assert!(FrameIter::new(&[0x09]).next().unwrap().is_err());
        assert!(FrameIter::new(&[STREAM, 0, 0]).next().unwrap().is_err());
        // ranges must descend
        let mut buf = [0u8; 64];
        let mut w = FrameWriter::new(&mut buf);
        assert!(w.ack(0, [(5u32, 5u32), (10, 8)].into_iter()));
        let n = w.len();
        assert!(FrameIter::new(&buf[..n]).next().unwrap().is_err());
        // hi < lo
        let bad = [ACK, 0, 0, 1, 1, 0, 0, 0, 2, 0, 0, 0];
        assert!(FrameIter::new(&bad).next().unwrap().is_err());
        // reason characters
        let bad = [CLOSE, 0, 0, 2, b'a', b' '];
        assert!(FrameIter::new(&bad).next().unwrap().is_err());
    }

    #[test]
    fn iteration_stops_after_an_error() {
        let bad = [0x09, PING];
        let v: Vec<_> = FrameIter::new(&bad).collect();
        assert_eq!(v.len(), 1);
    }
}
