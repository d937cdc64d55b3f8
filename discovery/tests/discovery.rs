//! The discovery endpoint: finding peers, bindings, replay, tables, budgets, labels.

mod common;

use common::*;
use dsb_discovery::*;
use smoltcp::time::Duration;
use smoltcp::wire::IpAddress;

/// A config with generous budgets, for tests about tables rather than rate limits.
fn roomy(device: &str, seed: u8) -> DiscoveryConfig {
    let mut cfg = DiscoveryConfig::new(id(device), [seed; 32]);
    let lots = BucketConfig {
        burst: 10_000,
        per_sec: 10_000,
    };
    cfg.per_source = lots;
    cfg.per_device = lots;
    cfg.new_devices = lots;
    cfg
}

#[test]
fn two_nodes_find_each_other_and_see_session_endpoints() {
    let mut a = node("node-a", 1, ms(0));
    let mut cfg_b = DiscoveryConfig::new(id("node-b"), [0xbb; 32]);
    cfg_b.tcp_port = port(7000);
    cfg_b.services = services(&["dsoftbus.ping", "mux"]);
    let mut b = node_with(cfg_b, 2, ms(0));

    let from_a = a
        .poll_transmit(ms(0))
        .expect("first announce is due at start");
    let from_b = b
        .poll_transmit(ms(0))
        .expect("first announce is due at start");
    assert_eq!(
        b.handle_datagram(ms(1), src(10, 0, 2, 15), &from_a),
        Ok(Some(PeerEvent::Found(id("node-a"))))
    );
    assert_eq!(
        a.handle_datagram(ms(1), src(10, 0, 2, 16), &from_b),
        Ok(Some(PeerEvent::Found(id("node-b"))))
    );

    let peer = a.peer(&id("node-b")).unwrap();
    assert_eq!(peer.addr, IpAddress::v4(10, 0, 2, 16));
    assert_eq!(
        peer.tcp_endpoint(),
        Some(smoltcp::wire::IpEndpoint::new(
            IpAddress::v4(10, 0, 2, 16),
            7000
        ))
    );
    assert_eq!(peer.udp_sec_endpoint(), None);
    assert_eq!(peer.device_key, test_key(2).verifying_key());
    assert_eq!(peer.noise_static, [0xbb; 32]);
    assert!(peer.offers(&svc("mux")));
    assert!(!peer.pinned);
    assert_eq!(a.counters().found, 1);
    assert_eq!(
        a.binding(&id("node-b")).unwrap().device_key,
        test_key(2).verifying_key().to_bytes()
    );
}

#[test]
fn our_own_announce_looped_back_is_self() {
    let mut a = node("node-a", 1, ms(0));
    let own = a.poll_transmit(ms(0)).unwrap();
    assert_eq!(
        a.handle_datagram(ms(1), src(10, 0, 2, 15), &own),
        Err(AnnounceError::SelfAnnounce)
    );
    assert_eq!(a.counters().self_announce, 1);
    assert_eq!(a.counters().verified, 0);
    assert!(a.peer_table().is_empty());
}

#[test]
fn the_same_announce_twice_is_a_quiet_duplicate() {
    let mut v = node("victim", 1, ms(0));
    let pkt = announce("peer", &test_key(2), 5);
    assert!(matches!(
        v.handle_datagram(ms(0), src(10, 0, 0, 2), &pkt),
        Ok(Some(PeerEvent::Found(_)))
    ));
    // Multicast and broadcast may both deliver it: not an error, not verified again.
    assert_eq!(v.handle_datagram(ms(1), src(10, 0, 0, 2), &pkt), Ok(None));
    assert_eq!(v.counters().duplicate, 1);
    assert_eq!(v.counters().verified, 1);
    assert_eq!(v.counters().total_rejected(), 0);
}

#[test]
fn older_sequence_numbers_are_replays_even_after_the_peer_expired() {
    let mut v = node("victim", 1, ms(0));
    let k = test_key(2);
    let old = announce("peer", &k, sequence(1, 4));
    let new = announce("peer", &k, sequence(1, 5));
    v.handle_datagram(ms(0), src(10, 0, 0, 2), &new).unwrap();
    assert_eq!(
        v.handle_datagram(ms(1), src(10, 0, 0, 2), &old),
        Err(AnnounceError::Replay)
    );
    // A previous boot epoch is older whatever its counter.
    let previous_boot = announce("peer", &k, sequence(0, u32::MAX));
    assert_eq!(
        v.handle_datagram(ms(2), src(10, 0, 0, 2), &previous_boot),
        Err(AnnounceError::Replay)
    );

    // The entry expires, the binding (and its newest seq) stays.
    v.expire(ms(60_000));
    assert!(v.peer(&id("peer")).is_none());
    assert_eq!(
        v.poll_event(),
        Some(PeerEvent::Lost(id("peer"), LostReason::Expired))
    );
    assert_eq!(
        v.handle_datagram(ms(60_001), src(10, 9, 9, 9), &old),
        Err(AnnounceError::Replay)
    );
    assert!(v.peer(&id("peer")).is_none());
    assert_eq!(v.counters().replay, 3);

    // A newer one brings the peer back.
    let newer = announce("peer", &k, sequence(2, 0));
    assert!(matches!(
        v.handle_datagram(ms(60_002), src(10, 0, 0, 2), &newer),
        Ok(Some(PeerEvent::Found(_)))
    ));
}

#[test]
fn a_refresh_with_a_newer_seq_is_silent_and_a_change_is_an_update() {
    let mut v = node("victim", 1, ms(0));
    let k = test_key(2);
    v.handle_datagram(ms(0), src(10, 0, 0, 2), &announce("peer", &k, 1))
        .unwrap();
    assert_eq!(
        v.handle_datagram(ms(1000), src(10, 0, 0, 2), &announce("peer", &k, 2)),
        Ok(None)
    );
    assert_eq!(v.peer(&id("peer")).unwrap().last_seen, ms(1000));
    assert_eq!(v.peer(&id("peer")).unwrap().first_seen, ms(0));

    // Moving to another address is an update.
    assert_eq!(
        v.handle_datagram(ms(2000), src(10, 0, 0, 3), &announce("peer", &k, 3)),
        Ok(Some(PeerEvent::Updated(id("peer"))))
    );
    assert_eq!(
        v.peer(&id("peer")).unwrap().addr,
        IpAddress::v4(10, 0, 0, 3)
    );
}

#[test]
fn the_noise_key_may_rotate_under_the_bound_device_key() {
    let mut v = node("victim", 1, ms(0));
    let k = test_key(2);
    v.handle_datagram(ms(0), src(10, 0, 0, 2), &announce("peer", &k, 1))
        .unwrap();
    let mut rotated = repr("peer", &k, 2);
    rotated.noise_static = [0x77; 32];
    assert_eq!(
        v.handle_datagram(ms(10), src(10, 0, 0, 2), &rotated.to_bytes(&k).unwrap()),
        Ok(Some(PeerEvent::Updated(id("peer"))))
    );
    assert_eq!(v.peer(&id("peer")).unwrap().noise_static, [0x77; 32]);
}

#[test]
fn a_tofu_bound_id_never_changes_device_key() {
    let mut v = node("victim", 1, ms(0));
    let real = test_key(2);
    let attacker = test_key(66);
    v.handle_datagram(ms(0), src(10, 0, 0, 2), &announce("peer", &real, 1))
        .unwrap();

    // Validly signed by the attacker's own key, newer seq: still refused.
    let planted = announce("peer", &attacker, 1_000);
    assert_eq!(
        v.handle_datagram(ms(10), src(10, 0, 0, 66), &planted),
        Err(AnnounceError::KeyMismatch)
    );
    assert_eq!(
        v.peer(&id("peer")).unwrap().device_key,
        real.verifying_key()
    );

    // Not after the entry expired either: the binding outlives it.
    v.expire(ms(10_000));
    assert!(v.peer(&id("peer")).is_none());
    assert_eq!(
        v.handle_datagram(ms(10_001), src(10, 0, 0, 66), &planted),
        Err(AnnounceError::KeyMismatch)
    );
    assert_eq!(
        v.binding(&id("peer")).unwrap().device_key,
        real.verifying_key().to_bytes()
    );
    assert_eq!(v.counters().key_mismatch, 2);
    // Mismatches are refused before any signature check.
    assert_eq!(v.counters().verified, 1);
}

#[test]
fn a_tofu_binding_survives_lru_eviction_of_its_peer() {
    let mut cfg = roomy("victim", 1);
    cfg.max_peers = 2;
    let mut v = node_with(cfg, 1, ms(0));
    let real = test_key(2);
    v.handle_datagram(ms(0), src(10, 0, 0, 2), &announce("peer", &real, 1))
        .unwrap();
    // Two newcomers after the protect window push "peer" out.
    let t = 3_000;
    v.handle_datagram(ms(t), src(10, 0, 0, 3), &announce("x1", &test_key(3), 1))
        .unwrap();
    v.handle_datagram(
        ms(t + 1),
        src(10, 0, 0, 4),
        &announce("x2", &test_key(4), 1),
    )
    .unwrap();
    assert!(v.peer(&id("peer")).is_none());
    assert_eq!(
        v.poll_event(),
        Some(PeerEvent::Lost(id("peer"), LostReason::Evicted))
    );
    // ...but the attacker still cannot plant another key under its id.
    let planted = announce("peer", &test_key(66), 99);
    assert_eq!(
        v.handle_datagram(ms(t + 2), src(10, 0, 0, 66), &planted),
        Err(AnnounceError::KeyMismatch)
    );
}

#[test]
fn pinned_ids_accept_only_their_pinned_key_from_the_first_announce() {
    let mut cfg = DiscoveryConfig::new(id("victim"), [1; 32]);
    cfg.pinned
        .push((id("node-b"), test_key(2).verifying_key().to_bytes()));
    let mut v = node_with(cfg, 1, ms(0));
    let impostor = announce("node-b", &test_key(66), 1);
    assert_eq!(
        v.handle_datagram(ms(0), src(10, 0, 0, 66), &impostor),
        Err(AnnounceError::KeyMismatch)
    );
    let real = announce("node-b", &test_key(2), 1);
    assert!(matches!(
        v.handle_datagram(ms(1), src(10, 0, 0, 2), &real),
        Ok(Some(PeerEvent::Found(_)))
    ));
    assert!(v.peer(&id("node-b")).unwrap().pinned);
    // Pins cannot be forgotten.
    assert!(!v.forget(&id("node-b")) || v.binding(&id("node-b")).is_some());
    assert!(v.binding(&id("node-b")).unwrap().pinned);
}

#[test]
fn pinned_only_mode_refuses_unknown_ids() {
    let mut cfg = DiscoveryConfig::new(id("victim"), [1; 32]);
    cfg.trust_on_first_use = false;
    cfg.pinned
        .push((id("node-b"), test_key(2).verifying_key().to_bytes()));
    let mut v = node_with(cfg, 1, ms(0));
    let stranger = announce("node-c", &test_key(3), 1);
    assert_eq!(
        v.handle_datagram(ms(0), src(10, 0, 0, 3), &stranger),
        Err(AnnounceError::Unpinned)
    );
    assert_eq!(v.counters().verified, 0);
    assert!(v
        .handle_datagram(
            ms(1),
            src(10, 0, 0, 2),
            &announce("node-b", &test_key(2), 1)
        )
        .is_ok());
}

#[test]
fn a_full_table_evicts_the_least_recently_refreshed_quiet_peer() {
    let mut cfg = roomy("victim", 1);
    cfg.max_peers = 4;
    let mut v = node_with(cfg, 1, ms(0));
    for i in 0..4u8 {
        let name = format!("p{i}");
        v.handle_datagram(
            ms(i64::from(i)),
            src(10, 0, 0, 10 + i),
            &announce(&name, &test_key(10 + i), 1),
        )
        .unwrap();
    }
    assert_eq!(v.peer_table().len(), 4);
    // Everyone is fresh: a newcomer finds no room and displaces nobody.
    let newcomer = announce("p4", &test_key(14), 1);
    assert_eq!(
        v.handle_datagram(ms(100), src(10, 0, 0, 14), &newcomer),
        Err(AnnounceError::TableFull)
    );
    // p1..p3 refresh later; p0 stays quiet and is the least recently refreshed.
    for i in 1..4u8 {
        let name = format!("p{i}");
        v.handle_datagram(
            ms(3000),
            src(10, 0, 0, 10 + i),
            &announce(&name, &test_key(10 + i), 2),
        )
        .unwrap();
    }
    assert_eq!(
        v.handle_datagram(ms(3001), src(10, 0, 0, 14), &newcomer),
        Ok(Some(PeerEvent::Found(id("p4"))))
    );
    assert!(v.peer(&id("p0")).is_none());
    assert_eq!(v.peer_table().len(), 4);
    assert_eq!(
        v.poll_event(),
        Some(PeerEvent::Lost(id("p0"), LostReason::Evicted))
    );
    assert_eq!(v.counters().evicted, 1);
    assert_eq!(v.counters().table_full, 1);
}

#[test]
fn a_pinned_newcomer_evicts_an_unpinned_peer_even_a_fresh_one() {
    let mut cfg = roomy("victim", 1);
    cfg.max_peers = 2;
    cfg.pinned
        .push((id("boss"), test_key(9).verifying_key().to_bytes()));
    let mut v = node_with(cfg, 1, ms(0));
    v.handle_datagram(ms(0), src(10, 0, 0, 2), &announce("x", &test_key(2), 1))
        .unwrap();
    v.handle_datagram(ms(1), src(10, 0, 0, 3), &announce("y", &test_key(3), 1))
        .unwrap();
    assert!(v
        .handle_datagram(ms(2), src(10, 0, 0, 9), &announce("boss", &test_key(9), 1))
        .is_ok());
    assert!(v.peer(&id("boss")).is_some());
    assert!(
        v.peer(&id("x")).is_none(),
        "the older unpinned peer gave way"
    );
    // An unpinned newcomer never evicts the pinned peer.
    let t = 10_000;
    v.handle_datagram(
        ms(t - 4000),
        src(10, 0, 0, 9),
        &announce("boss", &test_key(9), 2),
    )
    .unwrap();
    v.handle_datagram(ms(t - 1), src(10, 0, 0, 3), &announce("y", &test_key(3), 2))
        .unwrap();
    assert_eq!(
        v.handle_datagram(ms(t), src(10, 0, 0, 4), &announce("z", &test_key(4), 1)),
        Err(AnnounceError::TableFull)
    );
    assert!(v.peer(&id("boss")).is_some());
}

#[test]
fn a_full_tofu_store_fails_closed_and_forgets_only_when_configured() {
    let mut cfg = roomy("victim", 1);
    cfg.max_tofu_bindings = 3;
    let mut v = node_with(cfg.clone(), 1, ms(0));
    for i in 0..3u8 {
        v.handle_datagram(
            ms(0),
            src(10, 0, 0, 10 + i),
            &announce(&format!("t{i}"), &test_key(10 + i), 1),
        )
        .unwrap();
    }
    let late = announce("late", &test_key(20), 1);
    assert_eq!(
        v.handle_datagram(ms(1), src(10, 0, 0, 20), &late),
        Err(AnnounceError::TableFull)
    );
    // Still refused long after every peer expired: bindings are not forgotten by default.
    assert_eq!(
        v.handle_datagram(ms(3_600_000), src(10, 0, 0, 20), &late),
        Err(AnnounceError::TableFull)
    );
    assert_eq!(v.bindings().tofu_len(), 3);

    // Opt-in: bindings unheard for a minute may be replaced.
    cfg.tofu_forget_after = Some(Duration::from_secs(60));
    let mut v = node_with(cfg, 1, ms(0));
    for i in 0..3u8 {
        v.handle_datagram(
            ms(i64::from(i)),
            src(10, 0, 0, 10 + i),
            &announce(&format!("t{i}"), &test_key(10 + i), 1),
        )
        .unwrap();
    }
    v.handle_datagram(
        ms(30_000),
        src(10, 0, 0, 11),
        &announce("t1", &test_key(11), 2),
    )
    .unwrap();
    v.handle_datagram(
        ms(30_000),
        src(10, 0, 0, 12),
        &announce("t2", &test_key(12), 2),
    )
    .unwrap();
    assert_eq!(
        v.handle_datagram(ms(59_000), src(10, 0, 0, 20), &late),
        Err(AnnounceError::TableFull)
    );
    assert!(v
        .handle_datagram(ms(60_000), src(10, 0, 0, 20), &late)
        .is_ok());
    assert!(
        v.binding(&id("t0")).is_none(),
        "the idle binding was replaced"
    );
    assert!(v.binding(&id("t1")).is_some());
    assert_eq!(v.bindings().tofu_len(), 3);
}

#[test]
fn forget_drops_a_tofu_binding_on_request() {
    let mut v = node("victim", 1, ms(0));
    v.handle_datagram(ms(0), src(10, 0, 0, 2), &announce("peer", &test_key(2), 1))
        .unwrap();
    assert!(v.forget(&id("peer")));
    assert_eq!(
        v.poll_event(),
        Some(PeerEvent::Lost(id("peer"), LostReason::Forgotten))
    );
    // The app decided: the id may now be bound afresh (e.g. a re-provisioned device).
    assert!(v
        .handle_datagram(ms(1), src(10, 0, 0, 2), &announce("peer", &test_key(3), 1))
        .is_ok());
}

#[test]
fn peers_expire_after_the_ttl() {
    let mut v = node("victim", 1, ms(0));
    v.handle_datagram(
        ms(1000),
        src(10, 0, 0, 2),
        &announce("peer", &test_key(2), 1),
    )
    .unwrap();
    assert_eq!(v.poll_at(), ms(0), "our own first announce is due first");
    while v.poll_transmit(ms(1000)).is_some() {}
    let expiry = ms(1000) + DEFAULT_PEER_TTL;
    assert!(v.poll_at() <= expiry);
    v.expire(expiry - Duration::from_micros(1));
    assert!(v.peer(&id("peer")).is_some());
    assert_eq!(v.poll_event(), None);
    v.expire(expiry);
    assert!(v.peer(&id("peer")).is_none());
    assert_eq!(
        v.poll_event(),
        Some(PeerEvent::Lost(id("peer"), LostReason::Expired))
    );
    assert_eq!(v.counters().expired, 1);
}

#[test]
fn the_event_queue_is_bounded() {
    let mut cfg = roomy("victim", 1);
    cfg.max_peers = 40;
    cfg.max_tofu_bindings = 40;
    let mut v = node_with(cfg, 1, ms(0));
    for i in 0..40u32 {
        v.handle_datagram(
            ms(0),
            src_n(i),
            &announce(&format!("p{i}"), &test_key_n(i), 1),
        )
        .unwrap();
    }
    v.expire(ms(100_000));
    assert_eq!(v.pending_events(), EVENT_QUEUE_CAP);
    assert_eq!(v.counters().events_dropped, 40 - EVENT_QUEUE_CAP as u64);
    assert_eq!(v.counters().expired, 40);
}

#[test]
fn one_source_is_rate_limited_before_any_signature_check() {
    let mut v = node("victim", 1, ms(0));
    // Eight distinct new ids from one address pass (burst 8), the ninth does not.
    for i in 0..DEFAULT_PER_SOURCE.burst {
        let pkt = announce(&format!("n{i}"), &test_key_n(i), 1);
        assert!(v.handle_datagram(ms(0), src(10, 0, 0, 2), &pkt).is_ok());
    }
    let ninth = announce("n9", &test_key_n(9), 1);
    assert_eq!(
        v.handle_datagram(ms(0), src(10, 0, 0, 2), &ninth),
        Err(AnnounceError::RateLimited)
    );
    assert_eq!(v.counters().verified, u64::from(DEFAULT_PER_SOURCE.burst));
    // A quarter second later (4 tokens/s) the source has a token again... but the
    // global new-id budget (also 8, 4/s) was spent too, and refills at the same time.
    assert!(v.handle_datagram(ms(250), src(10, 0, 0, 2), &ninth).is_ok());
}

#[test]
fn new_ids_from_many_sources_share_a_global_budget() {
    let mut v = node("victim", 1, ms(0));
    let mut ok = 0;
    for i in 0..100u32 {
        let pkt = announce(&format!("n{i}"), &test_key_n(i), 1);
        if v.handle_datagram(ms(0), src_n(i), &pkt).is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, DEFAULT_NEW_DEVICES.burst);
    assert_eq!(
        v.counters().rate_limited,
        100 - u64::from(DEFAULT_NEW_DEVICES.burst)
    );
    assert_eq!(v.counters().verified, u64::from(DEFAULT_NEW_DEVICES.burst));
}

#[test]
fn forged_announces_for_a_known_peer_cost_bounded_verifications_and_change_nothing() {
    // Unsigned junk claiming a known id from random sources spends that id's
    // "roaming" budget only: the real peer, announcing from its home address,
    // keeps being refreshed, and its binding, entry and seq never move.
    let mut v = node("victim", 1, ms(0));
    let real = test_key(2);
    let home = src(192, 168, 1, 2);
    v.handle_datagram(ms(0), home, &announce("peer", &real, 1))
        .unwrap();
    let mut forged = announce("peer", &real, 1_000_000);
    let n = forged.len();
    forged[n - 1] ^= 1;
    let seconds = 10u64;
    let mut real_seq = 1;
    for step in 0..seconds * 1000 {
        let now = ms(step as i64);
        let r = v.handle_datagram(now, src_n(step as u32), &forged);
        assert!(
            matches!(
                r,
                Err(AnnounceError::BadSignature | AnnounceError::RateLimited)
            ),
            "{r:?}"
        );
        if step % 1000 == 999 {
            real_seq += 1;
            assert_eq!(
                v.handle_datagram(now, home, &announce("peer", &real, real_seq)),
                Ok(None)
            );
        }
    }
    let budget =
        u64::from(DEFAULT_PER_DEVICE.burst) + u64::from(DEFAULT_PER_DEVICE.per_sec) * seconds;
    let real_verifies = 1 + seconds;
    assert!(
        v.counters().verified <= real_verifies + budget,
        "verified {}",
        v.counters().verified
    );
    assert_eq!(v.binding(&id("peer")).unwrap().last_seq, Some(real_seq));
    let p = v.peer(&id("peer")).unwrap();
    assert_eq!((p.seq, p.addr), (real_seq, home.addr));
}

#[test]
fn non_unicast_sources_are_refused() {
    let mut v = node("victim", 1, ms(0));
    let pkt = announce("peer", &test_key(2), 1);
    for s in [src(0, 0, 0, 0), src(255, 255, 255, 255), src(239, 42, 0, 1)] {
        assert_eq!(
            v.handle_datagram(ms(0), s, &pkt),
            Err(AnnounceError::BadSource)
        );
    }
}

#[test]
fn labels_are_stable_and_distinct() {
    let labels: Vec<&str> = AnnounceError::ALL.iter().map(|e| e.label()).collect();
    assert_eq!(
        labels,
        [
            "malformed",
            "oversized",
            "bad-magic",
            "bad-version",
            "bad-signature",
            "replay",
            "rate-limited",
            "key-mismatch",
            "table-full",
            "self",
            "unpinned",
            "bad-source",
        ]
    );
    assert_eq!(AnnounceError::Replay.to_string(), "replay");
}

#[test]
fn every_rejection_label_is_reached_and_counted() {
    let mut cfg = DiscoveryConfig::new(id("victim"), [1; 32]);
    cfg.max_tofu_bindings = 1;
    cfg.pinned
        .push((id("pinned"), test_key(7).verifying_key().to_bytes()));
    let mut v = node_with(cfg, 1, ms(0));
    let mut strict = {
        let mut c = DiscoveryConfig::new(id("strict"), [3; 32]);
        c.trust_on_first_use = false;
        node_with(c, 3, ms(0))
    };
    let k = test_key(2);
    let good = announce("peer", &k, 10);
    let s = src(10, 0, 0, 2);
    let mut bad_sig = announce("peer", &k, 11);
    let n = bad_sig.len();
    bad_sig[n - 3] ^= 0x10;
    let mut bad_version = good.clone();
    bad_version[4] = 2;
    let own = v.poll_transmit(ms(0)).unwrap();

    assert!(v.handle_datagram(ms(0), s, &good).is_ok());
    let cases: Vec<(AnnounceError, Vec<u8>)> = vec![
        (AnnounceError::Malformed, good[..100].to_vec()),
        (AnnounceError::Oversized, vec![0; MAX_ANNOUNCE_LEN + 1]),
        (AnnounceError::BadMagic, b"GET / HTTP/1.1\r\n".to_vec()),
        (AnnounceError::BadVersion, bad_version),
        (AnnounceError::BadSignature, bad_sig),
        (AnnounceError::Replay, announce("peer", &k, 9)),
        (
            AnnounceError::KeyMismatch,
            announce("pinned", &test_key(66), 1),
        ),
        (AnnounceError::TableFull, announce("third", &test_key(5), 1)),
        (AnnounceError::SelfAnnounce, own),
    ];
    for (want, bytes) in cases {
        assert_eq!(
            v.handle_datagram(ms(1), s, &bytes),
            Err(want),
            "{}",
            want.label()
        );
    }
    assert_eq!(
        v.handle_datagram(ms(1), src(255, 255, 255, 255), &good),
        Err(AnnounceError::BadSource)
    );
    assert_eq!(
        strict.handle_datagram(ms(1), s, &good),
        Err(AnnounceError::Unpinned)
    );
    // Exhaust the source budget (burst 8, one spent by `good`, one by `bad_sig`).
    let mut limited = false;
    for seq in 11..40 {
        if v.handle_datagram(ms(1), s, &announce("peer", &k, seq))
            == Err(AnnounceError::RateLimited)
        {
            limited = true;
            break;
        }
    }
    assert!(limited);

    let mut total = *v.counters();
    total.unpinned += strict.counters().unpinned;
    for e in AnnounceError::ALL {
        assert!(total.rejected(e) >= 1, "label {} never counted", e.label());
    }
    assert!(total.by_label().iter().all(|(_, n)| *n >= 1));
}

#[test]
fn a_handshake_identity_is_admitted_like_a_first_announce() {
    let mut a = node_with(roomy("node-a", 1), 1, ms(0));
    let key_b = test_key(2).verifying_key().to_bytes();
    // Unknown id, TOFU on: the handshake creates the binding...
    assert_eq!(a.admit(ms(1), &id("node-b"), &key_b), Ok(()));
    assert_eq!(a.binding(&id("node-b")).unwrap().device_key, key_b);
    assert!(
        a.peer(&id("node-b")).is_none(),
        "a binding, not a peer entry"
    );
    // ...which then holds against another key, in handshakes and announces.
    let other = test_key(9).verifying_key().to_bytes();
    assert_eq!(
        a.admit(ms(2), &id("node-b"), &other),
        Err(AnnounceError::KeyMismatch)
    );
    assert_eq!(a.admit(ms(3), &id("node-b"), &key_b), Ok(()));
    assert_eq!(a.counters().admitted, 2);
    assert_eq!(a.counters().admit_refused, 1);
    assert_eq!(a.counters().key_mismatch, 0, "announce counters untouched");
    // The real node's announce is accepted under the binding it made.
    let mut b = node_with(roomy("node-b", 2), 2, ms(0));
    let from_b = b.poll_transmit(ms(0)).unwrap();
    assert_eq!(
        a.handle_datagram(ms(4), src(10, 0, 2, 16), &from_b),
        Ok(Some(PeerEvent::Found(id("node-b"))))
    );
    // Our own id is never admitted.
    assert_eq!(
        a.admit(ms(5), &id("node-a"), &key_b),
        Err(AnnounceError::SelfAnnounce)
    );
}

#[test]
fn pinned_only_and_full_stores_refuse_handshake_identities() {
    let mut cfg = roomy("node-a", 1);
    cfg.trust_on_first_use = false;
    cfg.pinned = vec![(id("node-p"), test_key(3).verifying_key().to_bytes())];
    let mut a = node_with(cfg, 1, ms(0));
    let key = test_key(2).verifying_key().to_bytes();
    assert_eq!(
        a.admit(ms(1), &id("node-b"), &key),
        Err(AnnounceError::Unpinned)
    );
    assert_eq!(
        a.admit(
            ms(1),
            &id("node-p"),
            &test_key(3).verifying_key().to_bytes()
        ),
        Ok(())
    );
    assert_eq!(
        a.admit(ms(1), &id("node-p"), &key),
        Err(AnnounceError::KeyMismatch)
    );

    let mut cfg = roomy("node-a", 1);
    cfg.max_tofu_bindings = 1;
    let mut a = node_with(cfg, 1, ms(0));
    assert_eq!(a.admit(ms(1), &id("node-b"), &key), Ok(()));
    assert_eq!(
        a.admit(ms(1), &id("node-c"), &key),
        Err(AnnounceError::TableFull),
        "fail closed, never evict a binding"
    );
}

#[test]
fn hearing_a_newcomer_brings_our_next_announce_forward() {
    let mut a = node("node-a", 1, ms(0));
    let mut b = node("node-b", 2, ms(0));
    // a is past its burst, far from its next steady slot.
    let mut t = 0;
    while t < 1_500 {
        let _ = a.poll_transmit(ms(t));
        t += 1;
    }
    let steady = a.poll_at();
    let from_b = b.poll_transmit(ms(1_500)).unwrap();
    assert_eq!(
        a.handle_datagram(ms(1_500), src(10, 0, 2, 16), &from_b),
        Ok(Some(PeerEvent::Found(id("node-b"))))
    );
    assert!(a.poll_at() <= ms(1_500) && steady > ms(1_600));
    assert!(a.poll_transmit(ms(1_500)).is_some());
}
