//! Announce v1 on the wire: parse (structural, zero-panic, no heap), verify, emit.
//!
//! Layout (big-endian, every field at an offset computed from the lengths before it):
//!
//! ```text
//! magic "DSBA" (4) | version 0x01 (1) | id_len (1) | device id (id_len)
//! | device Ed25519 public key (32) | Noise static X25519 public key (32)
//! | tcp port u16 (0 = none) | udp-sec port u16 (0 = none)
//! | service count (1, <= 8) | { name_len (1) | name } * count
//! | seq u64 | Ed25519 signature (64)
//! ```
//!
//! The signature covers `SIGNATURE_CONTEXT || every byte before the signature`.
//! `docs/protocol.md` is the normative description.

use core::num::NonZeroU16;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::{AnnounceError, EmitError};
use crate::name::{check_name, DeviceId, ServiceName, MAX_NAME_LEN};

/// First four bytes of every announce.
pub const MAGIC: [u8; 4] = *b"DSBA";
/// The only announce version this crate speaks.
pub const VERSION: u8 = 1;
/// Hard cap on an announce datagram; anything longer is `oversized`.
pub const MAX_ANNOUNCE_LEN: usize = 512;
/// Most service names one announce may publish.
pub const MAX_SERVICES: usize = 8;
/// Domain-separation prefix of the signed message (not sent on the wire).
pub const SIGNATURE_CONTEXT: &[u8; 20] = b"dsoftbus-announce-v1";
/// Length of the Ed25519 signature trailer.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a public key field (Ed25519 or X25519).
pub const KEY_LEN: usize = 32;
/// Bytes of everything except the device id and the service list.
const FIXED_LEN: usize = 4 + 1 + 1 + KEY_LEN + KEY_LEN + 2 + 2 + 1 + 8 + SIGNATURE_LEN;
/// Shortest valid announce (1-byte id, no services): 148 bytes.
pub const MIN_ANNOUNCE_LEN: usize = FIXED_LEN + 1;
/// Longest valid announce (32-byte id, 8 services of 32 bytes): 443 bytes.
pub const MAX_VALID_ANNOUNCE_LEN: usize =
    FIXED_LEN + MAX_NAME_LEN + MAX_SERVICES * (1 + MAX_NAME_LEN);

const _: () = assert!(MAX_VALID_ANNOUNCE_LEN <= MAX_ANNOUNCE_LEN);

/// Bounded list of published services (no heap).
pub type Services = heapless::Vec<ServiceName, MAX_SERVICES>;

/// The content of an announce (everything the signature covers), owned and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRepr {
    /// Who is announcing.
    pub device_id: DeviceId,
    /// The device's Ed25519 public key (raw; checked by [`SignedAnnounce::verify`]).
    pub device_key: [u8; KEY_LEN],
    /// The device's Noise static X25519 public key.
    pub noise_static: [u8; KEY_LEN],
    /// TCP session port, if the device accepts TCP sessions.
    pub tcp_port: Option<NonZeroU16>,
    /// udp-sec session port, if the device accepts udp-sec sessions.
    pub udp_sec_port: Option<NonZeroU16>,
    /// Published service names (unique, at most [`MAX_SERVICES`]).
    pub services: Services,
    /// Sequence number, strictly increasing per device (see `docs/protocol.md`).
    pub seq: u64,
}

/// A parsed announce with its (not yet verified) signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAnnounce {
    /// The signed content.
    pub repr: AnnounceRepr,
    /// The Ed25519 signature as received.
    pub signature: [u8; SIGNATURE_LEN],
}

/// Cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AnnounceError> {
        let end = self.pos.checked_add(n).ok_or(AnnounceError::Malformed)?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(AnnounceError::Malformed)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AnnounceError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, AnnounceError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, AnnounceError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, AnnounceError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A length-prefixed name (1..=32 bytes of the name charset).
    fn name(&mut self) -> Result<&'a [u8], AnnounceError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        check_name(bytes).map_err(|_| AnnounceError::Malformed)?;
        Ok(bytes)
    }
}

/// Cursor over an output buffer whose length was checked up front.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EmitError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(EmitError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EmitError::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn name(&mut self, name: &[u8]) -> Result<(), EmitError> {
        // Names are at most 32 bytes by construction.
        self.put(&[name.len() as u8])?;
        self.put(name)
    }
}

fn port_to_wire(port: Option<NonZeroU16>) -> [u8; 2] {
    port.map_or(0, NonZeroU16::get).to_be_bytes()
}

impl SignedAnnounce {
    /// Parses an announce structurally (no signature check, no heap, never panics).
    ///
    /// Errors: `oversized` (> [`MAX_ANNOUNCE_LEN`]), `bad-magic`, `bad-version`, else `malformed`.
    pub fn parse(bytes: &[u8]) -> Result<SignedAnnounce, AnnounceError> {
        if bytes.len() > MAX_ANNOUNCE_LEN {
            return Err(AnnounceError::Oversized);
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(AnnounceError::BadMagic);
        }
        if r.u8()? != VERSION {
            return Err(AnnounceError::BadVersion);
        }
        let device_id = DeviceId::new(r.name()?).map_err(|_| AnnounceError::Malformed)?;
        let device_key = r.array()?;
        let noise_static = r.array()?;
        let tcp_port = NonZeroU16::new(r.u16()?);
        let udp_sec_port = NonZeroU16::new(r.u16()?);
        let count = usize::from(r.u8()?);
        if count > MAX_SERVICES {
            return Err(AnnounceError::Malformed);
        }
        let mut services = Services::new();
        for _ in 0..count {
            let name = ServiceName::new(r.name()?).map_err(|_| AnnounceError::Malformed)?;
            if services.contains(&name) {
                return Err(AnnounceError::Malformed);
            }
            services.push(name).map_err(|_| AnnounceError::Malformed)?;
        }
        let seq = r.u64()?;
        let signature = r.array()?;
        if r.pos != bytes.len() {
            return Err(AnnounceError::Malformed);
        }
        Ok(SignedAnnounce {
            repr: AnnounceRepr {
                device_id,
                device_key,
                noise_static,
                tcp_port,
                udp_sec_port,
                services,
                seq,
            },
            signature,
        })
    }

    /// Exact length of the announce on the wire (signature included).
    pub fn buffer_len(&self) -> usize {
        self.repr.buffer_len()
    }

    /// Writes the announce back with the signature it was received with (no
    /// signing key needed); returns its length. The encoding is canonical, so
    /// for every `b` that parses, `parse(b)?.emit(..)` writes exactly `b`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(EmitError::BufferTooSmall)?;
        let body_len = self.repr.emit_body(out)?;
        let mut w = Writer {
            buf: out,
            pos: body_len,
        };
        w.put(&self.signature)?;
        Ok(w.pos)
    }

    /// Checks the signature with `verify_strict` against the announced device key.
    ///
    /// Returns the decoded device key. A key that is not a valid, non-weak Ed25519
    /// point is `bad-signature` too.
    pub fn verify(&self) -> Result<VerifyingKey, AnnounceError> {
        let key = VerifyingKey::from_bytes(&self.repr.device_key)
            .map_err(|_| AnnounceError::BadSignature)?;
        let mut msg = [0u8; SIGNED_MESSAGE_CAP];
        let len = self
            .repr
            .signed_message(&mut msg)
            .map_err(|_| AnnounceError::Malformed)?;
        let msg = msg.get(..len).ok_or(AnnounceError::Malformed)?;
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(msg, &signature)
            .map_err(|_| AnnounceError::BadSignature)?;
        Ok(key)
    }
}

/// Room for `SIGNATURE_CONTEXT || body` of the longest valid announce.
const SIGNED_MESSAGE_CAP: usize = SIGNATURE_CONTEXT.len() + MAX_VALID_ANNOUNCE_LEN;

impl AnnounceRepr {
    /// Parses and returns the content and signature (same as [`SignedAnnounce::parse`]).
    pub fn parse(bytes: &[u8]) -> Result<SignedAnnounce, AnnounceError> {
        SignedAnnounce::parse(bytes)
    }

    /// Exact length of the emitted announce, signature included.
    pub fn buffer_len(&self) -> usize {
        FIXED_LEN + self.device_id.len() + self.services.iter().map(|s| 1 + s.len()).sum::<usize>()
    }

    /// Writes everything the signature covers (without the context) into `buf`.
    fn emit_body(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let mut w = Writer { buf, pos: 0 };
        w.put(&MAGIC)?;
        w.put(&[VERSION])?;
        w.name(self.device_id.as_bytes())?;
        w.put(&self.device_key)?;
        w.put(&self.noise_static)?;
        w.put(&port_to_wire(self.tcp_port))?;
        w.put(&port_to_wire(self.udp_sec_port))?;
        // At most MAX_SERVICES by the type.
        w.put(&[self.services.len() as u8])?;
        for s in &self.services {
            w.name(s.as_bytes())?;
        }
        w.put(&self.seq.to_be_bytes())?;
        Ok(w.pos)
    }

    /// `SIGNATURE_CONTEXT || body` into `out`; returns its length.
    fn signed_message(&self, out: &mut [u8; SIGNED_MESSAGE_CAP]) -> Result<usize, EmitError> {
        let (ctx, rest) = out.split_at_mut(SIGNATURE_CONTEXT.len());
        ctx.copy_from_slice(SIGNATURE_CONTEXT);
        Ok(SIGNATURE_CONTEXT.len() + self.emit_body(rest)?)
    }

    /// Signs with `signing_key` and writes the announce into `buf`; returns its length.
    ///
    /// The caller signs with the key whose public half is `device_key` (receivers
    /// reject anything else as `bad-signature`); service names must be unique.
    pub fn emit(&self, signing_key: &SigningKey, buf: &mut [u8]) -> Result<usize, EmitError> {
        for (i, s) in self.services.iter().enumerate() {
            if self.services.iter().skip(i + 1).any(|t| t == s) {
                return Err(EmitError::DuplicateService);
            }
        }
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(EmitError::BufferTooSmall);
        }
        let mut msg = [0u8; SIGNED_MESSAGE_CAP];
        let msg_len = self.signed_message(&mut msg)?;
        let msg = msg.get(..msg_len).ok_or(EmitError::BufferTooSmall)?;
        let body = msg
            .get(SIGNATURE_CONTEXT.len()..)
            .ok_or(EmitError::BufferTooSmall)?;
        let signature = signing_key.sign(msg).to_bytes();
        let mut w = Writer { buf, pos: 0 };
        w.put(body)?;
        w.put(&signature)?;
        Ok(w.pos)
    }

    /// Signs and returns the announce as a fresh byte vector.
    pub fn to_bytes(&self, signing_key: &SigningKey) -> Result<alloc::vec::Vec<u8>, EmitError> {
        let mut buf = alloc::vec![0u8; self.buffer_len()];
        let len = self.emit(signing_key, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }
}
