//! Security behaviour: replayed and forged datagrams are rejected and
//! counted without disturbing the session; the handshake survives the loss
//! of any one message (re-sent byte for byte); an identity failure ends the
//! connection before any application data is delivered; the endpoint bounds
//! half-open handshakes and rate-limits initiations before any DH.

mod udpsec_support;

use std::cell::RefCell;
use std::rc::Rc;

use dsb_noise::NoTrust;
use dsb_tests::link::{Dir, Link, LinkConfig, Node, PathConfig, Sim};
use dsb_transports::udpsec::{
    CloseReason, Config, Connection, DropReason, Endpoint, EndpointConfig, Event, MAX_DATAGRAM,
};
use smoltcp::time::{Duration, Instant};
use udpsec_support::*;

const DATA: u8 = 4;

fn clean() -> LinkConfig {
    LinkConfig::symmetric(PathConfig {
        delay: Duration::from_millis(5),
        bandwidth_bps: Some(100_000_000),
        queue_packets: 1000,
        ..PathConfig::default()
    })
}

type Log = Rc<RefCell<Vec<(Dir, Vec<u8>)>>>;

fn record(sim: &mut Pair) -> Log {
    let log: Log = Rc::default();
    let l = log.clone();
    sim.tap = Some(Box::new(move |_, dir, b| {
        l.borrow_mut().push((dir, b.to_vec()));
        true
    }));
    log
}

/// Transfer `len` bytes A → B; `hook` runs after every instant with the
/// number of bytes read so far.
fn transfer_with(sim: &mut Pair, len: usize, mut hook: impl FnMut(&mut Pair, usize)) -> bool {
    let data = pattern(len);
    let (mut written, mut read) = (0, 0);
    let mut buf = vec![0u8; 65536];
    sim.run_until(Instant::from_secs(60), |s| {
        written += s.a.write(&data[written..]);
        loop {
            let n = s.b.read(&mut buf);
            if n == 0 {
                break;
            }
            assert!(buf[..n] == data[read..read + n], "corrupted at {read}");
            read += n;
        }
        hook(s, read);
        read == len
    })
}

fn rejected_total(c: &Conn) -> u64 {
    c.stats().rejected.total()
}

#[test]
fn replayed_packets_are_rejected_counted_and_harmless() {
    let mut sim = pair(&Config::default(), clean(), 21);
    let log = record(&mut sim);
    let mut injected = 0u64;
    let mut captured: Option<Vec<Vec<u8>>> = None;
    // 6 MiB: by the time of the replay more than 2048 packets were sent, so
    // the oldest replays fall below the replay window.
    let ok = transfer_with(&mut sim, 6 << 20, |s, read| {
        if captured.is_none() && read >= 3 << 20 {
            // Everything A has sent so far...
            captured = Some(
                log.borrow()
                    .iter()
                    .filter(|(d, b)| *d == Dir::AtoB && b[1] == DATA)
                    .map(|(_, b)| b.clone())
                    .collect(),
            );
        } else if injected == 0 && read >= 4 << 20 {
            // ...has been delivered by now: replay all of it at once.
            let old = captured.as_ref().unwrap();
            for b in old {
                s.inject(Dir::AtoB, b);
            }
            injected = old.len() as u64;
        }
    });
    assert!(ok, "transfer failed after replays");
    assert!(injected > 100);
    let r = sim.b.stats().rejected;
    // Each replayed copy (or the original it overtook) is rejected exactly once.
    assert_eq!(
        r.get(DropReason::Replay) + r.get(DropReason::TooOld),
        injected,
        "{:?}",
        r.nonzero().collect::<Vec<_>>()
    );
    assert_eq!(r.total(), injected, "{:?}", r.nonzero().collect::<Vec<_>>());
    assert!(
        r.get(DropReason::TooOld) > 0,
        "old packets fall out of the 2048-packet window"
    );
}

#[test]
fn forged_packets_are_rejected_counted_and_harmless() {
    let mut sim = pair(&Config::default(), clean(), 22);
    let log = record(&mut sim);
    let mut forged = 0u64;
    let mut by_reason = vec![];
    let ok = transfer_with(&mut sim, 1 << 20, |s, read| {
        if forged > 0 || read < 512 << 10 {
            return;
        }
        let last = log
            .borrow()
            .iter()
            .rev()
            .find(|(d, b)| *d == Dir::AtoB && b[1] == DATA)
            .map(|(_, b)| b.clone())
            .unwrap();
        let received = s.b.stats().packets_received;
        let before = s.b.stats().rejected;
        // Flip every bit of the header and a spread of payload bits.
        let mut positions: Vec<usize> = (0..26).collect();
        positions.extend((26..last.len()).step_by(97));
        positions.push(last.len() - 1);
        for &pos in &positions {
            for bit in 0..8 {
                let mut b = last.clone();
                b[pos] ^= 1 << bit;
                s.inject(Dir::AtoB, &b);
                forged += 1;
            }
        }
        // Truncated and extended copies too.
        s.inject(Dir::AtoB, &last[..last.len() - 1]);
        let mut longer = last.clone();
        longer.push(0);
        s.inject(Dir::AtoB, &longer);
        forged += 2;
        assert_eq!(
            s.b.stats().packets_received,
            received,
            "a forgery was accepted"
        );
        let after = s.b.stats().rejected;
        for r in DropReason::ALL {
            let n = after.get(r) - before.get(r);
            if n > 0 {
                by_reason.push((r.label(), n));
            }
        }
    });
    assert!(ok, "transfer failed after forgeries");
    let total: u64 = by_reason.iter().map(|(_, n)| n).sum();
    assert_eq!(total, forged, "{by_reason:?}");
    let get = |l: &str| by_reason.iter().find(|(x, _)| *x == l).map_or(0, |x| x.1);
    assert!(get("auth-failed") > 0, "{by_reason:?}");
    assert!(get("bad-version") > 0 && get("length-mismatch") > 0 && get("malformed") > 0);
    assert!(
        get("unknown-session") > 0 && get("unknown-type") > 0,
        "{by_reason:?}"
    );
    eprintln!("forgeries rejected: {by_reason:?}");
    assert!(rejected_total(&sim.a) == 0);
}

/// A handshake datagram and its type.
type HsCopy = (u8, Vec<u8>);

fn handshake_with_lost_message(lost_type: u8, seed: u64) {
    let mut sim = pair(&Config::default(), clean(), seed);
    let copies: Rc<RefCell<Vec<HsCopy>>> = Rc::default();
    let c = copies.clone();
    let mut dropped = false;
    sim.tap = Some(Box::new(move |_, _, b| {
        if (1..=3).contains(&b[1]) {
            c.borrow_mut().push((b[1], b.to_vec()));
            if b[1] == lost_type && !dropped {
                dropped = true;
                return false;
            }
        }
        true
    }));
    let r = transfer(&mut sim, 64 << 10, Instant::from_secs(30));
    assert!(r.completed, "message {lost_type} lost: transfer failed");
    assert!(r.seen.a_connected() && r.seen.b_connected());
    let copies = copies.borrow();
    for t in 1..=3u8 {
        let of_type: Vec<_> = copies.iter().filter(|(x, _)| *x == t).collect();
        assert!(!of_type.is_empty());
        assert!(
            of_type.iter().all(|(_, b)| *b == of_type[0].1),
            "re-sent message {t} differs from the original"
        );
        if t == lost_type {
            assert!(of_type.len() >= 2, "message {t} was never re-sent");
        }
    }
}

#[test]
fn handshake_completes_when_message_1_is_lost() {
    handshake_with_lost_message(1, 31);
}

#[test]
fn handshake_completes_when_message_2_is_lost() {
    handshake_with_lost_message(2, 32);
}

#[test]
fn handshake_completes_when_message_3_is_lost() {
    handshake_with_lost_message(3, 33);
}

fn run_failed_handshake(mut sim: Pair) -> (Seen, Pair) {
    let mut seen = Seen::default();
    // The initiator queues data before the handshake finishes.
    assert_eq!(sim.a.write(&pattern(32 << 10)), 32 << 10);
    sim.run_until(Instant::from_secs(30), |s| {
        seen.collect(s);
        s.a.is_closed() && s.b.is_closed()
    });
    let mut buf = vec![0u8; 65536];
    assert_eq!(sim.b.read(&mut buf), 0);
    assert_eq!(
        sim.b.stats().packets_received,
        0,
        "no data packet may be accepted"
    );
    assert_eq!(sim.b.stats().stream_bytes_read, 0);
    assert!(!seen.a_connected() && !seen.b_connected());
    assert!(!seen.b.iter().any(|(_, e)| *e == Event::Readable));
    assert_eq!(seen.a_closed(), Some(CloseReason::HandshakeTimeout));
    (seen, sim)
}

#[test]
fn identity_mismatch_ends_the_connection_without_delivering_data() {
    let config = Config::default();
    let now = Instant::from_millis(0);
    let (si, _) = keypair(41);
    let (sr, pr) = keypair(42);
    let (_, someone_else) = keypair(43);
    let a = Connection::connect(
        config.clone(),
        SESSION_ID,
        SnowXk::initiator(1, &si, &pr),
        now,
    )
    .unwrap();
    let b = Connection::accept(
        config,
        SESSION_ID,
        SnowXk::responder(2, &sr, Some(someone_else)),
        now,
    );
    let sim = Sim::new(now, a, b, Link::new(clean(), 41), MAX_DATAGRAM);
    let (seen, sim) = run_failed_handshake(sim);
    match seen.b_closed() {
        Some(CloseReason::HandshakeFailed(e)) => assert_eq!(e.label(), "identity-mismatch"),
        other => panic!("responder closed with {other:?}"),
    }
    assert_eq!(sim.b.stats().rejected.get(DropReason::HandshakeFailed), 1);
}

#[test]
fn wrong_responder_key_fails_the_handshake_at_message_1() {
    let config = Config::default();
    let now = Instant::from_millis(0);
    let (si, _) = keypair(51);
    let (sr, _pr) = keypair(52);
    let (_, wrong) = keypair(53);
    let a = Connection::connect(
        config.clone(),
        SESSION_ID,
        SnowXk::initiator(1, &si, &wrong),
        now,
    )
    .unwrap();
    let b = Connection::accept(config, SESSION_ID, SnowXk::responder(2, &sr, None), now);
    let sim = Sim::new(now, a, b, Link::new(clean(), 51), MAX_DATAGRAM);
    let (seen, _) = run_failed_handshake(sim);
    match seen.b_closed() {
        Some(CloseReason::HandshakeFailed(e)) => assert_eq!(e.label(), "noise-decrypt"),
        other => panic!("responder closed with {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Endpoint
// ---------------------------------------------------------------------------

type Ep = Endpoint<SnowXk, u32>;

/// A server: an endpoint whose every datagram comes from / goes to one peer.
struct Server {
    ep: Ep,
    key: [u8; 32],
    accepts: u64,
}

impl Node for Server {
    fn handle_datagram(&mut self, now: Instant, d: &[u8]) {
        let key = self.key;
        let n = self.accepts;
        let accepts = &mut self.accepts;
        let _ = self.ep.handle_datagram(now, 1, d, &mut NoTrust, || {
            *accepts += 1;
            Some(SnowXk::responder(1000 + n, &key, None))
        });
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.ep.poll_transmit(now, buf).map(|(_, n)| n)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.ep.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now)
    }
}

#[test]
fn endpoint_accepts_a_session_and_echoes_data_both_ways() {
    let now = Instant::from_millis(0);
    let (si, _) = keypair(61);
    let (sr, pr) = keypair(62);
    let config = Config::default();
    let a = Connection::connect(config.clone(), 77, SnowXk::initiator(1, &si, &pr), now).unwrap();
    let server = Server {
        ep: Endpoint::new(EndpointConfig::default(), config),
        key: sr,
        accepts: 0,
    };
    let mut sim = Sim::new(now, a, server, Link::new(clean(), 61), MAX_DATAGRAM);
    let data = pattern(256 << 10);
    let (mut written, mut echoed) = (0, vec![]);
    let mut buf = vec![0u8; 65536];
    let mut connected = vec![];
    let ok = sim.run_until(Instant::from_secs(10), |s| {
        while let Some(ev) = s.b.ep.poll_event() {
            connected.push(ev);
        }
        while s.a.poll_event().is_some() {}
        written += s.a.write(&data[written..]);
        if let Some(c) = s.b.ep.connection_mut(77) {
            // Echo what arrives (bounded by what the send buffer takes).
            let cap = c.send_capacity().min(buf.len());
            let n = c.read(&mut buf[..cap]);
            assert_eq!(c.write(&buf[..n]), n);
        }
        loop {
            let n = s.a.read(&mut buf);
            if n == 0 {
                break;
            }
            echoed.extend_from_slice(&buf[..n]);
        }
        echoed.len() == data.len()
    });
    assert!(ok);
    assert!(echoed == data, "echo differs");
    assert_eq!(
        connected.first(),
        Some(&(77, Event::Connected { session_id: 77 }))
    );
    assert_eq!(sim.b.ep.stats().accepted, 1);
    assert_eq!(sim.b.accepts, 1);
    // A data packet for a session the endpoint does not know is dropped and counted.
    let mut forged = vec![0u8; 60];
    forged[0] = 1;
    forged[1] = DATA;
    forged[4] = 0x42;
    forged[24] = 34;
    sim.inject(Dir::AtoB, &forged);
    assert_eq!(sim.b.ep.stats().rejected.get(DropReason::UnknownSession), 1);
}

/// Message 1 of a fresh initiator for `session_id`.
fn msg1(session_id: u64, rs: &[u8; 32]) -> Vec<u8> {
    let (si, _) = keypair(session_id.wrapping_add(7000));
    let mut c = Connection::connect(
        Config::default(),
        session_id,
        SnowXk::initiator(session_id, &si, rs),
        Instant::from_millis(0),
    )
    .unwrap();
    let mut buf = vec![0u8; 2048];
    let n = c.poll_transmit(Instant::from_millis(0), &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn endpoint_bounds_half_open_handshakes_before_any_dh() {
    let (sr, pr) = keypair(71);
    let ep_cfg = EndpointConfig {
        max_half_open: 8,
        per_source_burst: 1000,
        global_burst: 1000,
        ..EndpointConfig::default()
    };
    let mut ep: Ep = Endpoint::new(ep_cfg, Config::default());
    let now = Instant::from_millis(0);
    let mut dh_work = 0;
    for i in 0..50u64 {
        let m = msg1(100 + i, &pr);
        let _ = ep.handle_datagram(now, i as u32, &m, &mut NoTrust, || {
            dh_work += 1;
            Some(SnowXk::responder(i, &sr, None))
        });
    }
    assert_eq!(
        dh_work, 8,
        "handshakes over the cap must be dropped before any DH"
    );
    assert_eq!(ep.len(), 8);
    assert_eq!(ep.stats().rejected.get(DropReason::HalfOpenFull), 42);
    // Half-open handshakes that never finish are reaped after the handshake timeout.
    let later = now + Config::default().handshake_timeout + Duration::from_millis(1);
    ep.handle_timeout(later);
    assert_eq!(ep.len(), 0);
    assert_eq!(ep.stats().half_open_reaped, 8);
    assert!(
        ep.poll_event().is_none(),
        "failed half-open sessions never surface"
    );
    let m = msg1(999, &pr);
    assert!(ep
        .handle_datagram(later, 1, &m, &mut NoTrust, || Some(SnowXk::responder(
            9, &sr, None
        )))
        .is_ok());
}

#[test]
fn endpoint_rate_limits_initiations_per_source() {
    let (sr, pr) = keypair(81);
    let ep_cfg = EndpointConfig {
        per_source_burst: 3,
        per_source_interval: Duration::from_millis(500),
        ..EndpointConfig::default()
    };
    let mut ep: Ep = Endpoint::new(ep_cfg, Config::default());
    let now = Instant::from_millis(0);
    let mut accepted = 0;
    for i in 0..10u64 {
        let m = msg1(200 + i, &pr);
        if ep
            .handle_datagram(now, 7, &m, &mut NoTrust, || {
                Some(SnowXk::responder(i, &sr, None))
            })
            .is_ok()
        {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 3);
    assert_eq!(ep.stats().rejected.get(DropReason::RateLimited), 7);
    // Another source is not affected; the first one gets a token back with time.
    let m = msg1(300, &pr);
    assert!(ep
        .handle_datagram(now, 8, &m, &mut NoTrust, || Some(SnowXk::responder(
            1, &sr, None
        )))
        .is_ok());
    let m = msg1(301, &pr);
    let t = now + Duration::from_millis(500);
    assert!(ep
        .handle_datagram(t, 7, &m, &mut NoTrust, || Some(SnowXk::responder(
            2, &sr, None
        )))
        .is_ok());
}
