//! Channel lifecycle between two muxes: open, accept, data, half-close, reset,
//! refusals, and byte-exact bulk transfers under arbitrary chunking.

mod mux_support;

use dsb_transports::mux::{
    reset_code, ChannelError, ChannelId, MuxConfig, MuxEvent, RefuseReason, ServiceName,
};
use mux_support::*;

fn name(s: &str) -> ServiceName {
    ServiceName::new(s.as_bytes()).unwrap()
}

#[test]
fn open_accept_data_half_close_and_reset() {
    let mut p = Pair::new(MuxConfig::default(), 1, &["echo"]);
    let id = p.a.open("echo").unwrap();
    assert_eq!(id, ChannelId(1), "the session initiator opens odd ids");
    // Data may be written before the ACCEPT; it waits for credit.
    assert_eq!(p.a.write(id, b"hello").unwrap(), 5);
    p.settle().unwrap();
    assert_eq!(
        events(&mut p.b),
        vec![
            MuxEvent::ChannelOpened {
                id,
                name: name("echo")
            },
            MuxEvent::Readable { id }
        ]
    );
    assert_eq!(events(&mut p.a), vec![MuxEvent::Accepted { id }]);
    let mut buf = [0u8; 64];
    assert_eq!(p.b.read(id, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(p.b.read(id, &mut buf), Err(ChannelError::WouldBlock));

    p.b.write(id, b"world").unwrap();
    p.settle().unwrap();
    assert_eq!(events(&mut p.a), vec![MuxEvent::Readable { id }]);
    assert_eq!(p.a.read(id, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"world");

    // Half-close a -> b: b sees EOF but can still send.
    p.a.finish(id).unwrap();
    assert_eq!(p.a.write(id, b"x"), Err(ChannelError::Finished));
    p.settle().unwrap();
    assert_eq!(events(&mut p.b), vec![MuxEvent::Finished { id }]);
    assert_eq!(p.b.read(id, &mut buf), Ok(0));
    p.b.write(id, b"late").unwrap();
    p.settle().unwrap();
    assert_eq!(p.a.read(id, &mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"late");
    assert_eq!(p.a.stats().channels, 1);

    // Closing the other direction releases the channel on both sides.
    p.b.finish(id).unwrap();
    p.settle().unwrap();
    assert!(events(&mut p.a).contains(&MuxEvent::Finished { id }));
    assert_eq!(p.a.stats().channels, 0);
    assert_eq!(p.b.stats().channels, 0);
    assert_eq!(p.a.read(id, &mut buf), Err(ChannelError::Closed));
    assert_eq!(
        p.a.write(ChannelId(99), b"x"),
        Err(ChannelError::UnknownChannel)
    );

    // The name can be opened again; then the acceptor resets it.
    let id2 = p.a.open("echo").unwrap();
    assert_eq!(id2, ChannelId(3));
    p.a.write(id2, b"doomed").unwrap();
    p.settle().unwrap();
    events(&mut p.a);
    events(&mut p.b);
    p.b.reset(id2, 7).unwrap();
    p.settle().unwrap();
    assert_eq!(events(&mut p.a), vec![MuxEvent::Reset { id: id2, code: 7 }]);
    assert_eq!(p.a.write(id2, b"x"), Err(ChannelError::Closed));
    assert_eq!(p.b.read(id2, &mut buf), Err(ChannelError::Closed));
    assert_eq!(p.a.stats().channels, 0);
    assert_eq!(p.b.stats().channels, 0);
    // The unread "doomed" bytes were released, not leaked.
    assert_eq!(p.b.stats().buffered_bytes(), 0);
    assert_eq!(
        p.b.reset(id2, reset_code::UNKNOWN_SERVICE),
        Err(ChannelError::ReservedCode)
    );
}

#[test]
fn both_sides_open_with_disjoint_ids_and_may_share_a_name() {
    let mut p = Pair::new(MuxConfig::default(), 2, &["chat"]);
    let a1 = p.a.open("chat").unwrap();
    let b1 = p.b.open("chat").unwrap();
    assert_eq!((a1, b1), (ChannelId(1), ChannelId(2)));
    assert_eq!(p.a.open("chat"), Err(ChannelError::DuplicateName));
    p.a.write(a1, b"from-a").unwrap();
    p.b.write(b1, b"from-b").unwrap();
    p.settle().unwrap();
    let mut got = Vec::new();
    read_all(&mut p.b, a1, &mut got, 64);
    assert_eq!(got, b"from-a");
    got.clear();
    read_all(&mut p.a, b1, &mut got, 64);
    assert_eq!(got, b"from-b");
    assert_eq!(p.a.channel_name(b1), Some(name("chat")));
}

#[test]
fn open_for_an_unregistered_service_is_refused_and_the_session_goes_on() {
    let mut p = Pair::new(MuxConfig::default(), 3, &["echo"]);
    let id = p.a.open("nope").unwrap();
    p.a.write(id, b"never delivered").unwrap();
    p.settle().unwrap();
    let refused = events(&mut p.b);
    assert_eq!(
        refused,
        vec![MuxEvent::Refused {
            id,
            name: name("nope"),
            reason: RefuseReason::UnknownService
        }]
    );
    assert_eq!(RefuseReason::UnknownService.label(), "unknown-service");
    assert_eq!(p.b.stats().refused_unknown_service, 1);
    let ev = events(&mut p.a);
    assert_eq!(
        ev,
        vec![MuxEvent::Reset {
            id,
            code: reset_code::UNKNOWN_SERVICE
        }]
    );
    assert_eq!(
        RefuseReason::from_reset_code(reset_code::UNKNOWN_SERVICE),
        Some(RefuseReason::UnknownService)
    );
    assert_eq!(
        p.a.stats().send_buffered,
        0,
        "refused channel's data dropped"
    );
    // The session is unaffected.
    let ok = p.a.open("echo").unwrap();
    p.a.write(ok, b"fine").unwrap();
    p.settle().unwrap();
    let mut got = Vec::new();
    read_all(&mut p.b, ok, &mut got, 16);
    assert_eq!(got, b"fine");
    assert!(!p.a.is_closed() && !p.b.is_closed());
}

#[test]
fn a_denied_service_is_refused_as_access_denied_before_any_byte_is_delivered() {
    let mut p = Pair::new(MuxConfig::default(), 4, &["echo"]);
    p.b.deny_service("secret").unwrap();
    let id = p.a.open("secret").unwrap();
    p.a.write(id, b"must never arrive").unwrap();
    p.settle().unwrap();
    assert_eq!(
        events(&mut p.b),
        vec![MuxEvent::Refused {
            id,
            name: name("secret"),
            reason: RefuseReason::AccessDenied
        }]
    );
    assert_eq!(p.b.stats().refused_access_denied, 1);
    assert_eq!(
        p.b.stats().data_rx,
        0,
        "no byte of the refused channel reached b"
    );
    assert_eq!(
        events(&mut p.a),
        vec![MuxEvent::Reset {
            id,
            code: reset_code::ACCESS_DENIED
        }]
    );
    assert_eq!(
        RefuseReason::from_reset_code(reset_code::ACCESS_DENIED),
        Some(RefuseReason::AccessDenied)
    );
    // Allowing it later (register) lifts the denial; unregistering forgets it.
    p.b.register_service("secret").unwrap();
    let ok = p.a.open("secret").unwrap();
    p.a.write(ok, b"now").unwrap();
    p.settle().unwrap();
    let mut got = Vec::new();
    read_all(&mut p.b, ok, &mut got, 16);
    assert_eq!(got, b"now");
    assert!(p.b.unregister_service("secret"));
    assert!(!p.b.unregister_service("secret"));
}

#[test]
fn opens_beyond_max_channels_are_refused_per_channel() {
    let small = MuxConfig {
        max_channels: 2,
        ..MuxConfig::default()
    };
    let mut p = Pair::with(MuxConfig::default(), small, 4, &["echo", "echo2", "echo3"]);
    let c1 = p.a.open("echo").unwrap();
    let c2 = p.a.open("echo2").unwrap();
    let c3 = p.a.open("echo3").unwrap();
    p.settle().unwrap();
    let b_events = events(&mut p.b);
    assert!(b_events.contains(&MuxEvent::Refused {
        id: c3,
        name: name("echo3"),
        reason: RefuseReason::TooManyChannels
    }));
    assert_eq!(RefuseReason::TooManyChannels.label(), "too-many-channels");
    assert_eq!(p.b.stats().refused_too_many_channels, 1);
    let a_events = events(&mut p.a);
    assert!(a_events.contains(&MuxEvent::Accepted { id: c1 }));
    assert!(a_events.contains(&MuxEvent::Accepted { id: c2 }));
    assert!(a_events.contains(&MuxEvent::Reset {
        id: c3,
        code: reset_code::TOO_MANY_CHANNELS
    }));
    // Locally, a full table is an API error, not a wire event.
    assert_eq!(p.b.open("echo"), Err(ChannelError::TooManyChannels));
    // Freeing a slot lets the next open through.
    p.a.reset(c1, 1).unwrap();
    p.settle().unwrap();
    let c4 = p.a.open("echo3").unwrap();
    p.settle().unwrap();
    assert!(events(&mut p.a).contains(&MuxEvent::Accepted { id: c4 }));
}

/// Moves `data` a -> b over one channel with the pair's random chunking,
/// reading with random buffer sizes; returns what b received.
fn transfer(p: &mut Pair, data: &[u8]) -> Vec<u8> {
    let id = p.a.open("bulk").unwrap();
    let mut sent = 0;
    let mut got = Vec::with_capacity(data.len());
    let mut finished = false;
    for _ in 0..1_000_000 {
        let max_write = p.rng.range(1, 40_000);
        write_some(&mut p.a, id, data, &mut sent, max_write);
        if sent == data.len() && !finished {
            p.a.finish(id).unwrap();
            finished = true;
        }
        let moved = p.step().unwrap();
        let chunk = p.rng.range(1, 20_000);
        if read_all(&mut p.b, id, &mut got, chunk) {
            return got;
        }
        let bound = p.a.config().memory_bound();
        assert!(p.a.stats().buffered_bytes() <= bound);
        assert!(p.b.stats().buffered_bytes() <= bound);
        let _ = moved;
    }
    panic!("transfer did not finish");
}

#[test]
fn one_mib_arrives_byte_exact_under_random_chunking() {
    for seed in [11u64, 12, 13, 14] {
        let mut p = Pair::new(MuxConfig::default(), seed, &["bulk"]);
        // Vary the stream chunking per seed: tiny to large writes and reads.
        p.max_tx = [64, 1500, 20_000, 65_519][(seed % 4) as usize];
        p.max_rx = [1, 7, 1400, 70_000][(seed % 4) as usize];
        let data = Rng::new(seed * 7).bytes(1 << 20);
        let got = transfer(&mut p, &data);
        assert_eq!(got.len(), data.len(), "seed {seed}");
        assert_eq!(fnv64(&got), fnv64(&data), "seed {seed}");
        assert!(got == data, "seed {seed}");
    }
}

#[test]
fn several_channels_interleave_and_each_arrives_intact() {
    let mut p = Pair::new(MuxConfig::default(), 21, &["s1", "s2", "s3"]);
    let mut rng = Rng::new(99);
    // a opens three, b opens two; every channel carries its own payload.
    let mut flows = Vec::new();
    for (from_a, svc) in [
        (true, "s1"),
        (true, "s2"),
        (true, "s3"),
        (false, "s1"),
        (false, "s2"),
    ] {
        let id = if from_a { p.a.open(svc) } else { p.b.open(svc) }.unwrap();
        let len = rng.range(100_000, 300_000);
        flows.push((from_a, id, rng.bytes(len), 0usize, Vec::new(), false, false));
    }
    let mut multi_channel_rounds = 0;
    for _ in 0..100_000 {
        for f in flows.iter_mut() {
            let (from_a, id, data, sent, _, fin, _) = f;
            let m = if *from_a { &mut p.a } else { &mut p.b };
            write_some(m, *id, data, sent, 9000);
            if *sent == data.len() && !*fin {
                m.finish(*id).unwrap();
                *fin = true;
            }
        }
        p.step().unwrap();
        let mut readers = 0;
        for f in flows.iter_mut() {
            let (from_a, id, _, _, got, _, eof) = f;
            let m = if *from_a { &mut p.b } else { &mut p.a };
            let before = got.len();
            if !*eof {
                *eof = read_all(m, *id, got, 5000);
            }
            if got.len() > before {
                readers += 1;
            }
        }
        if readers > 1 {
            multi_channel_rounds += 1;
        }
        if flows.iter().all(|f| f.6) {
            break;
        }
    }
    for (_, id, data, _, got, _, eof) in &flows {
        assert!(eof, "channel {id} finished");
        assert_eq!(fnv64(got), fnv64(data), "channel {id}");
        assert!(got == data, "channel {id}");
    }
    assert!(
        multi_channel_rounds > 10,
        "channels were interleaved ({multi_channel_rounds})"
    );
}

#[test]
fn nothing_is_sent_or_opened_before_authentication() {
    use dsb_transports::mux::{Mux, Role};
    let mut m = Mux::new(Role::Initiator, MuxConfig::default(), T0).unwrap();
    assert_eq!(m.open("echo"), Err(ChannelError::NotAuthenticated));
    assert_eq!(m.ping(T0), Err(ChannelError::NotAuthenticated));
    let mut buf = [0u8; 256];
    assert_eq!(m.poll_transmit(&mut buf), 0);
    m.set_authenticated(T0);
    // The first bytes after authentication grant the session credit.
    assert!(m.poll_transmit(&mut buf) > 0);
    assert!(m.open("echo").is_ok());
}
