//! An attacker on the subnet floods a node: 100k random datagrams and 100k
//! valid-looking announces (validly signed by attacker keys, claiming real ids,
//! replays of real announces) from ~100k source addresses, over 20 simulated
//! seconds, while three real peers keep announcing once per second.
//!
//! Proves: no panic, every table stays at its cap, the heap does not grow, the
//! rate limits keep signature verifications to a small bounded number, and the
//! real peers stay in the table with their real keys throughout.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use common::*;
use dsb_discovery::*;
use smoltcp::time::Instant;
use smoltcp::wire::IpEndpoint;

/// Counts live heap bytes of this test binary (it holds a single test).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size() as isize, Ordering::Relaxed) + l.size() as isize;
        PEAK.fetch_max(live.max(0) as usize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// xorshift64*: a seeded, replayable stream for the flood.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PACKETS: u64 = 200_000;
const SIM_SECONDS: i64 = 20;
const ATTACKER_IDS: u32 = 256;
const SEQS_PER_ID: u64 = 8;

struct RealPeer {
    node: Discovery,
    from: IpEndpoint,
}

#[test]
fn a_flood_is_bounded_and_real_peers_stay() {
    let start = ms(0);
    // The victim pins node-b; node-c and node-d are trusted on first use.
    let mut cfg = DiscoveryConfig::new(id("victim"), [1; 32]);
    cfg.pinned
        .push((id("node-b"), test_key(2).verifying_key().to_bytes()));
    let mut victim = node_with(cfg, 1, start);
    let mut real: Vec<RealPeer> = [("node-b", 2u8), ("node-c", 3), ("node-d", 4)]
        .iter()
        .map(|(name, seed)| RealPeer {
            node: node(name, *seed, start),
            from: src(192, 168, 7, *seed),
        })
        .collect();

    // Warm-up: the real peers announce for 2 s before the flood.
    let mut captured: Vec<Vec<u8>> = Vec::new();
    for t in 0..2_000 {
        for p in &mut real {
            if let Some(bytes) = p.node.poll_transmit(ms(t)) {
                victim.handle_datagram(ms(t), p.from, &bytes).unwrap();
                captured.push(bytes);
            }
        }
    }
    for p in &real {
        assert!(victim.peer(p.node.device_id()).is_some());
    }

    // The attacker's ammunition, signed once up front: 256 ids x 8 increasing seqs
    // under the attacker's own keys, plus announces claiming the real ids.
    let mut valid_looking: Vec<Vec<u8>> = Vec::new();
    for n in 0..ATTACKER_IDS {
        let k = test_key_n(n);
        for s in 0..SEQS_PER_ID {
            valid_looking.push(announce(&format!("evil-{n}"), &k, s * 1_000 + 1));
        }
    }
    for name in ["node-b", "node-c", "node-d"] {
        valid_looking.push(announce(name, &test_key(66), u64::MAX));
    }
    // ...and copies with a broken signature (and a newer seq) for every attacker id.
    for n in 0..ATTACKER_IDS {
        let mut forged = announce(&format!("evil-{n}"), &test_key_n(n), u64::MAX - 1);
        let last = forged.len() - 1;
        forged[last] ^= 0x80;
        valid_looking.push(forged);
    }
    let mut garbage = vec![0u8; 700];
    let mut rng = Rng(0x05ee_d0ff_100d);

    let heap_before = LIVE.load(Ordering::Relaxed);
    PEAK.store(heap_before.max(0) as usize, Ordering::Relaxed);
    let flood_start = 2_000_000i64; // micros
    let step = SIM_SECONDS * 1_000_000 / PACKETS as i64;
    let mut real_rejections = Vec::new();
    let mut real_sent = 0u64;
    let mut fullest_table = 0;

    for i in 0..PACKETS {
        let now = Instant::from_micros(flood_start + i as i64 * step);
        let from = src_n(rng.next() as u32 | 0x0100_0000); // 10.x.y.z, never 192.168.7.x
        if i % 2 == 0 {
            // Random bytes; a quarter of them behind a valid magic and version.
            let len = rng.below(garbage.len() as u64 + 1) as usize;
            for b in &mut garbage[..len] {
                *b = rng.next() as u8;
            }
            if i % 8 == 0 && len >= 5 {
                garbage[..4].copy_from_slice(&MAGIC);
                garbage[4] = VERSION;
            } else if i % 8 == 4 && len >= 5 {
                garbage[..4].copy_from_slice(&MAGIC);
                garbage[4] = VERSION.wrapping_add(1 + rng.below(255) as u8);
            }
            let _ = victim.handle_datagram(now, from, &garbage[..len]);
        } else {
            let pick = rng.below(10);
            let bytes = if pick == 0 {
                // A replay of something a real peer sent.
                &captured[rng.below(captured.len() as u64) as usize]
            } else {
                &valid_looking[rng.below(valid_looking.len() as u64) as usize]
            };
            let _ = victim.handle_datagram(now, from, bytes);
        }

        // The real peers keep announcing on their own schedules.
        for p in &mut real {
            if let Some(bytes) = p.node.poll_transmit(now) {
                real_sent += 1;
                if let Err(e) = victim.handle_datagram(now, p.from, &bytes) {
                    real_rejections.push((p.node.device_id().to_string(), e));
                }
            }
        }
        victim.expire(now);
        while victim.poll_event().is_some() {}

        assert!(victim.peer_table().len() <= victim.peer_table().capacity());
        fullest_table = fullest_table.max(victim.peer_table().len());
        assert!(victim.source_limiter().len() <= victim.source_limiter().capacity());
        assert!(victim.bindings().tofu_len() <= victim.bindings().tofu_capacity());
        assert!(victim.pending_events() <= EVENT_QUEUE_CAP);
        if i % 1000 == 0 {
            for p in &real {
                let held = victim
                    .peer(p.node.device_id())
                    .expect("a real peer dropped out");
                assert_eq!(
                    held.device_key,
                    p.node.local_announce().device_key_verifying()
                );
                assert_eq!(held.addr, p.from.addr);
            }
        }
    }

    // Memory: the victim allocated nothing that it kept (measured before any
    // printing, which allocates the test harness's capture buffer).
    let heap_after = LIVE.load(Ordering::Relaxed);
    let peak = PEAK.load(Ordering::Relaxed);
    let c = *victim.counters();
    println!("flood counters: {c:#?}");
    assert_eq!(heap_after, heap_before, "heap grew during the flood");
    let transient = peak - heap_before as usize;
    assert!(transient < 4096, "transient heap use {transient}");
    // Tables at (not beyond) their caps: the flood did fill them.
    assert_eq!(
        victim.source_limiter().len(),
        victim.source_limiter().capacity()
    );
    assert_eq!(
        victim.bindings().tofu_len(),
        victim.bindings().tofu_capacity()
    );
    assert_eq!(fullest_table, victim.peer_table().capacity());
    // Real peers: every announce accepted, all still present with their keys.
    assert!(real_rejections.is_empty(), "{real_rejections:?}");
    assert!(real_sent >= 3 * SIM_SECONDS as u64);
    // CPU: verifications bounded by the budgets, not by the packet count.
    let seconds = (SIM_SECONDS + 2) as u64;
    let new_id_budget =
        u64::from(DEFAULT_NEW_DEVICES.burst) + u64::from(DEFAULT_NEW_DEVICES.per_sec) * seconds;
    let per_id_budget =
        2 * (u64::from(DEFAULT_PER_DEVICE.burst) + u64::from(DEFAULT_PER_DEVICE.per_sec) * seconds);
    let bound = new_id_budget + per_id_budget * (DEFAULT_MAX_TOFU_BINDINGS as u64 + 1);
    assert!(c.verified <= bound, "verified {} > {bound}", c.verified);
    assert!(c.verified < PACKETS / 50, "verified {}", c.verified);
    // Every kind of attack was seen and refused.
    for e in [
        AnnounceError::Malformed,
        AnnounceError::Oversized,
        AnnounceError::BadMagic,
        AnnounceError::BadVersion,
        AnnounceError::BadSignature,
        AnnounceError::Replay,
        AnnounceError::KeyMismatch,
        AnnounceError::TableFull,
        AnnounceError::RateLimited,
    ] {
        assert!(c.rejected(e) > 0, "{} never hit", e.label());
    }
}

trait VerifyingKeyOf {
    fn device_key_verifying(&self) -> VerifyingKey;
}
impl VerifyingKeyOf for AnnounceRepr {
    fn device_key_verifying(&self) -> VerifyingKey {
        VerifyingKey::from_bytes(&self.device_key).unwrap()
    }
}
