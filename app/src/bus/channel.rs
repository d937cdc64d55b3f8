//! The byte-stream view a service has of one mux channel.
//!
//! Service state machines (RPC, blob, directory) are written against
//! [`ChannelIo`] so that they run the same on a real mux channel (the node
//! implements it for `(Mux, ChannelId)`) and on the in-memory pipe the unit
//! tests use ([`Pipe`]).

use alloc::collections::VecDeque;

use dsb_transports::mux::{ChannelError, ChannelId, Mux};

/// One end of a reliable, ordered, flow-controlled byte stream.
pub trait ChannelIo {
    /// Reads what arrived. `Ok(n > 0)`: bytes; `Ok(0)`: the peer finished
    /// and everything was read; `Err(WouldBlock)`: nothing yet; any other
    /// error: the channel is gone (reset, session closed).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError>;
    /// Queues bytes; returns how many were taken (may be fewer than offered);
    /// `Err(WouldBlock)` when nothing fits (backpressure).
    fn write(&mut self, data: &[u8]) -> Result<usize, ChannelError>;
    /// Bytes `write` would take now.
    fn write_capacity(&self) -> usize;
    /// Ends our direction (after what was written). Idempotent;
    /// `Err(WouldBlock)` if it cannot be queued yet.
    fn finish(&mut self) -> Result<(), ChannelError>;
    /// Abandons the channel both ways with an application code (`< 0xFF00`).
    fn reset(&mut self, code: u16);
}

/// A mux channel as a [`ChannelIo`].
pub struct MuxChannel<'a> {
    pub mux: &'a mut Mux,
    pub id: ChannelId,
}

impl ChannelIo for MuxChannel<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        self.mux.read(self.id, buf)
    }
    fn write(&mut self, data: &[u8]) -> Result<usize, ChannelError> {
        self.mux.write(self.id, data)
    }
    fn write_capacity(&self) -> usize {
        self.mux.write_capacity(self.id)
    }
    fn finish(&mut self) -> Result<(), ChannelError> {
        match self.mux.finish(self.id) {
            Err(ChannelError::Finished) => Ok(()),
            r => r,
        }
    }
    fn reset(&mut self, code: u16) {
        let _ = self.mux.reset(self.id, code);
    }
}

/// Most bytes one direction of a [`Pipe`] holds (its "credit").
pub const PIPE_CAP: usize = 64 * 1024;

/// One direction of an in-memory pipe.
#[derive(Debug, Default)]
pub struct Half {
    buf: VecDeque<u8>,
    finished: bool,
    reset: Option<u16>,
    cap: usize,
}

/// Both ends of an in-memory channel for tests: `a` writes what `b` reads and
/// back, each direction bounded by a capacity (backpressure like mux credit).
#[derive(Debug)]
pub struct Pipe {
    ab: Half,
    ba: Half,
}

/// Which end of a [`Pipe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    A,
    B,
}

impl Pipe {
    /// A pipe whose directions each hold at most `cap` bytes.
    pub fn new(cap: usize) -> Pipe {
        let half = || Half {
            cap: cap.max(1),
            ..Half::default()
        };
        Pipe {
            ab: half(),
            ba: half(),
        }
    }

    /// The [`ChannelIo`] of one end.
    pub fn end(&mut self, end: End) -> PipeEnd<'_> {
        PipeEnd { pipe: self, end }
    }

    /// The reset code one end received from the other, if any.
    pub fn reset_seen_by(&self, end: End) -> Option<u16> {
        match end {
            End::A => self.ba.reset,
            End::B => self.ab.reset,
        }
    }
}

/// One end of a [`Pipe`].
pub struct PipeEnd<'a> {
    pipe: &'a mut Pipe,
    end: End,
}

impl PipeEnd<'_> {
    fn halves(&mut self) -> (&mut Half, &mut Half) {
        match self.end {
            End::A => (&mut self.pipe.ba, &mut self.pipe.ab),
            End::B => (&mut self.pipe.ab, &mut self.pipe.ba),
        }
    }
}

impl ChannelIo for PipeEnd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        let (rx, _) = self.halves();
        if rx.reset.is_some() {
            return Err(ChannelError::Closed);
        }
        if rx.buf.is_empty() {
            return if rx.finished {
                Ok(0)
            } else {
                Err(ChannelError::WouldBlock)
            };
        }
        let n = buf.len().min(rx.buf.len());
        for (d, s) in buf.iter_mut().zip(rx.buf.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }

    fn write(&mut self, data: &[u8]) -> Result<usize, ChannelError> {
        let (rx, tx) = self.halves();
        if rx.reset.is_some() || tx.reset.is_some() {
            return Err(ChannelError::Closed);
        }
        if tx.finished {
            return Err(ChannelError::Finished);
        }
        let n = data.len().min(tx.cap.saturating_sub(tx.buf.len()));
        if n == 0 && !data.is_empty() {
            return Err(ChannelError::WouldBlock);
        }
        tx.buf.extend(data.get(..n).unwrap_or(&[]));
        Ok(n)
    }

    fn write_capacity(&self) -> usize {
        let tx = match self.end {
            End::A => &self.pipe.ab,
            End::B => &self.pipe.ba,
        };
        if tx.finished || tx.reset.is_some() {
            0
        } else {
            tx.cap.saturating_sub(tx.buf.len())
        }
    }

    fn finish(&mut self) -> Result<(), ChannelError> {
        let (_, tx) = self.halves();
        tx.finished = true;
        Ok(())
    }

    fn reset(&mut self, code: u16) {
        let (_, tx) = self.halves();
        tx.reset = Some(code);
        tx.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_carries_bytes_both_ways_with_backpressure_and_eof() {
        let mut p = Pipe::new(4);
        assert_eq!(p.end(End::A).write(b"hello"), Ok(4));
        assert_eq!(p.end(End::A).write(b"o"), Err(ChannelError::WouldBlock));
        let mut buf = [0u8; 8];
        assert_eq!(p.end(End::B).read(&mut buf), Ok(4));
        assert_eq!(&buf[..4], b"hell");
        assert_eq!(p.end(End::B).read(&mut buf), Err(ChannelError::WouldBlock));
        p.end(End::A).finish().unwrap();
        assert_eq!(p.end(End::B).read(&mut buf), Ok(0));
        assert_eq!(p.end(End::B).write(b"x"), Ok(1));
        p.end(End::B).reset(7);
        assert_eq!(p.reset_seen_by(End::A), Some(7));
        assert_eq!(p.end(End::A).read(&mut buf), Err(ChannelError::Closed));
    }
}
