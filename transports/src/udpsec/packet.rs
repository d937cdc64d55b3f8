//! Wire format of a udp-sec datagram: a fixed 26-byte little-endian header
//! followed by `len` payload bytes (a Noise message for handshake packets, an
//! AEAD ciphertext for data packets).
//!
//! ```text
//!  0      1      2       3      4 .. 12      12 .. 16  16 .. 20  20 .. 24     24 .. 26
//! +------+------+-------+------+------------+---------+---------+------------+--------+
//! | ver  | typ  | flags | rsv  | session_id |   pn    |   ack   |  ack_bits  |  len   |
//! +------+------+-------+------+------------+---------+---------+------------+--------+
//! ```
//!
//! [`Packet`] is a zero-copy view with checked construction; [`Header`] is the
//! parsed representation with `parse` / `emit`. Parsing never panics.

use super::stats::DropReason;
use super::MAX_DATAGRAM;

/// Protocol version carried in `ver`.
pub const VERSION: u8 = 1;
/// Fixed header length.
pub const HEADER_LEN: usize = 26;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Largest payload after the header.
pub const MAX_PAYLOAD_LEN: usize = MAX_DATAGRAM - HEADER_LEN;
/// Largest plaintext (frames) in a data packet.
pub const MAX_PLAINTEXT_LEN: usize = MAX_PAYLOAD_LEN - TAG_LEN;
/// `flags` bit: the `ack` / `ack_bits` fields are valid.
pub const FLAG_ACK: u8 = 0x01;

mod field {
    use core::ops::Range;
    pub const VER: usize = 0;
    pub const TYP: usize = 1;
    pub const FLAGS: usize = 2;
    pub const RSV: usize = 3;
    pub const SESSION: Range<usize> = 4..12;
    pub const PN: Range<usize> = 12..16;
    pub const ACK: Range<usize> = 16..20;
    pub const ACK_BITS: Range<usize> = 20..24;
    pub const LEN: Range<usize> = 24..26;
}

/// Packet type (`typ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    /// Noise XK message 1 (initiator -> responder).
    HsInit = 1,
    /// Noise XK message 2 (responder -> initiator).
    HsResp = 2,
    /// Noise XK message 3 (initiator -> responder).
    HsFinish = 3,
    /// AEAD-protected frames.
    Data = 4,
    /// The responder refuses the handshake (unauthenticated, 2-byte code).
    HsReject = 5,
}

impl PacketType {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(PacketType::HsInit),
            2 => Some(PacketType::HsResp),
            3 => Some(PacketType::HsFinish),
            4 => Some(PacketType::Data),
            5 => Some(PacketType::HsReject),
            _ => None,
        }
    }

    /// True for the three handshake message types.
    pub fn is_handshake(self) -> bool {
        matches!(
            self,
            PacketType::HsInit | PacketType::HsResp | PacketType::HsFinish
        )
    }
}

/// A read-only view of a datagram whose length checks have passed.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn le_u16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(r) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn le_u32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(r) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(r) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a datagram after checking its size and the `len` field.
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() > MAX_DATAGRAM {
            return Err(DropReason::Oversized);
        }
        if b.len() < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let p = Packet { buffer };
        if usize::from(p.len()) != p.buffer.as_ref().len() - HEADER_LEN {
            return Err(DropReason::LengthMismatch);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// `ver`.
    pub fn version(&self) -> u8 {
        self.b().get(field::VER).copied().unwrap_or(0)
    }
    /// `typ` (raw).
    pub fn typ(&self) -> u8 {
        self.b().get(field::TYP).copied().unwrap_or(0)
    }
    /// `flags`.
    pub fn flags(&self) -> u8 {
        self.b().get(field::FLAGS).copied().unwrap_or(0)
    }
    /// `rsv`.
    pub fn rsv(&self) -> u8 {
        self.b().get(field::RSV).copied().unwrap_or(0)
    }
    /// `session_id`.
    pub fn session_id(&self) -> u64 {
        le_u64(self.b(), field::SESSION)
    }
    /// `pn`.
    pub fn pn(&self) -> u32 {
        le_u32(self.b(), field::PN)
    }
    /// `ack`.
    pub fn ack(&self) -> u32 {
        le_u32(self.b(), field::ACK)
    }
    /// `ack_bits`.
    pub fn ack_bits(&self) -> u32 {
        le_u32(self.b(), field::ACK_BITS)
    }
    /// `len`.
    pub fn len(&self) -> u16 {
        le_u16(self.b(), field::LEN)
    }
    /// True when `len` is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The 26 header bytes (the AEAD associated data).
    pub fn header_bytes(&self) -> &[u8] {
        self.b().get(..HEADER_LEN).unwrap_or(&[])
    }
    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        self.b().get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// Parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Packet type.
    pub typ: PacketType,
    /// Flags ([`FLAG_ACK`]).
    pub flags: u8,
    /// Session id chosen by the initiator.
    pub session_id: u64,
    /// Packet number (data packets; 0 in handshake packets).
    pub pn: u32,
    /// Largest packet number received (valid with [`FLAG_ACK`]).
    pub ack: u32,
    /// Bit `i` set: packet `ack - 1 - i` received.
    pub ack_bits: u32,
    /// Payload length.
    pub len: u16,
}

impl Header {
    /// Validate and parse the header of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Header, DropReason> {
        if p.version() != VERSION {
            return Err(DropReason::BadVersion);
        }
        let typ = PacketType::from_u8(p.typ()).ok_or(DropReason::UnknownType)?;
        if p.rsv() != 0 || p.flags() & !FLAG_ACK != 0 {
            return Err(DropReason::Malformed);
        }
        let h = Header {
            typ,
            flags: p.flags(),
            session_id: p.session_id(),
            pn: p.pn(),
            ack: p.ack(),
            ack_bits: p.ack_bits(),
            len: p.len(),
        };
        if typ.is_handshake() || typ == PacketType::HsReject {
            if h.flags != 0 || h.pn != 0 || h.ack != 0 || h.ack_bits != 0 || h.len == 0 {
                return Err(DropReason::Malformed);
            }
            if typ == PacketType::HsReject
                && usize::from(h.len) != super::reject::REJECT_PAYLOAD_LEN
            {
                return Err(DropReason::Malformed);
            }
        } else {
            if usize::from(h.len) <= TAG_LEN {
                return Err(DropReason::Malformed);
            }
            if h.flags & FLAG_ACK == 0 && (h.ack != 0 || h.ack_bits != 0) {
                return Err(DropReason::Malformed);
            }
        }
        Ok(h)
    }

    /// Write the header into `out[..HEADER_LEN]`; returns false if `out` is too short.
    pub fn emit(&self, out: &mut [u8]) -> bool {
        let Some(out) = out.get_mut(..HEADER_LEN) else {
            return false;
        };
        out[field::VER] = VERSION;
        out[field::TYP] = self.typ as u8;
        out[field::FLAGS] = self.flags;
        out[field::RSV] = 0;
        out[field::SESSION].copy_from_slice(&self.session_id.to_le_bytes());
        out[field::PN].copy_from_slice(&self.pn.to_le_bytes());
        out[field::ACK].copy_from_slice(&self.ack.to_le_bytes());
        out[field::ACK_BITS].copy_from_slice(&self.ack_bits.to_le_bytes());
        out[field::LEN].copy_from_slice(&self.len.to_le_bytes());
        true
    }

    /// Session id of a datagram without full validation (for demultiplexing).
    pub fn peek_session_id(datagram: &[u8]) -> Option<u64> {
        let s = datagram.get(field::SESSION)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    }

    /// Packet type of a datagram without full validation.
    pub fn peek_type(datagram: &[u8]) -> Option<PacketType> {
        PacketType::from_u8(*datagram.get(field::TYP)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> Header {
        Header {
            typ: PacketType::Data,
            flags: FLAG_ACK,
            session_id: 0x0102_0304_0506_0708,
            pn: 77,
            ack: 9,
            ack_bits: 0b101,
            len: 20,
        }
    }

    #[test]
    fn header_round_trips_little_endian() {
        let mut buf = vec![0u8; HEADER_LEN + 20];
        assert!(sample().emit(&mut buf));
        assert_eq!(&buf[4..12], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&buf[12..16], &[77, 0, 0, 0]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Header::parse(&p).unwrap(), sample());
    }

    #[test]
    fn rejects_bad_lengths_versions_and_types() {
        let mut buf = vec![0u8; HEADER_LEN + 20];
        sample().emit(&mut buf);
        assert_eq!(
            Packet::new_checked(&buf[..HEADER_LEN - 1]).unwrap_err(),
            DropReason::Truncated
        );
        assert_eq!(
            Packet::new_checked(&buf[..HEADER_LEN + 19]).unwrap_err(),
            DropReason::LengthMismatch
        );
        assert_eq!(
            Packet::new_checked(&vec![0u8; MAX_DATAGRAM + 1][..]).unwrap_err(),
            DropReason::Oversized
        );
        let mut b2 = buf.clone();
        b2[0] = 2;
        let p = Packet::new_checked(&b2[..]).unwrap();
        assert_eq!(Header::parse(&p).unwrap_err(), DropReason::BadVersion);
        let mut b3 = buf.clone();
        b3[1] = 9;
        let p = Packet::new_checked(&b3[..]).unwrap();
        assert_eq!(Header::parse(&p).unwrap_err(), DropReason::UnknownType);
        let mut b4 = buf;
        b4[3] = 1;
        let p = Packet::new_checked(&b4[..]).unwrap();
        assert_eq!(Header::parse(&p).unwrap_err(), DropReason::Malformed);
    }
}
