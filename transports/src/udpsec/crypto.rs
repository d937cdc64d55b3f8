//! Packet protection: ChaCha20-Poly1305 with one key per direction, a nonce
//! derived from the packet number, the 26-byte header as associated data,
//! and a sliding replay window.
//!
//! Nonce layout (96 bits): bytes 0..4 are zero, bytes 4..12 are the packet
//! number as a little-endian `u64` (the WireGuard layout). A key is used for
//! one direction only and packet numbers are never reused, so a nonce never
//! repeats under one key.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use super::packet::TAG_LEN;
use super::stats::DropReason;

/// Width of the replay window in packet numbers.
pub const REPLAY_WINDOW: u32 = 2048;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// The AEAD nonce for packet number `pn`.
pub fn nonce(pn: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&u64::from(pn).to_le_bytes());
    n
}

/// One direction's packet key (zeroized on drop by the cipher).
pub struct PacketKey {
    aead: ChaCha20Poly1305,
}

impl core::fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PacketKey(<redacted>)")
    }
}

impl PacketKey {
    /// A key from 32 raw bytes (from the Noise split).
    pub fn new(key: &[u8; 32]) -> Self {
        PacketKey {
            aead: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// Encrypt `buf[..plain_len]` in place and append the tag; returns the
    /// ciphertext length, or `None` if `buf` has no room for the tag.
    pub fn seal(&self, pn: u32, header: &[u8], buf: &mut [u8], plain_len: usize) -> Option<usize> {
        let total = plain_len.checked_add(TAG_LEN)?;
        let buf = buf.get_mut(..total)?;
        let (plain, tag_out) = buf.split_at_mut(plain_len);
        let n = nonce(pn);
        let tag = self
            .aead
            .encrypt_in_place_detached(Nonce::from_slice(&n), header, plain)
            .ok()?;
        tag_out.copy_from_slice(&tag);
        Some(total)
    }

    /// Authenticate and decrypt `buf` (ciphertext + tag) in place; returns the plaintext.
    pub fn open<'b>(
        &self,
        pn: u32,
        header: &[u8],
        buf: &'b mut [u8],
    ) -> Result<&'b [u8], DropReason> {
        let plain_len = buf
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(DropReason::Malformed)?;
        let (ct, tag) = buf.split_at_mut(plain_len);
        let n = nonce(pn);
        self.aead
            .decrypt_in_place_detached(Nonce::from_slice(&n), header, ct, Tag::from_slice(tag))
            .map_err(|_| DropReason::AuthFailed)?;
        Ok(ct)
    }
}

/// Sliding window of the last [`REPLAY_WINDOW`] packet numbers received.
///
/// `check` before decryption is cheap and stateless; `mark` after successful
/// authentication records the packet, so forged packets never move the window.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    top: Option<u32>,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// Nothing received yet.
    pub const fn new() -> Self {
        ReplayWindow {
            top: None,
            bits: [0; WORDS],
        }
    }

    fn slot(pn: u32) -> (usize, u64) {
        let i = pn % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Would `pn` be accepted?
    pub fn check(&self, pn: u32) -> Result<(), DropReason> {
        let Some(top) = self.top else {
            return Ok(());
        };
        if pn > top {
            return Ok(());
        }
        if top - pn >= REPLAY_WINDOW {
            return Err(DropReason::TooOld);
        }
        let (w, b) = Self::slot(pn);
        if self.bits.get(w).is_some_and(|x| x & b != 0) {
            return Err(DropReason::Replay);
        }
        Ok(())
    }

    /// Record `pn` (call only after `check` passed and the packet authenticated).
    pub fn mark(&mut self, pn: u32) {
        match self.top {
            Some(top) if pn <= top => {}
            Some(top) => {
                let advance = pn - top;
                if advance >= REPLAY_WINDOW {
                    self.bits = [0; WORDS];
                } else {
                    for q in top + 1..=pn {
                        let (w, b) = Self::slot(q);
                        if let Some(x) = self.bits.get_mut(w) {
                            *x &= !b;
                        }
                    }
                }
                self.top = Some(pn);
            }
            None => self.top = Some(pn),
        }
        let (w, b) = Self::slot(pn);
        if let Some(x) = self.bits.get_mut(w) {
            *x |= b;
        }
    }

    /// Highest packet number recorded.
    pub fn top(&self) -> Option<u32> {
        self.top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_zero_prefix_then_le_pn() {
        assert_eq!(nonce(0x0102_0304), [0, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let k = PacketKey::new(&[7u8; 32]);
        let hdr = [1u8; 26];
        let mut buf = [0u8; 64];
        buf[..5].copy_from_slice(b"hello");
        let n = k.seal(9, &hdr, &mut buf, 5).unwrap();
        assert_eq!(n, 5 + TAG_LEN);
        let mut c = buf;
        assert_eq!(k.open(9, &hdr, &mut c[..n]).unwrap(), b"hello");
        let mut c = buf;
        assert_eq!(
            k.open(10, &hdr, &mut c[..n]).unwrap_err(),
            DropReason::AuthFailed
        );
        let mut c = buf;
        let mut h2 = hdr;
        h2[20] ^= 1;
        assert_eq!(
            k.open(9, &h2, &mut c[..n]).unwrap_err(),
            DropReason::AuthFailed
        );
        let mut c = buf;
        c[2] ^= 0x80;
        assert_eq!(
            k.open(9, &hdr, &mut c[..n]).unwrap_err(),
            DropReason::AuthFailed
        );
    }

    #[test]
    fn replay_window_rejects_duplicates_and_old_packets() {
        let mut w = ReplayWindow::new();
        for pn in [0u32, 1, 5, 3] {
            w.check(pn).unwrap();
            w.mark(pn);
        }
        assert_eq!(w.check(3), Err(DropReason::Replay));
        assert_eq!(w.check(5), Err(DropReason::Replay));
        assert!(w.check(2).is_ok());
        assert!(w.check(4).is_ok());
        w.mark(5000);
        assert_eq!(w.check(5), Err(DropReason::TooOld));
        assert!(w.check(5000 - 2047).is_ok());
        assert_eq!(w.check(5000 - 2048), Err(DropReason::TooOld));
        assert_eq!(w.check(5000), Err(DropReason::Replay));
        // slots reused after the window moved are clear again
        w.mark(5001);
        assert!(w.check(5001 - 2047).is_ok());
    }
}
