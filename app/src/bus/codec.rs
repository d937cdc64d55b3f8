//! Length-prefixed messages over a [`ChannelIo`] byte stream.
//!
//! A frame is `len: u32` big-endian (`1..=cap`) followed by `len` bytes,
//! normally one postcard-encoded message ([`encode`], [`decode`]). The reader
//! checks `len` as soon as the 4 prefix bytes are in, before buffering
//! anything, and never reads past the end of the current frame, so a service
//! can switch to raw stream bytes right after a frame (the blob data plane
//! does). Each side holds at most one frame: memory is bounded by `cap`.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use dsb_transports::mux::ChannelError;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::channel::ChannelIo;

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Largest `cap` a reader or writer accepts (anything larger is clamped).
pub const FRAME_CAP_LIMIT: usize = 1 << 20;
/// Bytes of an oversized frame a skipping reader keeps (enough for one
/// varint id at the start of the message).
pub const SKIP_HEAD: usize = 8;

/// Channel RESET codes the services use (application range, below the mux's
/// reserved `0xFF00..`).
pub mod reset_code {
    /// The peer sent bytes the service cannot parse (bad frame, bad message).
    pub const MALFORMED: u16 = 0x0100;
    /// A frame longer than the receiver's cap that it cannot skip.
    pub const TOO_LARGE: u16 = 0x0101;
    /// No progress before the service's deadline.
    pub const TIMEOUT: u16 = 0x0102;
    /// The sender gave up (e.g. a client after an early error answer).
    pub const ABORTED: u16 = 0x0103;
}

/// Why a frame could not be read or written. After any error but
/// [`CodecError::Busy`] the reader/writer is done (it keeps returning it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// A length prefix above the cap (checked before buffering).
    TooLarge { len: u32 },
    /// A zero length prefix, or a message that does not decode exactly.
    Malformed,
    /// The peer finished in the middle of a frame.
    Truncated,
    /// The peer finished cleanly at a frame boundary.
    Eof,
    /// The channel is gone (reset, session closed).
    Closed,
    /// The writer still holds an unsent frame.
    Busy,
}

impl CodecError {
    /// Stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            CodecError::TooLarge { .. } => "too-large",
            CodecError::Malformed => "malformed",
            CodecError::Truncated => "truncated",
            CodecError::Eof => "eof",
            CodecError::Closed => "channel-closed",
            CodecError::Busy => "busy",
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Encodes one message with postcard.
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(msg).map_err(|_| CodecError::Malformed)
}

/// Decodes one message with postcard; trailing bytes are [`CodecError::Malformed`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(CodecError::Malformed),
    }
}

/// What [`MsgReader::poll_or_skip`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// A whole frame's payload.
    Msg(Vec<u8>),
    /// An oversized frame was discarded; `head` holds its first bytes.
    Skipped { len: u32, head: Head },
}

/// The first (up to [`SKIP_HEAD`]) bytes of a skipped frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    bytes: [u8; SKIP_HEAD],
    len: u8,
}

impl Head {
    /// The bytes kept.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

#[derive(Debug)]
enum RState {
    /// Reading the prefix; `got` of 4 bytes in.
    Prefix { got: usize },
    /// Reading a payload of `body.len()` bytes; `got` in.
    Body { body: Vec<u8>, got: usize },
    /// Discarding an oversized payload.
    Skip { len: u32, left: usize, head: Head },
    /// Done: returns this error from now on.
    Failed(CodecError),
}

/// Reassembles one frame at a time from a channel.
#[derive(Debug)]
pub struct MsgReader {
    cap: usize,
    prefix: [u8; LEN_PREFIX],
    state: RState,
    frames: u64,
    skipped: u64,
}

impl MsgReader {
    /// A reader accepting payloads of `1..=cap` bytes (cap clamped to
    /// `1..=FRAME_CAP_LIMIT`).
    pub fn new(cap: usize) -> MsgReader {
        MsgReader {
            cap: cap.clamp(1, FRAME_CAP_LIMIT),
            prefix: [0; LEN_PREFIX],
            state: RState::Prefix { got: 0 },
            frames: 0,
            skipped: 0,
        }
    }

    /// Largest payload accepted.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes held right now (never more than `cap + LEN_PREFIX`).
    pub fn buffered(&self) -> usize {
        match &self.state {
            RState::Prefix { got } => *got,
            RState::Body { got, .. } => LEN_PREFIX + got,
            RState::Skip { head, .. } => LEN_PREFIX + usize::from(head.len),
            RState::Failed(_) => 0,
        }
    }

    /// Memory the reader owns (the payload buffer is allocated at its
    /// announced length, at most `cap`).
    pub fn allocated(&self) -> usize {
        match &self.state {
            RState::Body { body, .. } => body.capacity(),
            _ => 0,
        }
    }

    /// True between frames (nothing of the next frame read yet).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, RState::Prefix { got: 0 })
    }

    /// Frames delivered so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Oversized frames skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Reads until one frame is complete (`Ok(Some)`), the channel has
    /// nothing more for now (`Ok(None)`) or an error. An oversized prefix is
    /// [`CodecError::TooLarge`] and ends the reader.
    pub fn poll<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        match self.step(io, false)? {
            Some(Read::Msg(m)) => Ok(Some(m)),
            Some(Read::Skipped { len, .. }) => Err(self.fail(CodecError::TooLarge { len })),
            None => Ok(None),
        }
    }

    /// Like [`MsgReader::poll`], but an oversized frame is read and
    /// discarded (keeping its first [`SKIP_HEAD`] bytes) and reported as
    /// [`Read::Skipped`]; the stream stays usable.
    pub fn poll_or_skip<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
    ) -> Result<Option<Read>, CodecError> {
        self.step(io, true)
    }

    fn fail(&mut self, e: CodecError) -> CodecError {
        self.state = RState::Failed(e);
        e
    }

    fn step<C: ChannelIo + ?Sized>(
        &mut self,
        io: &mut C,
        skip: bool,
    ) -> Result<Option<Read>, CodecError> {
        loop {
            match &mut self.state {
                RState::Failed(e) => return Err(*e),
                RState::Prefix { got } => {
                    let at = *got;
                    let dst = self.prefix.get_mut(at..).unwrap_or(&mut []);
                    match io.read(dst) {
                        Ok(0) => {
                            let e = if at == 0 {
                                CodecError::Eof
                            } else {
                                CodecError::Truncated
                            };
                            return Err(self.fail(e));
                        }
                        Ok(n) => *got = at + n,
                        Err(ChannelError::WouldBlock) => return Ok(None),
                        Err(_) => return Err(self.fail(CodecError::Closed)),
                    }
                    if *got < LEN_PREFIX {
                        continue;
                    }
                    let len = u32::from_be_bytes(self.prefix);
                    let n = len as usize;
                    if len == 0 {
                        return Err(self.fail(CodecError::Malformed));
                    }
                    if n > self.cap {
                        if !skip {
                            return Err(self.fail(CodecError::TooLarge { len }));
                        }
                        self.state = RState::Skip {
                            len,
                            left: n,
                            head: Head::default(),
                        };
                        continue;
                    }
                    self.state = RState::Body {
                        body: vec![0; n],
                        got: 0,
                    };
                }
                RState::Body { body, got } => {
                    let at = *got;
                    let dst = body.get_mut(at..).unwrap_or(&mut []);
                    if dst.is_empty() {
                        let msg = core::mem::take(body);
                        self.state = RState::Prefix { got: 0 };
                        self.frames += 1;
                        return Ok(Some(Read::Msg(msg)));
                    }
                    match io.read(dst) {
                        Ok(0) => return Err(self.fail(CodecError::Truncated)),
                        Ok(n) => *got = at + n,
                        Err(ChannelError::WouldBlock) => return Ok(None),
                        Err(_) => return Err(self.fail(CodecError::Closed)),
                    }
                }
                RState::Skip { len, left, head } => {
                    if *left == 0 {
                        let (len, head) = (*len, *head);
                        self.state = RState::Prefix { got: 0 };
                        self.skipped += 1;
                        return Ok(Some(Read::Skipped { len, head }));
                    }
                    let mut scratch = [0u8; 512];
                    let want = (*left).min(scratch.len());
                    let dst = scratch.get_mut(..want).unwrap_or(&mut []);
                    match io.read(dst) {
                        Ok(0) => return Err(self.fail(CodecError::Truncated)),
                        Ok(n) => {
                            for &b in dst.get(..n).unwrap_or(&[]) {
                                if let Some(slot) = head.bytes.get_mut(usize::from(head.len)) {
                                    *slot = b;
                                    head.len += 1;
                                }
                            }
                            *left -= n.min(*left);
                        }
                        Err(ChannelError::WouldBlock) => return Ok(None),
                        Err(_) => return Err(self.fail(CodecError::Closed)),
                    }
                }
            }
        }
    }
}

/// Holds at most one encoded frame and writes it as the channel takes it.
#[derive(Debug)]
pub struct MsgWriter {
    cap: usize,
    frame: Vec<u8>,
    sent: usize,
    frames: u64,
}

impl MsgWriter {
    /// A writer for payloads of `1..=cap` bytes (cap clamped to
    /// `1..=FRAME_CAP_LIMIT`).
    pub fn new(cap: usize) -> MsgWriter {
        MsgWriter {
            cap: cap.clamp(1, FRAME_CAP_LIMIT),
            frame: Vec::new(),
            sent: 0,
            frames: 0,
        }
    }

    /// Largest payload accepted.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// True when no frame is waiting to be written.
    pub fn is_idle(&self) -> bool {
        self.sent >= self.frame.len()
    }

    /// Bytes still to write.
    pub fn pending(&self) -> usize {
        self.frame.len().saturating_sub(self.sent)
    }

    /// Frames fully written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Checks that `payload_len` fits a frame of this writer.
    pub fn check(&self, payload_len: usize) -> Result<(), CodecError> {
        if payload_len == 0 {
            Err(CodecError::Malformed)
        } else if payload_len > self.cap {
            Err(CodecError::TooLarge {
                len: u32::try_from(payload_len).unwrap_or(u32::MAX),
            })
        } else {
            Ok(())
        }
    }

    /// Queues one frame carrying `payload`. [`CodecError::Busy`] while the
    /// previous frame is not fully written.
    pub fn send_payload(&mut self, payload: &[u8]) -> Result<(), CodecError> {
        if !self.is_idle() {
            return Err(CodecError::Busy);
        }
        self.check(payload.len())?;
        let len = u32::try_from(payload.len()).map_err(|_| CodecError::Malformed)?;
        self.frame.clear();
        self.frame.extend_from_slice(&len.to_be_bytes());
        self.frame.extend_from_slice(payload);
        self.sent = 0;
        Ok(())
    }

    /// Encodes `msg` and queues it as one frame.
    pub fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), CodecError> {
        if !self.is_idle() {
            return Err(CodecError::Busy);
        }
        let payload = encode(msg)?;
        self.send_payload(&payload)
    }

    /// Writes as much of the frame as the channel takes. `Ok(true)` when
    /// nothing is left to write.
    pub fn flush<C: ChannelIo + ?Sized>(&mut self, io: &mut C) -> Result<bool, CodecError> {
        while !self.is_idle() {
            let rest = self.frame.get(self.sent..).unwrap_or(&[]);
            match io.write(rest) {
                Ok(0) | Err(ChannelError::WouldBlock) => return Ok(false),
                Ok(n) => self.sent += n,
                Err(_) => return Err(CodecError::Closed),
            }
        }
        if !self.frame.is_empty() {
            self.frames += 1;
            self.frame = Vec::new();
            self.sent = 0;
        }
        Ok(true)
    }
}

impl core::error::Error for CodecError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::channel::{End, Pipe};

    #[test]
    fn a_frame_goes_through_a_one_byte_pipe() {
        let mut p = Pipe::new(1);
        let mut w = MsgWriter::new(64);
        let mut r = MsgReader::new(64);
        w.send_payload(b"hello").unwrap();
        let mut got = None;
        for _ in 0..20 {
            w.flush(&mut p.end(End::A)).unwrap();
            if let Some(m) = r.poll(&mut p.end(End::B)).unwrap() {
                got = Some(m);
                break;
            }
        }
        assert_eq!(got.as_deref(), Some(&b"hello"[..]));
        assert!(w.flush(&mut p.end(End::A)).unwrap());
        assert!(r.at_boundary());
    }

    #[test]
    fn the_reader_never_reads_past_its_frame() {
        let mut p = Pipe::new(64);
        let mut w = MsgWriter::new(8);
        w.send_payload(b"ab").unwrap();
        w.flush(&mut p.end(End::A)).unwrap();
        p.end(End::A).write(b"raw").unwrap();
        let mut r = MsgReader::new(8);
        assert_eq!(r.poll(&mut p.end(End::B)), Ok(Some(b"ab".to_vec())));
        let mut rest = [0u8; 8];
        assert_eq!(p.end(End::B).read(&mut rest), Ok(3));
        assert_eq!(&rest[..3], b"raw");
    }

    #[test]
    fn a_busy_writer_refuses_a_second_frame() {
        let mut w = MsgWriter::new(8);
        w.send_payload(b"a").unwrap();
        assert_eq!(w.send_payload(b"b"), Err(CodecError::Busy));
        assert_eq!(w.send_payload(b""), Err(CodecError::Busy));
        assert_eq!(
            MsgWriter::new(8).send_payload(b""),
            Err(CodecError::Malformed)
        );
        assert_eq!(
            MsgWriter::new(2).send_payload(b"abc"),
            Err(CodecError::TooLarge { len: 3 })
        );
    }

    #[test]
    fn decode_refuses_trailing_bytes() {
        let mut bytes = encode(&7u32).unwrap();
        assert_eq!(decode::<u32>(&bytes), Ok(7));
        bytes.push(0);
        assert_eq!(decode::<u32>(&bytes), Err(CodecError::Malformed));
    }
}
