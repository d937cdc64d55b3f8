//! The bus API of whole nodes on the simulated wire: publishing with
//! access policies, channels allowed and refused, RPC calls (the node's
//! client, an application's server), the service directory, blob transfers
//! under loss and across a lost session, peers leaving, and store caps.
//! No self-test runs: each test drives the nodes' API between steps.

use std::collections::HashMap;

use dsb_app::bus::blob::{blob_hash, BlobCode, BlobError, StoreConfig};
use dsb_app::bus::rpc::{RpcError, RpcResult, RpcServer};
use dsb_app::bus::sd::{SdRequest, SdResponse};
use dsb_app::bus::{Access, ApiError, ChannelRef};
use dsb_app::config::Transport as Mode;
use dsb_app::node::{CallId, NodeConfig, NodeEvent, TransferId, Transferred};
use dsb_noise::DeviceId;
use dsb_tests::nodesim::NodeSim;
use dsb_tests::simwire::WireConfig;
use dsb_transports::mux::RefuseReason;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use smoltcp::time::Duration;

const IDS: [&str; 3] = ["node-a", "node-b", "node-c"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn id(i: usize) -> DeviceId {
    DeviceId::new(IDS[i]).unwrap()
}

fn sim(mode: Mode, wire: WireConfig, seed: u64) -> NodeSim {
    NodeSim::bare(&IDS, wire, seed, |i, mut c: NodeConfig| {
        c.transport = mode;
        c.udpsec_port = (mode != Mode::Tcp).then_some(37031 + i as u16);
        c
    })
}

/// Runs until every pair has a session (the nodes dial by themselves).
fn meshed(sim: &mut NodeSim) {
    let all = |s: &NodeSim| {
        (0..3).all(|i| (0..3).all(|j| i == j || s.nodes[i].session_stats(&id(j)).is_some()))
    };
    assert!(
        sim.run_until(Duration::from_secs(30), all),
        "no full mesh: {:#?}",
        sim.log
    );
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn call_done(sim: &NodeSim, i: usize, call: CallId) -> bool {
    sim.saw(i, |e| *e == NodeEvent::CallDone(call))
}

fn transfer_done(sim: &NodeSim, i: usize, t: TransferId) -> bool {
    sim.saw(i, |e| *e == NodeEvent::TransferDone(t))
}

/// Steps until transfer `t` of node `i` ends; its result.
fn finish_transfer(
    sim: &mut NodeSim,
    i: usize,
    t: TransferId,
    limit: Duration,
) -> Result<Transferred, BlobError> {
    assert!(
        sim.run_until(limit, |s| transfer_done(s, i, t)),
        "transfer {t:?} of node {i} did not end: {:?}",
        sim.nodes[i].transfer_progress(t)
    );
    sim.nodes[i]
        .take_transfer(t)
        .expect("a result after TransferDone")
}

/// The refusal node `i` got for a channel to `service`, if any.
fn refusal(sim: &NodeSim, i: usize, ch: ChannelRef) -> Option<RefuseReason> {
    sim.log.iter().find_map(|l| match l.event {
        NodeEvent::ChannelRefused { ch: c, reason, .. } if l.node == i && c == ch => Some(reason),
        _ => None,
    })
}

fn opened(sim: &NodeSim, i: usize, ch: ChannelRef) -> bool {
    sim.saw(
        i,
        |e| matches!(e, NodeEvent::ChannelOpened { ch: c, .. } if *c == ch),
    )
}

#[test]
fn each_policy_admits_exactly_whom_it_names_on_both_transports() {
    for mode in [Mode::Tcp, Mode::UdpSec] {
        let mut sim = sim(mode, WireConfig::default(), 11);
        let a = &mut sim.nodes[A];
        a.publish("only-b", Access::only([&id(B)]).unwrap())
            .unwrap();
        a.publish("everyone", Access::AnyAuthenticated).unwrap();
        a.publish("nobody", Access::Deny).unwrap();
        meshed(&mut sim);

        let mut chans = HashMap::new();
        for i in [B, C] {
            for svc in ["only-b", "everyone", "nobody", "missing"] {
                let ch = sim.nodes[i].open(&id(A), svc).unwrap();
                // Written before the answer: must never reach node-a's
                // application unless the policy allows the channel.
                sim.nodes[i].write(ch, b"early bytes").unwrap();
                chans.insert((i, svc), ch);
            }
        }
        let answered = |s: &NodeSim| {
            chans
                .iter()
                .all(|(&(i, _), &ch)| opened(s, i, ch) || refusal(s, i, ch).is_some())
        };
        assert!(sim.run_until(Duration::from_secs(10), answered), "{mode:?}");

        let expect = [
            ((B, "only-b"), None),
            ((B, "everyone"), None),
            ((B, "nobody"), Some(RefuseReason::AccessDenied)),
            ((B, "missing"), Some(RefuseReason::UnknownService)),
            ((C, "only-b"), Some(RefuseReason::AccessDenied)),
            ((C, "everyone"), None),
            ((C, "nobody"), Some(RefuseReason::AccessDenied)),
            ((C, "missing"), Some(RefuseReason::UnknownService)),
        ];
        for (key, want) in expect {
            let ch = chans[&key];
            assert_eq!(refusal(&sim, key.0, ch), want, "{mode:?} {key:?}");
            assert_eq!(opened(&sim, key.0, ch), want.is_none(), "{mode:?} {key:?}");
        }
        // node-a's application saw exactly the three allowed channels, and
        // counted the three denials.
        let accepted: Vec<(DeviceId, String)> = sim
            .log
            .iter()
            .filter(|l| l.node == A)
            .filter_map(|l| match l.event {
                NodeEvent::ChannelAccepted { ch, service } => {
                    Some((ch.peer, service.as_str().to_string()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(accepted.len(), 3, "{mode:?}: {accepted:?}");
        assert!(!accepted
            .iter()
            .any(|(p, s)| *p == id(C) && s == "only-b" || s == "nobody"));
        assert_eq!(sim.nodes[A].channels_denied(), 3, "{mode:?}");
        let denied = sim
            .log
            .iter()
            .filter(|l| l.node == A && matches!(l.event, NodeEvent::ChannelDenied { .. }))
            .count();
        assert_eq!(denied, 3, "{mode:?}");

        // A changed policy applies to the sessions that exist. (One live
        // channel per service and direction: node-b closes its first.)
        for svc in ["only-b", "everyone"] {
            sim.nodes[B].reset(chans[&(B, svc)], 1).unwrap();
        }
        sim.run_until(Duration::from_millis(200), |_| false);
        sim.nodes[A].publish("only-b", Access::Deny).unwrap();
        assert!(sim.nodes[A].withdraw("everyone"));
        let again = sim.nodes[B].open(&id(A), "only-b").unwrap();
        let gone = sim.nodes[B].open(&id(A), "everyone").unwrap();
        assert!(sim.run_until(Duration::from_secs(5), |s| {
            refusal(s, B, again).is_some() && refusal(s, B, gone).is_some()
        }));
        assert_eq!(refusal(&sim, B, again), Some(RefuseReason::AccessDenied));
        assert_eq!(refusal(&sim, B, gone), Some(RefuseReason::UnknownService));
    }
}

#[test]
fn the_directory_tells_each_caller_what_it_may_open() {
    let mut sim = sim(Mode::Auto, WireConfig::default(), 12);
    sim.nodes[A]
        .publish("sd", Access::AnyAuthenticated)
        .unwrap();
    sim.nodes[A]
        .publish("blob", Access::only([&id(B)]).unwrap())
        .unwrap();
    meshed(&mut sim);
    let t = Duration::from_secs(2);
    let cb = sim.nodes[B]
        .call_msg(&id(A), "sd", &SdRequest::List, t)
        .unwrap();
    let cc = sim.nodes[C]
        .call_msg(&id(A), "sd", &SdRequest::List, t)
        .unwrap();
    assert!(
        sim.run_until(Duration::from_secs(3), |s| call_done(s, B, cb)
            && call_done(s, C, cc))
    );
    let from_b = SdResponse::decode(&sim.nodes[B].take_call(cb).unwrap().unwrap()).unwrap();
    let from_c = SdResponse::decode(&sim.nodes[C].take_call(cc).unwrap().unwrap()).unwrap();
    assert!(from_b.allows("blob") && from_b.allows("sd"));
    assert!(!from_c.allows("blob") && from_c.allows("sd"));
    assert!(from_c.services.iter().any(|e| e.name == "blob"));
    // Taken once.
    assert!(sim.nodes[B].take_call(cb).is_none());
}

/// node-a's application serves `calc` over RPC: it answers every request
/// with its body reversed, except `hang`, which it never answers.
struct Calc {
    servers: Vec<(ChannelRef, RpcServer)>,
    seen: usize,
}

impl Calc {
    fn pump(&mut self, sim: &mut NodeSim) {
        for l in &sim.log[self.seen..] {
            if let NodeEvent::ChannelAccepted { ch, service } = l.event {
                if l.node == A && service.as_str() == "calc" {
                    self.servers.push((ch, RpcServer::new(Default::default())));
                }
            }
        }
        self.seen = sim.log.len();
        for (ch, server) in self.servers.iter_mut() {
            let Ok(mut io) = sim.nodes[A].channel(*ch) else {
                continue;
            };
            while let Some(req) = server.poll(&mut io) {
                if req.body != b"hang" {
                    let body: Vec<u8> = req.body.iter().rev().copied().collect();
                    server.respond(req.id, RpcResult::Ok(body)).unwrap();
                }
            }
            let _ = server.poll(&mut io);
        }
    }
}

#[test]
fn calls_pipeline_time_out_and_refuse_what_cannot_go() {
    let mut sim = sim(Mode::Auto, WireConfig::default(), 13);
    sim.nodes[A]
        .publish("calc", Access::only([&id(B)]).unwrap())
        .unwrap();
    meshed(&mut sim);
    let mut calc = Calc {
        servers: Vec::new(),
        seen: 0,
    };
    let t = Duration::from_secs(2);
    let calls: Vec<(CallId, Vec<u8>)> = (0..16u8)
        .map(|k| {
            let body = vec![k, k + 1, k + 2];
            (sim.nodes[B].call(&id(A), "calc", &body, t).unwrap(), body)
        })
        .collect();
    let hang = sim.nodes[B]
        .call(&id(A), "calc", b"hang", Duration::from_millis(300))
        .unwrap();
    let denied = sim.nodes[C].call(&id(A), "calc", b"x", t).unwrap();
    assert_eq!(
        sim.nodes[B].call(&id(A), "calc", &vec![0; 20_000], t),
        Err(ApiError::TooLarge)
    );
    let start = sim.now;
    let done = |s: &NodeSim| {
        calls.iter().all(|(c, _)| call_done(s, B, *c))
            && call_done(s, B, hang)
            && call_done(s, C, denied)
    };
    let end = start + Duration::from_secs(3);
    while !done(&sim) && sim.now < end {
        sim.step();
        calc.pump(&mut sim);
    }
    assert!(done(&sim));
    for (c, body) in &calls {
        let want: Vec<u8> = body.iter().rev().copied().collect();
        assert_eq!(sim.nodes[B].take_call(*c), Some(Ok(want)));
    }
    assert_eq!(sim.nodes[B].take_call(hang), Some(Err(RpcError::Timeout)));
    let hung_at = sim.first(B, |e| *e == NodeEvent::CallDone(hang)).unwrap();
    // The deadline counts from the node's last poll (at most one step,
    // 10 ms, before the call).
    assert!(hung_at >= start + Duration::from_millis(290));
    assert!(
        hung_at <= start + Duration::from_millis(400),
        "{hung_at} vs {start}"
    );
    assert_eq!(sim.nodes[C].take_call(denied), Some(Err(RpcError::Denied)));
    // The 16 answered calls shared one channel.
    assert_eq!(calc.servers.len(), 1);
}

fn blob_round_trip(mode: Mode, wire: WireConfig, size: usize, seed: u64) -> Duration {
    let mut sim = sim(mode, wire, seed);
    sim.nodes[A]
        .publish("blob", Access::only([&id(B)]).unwrap())
        .unwrap();
    meshed(&mut sim);
    let data = random(size, seed);
    let limit = Duration::from_secs(600);
    let start = sim.now;
    let put = sim.nodes[B]
        .blob_put(&id(A), "image.bin", data.clone())
        .unwrap();
    let r = finish_transfer(&mut sim, B, put, limit);
    let took = sim.now - start;
    match r {
        Ok(Transferred::Put(p)) => {
            assert_eq!(p.size, size as u64);
            assert_eq!(p.hash, blob_hash(&data));
        }
        other => panic!("{mode:?}: put: {other:?}"),
    }
    let (stored, hash) = sim.nodes[A].blob_store().unwrap().get("image.bin").unwrap();
    assert_eq!(hash, blob_hash(&data));
    assert!(stored == &data[..]);
    let get = sim.nodes[B].blob_get(&id(A), "image.bin", size).unwrap();
    match finish_transfer(&mut sim, B, get, limit) {
        Ok(Transferred::Get(g)) => assert!(g.data == data, "{mode:?}: got other bytes"),
        other => panic!("{mode:?}: get: {other:?}"),
    }
    // node-c may not use the store: refused before any byte.
    let put = sim.nodes[C].blob_put(&id(A), "x", vec![1; 1000]).unwrap();
    assert_eq!(
        finish_transfer(&mut sim, C, put, limit).unwrap_err(),
        BlobError::Denied
    );
    assert!(sim.nodes[A].blob_store().unwrap().get("x").is_none());
    took
}

#[test]
fn eight_mib_blob_round_trips_at_five_percent_loss_on_both_transports() {
    let lossy = WireConfig {
        loss: 0.05,
        reorder: 0.02,
        ..WireConfig::default()
    };
    for mode in [Mode::Tcp, Mode::UdpSec] {
        let took = blob_round_trip(mode, lossy.clone(), 8 << 20, 21);
        eprintln!("{mode:?}: 8 MiB put at 5% loss in {took} simulated");
    }
}

#[test]
fn an_upload_continues_after_its_session_is_killed() {
    for mode in [Mode::Tcp, Mode::UdpSec] {
        let mut sim = sim(mode, WireConfig::default(), 31);
        sim.nodes[A]
            .publish("blob", Access::only([&id(B)]).unwrap())
            .unwrap();
        meshed(&mut sim);
        let data = random(4 << 20, 31);
        let put = sim.nodes[B].blob_put(&id(A), "big", data.clone()).unwrap();
        let halfway = |s: &NodeSim| {
            s.nodes[B]
                .transfer_progress(put)
                .is_some_and(|p| p.done >= 1 << 20)
        };
        assert!(sim.run_until(Duration::from_secs(60), halfway), "{mode:?}");
        assert!(sim.nodes[A].disconnect(&id(B)));
        let r = finish_transfer(&mut sim, B, put, Duration::from_secs(120));
        match r {
            Ok(Transferred::Put(p)) => {
                assert_eq!(p.hash, blob_hash(&data));
                assert!(p.resumed_from > 0, "{mode:?}: started again from 0");
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        assert!(sim.saw(
            B,
            |e| matches!(e, NodeEvent::SessionDown { peer, .. } if *peer == id(A))
        ));
        let (stored, _) = sim.nodes[A].blob_store().unwrap().get("big").unwrap();
        assert!(stored == &data[..]);
    }
}

#[test]
fn a_download_waits_for_its_peer_and_fails_when_it_never_returns() {
    let mut sim = sim(Mode::Tcp, WireConfig::default(), 32);
    sim.nodes[A]
        .publish("blob", Access::AnyAuthenticated)
        .unwrap();
    sim.nodes[A]
        .blob_store_mut()
        .unwrap()
        .insert("f", random(2 << 20, 5), sim.now)
        .unwrap();
    meshed(&mut sim);
    let get = sim.nodes[B].blob_get(&id(A), "f", 4 << 20).unwrap();
    let started = |s: &NodeSim| {
        s.nodes[B]
            .transfer_progress(get)
            .is_some_and(|p| p.done > 256 * 1024)
    };
    assert!(sim.run_until(Duration::from_secs(30), started));
    // node-a goes away for good.
    sim.stopped[A] = true;
    let stop = sim.now;
    let r = finish_transfer(&mut sim, B, get, Duration::from_secs(120));
    assert_eq!(r.unwrap_err(), BlobError::ChannelClosed);
    let at = sim
        .first(B, |e| *e == NodeEvent::TransferDone(get))
        .unwrap();
    // Session loss (idle timeout) plus the resume window, not forever.
    assert!(at - stop <= Duration::from_secs(10) + dsb_app::node::RESUME_WINDOW);
    assert!(sim.saw(B, |e| *e == NodeEvent::PeerOffline(id(A))));
    assert!(sim.saw(C, |e| *e == NodeEvent::PeerOffline(id(A))));
}

#[test]
fn the_store_refuses_what_exceeds_its_caps() {
    let mut sim = NodeSim::bare(&IDS, WireConfig::default(), 41, |_, mut c: NodeConfig| {
        c.blob_store = StoreConfig {
            blob_cap: 64 * 1024,
            total_cap: 128 * 1024,
            max_blobs: 4,
            max_partials: 2,
        };
        c
    });
    sim.nodes[A]
        .publish("blob", Access::AnyAuthenticated)
        .unwrap();
    meshed(&mut sim);
    let limit = Duration::from_secs(30);
    let big = sim.nodes[B]
        .blob_put(&id(A), "big", vec![7; 65 * 1024])
        .unwrap();
    assert!(matches!(
        finish_transfer(&mut sim, B, big, limit),
        Err(BlobError::Remote {
            code: BlobCode::TooLarge,
            ..
        })
    ));
    for name in ["one", "two"] {
        let t = sim.nodes[B]
            .blob_put(&id(A), name, vec![1; 60 * 1024])
            .unwrap();
        assert!(finish_transfer(&mut sim, B, t, limit).is_ok(), "{name}");
    }
    let full = sim.nodes[C]
        .blob_put(&id(A), "three", vec![2; 60 * 1024])
        .unwrap();
    assert!(matches!(
        finish_transfer(&mut sim, C, full, limit),
        Err(BlobError::Remote {
            code: BlobCode::StoreFull,
            ..
        })
    ));
    let store = sim.nodes[A].blob_store().unwrap();
    assert!(store.used() <= 128 * 1024);
    assert_eq!(store.len(), 2);
    // A download over the caller's cap is refused before any byte is kept.
    let get = sim.nodes[C].blob_get(&id(A), "one", 1024).unwrap();
    assert_eq!(
        finish_transfer(&mut sim, C, get, limit).unwrap_err(),
        BlobError::TooLarge
    );
}

#[test]
fn requests_are_capped_and_need_a_session() {
    let mut sim = sim(Mode::Tcp, WireConfig::default(), 51);
    meshed(&mut sim);
    let t = Duration::from_secs(1);
    let nobody = DeviceId::new("node-z").unwrap();
    assert_eq!(
        sim.nodes[B].call(&nobody, "sd", b"", t),
        Err(ApiError::NoSession)
    );
    assert_eq!(
        sim.nodes[B].call(&id(A), "bad name", b"", t),
        Err(ApiError::InvalidName)
    );
    assert_eq!(
        sim.nodes[B]
            .blob_put(&id(A), "bad/name", vec![])
            .unwrap_err(),
        ApiError::InvalidName
    );
    // Uncollected results count against the cap until taken.
    let mut made = Vec::new();
    loop {
        match sim.nodes[B].call(&id(A), "sd", b"", t) {
            Ok(c) => made.push(c),
            Err(e) => {
                assert_eq!(e, ApiError::Busy);
                break;
            }
        }
        assert!(made.len() <= dsb_app::node::MAX_CALLS);
        // Let each batch of 16 (one channel's worth) fail and settle.
        if made.len() % 16 == 0 {
            let last = *made.last().unwrap();
            sim.run_until(Duration::from_secs(3), |s| call_done(s, B, last));
        }
    }
    assert_eq!(made.len(), dsb_app::node::MAX_CALLS);
    sim.run_until(Duration::from_secs(3), |s| {
        made.iter().all(|c| call_done(s, B, *c))
    });
    for c in &made {
        // `sd` is not published on node-a.
        assert_eq!(
            sim.nodes[B].take_call(*c),
            Some(Err(RpcError::UnknownService))
        );
    }
    assert!(sim.nodes[B].call(&id(A), "sd", b"", t).is_ok());
    for k in 0..dsb_app::node::MAX_TRANSFERS {
        sim.nodes[B]
            .blob_get(&id(A), &format!("n{k}"), 1024)
            .unwrap();
    }
    assert_eq!(
        sim.nodes[B].blob_get(&id(A), "one-more", 1024).unwrap_err(),
        ApiError::Busy
    );
}

/// The image's `services` scenario, on the simulated wire: the same
/// application code (`selftest::checks`) the QEMU scenario runs.
#[test]
fn the_services_scenario_passes_on_the_simulated_wire() {
    use dsb_app::selftest::checks::{Plan, Role};
    use dsb_app::selftest::TestEvent;
    for mode in [Mode::Tcp, Mode::UdpSec] {
        let mut sim = NodeSim::with(&IDS, WireConfig::default(), 61, |i, mut c: NodeConfig| {
            c.transport = mode;
            c.udpsec_port = (mode != Mode::Tcp).then_some(37031 + i as u16);
            c
        });
        sim.set_selftest(|i, t| {
            let role = match i {
                A => Role::Server { client: id(B) },
                B => Role::Putter {
                    server: id(A),
                    bytes: 1 << 20,
                },
                _ => Role::Intruder { server: id(A) },
            };
            let mut peers = [None; 2];
            for (slot, j) in peers.iter_mut().zip((0..3).filter(|j| *j != i)) {
                *slot = Some(id(j));
            }
            t.plan = Some(Plan { role, peers });
        });
        let done = |s: &NodeSim| {
            (0..3).all(|i| s.saw_test(i, |e| matches!(e, TestEvent::RpcOk { peers: 2 })))
                && s.saw_test(
                    B,
                    |e| matches!(e, TestEvent::BlobOk { bytes } if *bytes == 1 << 20),
                )
                && s.saw_test(C, |e| matches!(e, TestEvent::AccessDeniedOk { .. }))
        };
        assert!(
            sim.run_until(Duration::from_secs(30), done),
            "{mode:?}: {:#?}",
            sim.tlog
        );
        assert!(!sim.saw_test(B, |e| matches!(e, TestEvent::CheckFailed { .. })));
        assert!(sim.saw(A, |e| matches!(e,
            NodeEvent::ChannelDenied { peer, service } if *peer == id(C) && service.as_str() == "blob")));
        assert!(!sim.saw(A, |e| matches!(e,
            NodeEvent::BlobServed { peer, .. } if *peer == id(C))));
    }
}
