//! Robustness: random input never panics and never grows memory beyond the
//! configured caps; two honest peers driven by random operations never see a
//! protocol error and release every channel at the end.

mod mux_support;

use dsb_transports::mux::{
    ChannelError, ChannelId, Frame, Header, Mux, MuxConfig, MuxError, Role, MAX_FRAME_PAYLOAD,
};
use mux_support::*;
use smoltcp::time::{Duration, Instant};

fn small() -> MuxConfig {
    MuxConfig {
        max_channels: 4,
        recv_window: 3000,
        session_window: 7000,
        send_buffer: 5000,
        max_pending_send: 9000,
        max_frame_payload: 1200,
        ..MuxConfig::default()
    }
}

fn authenticated(role: Role, cfg: MuxConfig) -> Mux {
    let mut m = Mux::new(role, cfg, T0).unwrap();
    m.register_service("echo").unwrap();
    m.register_service("a.b").unwrap();
    m.set_authenticated(T0);
    m
}

const NAMES: [&[u8]; 4] = [b"echo", b"a.b", b"nope", b"x"];

/// A frame with random but plausible fields (small ids, sizes around the windows).
fn random_frame(rng: &mut Rng, payload: &mut Vec<u8>) -> Vec<u8> {
    let channel = rng.range(0, 9) as u32;
    let credit = match rng.range(0, 3) {
        0 => u32::MAX,
        1 => 0,
        _ => rng.range(1, 10_000) as u32,
    };
    let name = NAMES[rng.range(0, NAMES.len() - 1)];
    payload.clear();
    payload.resize(rng.range(1, 4000), 0xab);
    let f = match rng.range(0, 9) {
        0 => Frame::Open {
            channel,
            initial_credit: credit,
            name,
        },
        1 => Frame::Accept {
            channel,
            initial_credit: credit,
        },
        2 | 3 => Frame::Data { channel, payload },
        4 => Frame::WindowUpdate {
            channel,
            increment: credit,
        },
        5 => Frame::Fin { channel },
        6 => Frame::Reset {
            channel,
            code: rng.next_u64() as u16,
        },
        7 => Frame::Ping {
            opaque: rng.next_u64(),
        },
        8 => Frame::Pong {
            opaque: rng.next_u64(),
        },
        _ => Frame::GoAway { code: 0 },
    };
    frame(f)
}

fn check_caps(m: &Mux) {
    let s = m.stats();
    let cfg = m.config();
    assert!(s.buffered_bytes() <= cfg.memory_bound(), "{s:?}");
    assert!(s.input_buffered <= 8 + MAX_FRAME_PAYLOAD);
    assert!(s.recv_buffered <= cfg.session_window as usize);
    assert!(s.send_buffered <= cfg.max_pending_send);
    assert!(s.channels <= cfg.max_channels);
    assert!(s.events_queued <= dsb_transports::mux::EVENT_QUEUE_CAP);
}

/// Feeds `input` in random chunks; once an error happened it must persist.
fn feed_chunked(m: &mut Mux, rng: &mut Rng, input: &[u8]) -> Option<MuxError> {
    let mut rest = input;
    while !rest.is_empty() {
        let take = rng.range(1, rest.len());
        if let Err(e) = m.handle_bytes(T0, &rest[..take]) {
            assert_eq!(m.handle_bytes(T0, b"more"), Err(e));
            assert!(!e.label().is_empty());
            check_caps(m);
            return Some(e);
        }
        check_caps(m);
        rest = &rest[take..];
    }
    None
}

#[test]
fn ten_thousand_random_inputs_never_panic_nor_exceed_caps() {
    let mut rng = Rng::new(0xF022);
    let mut payload = Vec::new();
    let mut errors = std::collections::BTreeMap::<&'static str, u32>::new();
    for i in 0..10_000 {
        let mut m = authenticated(
            if i % 2 == 0 {
                Role::Responder
            } else {
                Role::Initiator
            },
            small(),
        );
        let input: Vec<u8> = match i % 4 {
            // Pure noise.
            0 => rng.bytes_in(0, 2000),
            // A plausible header followed by noise.
            1 => {
                let h = Header {
                    frame_type: rng.range(0, 10) as u8,
                    flags: if rng.range(0, 9) == 0 { 1 } else { 0 },
                    channel: rng.range(0, 6) as u32,
                    len: rng.range(0, 40) as u16,
                };
                let mut b = [0u8; 8];
                h.emit(&mut b).unwrap();
                let mut v = b.to_vec();
                v.extend(rng.bytes_in(0, 60));
                v
            }
            // Sequences of well-formed frames with random fields.
            _ => (0..rng.range(1, 30))
                .flat_map(|_| random_frame(&mut rng, &mut payload))
                .collect(),
        };
        if let Some(e) = feed_chunked(&mut m, &mut rng, &input) {
            *errors.entry(e.label()).or_default() += 1;
        }
        // The mux stays usable as a state machine whatever happened.
        let mut out = [0u8; 2048];
        while m.poll_transmit(&mut out) > 0 {}
        while m.poll_event().is_some() {}
        check_caps(&m);
    }
    // The generator reaches many different rejections.
    assert!(errors.len() >= 8, "{errors:?}");
}

#[test]
fn random_frames_mixed_with_application_calls_stay_within_caps() {
    let mut rng = Rng::new(77);
    let mut payload = Vec::new();
    for round in 0..300 {
        let mut m = authenticated(Role::Responder, small());
        let mut now = T0;
        for _ in 0..200 {
            let live: Vec<ChannelId> = m.channel_ids().collect();
            let pick = |rng: &mut Rng| {
                if live.is_empty() || rng.range(0, 5) == 0 {
                    ChannelId(rng.range(0, 9) as u32)
                } else {
                    live[rng.range(0, live.len() - 1)]
                }
            };
            match rng.range(0, 9) {
                0..=2 => {
                    let f = random_frame(&mut rng, &mut payload);
                    if feed_chunked(&mut m, &mut rng, &f).is_some() {
                        break;
                    }
                }
                3 => {
                    let _ = m.open(["echo", "svc", "a.b"][rng.range(0, 2)]);
                }
                4 => {
                    let id = pick(&mut rng);
                    let _ = m.write(id, &rng.bytes_in(1, 6000));
                }
                5 => {
                    let id = pick(&mut rng);
                    let _ = m.read(id, &mut vec![0; rng.range(1, 5000)]);
                }
                6 => {
                    let id = pick(&mut rng);
                    let _ = if rng.range(0, 1) == 0 {
                        m.finish(id)
                    } else {
                        m.reset(id, 3)
                    };
                }
                7 => {
                    let mut out = vec![0u8; rng.range(44, 20_000)];
                    m.poll_transmit(&mut out);
                }
                _ => {
                    now += Duration::from_millis(rng.range(0, 4000) as u64);
                    let _ = m.handle_timeout(now);
                    while m.poll_event().is_some() {}
                }
            }
            check_caps(&m);
        }
        let _ = round;
    }
}

/// One random application step on `m`; `peer_side` picks channel ids to use.
fn random_app_op(rng: &mut Rng, m: &mut Mux, now: Instant) {
    let live: Vec<ChannelId> = m.channel_ids().collect();
    let id = if live.is_empty() {
        None
    } else {
        Some(live[rng.range(0, live.len() - 1)])
    };
    match (rng.range(0, 11), id) {
        (0, _) => {
            let _ = m.open(["echo", "a.b", "nope"][rng.range(0, 2)]);
        }
        (1..=4, Some(id)) => match m.write(id, &rng.bytes_in(1, 7000)) {
            Ok(_)
            | Err(ChannelError::WouldBlock | ChannelError::Finished | ChannelError::Closed) => {}
            Err(e) => panic!("write: {e}"),
        },
        (5..=7, Some(id)) => match m.read(id, &mut vec![0; rng.range(1, 8000)]) {
            Ok(_) | Err(ChannelError::WouldBlock | ChannelError::Closed) => {}
            Err(e) => panic!("read: {e}"),
        },
        (8, Some(id)) => m
            .finish(id)
            .or_else(|e| {
                if e == ChannelError::Closed {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .unwrap(),
        (9, Some(id)) if rng.range(0, 3) == 0 => m.reset(id, 42).unwrap(),
        (10, _) => m.ping(now).unwrap(),
        _ => {}
    }
}

#[test]
fn honest_peers_never_violate_the_protocol_and_release_every_channel() {
    let mut totals = dsb_transports::mux::MuxStats::default();
    for seed in 0..200u64 {
        let mut p = Pair::new(small(), seed, &["echo", "a.b"]);
        p.max_tx = [50, 300, 5000, 65_519][(seed % 4) as usize];
        p.max_rx = [1, 13, 2000, 70_000][(seed / 4 % 4) as usize];
        for _ in 0..300 {
            for _ in 0..p.rng.range(0, 3) {
                let now = p.now;
                let (rng, a) = (&mut p.rng, &mut p.a);
                random_app_op(rng, a, now);
                let (rng, b) = (&mut p.rng, &mut p.b);
                random_app_op(rng, b, now);
            }
            if p.rng.range(0, 20) == 0 {
                let d = Duration::from_millis(p.rng.range(0, 5000) as u64);
                p.advance(d).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            }
            p.step().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            check_caps(&p.a);
            check_caps(&p.b);
            while p.a.poll_event().is_some() {}
            while p.b.poll_event().is_some() {}
        }
        // Wind down: finish and drain everything; all slots must be released.
        for _ in 0..10_000 {
            for m in [&mut p.a, &mut p.b] {
                let ids: Vec<ChannelId> = m.channel_ids().collect();
                for id in ids {
                    let _ = m.finish(id);
                    let mut sink = Vec::new();
                    read_all(m, id, &mut sink, 9000);
                }
            }
            p.step().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            if p.a.stats().channels == 0 && p.b.stats().channels == 0 {
                break;
            }
        }
        p.settle().unwrap();
        for m in [&p.a, &p.b] {
            let s = m.stats();
            totals.data_rx += s.data_rx;
            totals.refused_unknown_service += s.refused_unknown_service;
            totals.refused_too_many_channels += s.refused_too_many_channels;
            totals.stale_frames += s.stale_frames;
            totals.frames_rx += s.frames_rx;
            assert_eq!(s.channels, 0, "seed {seed}: {s:?}");
            assert_eq!(s.buffered_bytes(), 0, "seed {seed}: {s:?}");
            assert!(!m.is_closed());
        }
    }
    eprintln!("{totals:?}");
    // The random walk really exercised data, refusals and reset races.
    assert!(totals.data_rx > 10_000_000, "{totals:?}");
    assert!(totals.refused_unknown_service > 100, "{totals:?}");
    assert!(totals.refused_too_many_channels > 10, "{totals:?}");
    assert!(totals.stale_frames > 10, "{totals:?}");
}
