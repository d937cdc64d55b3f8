//! One simulated hour of a serving node (node-a) on a busy segment, with
//! the process heap measured by a counting allocator:
//! - node-b and node-c call its directory and put and get blobs;
//! - node-d joins, leaves for minutes and reboots, again and again;
//! - an impostor claiming node-c's id with its own keys dials everyone;
//! - a flooder sends garbage to the discovery port and to node-a's
//!   udp-sec and TCP ports.
//!
//! The heap must stay flat: after a warm-up, the second half of the hour
//! may not hold more than the first half did (plus a small slack), and it
//! never exceeds the image's heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dsb_app::bus::blob::{BlobCode, BlobError, StoreConfig};
use dsb_app::bus::sd::SdRequest;
use dsb_app::bus::Access;
use dsb_app::config::Transport as Mode;
use dsb_app::net::{NetStack, NetStackConfig, Phase};
use dsb_app::node::{CallId, DialPolicy, NodeConfig, TransferId, Transferred};
use dsb_noise::{DeviceId, Identity};
use dsb_tests::nodesim::{mac, make_node_with, pins, NodeSim};
use dsb_tests::simwire::{SimDevice, WireConfig};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            LIVE.fetch_add(new, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const IDS: [&str; 4] = ["node-a", "node-b", "node-c", "node-d"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;
/// The impostor and the flooder sit on stations after the nodes.
const SPOOF: usize = 4;
const FLOOD_STATION: usize = 6;

fn id(i: usize) -> DeviceId {
    DeviceId::new(IDS[i]).unwrap()
}

fn config(i: usize, epoch: u32) -> NodeConfig {
    let mut c = NodeConfig::new(37021 + i as u16);
    c.transport = if i.is_multiple_of(2) {
        Mode::Auto
    } else {
        Mode::Tcp
    };
    c.udpsec_port = Some(37031 + i as u16);
    c.pinned = pins(&IDS, IDS[i]);
    c.tofu = false;
    c.boot_epoch = epoch;
    c.blob_store = StoreConfig {
        blob_cap: 512 * 1024,
        total_cap: 2 << 20,
        max_blobs: 8,
        max_partials: 2,
    };
    c
}

/// Garbage at the discovery port (broadcast), node-a's udp-sec port, and
/// TCP connections to node-a's session port that send junk.
struct Flooder {
    stack: NetStack<SimDevice>,
    udp: Option<SocketHandle>,
    tcp: Option<SocketHandle>,
    rng: ChaCha20Rng,
    next: Instant,
    next_tcp: Instant,
    port: u16,
    sent: u64,
}

impl Flooder {
    fn new(dev: SimDevice, now: Instant) -> Flooder {
        let stack =
            NetStack::new(dev, NetStackConfig::new(mac(FLOOD_STATION - 1), 77), now).unwrap();
        Flooder {
            stack,
            udp: None,
            tcp: None,
            rng: ChaCha20Rng::seed_from_u64(99),
            next: now,
            next_tcp: now,
            port: 40000,
            sent: 0,
        }
    }

    fn poll(&mut self, now: Instant, target: Option<Ipv4Address>) {
        self.stack.poll(now);
        if self.stack.phase() != Phase::Up {
            return;
        }
        let Some(target) = target else { return };
        let (iface, sockets) = self.stack.iface_and_sockets();
        let udp = *self.udp.get_or_insert_with(|| {
            let b =
                || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 16 * 1500]);
            let mut s = udp::Socket::new(b(), b());
            s.bind(41000).unwrap();
            sockets.add(s)
        });
        // 100 datagrams per second, alternating discovery and udp-sec.
        while self.next <= now {
            self.next += Duration::from_millis(10);
            let len = 1 + (self.rng.next_u32() % 1400) as usize;
            let mut junk = vec![0u8; len];
            self.rng.fill_bytes(&mut junk);
            // Sometimes a plausible prefix (announce magic, udp-sec types).
            if let Some(b) = junk.first_mut() {
                *b = (self.rng.next_u32() % 6) as u8;
            }
            let to = if self.sent.is_multiple_of(2) {
                IpEndpoint::new(IpAddress::v4(255, 255, 255, 255), 37020)
            } else {
                IpEndpoint::new(target.into(), 37031)
            };
            let s = sockets.get_mut::<udp::Socket>(udp);
            if s.send_slice(&junk, to).is_ok() {
                self.sent += 1;
            }
        }
        // A TCP connection with junk every 5 s (the previous one aborted).
        if self.next_tcp <= now {
            self.next_tcp = now + Duration::from_secs(5);
            if let Some(h) = self.tcp.take() {
                sockets.get_mut::<tcp::Socket>(h).abort();
                sockets.remove(h);
            }
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 4096]),
                tcp::SocketBuffer::new(vec![0; 4096]),
            );
            self.port = if self.port >= 60000 {
                40000
            } else {
                self.port + 1
            };
            if s.connect(iface.context(), (IpAddress::from(target), 37021), self.port)
                .is_ok()
            {
                self.tcp = Some(sockets.add(s));
            }
        }
        if let Some(h) = self.tcp {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.can_send() {
                let mut junk = [0u8; 512];
                self.rng.fill_bytes(&mut junk);
                let _ = s.send_slice(&junk);
            }
            let _ = s.recv(|b| (b.len(), ()));
        }
        self.stack.poll(now);
    }
}

#[derive(Default)]
struct Tally {
    calls_ok: u32,
    calls_failed: u32,
    puts_ok: u32,
    gets_ok: u32,
    transfers_failed: u32,
}

#[test]
fn a_serving_node_stays_flat_for_a_simulated_hour() {
    let wire = WireConfig {
        loss: 0.002,
        ..WireConfig::default()
    };
    // Stations: slirp, 4 nodes, the impostor, the flooder.
    let mut sim = NodeSim::bare_with_stations(&IDS, IDS.len() + 3, wire, 7, |i, _| config(i, 1));
    // The impostor (station 5) claims node-c with keys of its own.
    let mut spoof_cfg = config(C, 1);
    spoof_cfg.dial = DialPolicy::Everyone;
    spoof_cfg.pinned.clear();
    spoof_cfg.tcp_port = 37029;
    spoof_cfg.udpsec_port = Some(37039);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let impostor = Identity::generate("node-c", &mut rng).unwrap();
    let spoof = make_node_with(
        impostor,
        SPOOF,
        sim.wire.device(SPOOF + 1),
        spoof_cfg,
        sim.now,
    );
    sim.push_node_bare(spoof);
    let mut flooder = Flooder::new(sim.wire.device(FLOOD_STATION), sim.now);
    // Jump up to 100 ms when nothing is due: an hour in a few hundred
    // thousand steps, and a check that nodes report their deadlines.
    sim.max_step = Duration::from_millis(100);

    sim.nodes[A]
        .publish("sd", Access::AnyAuthenticated)
        .unwrap();
    sim.nodes[A]
        .publish("blob", Access::only([&id(B), &id(C)]).unwrap())
        .unwrap();
    sim.stopped[D] = true; // joins later

    let hour = Duration::from_secs(3600);
    let warmup = Duration::from_secs(600);
    let sample_every = Duration::from_secs(60);
    let mut samples: Vec<(Instant, usize)> = Vec::new();
    let mut next_sample = sim.now + warmup;
    let mut tick = sim.now;
    let mut d_epoch = 1u32;
    let mut d_next = sim.now + Duration::from_secs(300);
    let mut calls: Vec<(usize, CallId)> = Vec::new();
    let mut transfers: Vec<(usize, TransferId, Option<Vec<u8>>)> = Vec::new();
    let mut tally = Tally::default();
    let mut k = 0u64;
    let mut impostor_sessions = 0;
    let mut steps = 0u64;
    let end = sim.now + hour;
    let t = Duration::from_secs(2);
    while sim.now < end {
        sim.step();
        let a_ip = sim.nodes[A].stack().address().map(|c| c.address());
        flooder.poll(sim.now, a_ip);
        steps += 1;
        // The run's own log would grow for an hour: keep none of it.
        sim.log.clear();
        sim.tlog.clear();

        if sim.now >= tick {
            tick = sim.now + Duration::from_secs(5);
            impostor_sessions += sim.nodes[SPOOF].sessions().count();
            k += 1;
            for i in [B, C] {
                if let Ok(c) = sim.nodes[i].call_msg(&id(A), "sd", &SdRequest::List, t) {
                    calls.push((i, c));
                }
            }
            if k.is_multiple_of(6) {
                let i = if k.is_multiple_of(12) { B } else { C };
                let mut data = vec![0u8; 64 * 1024 + (k as usize % 7) * 1000];
                rng.fill_bytes(&mut data);
                let name = format!("blob-{}", k % 5);
                if let Ok(tid) = sim.nodes[i].blob_put(&id(A), &name, data.clone()) {
                    transfers.push((i, tid, None));
                }
                if let Ok(tid) = sim.nodes[i].blob_get(&id(A), &name, 512 * 1024) {
                    transfers.push((i, tid, Some(data)));
                }
            }
        }
        calls.retain(|&(i, c)| match sim.nodes[i].take_call(c) {
            Some(Ok(_)) => {
                tally.calls_ok += 1;
                false
            }
            Some(Err(_)) => {
                tally.calls_failed += 1;
                false
            }
            None => true,
        });
        transfers.retain(|(i, tid, want)| match sim.nodes[*i].take_transfer(*tid) {
            Some(Ok(Transferred::Put(_))) => {
                tally.puts_ok += 1;
                false
            }
            Some(Ok(Transferred::Get(g))) => {
                // Another writer may have replaced the name in between.
                if want.as_ref().is_some_and(|w| *w == g.data) {
                    tally.gets_ok += 1;
                }
                false
            }
            Some(Err(e)) => {
                // A get may find the name replaced mid-way or not stored yet.
                let benign = matches!(
                    e,
                    BlobError::Remote {
                        code: BlobCode::NotFound,
                        ..
                    } | BlobError::Changed
                );
                if !benign {
                    eprintln!("transfer failed: {e:?}");
                    tally.transfers_failed += 1;
                }
                false
            }
            None => true,
        });

        // node-d: joins, leaves, reboots.
        if sim.now >= d_next {
            let r = rng.next_u32() % 3;
            if sim.stopped[D] || r == 0 {
                // (Re)boot with a higher epoch.
                d_epoch += 1;
                sim.restart(D, IDS[D], config(D, d_epoch));
                sim.stopped[D] = false;
            } else {
                sim.stopped[D] = true;
            }
            d_next = sim.now + Duration::from_secs(60 + u64::from(rng.next_u32() % 180));
        }

        if sim.now >= next_sample {
            next_sample = sim.now + sample_every;
            samples.push((sim.now, LIVE.load(Ordering::Relaxed)));
        }
    }

    let half = samples.len() / 2;
    let first = samples[..half].iter().map(|s| s.1).max().unwrap();
    let second = samples[half..].iter().map(|s| s.1).max().unwrap();
    eprintln!(
        "{steps} steps; heap: first half max {first} B, second half max {second} B, {} samples; {:?} calls ok/failed {}/{}, puts {}, gets {}, transfers failed {}, flood datagrams {}",
        samples.len(),
        samples.iter().map(|s| s.1 / 1024).collect::<Vec<_>>(),
        tally.calls_ok,
        tally.calls_failed,
        tally.puts_ok,
        tally.gets_ok,
        tally.transfers_failed,
        flooder.sent
    );
    assert!(
        second <= first + first / 20 + 256 * 1024,
        "the heap grew: {first} -> {second}"
    );
    assert!(second < 32 << 20, "over the image's heap: {second}");
    // The bus did its work meanwhile.
    assert!(tally.calls_ok > 1000, "{}", tally.calls_ok);
    assert!(
        tally.calls_failed * 20 < tally.calls_ok,
        "{}",
        tally.calls_failed
    );
    assert!(tally.puts_ok > 50 && tally.gets_ok > 50);
    assert!(flooder.sent > 300_000);
    assert_eq!(impostor_sessions, 0, "the impostor got a session");
    // Idle nodes sleep until their next deadline: a node that reports one
    // in the past makes every step a busy one (as an expired dial backoff
    // once did, about 7000 steps per simulated second).
    assert!(steps < 1_000_000, "{steps} steps: a node never sleeps");
}
