//! `udpsec_packet` and `udpsec_endpoint`.
//!
//! `udpsec_endpoint` drives one [`Endpoint`] (the node's side) whose peers
//! the harness plays: it speaks a stand-in three-message handshake with fixed
//! session keys (the Noise handshake itself has its own targets in
//! `noise/fuzz`), so the fuzzer can open sessions in either role and the
//! harness can seal fuzzer-chosen frames with the right key. Input: `[cfg
//! u8]` then ops, see [`UdpOp`].
//!
//! SECURITY: test keys, not for production.

use std::collections::BTreeSet;

use dsb_noise::{NoTrust, TrustStore};
use dsb_transports::udpsec::connection::MAX_EVENTS;
use dsb_transports::udpsec::crypto::PacketKey;
use dsb_transports::udpsec::frame::{Frame, FrameIter, FrameWriter};
use dsb_transports::udpsec::packet::{
    Header, Packet, PacketType, HEADER_LEN, MAX_PLAINTEXT_LEN, TAG_LEN,
};
use dsb_transports::udpsec::sent::MAX_SENT_PACKETS;
use dsb_transports::udpsec::{
    Config, Endpoint, EndpointConfig, Event, Handshake, HsError, SessionKeys, MAX_DATAGRAM,
};
use smoltcp::time::{Duration, Instant};

use crate::{put_blob, Input};

/// `udpsec_packet`: header + frames, each re-emitted and compared.
pub fn run_udpsec_packet(data: &[u8]) {
    let payload = match Packet::new_checked(data) {
        Ok(p) => {
            assert!(data.len() >= HEADER_LEN && data.len() <= MAX_DATAGRAM);
            if let Ok(h) = Header::parse(&p) {
                let mut out = [0u8; HEADER_LEN];
                assert!(h.emit(&mut out));
                assert_eq!(&out[..], &data[..HEADER_LEN], "header re-emission differs");
                assert_eq!(usize::from(h.len), data.len() - HEADER_LEN);
                assert_eq!(Header::peek_session_id(data), Some(h.session_id));
                assert_eq!(Header::peek_type(data), Some(h.typ));
            }
            &data[HEADER_LEN..]
        }
        // Frames are fuzzed on the whole input too.
        Err(_) => data,
    };
    // Every frame that parses re-encodes to exactly its bytes.
    let mut out = vec![0u8; payload.len()];
    let mut w = FrameWriter::new(&mut out);
    let mut ok = true;
    for f in FrameIter::new(payload) {
        let Ok(f) = f else {
            ok = false;
            break;
        };
        let wrote = match f {
            Frame::Ping => w.ping(),
            Frame::ImmediateAck => w.immediate_ack(),
            Frame::Ack { delay, ranges } => {
                assert!(ranges.largest().is_some());
                let r: Vec<(u32, u32)> = ranges.iter().collect();
                w.ack(delay, r.into_iter())
            }
            Frame::Stream { offset, data } => w.stream(offset, data),
            Frame::MaxData(max) => w.max_data(max),
            Frame::Close { code, reason } => {
                let reason = std::str::from_utf8(reason).expect("reason charset is ASCII");
                w.close(code, reason)
            }
        };
        assert!(wrote, "a parsed frame does not fit its own bytes");
    }
    let n = w.len();
    assert_eq!(&out[..n], &payload[..n], "frame re-encoding differs");
    if ok {
        assert_eq!(n, payload.len());
    }
}

// ------------------------------------------------------------------ endpoint

/// Session ids the ops pick from.
pub const SIDS: [u64; 5] = [1, 2, 3, 0x8000_0000_0000_0001, u64::MAX];
/// Key of packets the initiator sends (stand-in handshake).
pub const I2R: [u8; 32] = [1; 32];
/// Key of packets the responder sends (stand-in handshake).
pub const R2I: [u8; 32] = [2; 32];

/// Stand-in handshake: message `k` (1..=3) is 8 bytes of `k`; fixed keys.
pub struct StandIn {
    initiator: bool,
    step: u8,
}

impl Handshake for StandIn {
    fn write_message(&mut self, out: &mut [u8]) -> Result<usize, HsError> {
        let b = out.get_mut(..8).ok_or(HsError::TOO_LARGE)?;
        b.fill(self.step + 1);
        self.step += 1;
        Ok(8)
    }
    fn read_message(
        &mut self,
        _: Instant,
        msg: &[u8],
        _: &mut dyn TrustStore,
    ) -> Result<(), HsError> {
        if msg != [self.step + 1; 8] {
            return Err(HsError::new("stand-in-mismatch"));
        }
        self.step += 1;
        Ok(())
    }
    fn is_finished(&self) -> bool {
        self.step >= 3
    }
    fn is_my_turn(&self) -> bool {
        self.step.is_multiple_of(2) == self.initiator
    }
    fn take_keys(&mut self) -> Result<SessionKeys, HsError> {
        Ok(SessionKeys {
            initiator_to_responder: I2R,
            responder_to_initiator: R2I,
            handshake_hash: [3; 32],
        })
    }
}

/// One `udpsec_endpoint` operation.
#[derive(Clone, Debug)]
pub enum UdpOp<'a> {
    /// `[0][src][blob]`: a raw datagram.
    Raw(u8, &'a [u8]),
    /// `[1][src][sid][typ][fill][len]`: a handshake packet whose payload is
    /// `len % 16 + 1` bytes of `fill` (`[k; 8]` is stand-in message `k`).
    Hs {
        src: u8,
        sid: u8,
        typ: u8,
        fill: u8,
        len: u8,
    },
    /// `[2][src][sid][key][pn u32][ack u32][ack_bits u32][frames blob]`: a data
    /// packet sealed by the harness; `key` bit 0 picks I2R/R2I, bit 1 sets
    /// FLAG_ACK, bit 2 flips a ciphertext bit after sealing.
    Data {
        src: u8,
        sid: u8,
        key: u8,
        pn: u32,
        ack: u32,
        ack_bits: u32,
        frames: &'a [u8],
    },
    /// `[3][sid]`: connect as initiator.
    Connect(u8),
    /// `[4][dt u16]`: advance `dt` ms (×4) and run due timers.
    Time(u16),
    /// `[5][n]`: poll_transmit up to `n % 64 + 1` datagrams.
    Transmit(u8),
    /// `[6][sid][len u16]`: write `len` bytes.
    Write(u8, u16),
    /// `[7][sid][len u16]`: read up to `len` bytes.
    Read(u8, u16),
    /// `[8][sid][what]`: close (even) or remove (odd).
    Close(u8, u8),
    /// `[9]`: drain events.
    Events,
}

impl<'a> UdpOp<'a> {
    fn read(inp: &mut Input<'a>) -> Option<Self> {
        Some(match inp.u8()? % 10 {
            0 => UdpOp::Raw(inp.u8()?, inp.blob()?),
            1 => UdpOp::Hs {
                src: inp.u8()?,
                sid: inp.u8()?,
                typ: inp.u8()?,
                fill: inp.u8()?,
                len: inp.u8()?,
            },
            2 => UdpOp::Data {
                src: inp.u8()?,
                sid: inp.u8()?,
                key: inp.u8()?,
                pn: inp.u32()?,
                ack: inp.u32()?,
                ack_bits: inp.u32()?,
                frames: inp.blob()?,
            },
            3 => UdpOp::Connect(inp.u8()?),
            4 => UdpOp::Time(inp.u16()?),
            5 => UdpOp::Transmit(inp.u8()?),
            6 => UdpOp::Write(inp.u8()?, inp.u16()?),
            7 => UdpOp::Read(inp.u8()?, inp.u16()?),
            8 => UdpOp::Close(inp.u8()?, inp.u8()?),
            _ => UdpOp::Events,
        })
    }

    /// Encoder for the seed generator.
    pub fn write(&self, out: &mut Vec<u8>) {
        match *self {
            UdpOp::Raw(src, b) => {
                out.extend_from_slice(&[0, src]);
                put_blob(out, b);
            }
            UdpOp::Hs {
                src,
                sid,
                typ,
                fill,
                len,
            } => out.extend_from_slice(&[1, src, sid, typ, fill, len]),
            UdpOp::Data {
                src,
                sid,
                key,
                pn,
                ack,
                ack_bits,
                frames,
            } => {
                out.extend_from_slice(&[2, src, sid, key]);
                out.extend_from_slice(&pn.to_le_bytes());
                out.extend_from_slice(&ack.to_le_bytes());
                out.extend_from_slice(&ack_bits.to_le_bytes());
                put_blob(out, frames);
            }
            UdpOp::Connect(sid) => out.extend_from_slice(&[3, sid]),
            UdpOp::Time(dt) => {
                out.push(4);
                out.extend_from_slice(&dt.to_le_bytes());
            }
            UdpOp::Transmit(n) => out.extend_from_slice(&[5, n]),
            UdpOp::Write(sid, n) => {
                out.extend_from_slice(&[6, sid]);
                out.extend_from_slice(&n.to_le_bytes());
            }
            UdpOp::Read(sid, n) => {
                out.extend_from_slice(&[7, sid]);
                out.extend_from_slice(&n.to_le_bytes());
            }
            UdpOp::Close(sid, w) => out.extend_from_slice(&[8, sid, w]),
            UdpOp::Events => out.push(9),
        }
    }
}

fn sid(i: u8) -> u64 {
    SIDS[usize::from(i) % SIDS.len()]
}

/// Small caps: every limit is reachable within a few ops.
fn configs(flags: u8) -> (EndpointConfig, Config) {
    let ep = EndpointConfig {
        max_connections: 4,
        max_half_open: 2,
        per_source_burst: 2,
        per_source_interval: Duration::from_millis(250),
        global_burst: 3,
        global_interval: Duration::from_millis(10),
        rate_table_size: 2,
    };
    let conn = Config {
        send_buffer: 8 * 1024,
        recv_window: if flags & 1 == 0 {
            64 * 1024
        } else {
            128 * 1024
        },
        max_window: 32 * 1024,
        pacing: flags & 2 == 0,
        keepalive_interval: (flags & 4 == 0).then(|| Duration::from_secs(10)),
        ..Config::default()
    };
    (ep, conn)
}

/// A data packet sealed with `key`; `None` if the frames do not fit.
#[allow(clippy::too_many_arguments)]
fn seal(sid: u64, key: u8, pn: u32, ack: u32, ack_bits: u32, frames: &[u8]) -> Option<Vec<u8>> {
    let frames = frames.get(..frames.len().min(MAX_PLAINTEXT_LEN))?;
    if frames.is_empty() {
        return None;
    }
    let k = PacketKey::new(if key & 1 == 0 { &I2R } else { &R2I });
    let flags = if key & 2 != 0 {
        dsb_transports::udpsec::packet::FLAG_ACK
    } else {
        0
    };
    let (ack, ack_bits) = if flags == 0 { (0, 0) } else { (ack, ack_bits) };
    let h = Header {
        typ: PacketType::Data,
        flags,
        session_id: sid,
        pn,
        ack,
        ack_bits,
        len: (frames.len() + TAG_LEN) as u16,
    };
    let mut d = vec![0u8; HEADER_LEN + frames.len() + TAG_LEN];
    h.emit(&mut d);
    let (head, body) = d.split_at_mut(HEADER_LEN);
    body[..frames.len()].copy_from_slice(frames);
    k.seal(pn, head, body, frames.len())?;
    if key & 4 != 0 {
        let last = d.len() - 1;
        d[last] ^= 1;
    }
    Some(d)
}

/// Everything the endpoint sends is a well-formed datagram; data packets of
/// an established session open with its send key and hold valid frames.
fn check_sent(d: &[u8], local: &BTreeSet<u64>) {
    assert!(d.len() <= MAX_DATAGRAM);
    let p = Packet::new_checked(d).expect("we sent a bad length");
    let h = Header::parse(&p).expect("we sent a bad header");
    if h.typ != PacketType::Data {
        return;
    }
    let key = if local.contains(&h.session_id) {
        &I2R
    } else {
        &R2I
    };
    let mut out = vec![0u8; p.payload().len()];
    let plain = PacketKey::new(key)
        .open(h.pn, p.header_bytes(), p.payload(), &mut out)
        .expect("we sent a packet that does not open");
    for f in FrameIter::new(plain) {
        assert!(f.is_ok(), "we sent a malformed frame");
    }
}

/// `udpsec_endpoint`: see [`UdpOp`].
pub fn run_udpsec_endpoint(data: &[u8]) {
    let mut inp = Input(data);
    let Some(flags) = inp.u8() else { return };
    let (ep_cfg, conn_cfg) = configs(flags);
    let mut ep: Endpoint<StandIn, u8> = Endpoint::new(ep_cfg.clone(), conn_cfg.clone());
    let mut now = Instant::from_millis(0);
    let mut local: BTreeSet<u64> = BTreeSet::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut trust = NoTrust;
    while let Some(op) = UdpOp::read(&mut inp) {
        match op {
            UdpOp::Raw(src, b) => {
                let _ = ep.handle_datagram(now, src, b, &mut trust, || {
                    Some(StandIn {
                        initiator: false,
                        step: 0,
                    })
                });
            }
            UdpOp::Hs {
                src,
                sid: s,
                typ,
                fill,
                len,
            } => {
                let payload = vec![fill; usize::from(len % 16) + 1];
                let typ = match typ % 3 {
                    0 => PacketType::HsInit,
                    1 => PacketType::HsResp,
                    _ => PacketType::HsFinish,
                };
                let h = Header {
                    typ,
                    flags: 0,
                    session_id: sid(s),
                    pn: 0,
                    ack: 0,
                    ack_bits: 0,
                    len: payload.len() as u16,
                };
                let mut d = vec![0u8; HEADER_LEN];
                h.emit(&mut d);
                d.extend_from_slice(&payload);
                let _ = ep.handle_datagram(now, src, &d, &mut trust, || {
                    Some(StandIn {
                        initiator: false,
                        step: 0,
                    })
                });
            }
            UdpOp::Data {
                src,
                sid: s,
                key,
                pn,
                ack,
                ack_bits,
                frames,
            } => {
                if let Some(d) = seal(sid(s), key, pn, ack, ack_bits, frames) {
                    let _ = ep.handle_datagram(now, src, &d, &mut trust, || {
                        Some(StandIn {
                            initiator: false,
                            step: 0,
                        })
                    });
                }
            }
            UdpOp::Connect(s) => {
                let s = sid(s);
                if ep
                    .connect(
                        now,
                        0,
                        s,
                        StandIn {
                            initiator: true,
                            step: 0,
                        },
                    )
                    .is_ok()
                {
                    local.insert(s);
                }
            }
            UdpOp::Time(dt) => {
                now += Duration::from_millis(u64::from(dt) * 4);
                if ep.poll_timeout().is_some_and(|t| t <= now) {
                    ep.handle_timeout(now);
                }
            }
            UdpOp::Transmit(n) => {
                for _ in 0..=(n % 64) {
                    let Some((_, len)) = ep.poll_transmit(now, &mut buf[..MAX_DATAGRAM]) else {
                        break;
                    };
                    check_sent(&buf[..len], &local);
                }
            }
            UdpOp::Write(s, n) => {
                if let Some(c) = ep.connection_mut(sid(s)) {
                    let cap = c.send_capacity();
                    let w = c.write(&buf[..usize::from(n)]);
                    assert!(w <= cap && w <= usize::from(n));
                }
            }
            UdpOp::Read(s, n) => {
                if let Some(c) = ep.connection_mut(sid(s)) {
                    let ready = c.readable();
                    let r = c.read(&mut buf[..usize::from(n)]);
                    assert_eq!(r, ready.min(usize::from(n)));
                }
            }
            UdpOp::Close(s, w) => {
                if w & 1 == 0 {
                    if let Some(c) = ep.connection_mut(sid(s)) {
                        c.close();
                    }
                } else if ep.remove(sid(s)).is_some() {
                    local.remove(&sid(s));
                }
            }
            UdpOp::Events => {
                let mut per: Vec<(u64, usize)> = Vec::new();
                while let Some((id, e)) = ep.poll_event() {
                    match per.iter_mut().find(|(s, _)| *s == id) {
                        Some((_, n)) => *n += 1,
                        None => per.push((id, 1)),
                    }
                    if let Event::Connected { session_id } = e {
                        assert_eq!(session_id, id);
                    }
                }
                // The queue holds MAX_EVENTS, plus the one Closed that is never dropped.
                assert!(per.iter().all(|&(_, n)| n <= MAX_EVENTS + 1), "{per:?}");
            }
        }
        check_caps(&ep, &ep_cfg, &conn_cfg, &local);
    }
}

fn check_caps(
    ep: &Endpoint<StandIn, u8>,
    ep_cfg: &EndpointConfig,
    cfg: &Config,
    local: &BTreeSet<u64>,
) {
    assert!(ep.len() <= ep_cfg.max_connections);
    let mut half_open = 0;
    for s in ep.sessions() {
        let c = ep.connection(s).expect("listed session exists");
        if !local.contains(&s) && c.is_handshaking() {
            half_open += 1;
        }
        assert!(c.readable() <= cfg.effective_recv_window());
        assert!(c.send_capacity() <= cfg.send_buffer);
        let st = c.stats();
        assert!(
            st.bytes_in_flight <= (MAX_SENT_PACKETS * MAX_DATAGRAM) as u64,
            "{st:?}"
        );
    }
    assert!(half_open <= ep_cfg.max_half_open, "half-open {half_open}");
}
