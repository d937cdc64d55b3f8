//! Keepalive: the idle deadline fires exactly when nothing arrived for
//! `idle_timeout`; PING/PONG traffic keeps an otherwise idle session alive.

mod mux_support;

use dsb_transports::mux::{
    goaway_code, Frame, Mux, MuxConfig, MuxError, MuxEvent, Role, HEADER_LEN,
};
use mux_support::*;
use smoltcp::time::{Duration, Instant};

#[test]
fn idle_timeout_fires_at_the_deadline_and_not_before() {
    let cfg = MuxConfig::default(); // idle 30 s, keepalive 10 s
    let mut m = Mux::new(Role::Responder, cfg, T0).unwrap();
    m.set_authenticated(T0);
    drain_tx(&mut m, 1024);
    // First deadline: the keepalive PING at 10 s.
    assert_eq!(m.poll_at(), Some(Instant::from_secs(10)));
    m.handle_timeout(Instant::from_secs(10)).unwrap();
    let tx = drain_tx(&mut m, 1024);
    assert!(matches!(Frame::parse(&tx).unwrap(), Frame::Ping { .. }));
    // Next PING 10 s after the last one, then the idle deadline at 30 s.
    assert_eq!(m.poll_at(), Some(Instant::from_secs(20)));
    m.handle_timeout(Instant::from_secs(20)).unwrap();
    drain_tx(&mut m, 1024);
    assert_eq!(m.poll_at(), Some(Instant::from_secs(30)));
    m.handle_timeout(Instant::from_millis(29_999)).unwrap();
    assert!(!m.is_closed());
    let err = m.handle_timeout(Instant::from_secs(30)).unwrap_err();
    assert_eq!(err, MuxError::IdleTimeout);
    assert_eq!(err.label(), "idle-timeout");
    assert!(m.is_closed());
    assert_eq!(m.poll_at(), None);
    // The peer is told why.
    let tx = drain_tx(&mut m, 1024);
    assert_eq!(
        Frame::parse(&tx).unwrap(),
        Frame::GoAway {
            code: goaway_code::IDLE_TIMEOUT
        }
    );
    assert_eq!(
        m.handle_bytes(Instant::from_secs(31), &[0]),
        Err(MuxError::IdleTimeout)
    );
}

#[test]
fn an_unauthenticated_session_also_times_out() {
    let mut m = Mux::new(Role::Initiator, MuxConfig::default(), T0).unwrap();
    assert_eq!(m.poll_at(), Some(Instant::from_secs(30)));
    assert_eq!(
        m.handle_timeout(Instant::from_secs(30)),
        Err(MuxError::IdleTimeout)
    );
    let mut buf = [0u8; 64];
    assert_eq!(
        m.poll_transmit(&mut buf),
        0,
        "no GOAWAY to an unauthenticated peer"
    );
}

#[test]
fn pings_keep_an_idle_session_alive() {
    let mut p = Pair::new(MuxConfig::default(), 8, &[]);
    // Ten minutes with no application traffic, driven by poll_at like an owner would.
    let end = Instant::from_secs(600);
    while p.now < end {
        let next = p.a.poll_at().unwrap().min(p.b.poll_at().unwrap());
        assert!(next > p.now, "deadline always in the future after handling");
        p.now = next;
        p.a.handle_timeout(p.now).unwrap();
        p.b.handle_timeout(p.now).unwrap();
        p.settle().unwrap();
    }
    assert!(!p.a.is_closed() && !p.b.is_closed());
    assert!(p.a.stats().frames_rx >= 600 / 10 / 2, "keepalives flowed");
    let pongs = events(&mut p.a)
        .into_iter()
        .filter(|e| matches!(e, MuxEvent::Pong { .. }))
        .count();
    assert!(pongs > 0);
}

#[test]
fn a_silent_peer_times_out_while_the_live_side_pings() {
    let mut p = Pair::new(MuxConfig::default(), 9, &[]);
    p.settle().unwrap();
    // b's output is never delivered to a any more.
    let mut b_out = [0u8; 4096];
    let (result, t) = loop {
        let t = p.a.poll_at().unwrap();
        if let Err(e) = p.a.handle_timeout(t) {
            break (e, t);
        }
        let mut buf = [0u8; 4096];
        let n = p.a.poll_transmit(&mut buf);
        p.b.handle_bytes(t, &buf[..n]).unwrap();
        p.b.handle_timeout(t).ok();
        p.b.poll_transmit(&mut b_out); // dropped
    };
    assert_eq!(result, MuxError::IdleTimeout);
    assert_eq!(
        t,
        Instant::from_secs(30),
        "exactly idle_timeout after the last receipt"
    );
}

#[test]
fn ping_reports_the_round_trip_time() {
    let mut p = Pair::new(MuxConfig::default(), 10, &[]);
    p.settle().unwrap();
    events(&mut p.a);
    let t = Instant::from_millis(1000);
    p.a.ping(t).unwrap();
    let to_b = drain_tx(&mut p.a, 1024);
    assert_eq!(to_b.len(), HEADER_LEN + 8);
    p.b.handle_bytes(Instant::from_millis(1003), &to_b).unwrap();
    let to_a = drain_tx(&mut p.b, 1024);
    p.a.handle_bytes(Instant::from_millis(1007), &to_a).unwrap();
    assert_eq!(
        events(&mut p.a),
        vec![MuxEvent::Pong {
            rtt: Duration::from_millis(7)
        }]
    );
    // A PONG nobody asked for is ignored and counted.
    p.a.handle_bytes(
        Instant::from_millis(1010),
        &frame(Frame::Pong { opaque: 12345 }),
    )
    .unwrap();
    assert!(events(&mut p.a).is_empty());
    assert_eq!(p.a.stats().stale_pongs, 1);
}

#[test]
fn data_also_counts_as_liveness() {
    let mut p = Pair::new(MuxConfig::default(), 11, &["x"]);
    let id = p.open_ab("x");
    for s in 1..=100 {
        p.now = Instant::from_secs(s);
        p.a.write(id, b"tick").unwrap();
        p.settle().unwrap();
        p.a.handle_timeout(p.now).unwrap();
        p.b.handle_timeout(p.now).unwrap();
        let mut sink = Vec::new();
        read_all(&mut p.b, id, &mut sink, 64);
    }
    assert!(!p.b.is_closed());
}
