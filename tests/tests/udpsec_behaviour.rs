//! Recovery, congestion and life-cycle behaviour of a udp-sec connection
//! pair on the simulated link: cwnd grows and shrinks, RTO backs off,
//! datagrams never exceed 1200 bytes, backpressure and receiver credit bound
//! the buffers, keepalive, idle timeout and clean close.

mod udpsec_support;

use dsb_tests::link::{Dir, LinkConfig, PathConfig};
use dsb_transports::udpsec::{CloseReason, Config, CongestionControl, Event, MAX_DATAGRAM};
use smoltcp::time::{Duration, Instant};
use udpsec_support::*;

fn clean() -> LinkConfig {
    LinkConfig::symmetric(PathConfig {
        delay: Duration::from_millis(5),
        bandwidth_bps: Some(100_000_000),
        queue_packets: 1000,
        ..PathConfig::default()
    })
}

fn connect(sim: &mut Pair) -> Seen {
    let mut seen = Seen::default();
    assert!(sim.run_until(Instant::from_secs(5), |s| {
        seen.collect(s);
        seen.a_connected() && seen.b_connected()
    }));
    seen
}

#[test]
fn cwnd_grows_on_a_clean_path() {
    let config = Config::default();
    let mut sim = pair(&config, clean(), 1);
    let initial = sim.a.stats().cwnd;
    assert_eq!(initial, 10 * MAX_DATAGRAM as u64);
    let r = transfer(&mut sim, 2 << 20, Instant::from_secs(30));
    assert!(r.completed);
    let s = sim.a.stats();
    assert_eq!(s.packets_lost, 0);
    assert_eq!(s.congestion_events, 0);
    assert!(
        s.cwnd >= 8 * initial,
        "cwnd {} did not grow from {initial}",
        s.cwnd
    );
}

/// Grow the window on a clean path, then add 5 % loss each way for 5 s:
/// the window must fall well below its peak, in steps of at most `factor`
/// (a step counts when the window drops to ≤ `factor` of the previous sample).
fn shrinks_under_loss(cc: CongestionControl, factor: f64) {
    let config = Config {
        congestion: cc,
        ..Config::default()
    };
    let mut sim = pair(&config, clean(), 2);
    // Grow the window on a clean path first.
    let r = transfer(&mut sim, 1 << 20, Instant::from_secs(30));
    assert!(r.completed);
    let grown = sim.a.stats().cwnd;
    assert!(grown >= 40 * MAX_DATAGRAM as u64, "cwnd only {grown}");
    // Then 5% loss each way: the window must fall well below what it was.
    sim.link.path_mut(Dir::AtoB).loss = 0.05;
    sim.link.path_mut(Dir::BtoA).loss = 0.05;
    let mut data_sent = 0usize;
    let mut decreases = 0;
    let mut prev = grown;
    let mut smallest = grown;
    let data = pattern(1 << 20);
    let mut buf = vec![0u8; 65536];
    sim.run_until(sim.now + Duration::from_secs(5), |s| {
        data_sent += s.a.write(&data[data_sent % data.len()..]);
        while s.b.read(&mut buf) > 0 {}
        let cwnd = s.a.stats().cwnd;
        if (cwnd as f64) <= prev as f64 * factor {
            decreases += 1;
        }
        prev = cwnd;
        smallest = smallest.min(cwnd);
        false
    });
    let s = sim.a.stats();
    assert!(s.congestion_events > 0);
    assert!(decreases > 0, "no multiplicative decrease seen");
    assert!(
        smallest * 4 <= grown,
        "cwnd {smallest} vs {grown} before loss"
    );
    assert!(s.cwnd < grown, "cwnd {} vs {grown} before loss", s.cwnd);
    eprintln!(
        "{}: cwnd {grown} before loss, smallest {smallest}, final {}, {decreases} decreases",
        cc.label(),
        s.cwnd
    );
}

#[test]
fn reno_window_halves_under_loss() {
    shrinks_under_loss(CongestionControl::Reno, 0.6);
}

#[test]
fn cubic_window_keeps_seven_tenths_under_loss() {
    shrinks_under_loss(CongestionControl::Cubic, 0.75);
}

#[test]
fn rto_backs_off_exponentially_on_a_black_hole() {
    let config = Config::default();
    let mut sim = pair(&config, clean(), 3);
    let r = transfer(&mut sim, 256 << 10, Instant::from_secs(10));
    assert!(r.completed);
    let rto = sim.a.stats().rto;
    // Keep data queued, then swallow everything in both directions.
    let junk = pattern(64 << 10);
    assert!(sim.a.write(&junk) > 0);
    sim.link.path_mut(Dir::AtoB).blackhole = true;
    sim.link.path_mut(Dir::BtoA).blackhole = true;
    let mut fired = vec![];
    let mut last = sim.a.stats().rto_count;
    sim.run_until(sim.now + Duration::from_secs(20), |s| {
        let n = s.a.stats().rto_count;
        if n != last {
            fired.push(s.now);
            last = n;
        }
        fired.len() >= 6
    });
    assert!(fired.len() >= 6, "only {} timeouts", fired.len());
    let gaps: Vec<i64> = fired
        .windows(2)
        .map(|w| (w[1] - w[0]).total_micros() as i64)
        .collect();
    eprintln!("rto {rto}, intervals between timeouts (µs): {gaps:?}");
    for g in gaps.windows(2) {
        let ratio = g[1] as f64 / g[0] as f64;
        assert!(
            (1.9..=2.1).contains(&ratio),
            "intervals {gaps:?} (rto {rto})"
        );
    }
    assert!(gaps[0] as u64 >= 2 * rto.total_micros() * 9 / 10);
    // One tail-loss probe went out before the first timeout, none after.
    assert_eq!(sim.a.stats().tlp_count, 1);
    // Back to one datagram per timeout (RFC 5681's loss window).
    assert_eq!(sim.a.stats().cwnd, MAX_DATAGRAM as u64);
}

#[test]
fn a_lost_tail_is_repaired_by_a_probe_not_by_the_rto() {
    use std::cell::Cell;
    use std::rc::Rc;
    let mut sim = pair(&Config::default(), clean(), 11);
    connect(&mut sim);
    // Let the handshake's confirmation traffic settle.
    let settle = sim.now + Duration::from_millis(100);
    sim.run_until(settle, |_| false);
    // Ten full packets and a short tail; drop the tail (the only short
    // datagram A sends: B sends nothing that A must acknowledge).
    let len = 10 * 1147 + 200;
    let armed = Rc::new(Cell::new(true));
    let arm = armed.clone();
    sim.tap = Some(Box::new(move |_, dir, b| {
        if dir == Dir::AtoB && arm.get() && b.len() < 400 {
            arm.set(false);
            return false;
        }
        true
    }));
    let start = sim.now;
    let r = transfer(&mut sim, len, start + Duration::from_secs(5));
    assert!(r.completed);
    assert!(!armed.get(), "the tail was never dropped");
    // Repaired in about 2·srtt + one round trip, well before the RTO.
    let took = sim.now - start;
    let s = sim.a.stats();
    assert!(took < s.rto + s.srtt * 2, "took {took} (rto {})", s.rto);
    // Let the acknowledgement of the probe reach A.
    let later = sim.now + Duration::from_millis(50);
    sim.run_until(later, |_| false);
    let s = sim.a.stats();
    assert_eq!(s.bytes_in_flight, 0);
    assert_eq!(s.rto_count, 0, "the RTO fired: {s:?}");
    assert_eq!(s.tlp_count, 1);
    // The probe re-sent the tail; its ack exposed the original as lost.
    assert_eq!(s.packets_lost, 1);
    assert_eq!(s.congestion_events, 1);
}

#[test]
fn no_datagram_exceeds_1200_bytes_and_full_packets_use_the_budget() {
    let mut sim = pair(&Config::default(), clean(), 4);
    let r = transfer(&mut sim, 1 << 20, Instant::from_secs(10));
    assert!(r.completed);
    // The driver asserts `<= 1200` on every datagram; full data packets hit it exactly.
    assert_eq!(sim.largest_datagram, MAX_DATAGRAM);
}

#[test]
fn write_applies_backpressure_and_signals_writable() {
    let config = Config {
        send_buffer: 16 * 1024,
        ..Config::default()
    };
    let mut sim = pair(&config, clean(), 5);
    let data = pattern(100 * 1024);
    assert_eq!(sim.a.write(&data), 16 * 1024);
    assert_eq!(sim.a.write(&data[16 * 1024..]), 0);
    let mut seen = Seen::default();
    assert!(sim.run_until(Instant::from_secs(5), |s| {
        seen.collect(s);
        seen.a.iter().any(|(_, e)| *e == Event::Writable)
    }));
    assert!(sim.a.write(&data[16 * 1024..]) > 0);
}

#[test]
fn receiver_credit_bounds_what_the_sender_sends() {
    let config = Config {
        recv_window: 64 * 1024,
        ..Config::default()
    };
    let mut sim = pair(&config, clean(), 6);
    let data = pattern(512 * 1024);
    let mut written = 0;
    // B never reads: A must stop at B's window.
    sim.run_until(Instant::from_secs(3), |s| {
        written += s.a.write(&data[written..]);
        false
    });
    let s = sim.a.stats();
    assert!(written > 64 * 1024);
    assert_eq!(
        s.stream_bytes_sent,
        64 * 1024,
        "sent beyond the receiver's credit"
    );
    assert_eq!(sim.b.readable(), 64 * 1024);
    // Reading opens the window again and the rest arrives intact.
    let mut got = vec![];
    let mut buf = vec![0u8; 8192];
    assert!(sim.run_until(Instant::from_secs(10), |s| {
        written += s.a.write(&data[written..]);
        loop {
            let n = s.b.read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() == data.len()
    }));
    assert!(
        got == data,
        "received {} of {} bytes",
        got.len(),
        data.len()
    );
}

#[test]
fn idle_connection_times_out_without_keepalive() {
    let config = Config {
        keepalive_interval: None,
        idle_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let mut sim = pair(&config, clean(), 7);
    let mut seen = connect(&mut sim);
    let connected_at = sim.now;
    sim.run_until(Instant::from_secs(120), |s| {
        seen.collect(s);
        s.a.is_closed() && s.b.is_closed()
    });
    assert_eq!(seen.a_closed(), Some(CloseReason::IdleTimeout));
    assert_eq!(seen.b_closed(), Some(CloseReason::IdleTimeout));
    let idle = sim.now - connected_at;
    assert!(
        idle >= Duration::from_secs(29) && idle <= Duration::from_secs(31),
        "{idle}"
    );
}

#[test]
fn keepalive_holds_an_idle_connection_open() {
    let config = Config {
        keepalive_interval: Some(Duration::from_secs(5)),
        idle_timeout: Duration::from_secs(15),
        ..Config::default()
    };
    let mut sim = pair(&config, clean(), 8);
    let mut seen = connect(&mut sim);
    let sent_before = sim.a.stats().packets_sent;
    sim.run_until(Instant::from_secs(120), |s| {
        seen.collect(s);
        false
    });
    assert_eq!(seen.a_closed(), None);
    assert_eq!(seen.b_closed(), None);
    assert!(sim.a.is_established() && sim.b.is_established());
    assert!(sim.a.stats().packets_sent >= sent_before + 20);
    // With the link cut, keepalives go unanswered and the idle timeout ends it.
    sim.link.path_mut(Dir::AtoB).blackhole = true;
    sim.link.path_mut(Dir::BtoA).blackhole = true;
    sim.run_until(Instant::from_secs(200), |s| {
        seen.collect(s);
        s.a.is_closed() && s.b.is_closed()
    });
    assert_eq!(seen.a_closed(), Some(CloseReason::IdleTimeout));
}

#[test]
fn clean_close_delivers_everything_then_closes_both_sides() {
    let mut sim = pair(&Config::default(), clean(), 9);
    let data = pattern(1 << 20);
    let mut written = 0;
    let mut closed = false;
    let mut got = vec![];
    let mut buf = vec![0u8; 65536];
    let mut seen = Seen::default();
    sim.run_until(Instant::from_secs(20), |s| {
        seen.collect(s);
        if !closed {
            written += s.a.write(&data[written..]);
            if written == data.len() {
                s.a.close();
                closed = true;
                assert_eq!(s.a.write(b"more"), 0, "writes after close are refused");
            }
        }
        loop {
            let n = s.b.read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.a.is_closed() && s.b.is_closed()
    });
    assert!(
        got == data,
        "received {} of {} bytes",
        got.len(),
        data.len()
    );
    assert_eq!(seen.a_closed(), Some(CloseReason::Local));
    assert_eq!(seen.b_closed(), Some(CloseReason::Peer { code: 0 }));
    assert!(sim.a.is_closed() && sim.b.is_closed());
    assert!(sim.next_event().is_none() || sim.link.in_flight() > 0);
}

#[test]
fn a_lost_close_is_repeated() {
    use std::cell::Cell;
    use std::rc::Rc;
    let mut sim = pair(&Config::default(), clean(), 10);
    let armed = Rc::new(Cell::new(false));
    let dropped = Rc::new(Cell::new(0u32));
    let (arm, drop_count) = (armed.clone(), dropped.clone());
    sim.tap = Some(Box::new(move |_, dir, _| {
        if dir == Dir::AtoB && arm.get() && drop_count.get() == 0 {
            drop_count.set(1);
            return false;
        }
        true
    }));
    let data = pattern(64 << 10);
    let (mut written, mut read) = (0, 0);
    let mut buf = vec![0u8; 65536];
    let mut seen = Seen::default();
    let mut closed_at = None;
    sim.run_until(Instant::from_secs(20), |s| {
        seen.collect(s);
        written += s.a.write(&data[written..]);
        if written == data.len() && closed_at.is_none() {
            s.a.close();
            closed_at = Some(s.now);
        }
        loop {
            let n = s.b.read(&mut buf);
            if n == 0 {
                break;
            }
            read += n;
        }
        if read == data.len() {
            // Everything arrived: A's next datagram is its CLOSE; lose it.
            armed.set(true);
        }
        s.b.is_closed() && s.a.is_closed()
    });
    assert_eq!(dropped.get(), 1);
    assert_eq!(read, data.len());
    assert_eq!(seen.b_closed(), Some(CloseReason::Peer { code: 0 }));
    assert_eq!(seen.a_closed(), Some(CloseReason::Local));
    let (t_closed, _) = seen
        .b
        .iter()
        .find(|(_, e)| matches!(e, Event::Closed { .. }))
        .unwrap();
    assert!(
        *t_closed - closed_at.unwrap() < Duration::from_secs(1),
        "peer learned of the close only after {}",
        *t_closed - closed_at.unwrap()
    );
}
