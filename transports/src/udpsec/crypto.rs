//! Packet protection: ChaCha20-Poly1305 (RFC 8439 §2.8) with one key per
//! direction, a nonce derived from the packet number, the 26-byte header as
//! associated data, and a sliding replay window.
//!
//! Nonce layout (96 bits): bytes 0..4 are zero, bytes 4..12 are the packet
//! number as a little-endian `u64` (the WireGuard layout). A key is used for
//! one direction only and packet numbers are never reused, so a nonce never
//! repeats under one key.
//!
//! The AEAD is composed here from the `chacha20` and `poly1305` crates that
//! `chacha20poly1305` 0.10 itself uses (same versions, nothing new in the
//! image), byte-for-byte the same construction (a test checks it against
//! `chacha20poly1305`). The difference is cost: the whole keystream of a
//! packet — block 0 for the Poly1305 key, blocks 1.. for the payload — comes
//! from one call, in whole groups of [`KS_GROUP_BLOCKS`] blocks, where
//! `chacha20poly1305` asks for the key block alone and for the last blocks
//! one at a time (the AVX2 backend computes four blocks for every such call:
//! 8 four-block passes per 1200-byte packet instead of 5). Opening checks
//! the tag on the ciphertext where it lies and then decrypts into the
//! caller's buffer, so the datagram is never copied first.
//!
//! With the `ring` feature (host builds only: `dsb`, the transport bench;
//! never the image, whose crypto stays RustCrypto), `seal`/`open` run ring's
//! ChaCha20-Poly1305 instead, the same AEAD with the same nonce and AAD (a
//! test checks both against `chacha20poly1305` byte for byte). It is
//! BoringSSL's vectorised assembly: 0.70 against 1.81 ns per byte for one
//! 1147-byte seal on this machine kind (RustCrypto with its portable
//! Poly1305), which halves udp-sec's CPU per byte on the host (issue 14).
//! ring does not zeroize its key schedule on drop; the portable key does.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use zeroize::Zeroize;

use super::packet::{MAX_PAYLOAD_LEN, MAX_PLAINTEXT_LEN, TAG_LEN};
use super::stats::DropReason;

/// Width of the replay window in packet numbers.
pub const REPLAY_WINDOW: u32 = 2048;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

const BLOCK: usize = 64;
/// Keystream is produced in groups of this many blocks: 4 where the SIMD
/// backends compute four blocks at a time, 1 in the image (soft backend).
pub const KS_GROUP_BLOCKS: usize = if cfg!(target_os = "none") { 1 } else { 4 };
/// Largest keystream one packet needs: the key block plus the payload,
/// rounded up to whole groups.
const MAX_KS: usize =
    (1 + MAX_PAYLOAD_LEN.div_ceil(BLOCK)).div_ceil(KS_GROUP_BLOCKS) * KS_GROUP_BLOCKS * BLOCK;

/// The AEAD nonce for packet number `pn`.
pub fn nonce(pn: u32) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&u64::from(pn).to_le_bytes());
    n
}

/// `dst = src ^ ks`, eight bytes at a time (`src`, `ks` at least as long as
/// `dst`; nothing is written otherwise).
fn xor_to(dst: &mut [u8], src: &[u8], ks: &[u8]) {
    let (Some(src), Some(ks)) = (src.get(..dst.len()), ks.get(..dst.len())) else {
        return;
    };
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    let mut k = ks.chunks_exact(8);
    for ((d, s), k) in (&mut d).zip(&mut s).zip(&mut k) {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(s);
        b.copy_from_slice(k);
        d.copy_from_slice(&(u64::from_ne_bytes(a) ^ u64::from_ne_bytes(b)).to_ne_bytes());
    }
    for ((d, s), k) in d
        .into_remainder()
        .iter_mut()
        .zip(s.remainder())
        .zip(k.remainder())
    {
        *d = s ^ k;
    }
}

/// `data ^= ks`, eight bytes at a time (`ks` at least as long as `data`;
/// nothing is changed otherwise).
fn xor_in_place(data: &mut [u8], ks: &[u8]) {
    let Some(ks) = ks.get(..data.len()) else {
        return;
    };
    let mut d = data.chunks_exact_mut(8);
    let mut k = ks.chunks_exact(8);
    for (d, k) in (&mut d).zip(&mut k) {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(d);
        b.copy_from_slice(k);
        d.copy_from_slice(&(u64::from_ne_bytes(a) ^ u64::from_ne_bytes(b)).to_ne_bytes());
    }
    for (d, k) in d.into_remainder().iter_mut().zip(k.remainder()) {
        *d ^= k;
    }
}

/// One direction's packet key (zeroized on drop).
pub struct PacketKey {
    key: [u8; 32],
    #[cfg(feature = "ring")]
    ring: Option<ring::aead::LessSafeKey>,
}

impl Drop for PacketKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
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
            key: *key,
            #[cfg(feature = "ring")]
            ring: ring_key(key),
        }
    }

    /// The keystream of packet `pn` for `len` payload bytes into `ks`
    /// (block 0 first); returns the part to use.
    fn keystream<'k>(&self, pn: u32, len: usize, ks: &'k mut [u8; MAX_KS]) -> Option<&'k mut [u8]> {
        let blocks = (1 + len.div_ceil(BLOCK)).div_ceil(KS_GROUP_BLOCKS) * KS_GROUP_BLOCKS;
        let ks = ks.get_mut(..blocks * BLOCK)?;
        let mut cipher = ChaCha20::new(&self.key.into(), &nonce(pn).into());
        cipher.apply_keystream(ks);
        Some(ks)
    }

    /// Poly1305 over `aad` and `ct` as RFC 8439 §2.8 lays them out, keyed
    /// with the one-time key from keystream block 0; finalize or verify it.
    fn mac(otk: &[u8], aad: &[u8], ct: &[u8]) -> Option<Poly1305> {
        let mut mac = Poly1305::new_from_slice(otk.get(..32)?).ok()?;
        mac.update_padded(aad);
        mac.update_padded(ct);
        let mut lens = poly1305::Block::default();
        lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        lens[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
        mac.update(&[lens]);
        Some(mac)
    }

    /// Encrypt `buf[..plain_len]` in place and append the tag; returns the
    /// ciphertext length, or `None` if `buf` has no room for the tag or the
    /// payload is longer than a datagram can carry.
    pub fn seal(&self, pn: u32, header: &[u8], buf: &mut [u8], plain_len: usize) -> Option<usize> {
        self.seal_with(Backend::BUILD, pn, header, buf, plain_len)
    }

    /// Authenticate `sealed` (ciphertext + tag, as received) and decrypt it
    /// into `out`; returns the plaintext (`out[..sealed.len() - 16]`). When
    /// the tag does not verify, `out[..sealed.len() - 16]` is left zeroed
    /// (no unauthenticated plaintext) and the rest of `out` untouched.
    pub fn open<'o>(
        &self,
        pn: u32,
        header: &[u8],
        sealed: &[u8],
        out: &'o mut [u8],
    ) -> Result<&'o [u8], DropReason> {
        self.open_with(Backend::BUILD, pn, header, sealed, out)
    }

    fn seal_with(
        &self,
        backend: Backend,
        pn: u32,
        header: &[u8],
        buf: &mut [u8],
        plain_len: usize,
    ) -> Option<usize> {
        if plain_len > MAX_PLAINTEXT_LEN {
            return None;
        }
        let total = plain_len.checked_add(TAG_LEN)?;
        let (data, tag_out) = buf.get_mut(..total)?.split_at_mut(plain_len);
        let tag = match backend {
            Backend::Portable => self.seal_portable(pn, header, data)?,
            #[cfg(feature = "ring")]
            Backend::Ring => match &self.ring {
                Some(key) => seal_ring(key, pn, header, data)?,
                None => self.seal_portable(pn, header, data)?,
            },
        };
        tag_out.copy_from_slice(&tag);
        Some(total)
    }

    fn open_with<'o>(
        &self,
        backend: Backend,
        pn: u32,
        header: &[u8],
        sealed: &[u8],
        out: &'o mut [u8],
    ) -> Result<&'o [u8], DropReason> {
        if sealed.len() > MAX_PAYLOAD_LEN {
            return Err(DropReason::Oversized);
        }
        let plain_len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(DropReason::Malformed)?;
        let (ct, tag) = sealed.split_at(plain_len);
        let out = out.get_mut(..plain_len).ok_or(DropReason::Oversized)?;
        let r = match backend {
            Backend::Portable => self.open_portable(pn, header, ct, tag, out),
            #[cfg(feature = "ring")]
            Backend::Ring => match &self.ring {
                Some(key) => open_ring(key, pn, header, ct, tag, out),
                None => self.open_portable(pn, header, ct, tag, out),
            },
        };
        match r {
            Ok(()) => Ok(&*out),
            Err(e) => {
                out.fill(0);
                Err(e)
            }
        }
    }

    /// Encrypt `data` in place with RustCrypto's ChaCha20; its Poly1305 tag.
    fn seal_portable(&self, pn: u32, header: &[u8], data: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let mut ks = [0u8; MAX_KS];
        let tag = self.keystream(pn, data.len(), &mut ks).and_then(|ks| {
            let (otk, stream) = ks.split_at(BLOCK);
            xor_in_place(data, stream.get(..data.len())?);
            Some(Self::mac(otk, header, data)?.finalize())
        });
        ks[..BLOCK].zeroize();
        Some(tag?.into())
    }

    /// Check `tag` over `ct` (RustCrypto's Poly1305, constant time) and only
    /// then decrypt `ct` into `out` (`out.len() == ct.len()`).
    fn open_portable(
        &self,
        pn: u32,
        header: &[u8],
        ct: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), DropReason> {
        let mut ks = [0u8; MAX_KS];
        let r = match self.keystream(pn, ct.len(), &mut ks) {
            Some(ks) => {
                let (otk, stream) = ks.split_at(BLOCK);
                match (Self::mac(otk, header, ct), stream.get(..ct.len())) {
                    (Some(mac), Some(stream)) => {
                        match mac.verify(poly1305::Block::from_slice(tag)) {
                            Ok(()) => {
                                xor_to(out, ct, stream);
                                Ok(())
                            }
                            Err(_) => Err(DropReason::AuthFailed),
                        }
                    }
                    _ => Err(DropReason::Oversized),
                }
            }
            None => Err(DropReason::Oversized),
        };
        ks[..BLOCK].zeroize();
        r
    }
}

/// Which AEAD code seals and opens: the same construction either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// RustCrypto's `chacha20` and `poly1305` (the image's; with `ring`,
    /// the tests' and the fallback's).
    #[cfg_attr(all(feature = "ring", not(test)), allow(dead_code))]
    Portable,
    /// ring's ChaCha20-Poly1305 (host builds with the `ring` feature).
    #[cfg(feature = "ring")]
    Ring,
}

impl Backend {
    /// What `seal` and `open` use in this build.
    #[cfg(feature = "ring")]
    const BUILD: Backend = Backend::Ring;
    #[cfg(not(feature = "ring"))]
    const BUILD: Backend = Backend::Portable;
}

/// Encrypt `data` in place with ring; its tag.
#[cfg(feature = "ring")]
fn seal_ring(
    key: &ring::aead::LessSafeKey,
    pn: u32,
    header: &[u8],
    data: &mut [u8],
) -> Option<[u8; TAG_LEN]> {
    use ring::aead::{Aad, Nonce};
    let nonce = Nonce::assume_unique_for_key(nonce(pn));
    let tag = key
        .seal_in_place_separate_tag(nonce, Aad::from(header), data)
        .ok()?;
    tag.as_ref().try_into().ok()
}

/// Decrypt `ct` into `out` with ring, which checks `tag` first (ring opens
/// in place, so `ct` is copied into `out` before).
#[cfg(feature = "ring")]
fn open_ring(
    key: &ring::aead::LessSafeKey,
    pn: u32,
    header: &[u8],
    ct: &[u8],
    tag: &[u8],
    out: &mut [u8],
) -> Result<(), DropReason> {
    use ring::aead::{Aad, Nonce, Tag};
    let tag = Tag::try_from(tag).map_err(|_| DropReason::Malformed)?;
    out.copy_from_slice(ct);
    let nonce = Nonce::assume_unique_for_key(nonce(pn));
    key.open_in_place_separate_tag(nonce, Aad::from(header), tag, out, 0..)
        .map(|_| ())
        .map_err(|_| DropReason::AuthFailed)
}

/// ring's key for the same 32 bytes. ChaCha20-Poly1305 takes every 32-byte
/// key, so this is always `Some`; were it not, the portable path serves.
#[cfg(feature = "ring")]
fn ring_key(key: &[u8; 32]) -> Option<ring::aead::LessSafeKey> {
    ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key)
        .ok()
        .map(ring::aead::LessSafeKey::new)
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
    use alloc::boxed::Box;

    #[test]
    fn nonce_is_zero_prefix_then_le_pn() {
        assert_eq!(nonce(0x0102_0304), [0, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0]);
    }

    type Seal = Box<dyn Fn(&PacketKey, u32, &[u8], &mut [u8], usize) -> Option<usize>>;
    type Open = Box<
        dyn for<'o> Fn(&PacketKey, u32, &[u8], &[u8], &'o mut [u8]) -> Result<&'o [u8], DropReason>,
    >;

    /// Every backend this build has, and the public pair: each must give
    /// the same bytes whichever build runs the tests.
    fn backends() -> alloc::vec::Vec<(&'static str, Seal, Open)> {
        #[allow(unused_mut)] // only `ring` builds push a second
        let mut all = alloc::vec![Backend::Portable];
        #[cfg(feature = "ring")]
        all.push(Backend::Ring);
        let mut v: alloc::vec::Vec<(&'static str, Seal, Open)> = alloc::vec![(
            "public",
            Box::new(PacketKey::seal),
            Box::new(|k: &PacketKey, pn, h: &[u8], s: &[u8], o| k.open(pn, h, s, o)),
        )];
        for b in all {
            let name = if b == Backend::Portable {
                "portable"
            } else {
                "ring"
            };
            v.push((
                name,
                Box::new(move |k: &PacketKey, pn, h: &[u8], buf: &mut [u8], len| {
                    k.seal_with(b, pn, h, buf, len)
                }),
                Box::new(move |k: &PacketKey, pn, h: &[u8], s: &[u8], o| {
                    k.open_with(b, pn, h, s, o)
                }),
            ));
        }
        v
    }

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        for (name, seal, open) in backends() {
            let k = PacketKey::new(&[7u8; 32]);
            let hdr = [1u8; 26];
            let mut buf = [0u8; 64];
            buf[..5].copy_from_slice(b"hello");
            let n = seal(&k, 9, &hdr, &mut buf, 5).unwrap();
            assert_eq!(n, 5 + TAG_LEN, "{name}");
            let mut out = [0u8; 64];
            assert_eq!(open(&k, 9, &hdr, &buf[..n], &mut out).unwrap(), b"hello");
            // another packet number, header or ciphertext: the tag fails
            let mut h2 = hdr;
            h2[20] ^= 1;
            let mut c = buf;
            c[2] ^= 0x80;
            for (pn, h, sealed) in [
                (10, &hdr, &buf[..n]),
                (9, &h2, &buf[..n]),
                (9, &hdr, &c[..n]),
            ] {
                let r = open(&k, pn, h, sealed, &mut out);
                assert_eq!(r, Err(DropReason::AuthFailed), "{name} pn {pn}");
            }
            // nothing is decrypted when the tag does not verify: the
            // plaintext span is zeroed, the rest untouched
            let mut out = [0xAAu8; 64];
            let _ = open(&k, 9, &hdr, &c[..n], &mut out);
            assert!(out[..5].iter().all(|&b| b == 0), "{name}");
            assert!(out[5..].iter().all(|&b| b == 0xAA), "{name}");
            // too short for a tag, too long for a datagram
            assert_eq!(
                open(&k, 9, &hdr, &c[..15], &mut out),
                Err(DropReason::Malformed)
            );
        }
        let k = PacketKey::new(&[7u8; 32]);
        let mut big = [0u8; MAX_PAYLOAD_LEN + 64];
        assert_eq!(k.seal(1, &[], &mut big, MAX_PLAINTEXT_LEN + 1), None);
        let mut out = [0u8; MAX_PAYLOAD_LEN + 64];
        assert_eq!(
            k.open(1, &[], &big[..MAX_PAYLOAD_LEN + 1], &mut out),
            Err(DropReason::Oversized)
        );
    }

    #[test]
    fn same_bytes_as_chacha20poly1305_at_every_length() {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit as _};
        use chacha20poly1305::{ChaCha20Poly1305, Nonce};
        let key = [0x42u8; 32];
        let ours = PacketKey::new(&key);
        let reference = ChaCha20Poly1305::new(&key.into());
        let hdr: [u8; 26] = core::array::from_fn(|i| i as u8);
        let mut out = [0u8; MAX_PAYLOAD_LEN];
        for (name, seal, open) in backends() {
            for len in (0..=MAX_PLAINTEXT_LEN)
                .step_by(7)
                .chain([1, 63, 64, 65, MAX_PLAINTEXT_LEN])
            {
                let pn = len as u32 * 3 + 1;
                let plain: alloc::vec::Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
                let mut a = [0u8; MAX_PAYLOAD_LEN];
                a[..len].copy_from_slice(&plain);
                let n = seal(&ours, pn, &hdr, &mut a, len).unwrap();
                let mut b = plain.clone();
                let tag = reference
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce(pn)), &hdr, &mut b)
                    .unwrap();
                assert_eq!(&a[..len], &b[..], "{name} ciphertext, len {len}");
                assert_eq!(&a[len..n], &tag[..], "{name} tag, len {len}");
                assert_eq!(
                    open(&ours, pn, &hdr, &a[..n], &mut out).unwrap(),
                    &plain[..]
                );
            }
        }
    }

    #[test]
    fn rfc8439_aead_test_vector() {
        // RFC 8439 §2.8.2, with our nonce layout replaced by the vector's.
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let mut ks = [0u8; MAX_KS];
        let blocks = (1 + plain.len().div_ceil(BLOCK)).div_ceil(KS_GROUP_BLOCKS) * KS_GROUP_BLOCKS;
        let mut c = ChaCha20::new(&key.into(), &nonce.into());
        c.apply_keystream(&mut ks[..blocks * BLOCK]);
        let mut ct = *plain;
        xor_in_place(&mut ct, &ks[BLOCK..]);
        assert_eq!(
            &ct[..16],
            &[
                0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef,
                0x7e, 0xc2
            ]
        );
        let tag = PacketKey::mac(&ks[..BLOCK], &aad, &ct).unwrap().finalize();
        assert_eq!(
            &tag[..],
            &[
                0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60,
                0x06, 0x91
            ]
        );
        // a keystream longer than the data is cut to the data's length
        let mut again = *plain;
        let mut c2 = ChaCha20::new(&key.into(), &nonce.into());
        let mut ks2 = [0u8; 512];
        c2.apply_keystream(&mut ks2);
        xor_in_place(&mut again, &ks2[BLOCK..]);
        assert_eq!(again, ct);
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
