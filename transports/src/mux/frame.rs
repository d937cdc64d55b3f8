//! Wire format of the multiplexer: one 8-byte header and a typed payload.
//!
//! ```text
//! offset 0  type     u8
//! offset 1  flags    u8       (reserved, must be 0)
//! offset 2  channel  u32 BE   (0 = the session itself)
//! offset 6  len      u16 BE   (payload length, <= MAX_FRAME_PAYLOAD)
//! offset 8  payload  [len]
//! ```
//!
//! [`Frame::parse`] is strict (exact lengths, valid names, channel 0 rules) and
//! never panics; [`Frame::emit`] serialises whatever it is given, so tests can
//! hand-craft frames the parser must reject.

use super::error::MuxError;
use super::name::ServiceName;

/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 8;
/// Largest payload a frame may carry (protocol constant, same for both peers).
pub const MAX_FRAME_PAYLOAD: usize = 16 * 1024;
/// Largest whole frame (header + payload).
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_FRAME_PAYLOAD;
/// Largest plaintext one Noise transport message can carry (65535 minus the 16-byte tag).
pub const NOISE_MAX_PLAINTEXT: usize = 65535 - 16;
/// Largest control frame (OPEN with a 32-byte name); a transmit buffer must hold at least this.
pub const MAX_CONTROL_FRAME_LEN: usize = HEADER_LEN + 4 + ServiceName::MAX_LEN;
/// The channel id that addresses the session itself (session credit, PING, PONG, GOAWAY).
pub const SESSION_CHANNEL: u32 = 0;

// A whole frame always fits in one Noise message.
const _: () = assert!(MAX_FRAME_LEN <= NOISE_MAX_PLAINTEXT);

/// Frame type byte values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Open a channel: `initial_credit:u32 BE, name[1..=32]`.
    Open = 0x01,
    /// Accept an opened channel: `initial_credit:u32 BE`.
    Accept = 0x02,
    /// Channel data: 1..=MAX_FRAME_PAYLOAD bytes.
    Data = 0x03,
    /// Credit increment: `increment:u32 BE` (>= 1); channel 0 = session credit.
    WindowUpdate = 0x04,
    /// End of the sender's direction of a channel (empty payload).
    Fin = 0x05,
    /// Abort both directions of a channel: `code:u16 BE`.
    Reset = 0x06,
    /// Keepalive probe (channel 0): `opaque:u64 BE`.
    Ping = 0x07,
    /// Keepalive answer (channel 0): echoes the PING's `opaque:u64 BE`.
    Pong = 0x08,
    /// Session ends (channel 0): `code:u16 BE`.
    GoAway = 0x09,
}

impl FrameType {
    /// Maps a type byte to a known frame type.
    pub fn from_u8(value: u8) -> Option<FrameType> {
        Some(match value {
            0x01 => FrameType::Open,
            0x02 => FrameType::Accept,
            0x03 => FrameType::Data,
            0x04 => FrameType::WindowUpdate,
            0x05 => FrameType::Fin,
            0x06 => FrameType::Reset,
            0x07 => FrameType::Ping,
            0x08 => FrameType::Pong,
            0x09 => FrameType::GoAway,
            _ => return None,
        })
    }
}

/// The raw 8-byte frame header (no validation beyond its length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Frame type byte.
    pub frame_type: u8,
    /// Flags byte (reserved, must be 0).
    pub flags: u8,
    /// Channel id.
    pub channel: u32,
    /// Payload length.
    pub len: u16,
}

impl Header {
    /// Reads a header from the first [`HEADER_LEN`] bytes; `None` if fewer are given.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let h: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            frame_type: h[0],
            flags: h[1],
            channel: u32::from_be_bytes([h[2], h[3], h[4], h[5]]),
            len: u16::from_be_bytes([h[6], h[7]]),
        })
    }

    /// Checks what can be checked before the payload arrives: type, flags, size.
    pub fn check(&self) -> Result<FrameType, MuxError> {
        let ty = FrameType::from_u8(self.frame_type)
            .ok_or(MuxError::UnknownFrameType(self.frame_type))?;
        if usize::from(self.len) > MAX_FRAME_PAYLOAD {
            return Err(MuxError::OversizedFrame(self.len));
        }
        if self.flags != 0 {
            return Err(MuxError::Malformed);
        }
        Ok(ty)
    }

    /// Writes the header into `out`; `None` if `out` is shorter than [`HEADER_LEN`].
    pub fn emit(&self, out: &mut [u8]) -> Option<()> {
        let h: &mut [u8; HEADER_LEN] = out.get_mut(..HEADER_LEN)?.try_into().ok()?;
        h[0] = self.frame_type;
        h[1] = self.flags;
        h[2..6].copy_from_slice(&self.channel.to_be_bytes());
        h[6..8].copy_from_slice(&self.len.to_be_bytes());
        Some(())
    }
}

/// A parsed frame (high-level representation, borrows its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// OPEN: the sender opens `channel` for service `name` and grants `initial_credit`.
    Open {
        /// New channel id (opener's parity).
        channel: u32,
        /// Bytes the opener is ready to receive on this channel.
        initial_credit: u32,
        /// Service name bytes (1..=32, `[A-Za-z0-9._-]` once parsed).
        name: &'a [u8],
    },
    /// ACCEPT: the peer accepted `channel` and grants `initial_credit`.
    Accept {
        /// Channel id being accepted.
        channel: u32,
        /// Bytes the acceptor is ready to receive on this channel.
        initial_credit: u32,
    },
    /// DATA on a channel.
    Data {
        /// Channel id.
        channel: u32,
        /// Payload bytes.
        payload: &'a [u8],
    },
    /// WINDOW_UPDATE: more credit for `channel` (0 = session-wide).
    WindowUpdate {
        /// Channel id, or 0 for the session.
        channel: u32,
        /// Credit increment in bytes.
        increment: u32,
    },
    /// FIN: the sender will send no more data on `channel`.
    Fin {
        /// Channel id.
        channel: u32,
    },
    /// RESET: `channel` is aborted in both directions.
    Reset {
        /// Channel id.
        channel: u32,
        /// Reason code (see [`super::error::reset_code`]).
        code: u16,
    },
    /// PING with an opaque value to echo.
    Ping {
        /// Value the PONG must echo.
        opaque: u64,
    },
    /// PONG echoing a PING.
    Pong {
        /// Echoed value.
        opaque: u64,
    },
    /// GOAWAY: the sender ends the session.
    GoAway {
        /// Reason code (see [`MuxError::code`]).
        code: u16,
    },
}

fn be_u16(p: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(p.try_into().ok()?))
}
fn be_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.try_into().ok()?))
}
fn be_u64(p: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(p.try_into().ok()?))
}

impl<'a> Frame<'a> {
    /// Parses exactly one whole frame (`bytes` = header + payload, nothing more).
    pub fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, MuxError> {
        let header = Header::parse(bytes).ok_or(MuxError::Malformed)?;
        let ty = header.check()?;
        let payload = bytes.get(HEADER_LEN..).ok_or(MuxError::Malformed)?;
        if payload.len() != usize::from(header.len) {
            return Err(MuxError::Malformed);
        }
        let channel = header.channel;
        let on_session = matches!(ty, FrameType::Ping | FrameType::Pong | FrameType::GoAway);
        let on_channel = matches!(
            ty,
            FrameType::Open
                | FrameType::Accept
                | FrameType::Data
                | FrameType::Fin
                | FrameType::Reset
        );
        if (on_session && channel != SESSION_CHANNEL) || (on_channel && channel == SESSION_CHANNEL)
        {
            return Err(MuxError::InvalidChannelId(channel));
        }
        let frame = match ty {
            FrameType::Open => {
                let (credit, name) = payload.split_at_checked(4).ok_or(MuxError::Malformed)?;
                ServiceName::new(name).ok_or(MuxError::Malformed)?;
                Frame::Open {
                    channel,
                    initial_credit: be_u32(credit).ok_or(MuxError::Malformed)?,
                    name,
                }
            }
            FrameType::Accept => Frame::Accept {
                channel,
                initial_credit: be_u32(payload).ok_or(MuxError::Malformed)?,
            },
            FrameType::Data => {
                if payload.is_empty() {
                    return Err(MuxError::Malformed);
                }
                Frame::Data { channel, payload }
            }
            FrameType::WindowUpdate => {
                let increment = be_u32(payload).ok_or(MuxError::Malformed)?;
                if increment == 0 {
                    return Err(MuxError::Malformed);
                }
                Frame::WindowUpdate { channel, increment }
            }
            FrameType::Fin => {
                if !payload.is_empty() {
                    return Err(MuxError::Malformed);
                }
                Frame::Fin { channel }
            }
            FrameType::Reset => Frame::Reset {
                channel,
                code: be_u16(payload).ok_or(MuxError::Malformed)?,
            },
            FrameType::Ping => Frame::Ping {
                opaque: be_u64(payload).ok_or(MuxError::Malformed)?,
            },
            FrameType::Pong => Frame::Pong {
                opaque: be_u64(payload).ok_or(MuxError::Malformed)?,
            },
            FrameType::GoAway => Frame::GoAway {
                code: be_u16(payload).ok_or(MuxError::Malformed)?,
            },
        };
        Ok(frame)
    }

    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Open { .. } => FrameType::Open,
            Frame::Accept { .. } => FrameType::Accept,
            Frame::Data { .. } => FrameType::Data,
            Frame::WindowUpdate { .. } => FrameType::WindowUpdate,
            Frame::Fin { .. } => FrameType::Fin,
            Frame::Reset { .. } => FrameType::Reset,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Pong { .. } => FrameType::Pong,
            Frame::GoAway { .. } => FrameType::GoAway,
        }
    }

    /// The channel field (0 for session frames).
    pub fn channel(&self) -> u32 {
        match *self {
            Frame::Open { channel, .. }
            | Frame::Accept { channel, .. }
            | Frame::Data { channel, .. }
            | Frame::WindowUpdate { channel, .. }
            | Frame::Fin { channel }
            | Frame::Reset { channel, .. } => channel,
            Frame::Ping { .. } | Frame::Pong { .. } | Frame::GoAway { .. } => SESSION_CHANNEL,
        }
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> usize {
        match self {
            Frame::Open { name, .. } => 4 + name.len(),
            Frame::Accept { .. } | Frame::WindowUpdate { .. } => 4,
            Frame::Data { payload, .. } => payload.len(),
            Frame::Fin { .. } => 0,
            Frame::Reset { .. } | Frame::GoAway { .. } => 2,
            Frame::Ping { .. } | Frame::Pong { .. } => 8,
        }
    }

    /// Whole encoded length (header + payload).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Serialises the frame into `out`, returning the bytes written; `None` if
    /// `out` is too small or the payload exceeds `u16::MAX`. No semantic checks.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let total = self.buffer_len();
        let len = u16::try_from(self.payload_len()).ok()?;
        let buf = out.get_mut(..total)?;
        let (head, payload) = buf.split_at_mut_checked(HEADER_LEN)?;
        Header {
            frame_type: self.frame_type() as u8,
            flags: 0,
            channel: self.channel(),
            len,
        }
        .emit(head)?;
        match *self {
            Frame::Open {
                initial_credit,
                name,
                ..
            } => {
                let (credit, rest) = payload.split_at_mut_checked(4)?;
                credit.copy_from_slice(&initial_credit.to_be_bytes());
                rest.copy_from_slice(name);
            }
            Frame::Accept { initial_credit, .. } => {
                payload.copy_from_slice(&initial_credit.to_be_bytes())
            }
            Frame::Data { payload: data, .. } => payload.copy_from_slice(data),
            Frame::WindowUpdate { increment, .. } => {
                payload.copy_from_slice(&increment.to_be_bytes())
            }
            Frame::Fin { .. } => {}
            Frame::Reset { code, .. } | Frame::GoAway { code } => {
                payload.copy_from_slice(&code.to_be_bytes())
            }
            Frame::Ping { opaque } | Frame::Pong { opaque } => {
                payload.copy_from_slice(&opaque.to_be_bytes())
            }
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_round_trips() {
        let frames = [
            Frame::Open {
                channel: 1,
                initial_credit: 65536,
                name: b"echo.v1",
            },
            Frame::Accept {
                channel: 2,
                initial_credit: 7,
            },
            Frame::Data {
                channel: 3,
                payload: b"hello",
            },
            Frame::WindowUpdate {
                channel: 0,
                increment: 9,
            },
            Frame::Fin { channel: 5 },
            Frame::Reset {
                channel: 6,
                code: 0xff01,
            },
            Frame::Ping { opaque: 42 },
            Frame::Pong { opaque: 43 },
            Frame::GoAway { code: 3 },
        ];
        for f in frames {
            let mut buf = [0u8; 64];
            let n = f.emit(&mut buf).unwrap();
            assert_eq!(n, f.buffer_len());
            assert_eq!(Frame::parse(&buf[..n]).unwrap(), f);
        }
    }

    #[test]
    fn header_bytes_are_big_endian() {
        let mut buf = [0u8; 16];
        let n = Frame::WindowUpdate {
            channel: 0x0102_0304,
            increment: 0x0a0b_0c0d,
        }
        .emit(&mut buf)
        .unwrap();
        assert_eq!(&buf[..n], &[4, 0, 1, 2, 3, 4, 0, 4, 0x0a, 0x0b, 0x0c, 0x0d]);
    }

    #[test]
    fn documented_examples_match_the_emitter() {
        let mut buf = [0u8; 64];
        let n = Frame::WindowUpdate {
            channel: 0,
            increment: 262_144,
        }
        .emit(&mut buf)
        .unwrap();
        assert_eq!(&buf[..n], &[4, 0, 0, 0, 0, 0, 0, 4, 0, 4, 0, 0]);
        let n = Frame::Open {
            channel: 1,
            initial_credit: 65_536,
            name: b"echo",
        }
        .emit(&mut buf)
        .unwrap();
        assert_eq!(
            &buf[..n],
            &[1, 0, 0, 0, 0, 1, 0, 8, 0, 1, 0, 0, 0x65, 0x63, 0x68, 0x6f]
        );
    }

    #[test]
    fn strict_parser_rejects_bad_shapes() {
        let mut buf = [0u8; 64];
        let n = Frame::Data {
            channel: 1,
            payload: b"",
        }
        .emit(&mut buf)
        .unwrap();
        assert_eq!(Frame::parse(&buf[..n]), Err(MuxError::Malformed));
        let n = Frame::Ping { opaque: 1 }.emit(&mut buf).unwrap();
        buf[5] = 1; // channel 1
        assert_eq!(Frame::parse(&buf[..n]), Err(MuxError::InvalidChannelId(1)));
        assert_eq!(Frame::parse(&buf[..3]), Err(MuxError::Malformed));
    }
}
