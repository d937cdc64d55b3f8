//! Length-prefixed framing of Noise messages over a reliable byte stream.
//!
//! A frame is a 2-byte big-endian length `n` followed by `n` bytes (one Noise
//! message, handshake or transport), `1 <= n <= max_message <= 65535`.
//! [`FrameDecoder`] takes arbitrary chunks and never consumes past the end of
//! the frame it is assembling, so a caller can switch decoders (handshake ->
//! session) at a frame boundary without losing bytes. Its buffer never holds
//! more than one frame.

use alloc::vec::Vec;

use crate::xk::MAX_MESSAGE_LEN;
use crate::NoiseError;

/// Length of the frame header.
pub const FRAME_HEADER_LEN: usize = 2;

/// Write a frame whose body `fill` writes into the space after the header.
pub fn write_frame_with(
    out: &mut [u8],
    fill: impl FnOnce(&mut [u8]) -> Result<usize, NoiseError>,
) -> Result<usize, NoiseError> {
    let (header, body) = out
        .split_at_mut_checked(FRAME_HEADER_LEN)
        .ok_or(NoiseError::BufferTooSmall)?;
    let limit = body.len().min(MAX_MESSAGE_LEN);
    let n = fill(body.get_mut(..limit).ok_or(NoiseError::BufferTooSmall)?)?;
    let len = u16::try_from(n).map_err(|_| NoiseError::Oversized)?;
    header.copy_from_slice(&len.to_be_bytes());
    Ok(FRAME_HEADER_LEN + n)
}

/// Frame one message (e.g. a handshake message) into `out`.
pub fn encode_frame(message: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
    if message.is_empty() || message.len() > MAX_MESSAGE_LEN {
        return Err(NoiseError::Oversized);
    }
    write_frame_with(out, |body| {
        let dst = body
            .get_mut(..message.len())
            .ok_or(NoiseError::BufferTooSmall)?;
        dst.copy_from_slice(message);
        Ok(message.len())
    })
}

/// Reassembles frames from stream chunks.
#[derive(Debug)]
pub struct FrameDecoder {
    max_message: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// Body length of the frame being assembled, once its header is complete.
    body_len: Option<usize>,
    body: Vec<u8>,
    /// A complete frame sits in `body` and is dropped on the next call.
    delivered: bool,
    failed: Option<NoiseError>,
}

impl FrameDecoder {
    /// A decoder accepting frames of `1..=max_message` bytes (`max_message`
    /// is clamped to `1..=65535`).
    pub fn new(max_message: usize) -> Self {
        FrameDecoder {
            max_message: max_message.clamp(1, MAX_MESSAGE_LEN),
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            body_len: None,
            body: Vec::new(),
            delivered: false,
            failed: None,
        }
    }

    /// The largest frame body accepted.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Change the limit; only between frames (`BadState` otherwise).
    pub fn set_max_message(&mut self, max_message: usize) -> Result<(), NoiseError> {
        if !self.is_idle() {
            return Err(NoiseError::BadState);
        }
        self.max_message = max_message.clamp(1, MAX_MESSAGE_LEN);
        Ok(())
    }

    /// True at a frame boundary (nothing partial buffered).
    pub fn is_idle(&self) -> bool {
        self.delivered || (self.header_len == 0 && self.body_len.is_none())
    }

    /// Bytes of a partial frame held.
    pub fn buffered(&self) -> usize {
        if self.delivered {
            0
        } else {
            self.header_len + self.body.len()
        }
    }

    /// Consume bytes from `input` up to the end of the next frame. Returns how
    /// many bytes were consumed and the frame body if one completed. Call
    /// again with the rest of the input until it is used up. Errors are
    /// sticky: the stream cannot be resynchronised.
    pub fn feed<'a>(
        &'a mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<&'a [u8]>), NoiseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.delivered {
            self.body.clear();
            self.delivered = false;
        }
        let mut used = 0;
        if self.body_len.is_none() {
            while self.header_len < FRAME_HEADER_LEN {
                let Some(&b) = input.get(used) else {
                    return Ok((used, None));
                };
                if let Some(slot) = self.header.get_mut(self.header_len) {
                    *slot = b;
                }
                self.header_len += 1;
                used += 1;
            }
            let len = usize::from(u16::from_be_bytes(self.header));
            if len == 0 {
                return Err(self.fail(NoiseError::Malformed));
            }
            if len > self.max_message {
                return Err(self.fail(NoiseError::Oversized));
            }
            self.body_len = Some(len);
            self.header_len = 0;
        }
        let want = self.body_len.unwrap_or(0);
        let rest = input.get(used..).unwrap_or(&[]);
        // Zero-copy when the whole body is in this chunk and nothing is buffered.
        if self.body.is_empty() && rest.len() >= want {
            self.body_len = None;
            return Ok((used + want, rest.get(..want)));
        }
        let missing = want.saturating_sub(self.body.len());
        let take = missing.min(rest.len());
        if self.body.capacity() < want {
            self.body
                .reserve_exact(want.saturating_sub(self.body.len()));
        }
        self.body.extend_from_slice(rest.get(..take).unwrap_or(&[]));
        used += take;
        if self.body.len() == want {
            self.body_len = None;
            self.delivered = true;
            return Ok((used, Some(&self.body)));
        }
        Ok((used, None))
    }

    /// Call when the stream closed: `Truncated` if a frame was cut short.
    pub fn finish(&self) -> Result<(), NoiseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.is_idle() {
            Ok(())
        } else {
            Err(NoiseError::Truncated)
        }
    }

    fn fail(&mut self, e: NoiseError) -> NoiseError {
        self.failed = Some(e);
        self.body = Vec::new();
        e
    }
}
