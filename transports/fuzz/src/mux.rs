//! `mux_frame` and `mux_session`.
//!
//! `mux_session` input: `[role u8]` then ops, see [`MuxOp`].

use dsb_transports::mux::{
    ChannelId, Frame, Header, Mux, MuxConfig, MuxError, Role, EVENT_QUEUE_CAP, HEADER_LEN,
    MAX_FRAME_LEN, NOISE_MAX_PLAINTEXT,
};
use smoltcp::time::{Duration, Instant};

use crate::{put_blob, Input};

/// `mux_frame`: parse, check against the header, re-emit.
pub fn run_mux_frame(data: &[u8]) {
    let parsed = Frame::parse(data);
    let header = Header::parse(data);
    match parsed {
        Ok(f) => {
            let h = header.expect("a frame has a header");
            assert_eq!(h.check().ok(), Some(f.frame_type()));
            assert_eq!(f.buffer_len(), data.len());
            assert_eq!(f.channel(), h.channel);
            let mut out = vec![0u8; data.len()];
            assert_eq!(f.emit(&mut out), Some(data.len()));
            assert_eq!(out, data, "re-emission differs");
        }
        Err(e) => {
            let _ = e.label();
            if data.len() < HEADER_LEN {
                assert_eq!(e, MuxError::Malformed);
            }
        }
    }
}

/// Service names the session registers (the last one is not registered).
pub const NAMES: [&str; 4] = ["echo", "a.b", "x", "nope"];

/// One `mux_session` operation (decoded from, and encoded to, the input).
#[derive(Clone, Debug)]
pub enum MuxOp<'a> {
    /// `[0][blob]`: bytes from the stream.
    Bytes(&'a [u8]),
    /// `[1][type][channel u8][value u32][extra u8][cut u8]`: one frame built
    /// by the harness (name = `NAMES[extra]`, DATA of `extra * 97 + 1`
    /// bytes), fed in two chunks split at `cut`.
    Frame {
        ty: u8,
        channel: u8,
        value: u32,
        extra: u8,
        cut: u8,
    },
    /// `[2][name]`: open a channel.
    Open(u8),
    /// `[3][ch][len u16]`: write `len` bytes.
    Write(u8, u16),
    /// `[4][ch][len u16]`: read up to `len` bytes.
    Read(u8, u16),
    /// `[5][ch]`: finish.
    Finish(u8),
    /// `[6][ch][code u16]`: reset.
    Reset(u8, u16),
    /// `[7][size u16]`: poll_transmit into `size` bytes (until empty).
    Transmit(u16),
    /// `[8][dt u16]`: advance `dt` ms and run due timers.
    Time(u16),
    /// `[9][what]`: drain events (0), ping (1), close (2).
    Misc(u8),
}

impl<'a> MuxOp<'a> {
    fn read(inp: &mut Input<'a>) -> Option<Self> {
        Some(match inp.u8()? % 10 {
            0 => MuxOp::Bytes(inp.blob()?),
            1 => MuxOp::Frame {
                ty: inp.u8()?,
                channel: inp.u8()?,
                value: inp.u32()?,
                extra: inp.u8()?,
                cut: inp.u8()?,
            },
            2 => MuxOp::Open(inp.u8()?),
            3 => MuxOp::Write(inp.u8()?, inp.u16()?),
            4 => MuxOp::Read(inp.u8()?, inp.u16()?),
            5 => MuxOp::Finish(inp.u8()?),
            6 => MuxOp::Reset(inp.u8()?, inp.u16()?),
            7 => MuxOp::Transmit(inp.u16()?),
            8 => MuxOp::Time(inp.u16()?),
            _ => MuxOp::Misc(inp.u8()?),
        })
    }

    /// Encoder for the seed generator.
    pub fn write(&self, out: &mut Vec<u8>) {
        match *self {
            MuxOp::Bytes(b) => {
                out.push(0);
                put_blob(out, b);
            }
            MuxOp::Frame {
                ty,
                channel,
                value,
                extra,
                cut,
            } => {
                out.extend_from_slice(&[1, ty, channel]);
                out.extend_from_slice(&value.to_le_bytes());
                out.extend_from_slice(&[extra, cut]);
            }
            MuxOp::Open(n) => out.extend_from_slice(&[2, n]),
            MuxOp::Write(c, n) => {
                out.extend_from_slice(&[3, c]);
                out.extend_from_slice(&n.to_le_bytes());
            }
            MuxOp::Read(c, n) => {
                out.extend_from_slice(&[4, c]);
                out.extend_from_slice(&n.to_le_bytes());
            }
            MuxOp::Finish(c) => out.extend_from_slice(&[5, c]),
            MuxOp::Reset(c, code) => {
                out.extend_from_slice(&[6, c]);
                out.extend_from_slice(&code.to_le_bytes());
            }
            MuxOp::Transmit(n) => {
                out.push(7);
                out.extend_from_slice(&n.to_le_bytes());
            }
            MuxOp::Time(dt) => {
                out.push(8);
                out.extend_from_slice(&dt.to_le_bytes());
            }
            MuxOp::Misc(w) => out.extend_from_slice(&[9, w]),
        }
    }
}

/// Small windows so every cap is reached within a few frames.
pub fn small_config() -> MuxConfig {
    MuxConfig {
        max_channels: 4,
        recv_window: 3000,
        session_window: 7000,
        send_buffer: 5000,
        max_pending_send: 9000,
        max_frame_payload: 1200,
        idle_timeout: Duration::from_secs(30),
        keepalive_interval: Duration::from_secs(10),
    }
}

/// The frame of a [`MuxOp::Frame`].
fn build_frame(ty: u8, channel: u8, value: u32, extra: u8, data: &mut Vec<u8>) -> Vec<u8> {
    let channel = u32::from(channel % 16);
    let name = NAMES[usize::from(extra) % NAMES.len()].as_bytes();
    data.clear();
    data.resize(usize::from(extra) * 97 + 1, 0xab);
    let f = match ty % 9 {
        0 => Frame::Open {
            channel,
            initial_credit: value,
            name,
        },
        1 => Frame::Accept {
            channel,
            initial_credit: value,
        },
        2 => Frame::Data {
            channel,
            payload: data,
        },
        3 => Frame::WindowUpdate {
            channel,
            increment: value,
        },
        4 => Frame::Fin { channel },
        5 => Frame::Reset {
            channel,
            code: value as u16,
        },
        6 => Frame::Ping {
            opaque: u64::from(value),
        },
        7 => Frame::Pong {
            opaque: u64::from(value),
        },
        _ => Frame::GoAway { code: value as u16 },
    };
    let mut out = vec![0u8; f.buffer_len()];
    let n = f.emit(&mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// A channel id for an app op: one of the live ones, or a small raw id.
fn channel(m: &Mux, c: u8) -> ChannelId {
    let live: Vec<ChannelId> = m.channel_ids().collect();
    if c < 0x80 && !live.is_empty() {
        live[usize::from(c) % live.len()]
    } else {
        ChannelId(u32::from(c % 16))
    }
}

fn check_caps(m: &Mux) {
    let s = m.stats();
    let cfg = m.config();
    assert!(s.buffered_bytes() <= cfg.memory_bound(), "{s:?}");
    assert!(s.channels <= cfg.max_channels, "{s:?}");
    assert!(s.events_queued <= EVENT_QUEUE_CAP, "{s:?}");
    assert!(s.input_buffered < MAX_FRAME_LEN, "{s:?}");
    assert!(s.send_buffered <= cfg.max_pending_send, "{s:?}");
    assert!(s.recv_buffered <= cfg.session_window as usize, "{s:?}");
}

/// Everything `poll_transmit` writes is a sequence of whole, valid frames.
fn check_output(out: &[u8]) {
    let mut rest = out;
    while !rest.is_empty() {
        let h = Header::parse(rest).expect("whole header");
        let total = HEADER_LEN + usize::from(h.len);
        let (frame, tail) = rest.split_at_checked(total).expect("whole frame");
        if let Err(e) = Frame::parse(frame) {
            panic!("we sent an invalid frame ({e:?}): {frame:?}");
        }
        rest = tail;
    }
}

/// `mux_session`: see [`MuxOp`].
pub fn run_mux_session(data: &[u8]) {
    let mut inp = Input(data);
    let Some(role) = inp.u8() else { return };
    let role = if role & 1 == 0 {
        Role::Initiator
    } else {
        Role::Responder
    };
    let mut now = Instant::from_millis(0);
    let mut m = Mux::new(role, small_config(), now).expect("valid config");
    for n in &NAMES[..3] {
        m.register_service(n).expect("valid name");
    }
    m.set_authenticated(now);
    let mut scratch = Vec::new();
    let mut buf = vec![0u8; NOISE_MAX_PLAINTEXT];
    let mut failed: Option<MuxError> = None;
    while let Some(op) = MuxOp::read(&mut inp) {
        match op {
            MuxOp::Bytes(b) => feed(&mut m, now, b, &mut failed),
            MuxOp::Frame {
                ty,
                channel,
                value,
                extra,
                cut,
            } => {
                let f = build_frame(ty, channel, value, extra, &mut scratch);
                let (a, b) = f.split_at(usize::from(cut).min(f.len()));
                feed(&mut m, now, a, &mut failed);
                feed(&mut m, now, b, &mut failed);
            }
            MuxOp::Open(n) => {
                let _ = m.open(NAMES[usize::from(n) % NAMES.len()]);
            }
            MuxOp::Write(c, n) => {
                let id = channel(&m, c);
                let cap = m.write_capacity(id);
                if let Ok(w) = m.write(id, &buf[..usize::from(n).min(buf.len())]) {
                    assert!(w <= cap);
                }
            }
            MuxOp::Read(c, n) => {
                let id = channel(&m, c);
                let n = usize::from(n).min(buf.len());
                let _ = m.read(id, &mut buf[..n]);
            }
            MuxOp::Finish(c) => {
                let _ = m.finish(channel(&m, c));
            }
            MuxOp::Reset(c, code) => {
                let _ = m.reset(channel(&m, c), code);
            }
            MuxOp::Transmit(size) => {
                let size = usize::from(size).clamp(1, NOISE_MAX_PLAINTEXT);
                for _ in 0..64 {
                    let n = m.poll_transmit(&mut buf[..size]);
                    if n == 0 {
                        break;
                    }
                    assert!(n <= size);
                    check_output(&buf[..n]);
                }
            }
            MuxOp::Time(dt) => {
                now += Duration::from_millis(u64::from(dt));
                if m.poll_at().is_some_and(|t| t <= now) {
                    if let Err(e) = m.handle_timeout(now) {
                        failed.get_or_insert(e);
                    }
                }
            }
            MuxOp::Misc(w) => match w % 3 {
                0 => while m.poll_event().is_some() {},
                1 => {
                    let _ = m.ping(now);
                }
                _ => m.close(0),
            },
        }
        check_caps(&m);
        if let Some(e) = failed {
            assert!(m.is_closed());
            assert_eq!(m.handle_bytes(now, b"\x07"), Err(e), "errors are sticky");
        }
    }
}

fn feed(m: &mut Mux, now: Instant, b: &[u8], failed: &mut Option<MuxError>) {
    let closed = m.is_closed();
    match m.handle_bytes(now, b) {
        Ok(()) => assert!(!closed || b.is_empty()),
        Err(e) => {
            if let Some(first) = failed {
                assert_eq!(e, *first, "first error wins");
            } else if !closed {
                *failed = Some(e);
            }
        }
    }
}
