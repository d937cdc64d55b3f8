//! Our own announces: a deterministic burst-then-steady schedule, fresh sequence numbers.

mod common;

use common::*;
use dsb_discovery::*;
use smoltcp::time::{Duration, Instant};

/// Every instant in `[from, to)` (1 ms steps) at which the schedule fires.
fn send_times(s: &mut AnnounceSchedule, from: i64, to: i64) -> Vec<i64> {
    (from..to).filter(|&t| s.poll(ms(t))).collect()
}

#[test]
fn fnv1a64_matches_the_reference_vectors() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn a_burst_at_start_then_a_steady_id_derived_phase() {
    let node = id("node-a");
    let mut s = AnnounceSchedule::new(&node, DEFAULT_INTERVAL, ms(0));
    let phase = (fnv1a64(b"node-a") % 1_000_000) as i64 / 1000; // in ms (the hash picks micros)
    assert_eq!(s.phase().total_micros(), fnv1a64(b"node-a") % 1_000_000);
    let times = send_times(&mut s, 0, 5_000);
    assert_eq!(&times[..4], &[0, 50, 150, 350]);
    let first_steady = times[4];
    assert!(first_steady > 350 && first_steady <= 1350);
    assert!(
        (first_steady - phase) % 1000 <= 1,
        "steady slots sit on the id's phase grid"
    );
    for w in times[4..].windows(2) {
        assert_eq!(w[1] - w[0], 1000);
    }
}

#[test]
fn the_schedule_is_deterministic_per_id_and_differs_between_ids() {
    let run = |name: &str| {
        send_times(
            &mut AnnounceSchedule::new(&id(name), DEFAULT_INTERVAL, ms(0)),
            0,
            4_000,
        )
    };
    assert_eq!(run("node-a"), run("node-a"));
    assert_ne!(run("node-a")[4..], run("node-b")[4..]);
}

#[test]
fn late_polls_skip_missed_slots_instead_of_bursting() {
    let mut s = AnnounceSchedule::new(&id("node-a"), DEFAULT_INTERVAL, ms(0));
    assert!(s.poll(ms(0)));
    // The app was busy for ten seconds: one announce, then back on the grid.
    assert!(s.poll(ms(10_000)));
    assert!(!s.poll(ms(10_000)));
    let next = s.poll_at();
    assert!(next > ms(10_000) && next <= ms(11_000));
    assert_eq!(
        (next.total_micros() - s.phase().total_micros() as i64) % 1_000_000,
        0
    );
}

#[test]
fn a_trigger_restarts_the_burst() {
    let mut s = AnnounceSchedule::new(&id("node-a"), DEFAULT_INTERVAL, ms(0));
    send_times(&mut s, 0, 3_000);
    s.trigger(ms(3_000));
    assert_eq!(s.poll_at(), ms(3_000));
    let times = send_times(&mut s, 3_000, 3_400);
    assert_eq!(times, [3_000, 3_050, 3_150, 3_350]);
}

#[test]
fn absurd_intervals_and_instants_do_not_panic() {
    let mut s = AnnounceSchedule::new(&id("x"), Duration::ZERO, Instant::from_micros(i64::MAX - 5));
    assert_eq!(s.interval(), MIN_INTERVAL);
    for t in [i64::MAX - 5, i64::MAX, i64::MIN, 0] {
        s.poll(Instant::from_micros(t));
        s.trigger(Instant::from_micros(t));
    }
    let mut s = AnnounceSchedule::new(&id("x"), Duration::from_micros(u64::MAX), ms(0));
    assert!(s.poll(ms(0)));
}

#[test]
fn every_announce_carries_a_fresh_sequence_number_in_the_boot_epoch() {
    let mut cfg = DiscoveryConfig::new(id("node-a"), [1; 32]);
    cfg.boot_epoch = 1_700_000_000;
    let mut a = node_with(cfg, 1, ms(0));
    let mut seqs = vec![];
    for t in 0..3_000 {
        if let Some(bytes) = a.poll_transmit(ms(t)) {
            let parsed = SignedAnnounce::parse(&bytes).unwrap();
            parsed.verify().unwrap();
            seqs.push(parsed.repr.seq);
        }
    }
    let expected: Vec<u64> = (0..seqs.len() as u32)
        .map(|c| sequence(1_700_000_000, c))
        .collect();
    assert_eq!(seqs, expected);
    assert!(seqs.len() >= 6);
    assert_eq!(a.counters().sent, seqs.len() as u64);
    assert_eq!(sequence(1, 2), 0x0000_0001_0000_0002);
}

#[test]
fn changing_services_reannounces_soon_and_peers_see_an_update() {
    let mut a = node("node-a", 1, ms(0));
    let mut b = node("node-b", 2, ms(0));
    let from = src(10, 0, 2, 15);
    for t in 0..2_000 {
        if let Some(p) = a.poll_transmit(ms(t)) {
            b.handle_datagram(ms(t), from, &p).unwrap();
        }
    }
    assert!(a.poll_at() > ms(2_000));
    a.set_services(ms(2_000), services(&["camera"]));
    assert_eq!(a.poll_at(), ms(2_000));
    let p = a.poll_transmit(ms(2_000)).unwrap();
    assert_eq!(
        b.handle_datagram(ms(2_000), from, &p),
        Ok(Some(PeerEvent::Updated(id("node-a"))))
    );
    assert!(b.peer(&id("node-a")).unwrap().offers(&svc("camera")));

    a.set_ports(ms(2_500), port(9000), None);
    let p = a.poll_transmit(ms(2_500)).unwrap();
    assert_eq!(
        b.handle_datagram(ms(2_500), from, &p),
        Ok(Some(PeerEvent::Updated(id("node-a"))))
    );
    assert_eq!(b.peer(&id("node-a")).unwrap().tcp_port, port(9000));

    // Setting the same value again is not a change.
    while a.poll_transmit(ms(3_000)).is_some() {}
    let next = a.poll_at();
    a.set_ports(ms(3_000), port(9000), None);
    assert_eq!(a.poll_at(), next);
}

#[test]
fn a_newcomer_is_answered_at_once_and_answers_share_the_gap() {
    let node = id("node-a");
    let mut s = AnnounceSchedule::new(&node, DEFAULT_INTERVAL, ms(0));
    // Past the burst, between steady slots.
    let times = send_times(&mut s, 0, 2_000);
    let last = *times.last().unwrap();
    let next_steady = (s.poll_at().total_micros() + 999) / 1000; // first 1 ms step at or after the slot
    let t = last + 300;
    assert!(t < next_steady, "the test needs a gap before the next slot");
    s.answer(ms(t));
    assert_eq!(s.poll_at(), ms(t), "answered at once");
    assert!(s.poll(ms(t)));
    // A second newcomer 10 ms later waits for the gap, not for the grid.
    s.answer(ms(t + 10));
    assert_eq!(s.poll_at(), ms(t) + ANSWER_GAP);
    assert!(s.poll(ms(t + 100)));
    // The steady grid is where it was.
    let after: Vec<i64> = send_times(&mut s, t + 101, next_steady + 2_001);
    assert_eq!(after[0], next_steady);
    assert_eq!(after[1] - after[0], 1000);
}

#[test]
fn an_answer_never_delays_an_announce_already_due_sooner() {
    let node = id("node-a");
    let mut s = AnnounceSchedule::new(&node, DEFAULT_INTERVAL, ms(0));
    assert!(s.poll(ms(0)));
    assert_eq!(s.poll_at(), ms(50));
    s.answer(ms(10)); // within the gap of the announce at 0: 100 ms > the burst slot at 50
    assert_eq!(s.poll_at(), ms(50));
}
