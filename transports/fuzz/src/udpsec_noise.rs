//! `udpsec_noise`: the node's udp-sec endpoint with the real attested Noise
//! handshake (`NoiseHandshake`), against a second endpoint (the peer) over a
//! wire the fuzzer controls: it decides which datagram is delivered, dropped,
//! duplicated or corrupted, injects raw datagrams, advances time and drives
//! both stream APIs. The peer is honest ("node-b") or an impostor that
//! claims node-b's id with other keys. RNGs are seeded, so a recorded
//! exchange replays byte for byte. Input: `[flags u8]` then ops, see
//! [`NoiseOp`].
//!
//! Checks: the caps of `udpsec_endpoint`, and the identity binding: a
//! session on our side is only ever established with the honest node-b,
//! bound to node-b, never with the impostor.
//!
//! SECURITY: test keys, not for production.

use std::collections::VecDeque;
use std::sync::OnceLock;

use dsb_noise::{DeviceId, HandshakeConfig, Identity, NoiseError, TrustStore};
use dsb_transports::udpsec::packet::{Header, Packet};
use dsb_transports::udpsec::{
    Config, Endpoint, EndpointConfig, Event, NoiseHandshake, MAX_DATAGRAM,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use smoltcp::time::{Duration, Instant};

use crate::{put_blob, Input};

/// `(device id, Ed25519 seed, X25519 secret)`: us, the honest peer, the impostor.
// SECURITY: test keys, not for production.
const SECRETS: [(&str, [u8; 32], [u8; 32]); 3] = [
    ("node-a", [0x41; 32], [0x42; 32]),
    ("node-b", [0x51; 32], [0x52; 32]),
    ("node-b", [0x61; 32], [0x62; 32]),
];

fn identities() -> &'static [Identity; 3] {
    static IDS: OnceLock<[Identity; 3]> = OnceLock::new();
    IDS.get_or_init(|| {
        SECRETS.map(|(id, dev, st)| Identity::from_secret_bytes(id, &dev, &st).expect("test id"))
    })
}

/// Both sides pin the honest device keys of node-a and node-b.
struct Trust;

impl TrustStore for Trust {
    fn admit(&mut self, device_id: &DeviceId, device_key: &[u8; 32]) -> Result<(), NoiseError> {
        let ids = identities();
        let pinned = match device_id.as_str() {
            "node-a" => ids[0].device_public_key(),
            "node-b" => ids[1].device_public_key(),
            _ => return Err(NoiseError::UnknownPeer),
        };
        if &pinned == device_key {
            Ok(())
        } else {
            Err(NoiseError::IdentityMismatch)
        }
    }
}

/// One `udpsec_noise` operation.
#[derive(Clone, Debug)]
pub enum NoiseOp<'a> {
    /// `[0][sid]`: we connect to the peer (session id `sid + 1`).
    Connect(u8),
    /// `[1][sid]`: the peer connects to us (session id `0x100 + sid`).
    PeerConnect(u8),
    /// `[2][n]`: both endpoints transmit up to `n % 16 + 1` datagrams onto the wire.
    Pump(u8),
    /// `[3][to_us u8][at u16][xor u8]`: deliver the oldest datagram of one
    /// direction, `xor`ed into byte `at` first when `xor != 0`; `to_us` bit 1
    /// keeps a copy queued (duplicate), bit 2 drops it instead.
    Deliver { to_us: u8, at: u16, xor: u8 },
    /// `[4][blob]`: a raw datagram to us.
    Raw(&'a [u8]),
    /// `[5][dt u16]`: advance `dt` ms and run due timers on both.
    Time(u16),
    /// `[6][side][len u16]`: write on every session of a side.
    Write(u8, u16),
    /// `[7][side][len u16]`: read on every session of a side.
    Read(u8, u16),
    /// `[8]`: drain both sides' events (and check who we are connected to).
    Events,
}

impl<'a> NoiseOp<'a> {
    fn read(inp: &mut Input<'a>) -> Option<Self> {
        Some(match inp.u8()? % 9 {
            0 => NoiseOp::Connect(inp.u8()?),
            1 => NoiseOp::PeerConnect(inp.u8()?),
            2 => NoiseOp::Pump(inp.u8()?),
            3 => NoiseOp::Deliver {
                to_us: inp.u8()?,
                at: inp.u16()?,
                xor: inp.u8()?,
            },
            4 => NoiseOp::Raw(inp.blob()?),
            5 => NoiseOp::Time(inp.u16()?),
            6 => NoiseOp::Write(inp.u8()?, inp.u16()?),
            7 => NoiseOp::Read(inp.u8()?, inp.u16()?),
            _ => NoiseOp::Events,
        })
    }

    /// Encoder for the seed generator.
    pub fn write(&self, out: &mut Vec<u8>) {
        match *self {
            NoiseOp::Connect(s) => out.extend_from_slice(&[0, s]),
            NoiseOp::PeerConnect(s) => out.extend_from_slice(&[1, s]),
            NoiseOp::Pump(n) => out.extend_from_slice(&[2, n]),
            NoiseOp::Deliver { to_us, at, xor } => {
                out.extend_from_slice(&[3, to_us]);
                out.extend_from_slice(&at.to_le_bytes());
                out.push(xor);
            }
            NoiseOp::Raw(b) => {
                out.push(4);
                put_blob(out, b);
            }
            NoiseOp::Time(dt) => {
                out.push(5);
                out.extend_from_slice(&dt.to_le_bytes());
            }
            NoiseOp::Write(s, n) => {
                out.extend_from_slice(&[6, s]);
                out.extend_from_slice(&n.to_le_bytes());
            }
            NoiseOp::Read(s, n) => {
                out.extend_from_slice(&[7, s]);
                out.extend_from_slice(&n.to_le_bytes());
            }
            NoiseOp::Events => out.push(8),
        }
    }
}

type Ep = Endpoint<NoiseHandshake, u8>;

/// Datagrams in flight one way (bounded like a real queue).
const WIRE_CAP: usize = 64;

fn check_wire(d: &[u8]) {
    assert!(d.len() <= MAX_DATAGRAM);
    let p = Packet::new_checked(d).expect("we sent a bad length");
    Header::parse(&p).expect("we sent a bad header");
}

/// `udpsec_noise`: see [`NoiseOp`].
pub fn run_udpsec_noise(data: &[u8]) {
    let mut inp = Input(data);
    let Some(flags) = inp.u8() else { return };
    let impostor = flags & 1 != 0;
    let ids = identities();
    let (us, them) = (&ids[0], if impostor { &ids[2] } else { &ids[1] });
    let ep_cfg = EndpointConfig {
        max_connections: 4,
        max_half_open: 2,
        ..EndpointConfig::default()
    };
    let conn = Config {
        send_buffer: 8 * 1024,
        max_window: 32 * 1024,
        ..Config::default()
    };
    let hs_cfg = HandshakeConfig::default();
    let mut ours: Ep = Endpoint::new(ep_cfg.clone(), conn.clone());
    let mut peer: Ep = Endpoint::new(ep_cfg.clone(), conn.clone());
    let mut rng_ours = ChaCha20Rng::from_seed([0xa1; 32]);
    let mut rng_peer = ChaCha20Rng::from_seed([0xb1; 32]);
    let mut to_us: VecDeque<Vec<u8>> = VecDeque::new();
    let mut to_peer: VecDeque<Vec<u8>> = VecDeque::new();
    let mut now = Instant::from_millis(0);
    let mut buf = vec![0u8; 64 * 1024];
    let node_a = DeviceId::new("node-a").expect("id");
    let node_b = DeviceId::new("node-b").expect("id");
    while let Some(op) = NoiseOp::read(&mut inp) {
        match op {
            NoiseOp::Connect(s) => {
                let hs = NoiseHandshake::initiator(
                    us,
                    &node_b,
                    ids[1].binding(),
                    &mut rng_ours,
                    now,
                    &hs_cfg,
                )
                .expect("initiator");
                let _ = ours.connect(now, 1, u64::from(s % 4) + 1, hs);
            }
            NoiseOp::PeerConnect(s) => {
                let hs = NoiseHandshake::initiator(
                    them,
                    &node_a,
                    us.binding(),
                    &mut rng_peer,
                    now,
                    &hs_cfg,
                )
                .expect("initiator");
                let _ = peer.connect(now, 0, 0x100 + u64::from(s % 4), hs);
            }
            NoiseOp::Pump(n) => {
                for _ in 0..=(n % 16) {
                    match ours.poll_transmit(now, &mut buf[..MAX_DATAGRAM]) {
                        Some((_, len)) if to_peer.len() < WIRE_CAP => {
                            check_wire(&buf[..len]);
                            to_peer.push_back(buf[..len].to_vec());
                        }
                        _ => {}
                    }
                    match peer.poll_transmit(now, &mut buf[..MAX_DATAGRAM]) {
                        Some((_, len)) if to_us.len() < WIRE_CAP => {
                            to_us.push_back(buf[..len].to_vec());
                        }
                        _ => {}
                    }
                }
            }
            NoiseOp::Deliver {
                to_us: dir,
                at,
                xor,
            } => {
                let q = if dir & 1 == 0 {
                    &mut to_us
                } else {
                    &mut to_peer
                };
                let Some(mut d) = q.pop_front() else { continue };
                if dir & 2 != 0 && q.len() < WIRE_CAP {
                    q.push_back(d.clone());
                }
                if dir & 4 != 0 {
                    continue;
                }
                if xor != 0 && !d.is_empty() {
                    let i = usize::from(at) % d.len();
                    d[i] ^= xor;
                }
                if dir & 1 == 0 {
                    let _ = ours.handle_datagram(now, 1, &d, &mut Trust, || {
                        NoiseHandshake::responder(us, &mut rng_ours, now, &hs_cfg).ok()
                    });
                } else {
                    let _ = peer.handle_datagram(now, 0, &d, &mut Trust, || {
                        NoiseHandshake::responder(them, &mut rng_peer, now, &hs_cfg).ok()
                    });
                }
            }
            NoiseOp::Raw(b) => {
                let _ = ours.handle_datagram(now, 2, b, &mut Trust, || {
                    NoiseHandshake::responder(us, &mut rng_ours, now, &hs_cfg).ok()
                });
            }
            NoiseOp::Time(dt) => {
                now += Duration::from_millis(u64::from(dt));
                for ep in [&mut ours, &mut peer] {
                    if ep.poll_timeout().is_some_and(|t| t <= now) {
                        ep.handle_timeout(now);
                    }
                }
            }
            NoiseOp::Write(side, n) => {
                let ep = if side & 1 == 0 { &mut ours } else { &mut peer };
                let sids: Vec<u64> = ep.sessions().collect();
                for s in sids {
                    if let Some(c) = ep.connection_mut(s) {
                        let cap = c.send_capacity();
                        assert!(c.write(&buf[..usize::from(n)]) <= cap);
                    }
                }
            }
            NoiseOp::Read(side, n) => {
                let ep = if side & 1 == 0 { &mut ours } else { &mut peer };
                let sids: Vec<u64> = ep.sessions().collect();
                for s in sids {
                    if let Some(c) = ep.connection_mut(s) {
                        let ready = c.readable();
                        assert_eq!(
                            c.read(&mut buf[..usize::from(n)]),
                            ready.min(usize::from(n))
                        );
                    }
                }
            }
            NoiseOp::Events => {
                while let Some((sid, e)) = ours.poll_event() {
                    if let Event::Connected { .. } = e {
                        // The identity binding: only the honest node-b gets a session.
                        assert!(!impostor, "session established with the impostor");
                        let c = ours.connection(sid).expect("connected session exists");
                        let hs = c.handshake().expect("handshake kept");
                        assert_eq!(hs.authenticated_peer(), Some(&node_b));
                    }
                }
                while peer.poll_event().is_some() {}
            }
        }
        assert!(ours.len() <= ep_cfg.max_connections);
        for s in ours.sessions() {
            let c = ours.connection(s).expect("listed session exists");
            assert!(c.readable() <= conn.effective_recv_window());
            assert!(c.send_capacity() <= conn.send_buffer);
            if c.is_established() && impostor {
                panic!("established with the impostor");
            }
        }
    }
}
