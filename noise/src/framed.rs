//! A [`Session`] over a reliable byte stream: plaintext messages in, framed
//! ciphertext bytes out, and back.
//!
//! Any framing error (oversized, zero-length) or decryption failure ends the
//! session: a stream with implicit nonces cannot be resynchronised.

use crate::frame::{write_frame_with, FrameDecoder, FRAME_HEADER_LEN};
use crate::xk::{MAX_MESSAGE_LEN, TAG_LEN};
use crate::{NoiseError, Session};

/// Bytes on the wire for a plaintext of `plain_len` bytes.
pub const fn sealed_len(plain_len: usize) -> usize {
    FRAME_HEADER_LEN + plain_len + TAG_LEN
}

/// A session plus the stream framing.
#[derive(Debug)]
pub struct FramedSession {
    session: Session,
    decoder: FrameDecoder,
}

impl FramedSession {
    /// Frame `session` with a per-frame limit of `max_message` bytes
    /// (clamped to `TAG_LEN + 1 ..= 65535`; both peers must agree).
    pub fn new(session: Session, max_message: usize) -> Self {
        let max = max_message.clamp(TAG_LEN + 1, MAX_MESSAGE_LEN);
        FramedSession {
            session,
            decoder: FrameDecoder::new(max),
        }
    }

    /// Largest plaintext per message (`max_message - 16`).
    pub fn max_plaintext(&self) -> usize {
        self.decoder.max_message().saturating_sub(TAG_LEN)
    }

    /// The session (peer id, keys, state).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Mutable access to the session.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Give the session back.
    pub fn into_session(self) -> Session {
        self.session
    }

    /// Encrypt `plain` and write one frame into `out`
    /// (`sealed_len(plain.len())` bytes); returns the bytes written.
    pub fn seal(&mut self, plain: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        if self.session.is_dead() {
            return Err(NoiseError::SessionDead);
        }
        if plain.len() > self.max_plaintext() {
            return Err(NoiseError::Oversized);
        }
        let out = out
            .get_mut(..sealed_len(plain.len()))
            .ok_or(NoiseError::BufferTooSmall)?;
        let session = &mut self.session;
        write_frame_with(out, |body| session.encrypt(plain, body))
    }

    /// Take stream bytes; returns `(consumed, Some(plaintext_len))` when a
    /// message was decrypted into `out`. `out` must hold `max_plaintext()`
    /// bytes (checked before anything is consumed). Call again with the
    /// unconsumed rest of `input`.
    pub fn open(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, Option<usize>), NoiseError> {
        if self.session.is_dead() {
            return Err(NoiseError::SessionDead);
        }
        if out.len() < self.max_plaintext() {
            return Err(NoiseError::BufferTooSmall);
        }
        let (used, frame) = match self.decoder.feed(input) {
            Ok(r) => r,
            Err(e) => {
                self.session.kill();
                return Err(e);
            }
        };
        let Some(frame) = frame else {
            return Ok((used, None));
        };
        let n = self.session.decrypt(frame, out)?;
        Ok((used, Some(n)))
    }

    /// Call when the stream closed: `Truncated` if a frame was cut short.
    pub fn finish(&self) -> Result<(), NoiseError> {
        self.decoder.finish()
    }
}
