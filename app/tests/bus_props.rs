//! Whatever a peer sends, the service layer never panics and never holds
//! more than its caps: arbitrary bytes (and arbitrary mixes of valid and
//! broken frames) into the frame reader, both RPC ends, the blob server and
//! both blob clients, through pipes of arbitrary capacity.

use dsb_app::bus::blob::{
    BlobGet, BlobPut, BlobRequest, BlobResponse, BlobServer, BlobStore, StoreConfig, BLOB_MSG_CAP,
};
use dsb_app::bus::channel::{ChannelIo, End, Pipe};
use dsb_app::bus::codec::{encode, MsgReader, Read, LEN_PREFIX};
use dsb_app::bus::rpc::{RpcClient, RpcConfig, RpcRequest, RpcResult, RpcServer};
use proptest::prelude::*;
use smoltcp::time::{Duration, Instant};

/// A piece of what the peer sends: raw bytes or one well-formed frame.
#[derive(Debug, Clone)]
enum Piece {
    Raw(Vec<u8>),
    Frame(Vec<u8>),
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn bytes_of(pieces: &[Piece]) -> Vec<u8> {
    pieces
        .iter()
        .flat_map(|p| match p {
            Piece::Raw(b) => b.clone(),
            Piece::Frame(b) => frame(b),
        })
        .collect()
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("bad/name".to_string()),
        "[a-z]{1,3}",
    ]
}

fn blob_request() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (name(), 0u64..3000, any::<[u8; 32]>(), 0u64..3000).prop_map(
            |(name, size, hash, offset)| {
                encode(&BlobRequest::Put {
                    name,
                    size,
                    hash,
                    offset,
                })
                .unwrap()
            }
        ),
        (name(), 0u64..3000)
            .prop_map(|(name, offset)| encode(&BlobRequest::Get { name, offset }).unwrap()),
        name().prop_map(|name| encode(&BlobRequest::Stat { name }).unwrap()),
    ]
}

fn blob_response() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u64..5000, any::<[u8; 32]>()).prop_map(|(size, hash)| encode(&BlobResponse::Data {
            size,
            hash
        })
        .unwrap()),
        (0u64..5000, any::<[u8; 32]>()).prop_map(|(size, hash)| encode(&BlobResponse::Stored {
            size,
            hash
        })
        .unwrap()),
        (0u64..5000, 0u64..5000, any::<[u8; 32]>())
            .prop_map(
                |(size, have, hash)| encode(&BlobResponse::Stat { size, have, hash }).unwrap()
            ),
        (0u16..10, ".{0,70}").prop_map(|(code, message)| encode(&BlobResponse::Err {
            code,
            message
        })
        .unwrap()),
    ]
}

fn rpc_request() -> impl Strategy<Value = Vec<u8>> {
    (0u32..6, prop::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(id, body)| encode(&RpcRequest { id, body }).unwrap())
}

fn pieces(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200).prop_map(Piece::Raw),
            valid.prop_map(Piece::Frame),
        ],
        0..12,
    )
}

/// Feeds `input` into end B of a pipe from end A, in the pipe's capacity,
/// calling `step` after each write, then finishes (or resets) the stream.
fn feed(input: &[u8], cap: usize, reset_at_end: bool, mut step: impl FnMut(&mut Pipe, u64)) {
    let mut p = Pipe::new(cap);
    let mut at = 0;
    let mut round = 0u64;
    while at < input.len() && round < 20_000 {
        at += p.end(End::A).write(&input[at..]).unwrap_or(0);
        // Drain whatever the service writes back so it never blocks on us.
        let mut sink = [0u8; 4096];
        while let Ok(n) = p.end(End::A).read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        step(&mut p, round);
        round += 1;
    }
    if reset_at_end {
        p.end(End::A).reset(1);
    } else {
        let _ = p.end(End::A).finish();
    }
    for _ in 0..4 {
        step(&mut p, round);
        round += 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_frame_reader_never_exceeds_its_cap(
        input in pieces(prop::collection::vec(any::<u8>(), 1..100)),
        cap in 1usize..128,
        pipe in 1usize..64,
        skip: bool,
    ) {
        let bytes = bytes_of(&input);
        let mut r = MsgReader::new(cap);
        let mut failed = false;
        feed(&bytes, pipe, false, |p, _| {
            while !failed {
                let got = if skip {
                    r.poll_or_skip(&mut p.end(End::B))
                } else {
                    r.poll(&mut p.end(End::B)).map(|m| m.map(Read::Msg))
                };
                match got {
                    Ok(Some(Read::Msg(m))) => assert!((1..=cap).contains(&m.len())),
                    Ok(Some(Read::Skipped { len, .. })) => assert!(len as usize > cap),
                    Ok(None) => break,
                    Err(_) => failed = true,
                }
                assert!(r.buffered() <= cap + LEN_PREFIX);
                assert!(r.allocated() <= cap);
            }
        });
    }

    #[test]
    fn the_rpc_server_never_exceeds_its_caps(
        input in pieces(rpc_request()),
        pipe in 1usize..512,
        reset: bool,
        msg_cap in 16usize..512,
        max_queued in 1usize..6,
    ) {
        let bytes = bytes_of(&input);
        let cfg = RpcConfig { msg_cap, max_queued, ..RpcConfig::default() };
        let mut s = RpcServer::new(cfg);
        let bound = (max_queued + 2) * (msg_cap + LEN_PREFIX);
        feed(&bytes, pipe, reset, |p, round| {
            while let Some(inc) = s.poll(&mut p.end(End::B)) {
                assert!(inc.body.len() <= msg_cap);
                // Answer every other request at once; the rest wait a round.
                if round % 2 == 0 {
                    let _ = s.respond(inc.id, RpcResult::Ok(inc.body));
                }
                assert!(s.unanswered() <= max_queued);
            }
            assert!(s.buffered() <= bound, "{} > {bound}", s.buffered());
        });
    }

    #[test]
    fn the_rpc_client_survives_any_answer(
        input in pieces(prop::collection::vec(any::<u8>(), 1..64)),
        pipe in 1usize..256,
        calls in 0usize..6,
    ) {
        let bytes = bytes_of(&input);
        let mut c = RpcClient::new(RpcConfig { msg_cap: 256, max_in_flight: 4, ..RpcConfig::default() });
        let t0 = Instant::from_millis(0);
        for i in 0..calls {
            let _ = c.call(vec![i as u8; i * 10], t0, t0 + Duration::from_millis(50));
        }
        feed(&bytes, pipe, false, |p, round| {
            let now = t0 + Duration::from_millis(round);
            while c.poll(now, &mut p.end(End::B)).is_some() {}
            assert!(c.in_flight() <= 4);
            assert!(c.buffered() <= 6 * (256 + LEN_PREFIX));
        });
    }

    #[test]
    fn the_blob_server_never_exceeds_the_store_caps(
        input in pieces(blob_request()),
        pipe in 1usize..4096,
        reset: bool,
        blob_cap in 1u64..3000,
        total_cap in 1u64..6000,
        max_partials in 1usize..4,
    ) {
        let bytes = bytes_of(&input);
        let cfg = StoreConfig { blob_cap, total_cap, max_blobs: 3, max_partials };
        let mut store = BlobStore::new(cfg);
        store.insert("a", vec![7; 100.min(blob_cap as usize)], Instant::from_millis(0)).ok();
        let mut s = BlobServer::new(Instant::from_millis(0));
        feed(&bytes, pipe, reset, |p, round| {
            let now = Instant::from_millis(round as i64);
            while s.poll(now, &mut p.end(End::B), &mut store).is_some() {}
            let c = store.config();
            assert!(store.used() <= c.total_cap);
            assert!(store.allocated() as u64 <= store.used());
            assert!(store.len() <= 3 && store.partials() <= max_partials);
            assert!(s.buffered() <= BLOB_MSG_CAP + LEN_PREFIX);
        });
    }

    #[test]
    fn the_blob_clients_survive_any_answer(
        input in pieces(blob_response()),
        pipe in 1usize..4096,
        cap in 0usize..4000,
        get: bool,
    ) {
        let bytes = bytes_of(&input);
        let mut put = BlobPut::new("a", vec![1; 1000]).unwrap();
        let mut dl = BlobGet::new("a", cap).unwrap();
        let mut done = false;
        feed(&bytes, pipe, false, |p, round| {
            let now = Instant::from_millis(round as i64);
            if done {
                return;
            }
            let r = if get {
                dl.poll(now, &mut p.end(End::B)).map(|r| r.map(|d| d.data.len()))
            } else {
                put.poll(now, &mut p.end(End::B)).map(|r| r.map(|d| d.size as usize))
            };
            if let Some(r) = r {
                done = true;
                if let Ok(len) = r {
                    assert!(len <= cap.max(1000));
                }
            }
            assert!(dl.received() as usize <= cap);
        });
    }
}
