//! The blob data plane over an in-memory pipe: byte-exact put/get, resume
//! on a new channel, hash checks at both ends, caps, backpressure.

use dsb_app::bus::blob::{
    blob_hash, BlobCode, BlobError, BlobEvent, BlobGet, BlobPut, BlobRequest, BlobResponse,
    BlobServer, BlobStore, GetDone, PutDone, ServerEnd, StoreConfig, BLOB_DRAIN_MAX,
    BLOB_IDLE_TIMEOUT, BLOB_MSG_CAP,
};
use dsb_app::bus::channel::{ChannelIo, End, Pipe, PIPE_CAP};
use dsb_app::bus::codec::{reset_code, MsgReader, MsgWriter, LEN_PREFIX};
use smoltcp::time::{Duration, Instant};

const C: End = End::A;
const S: End = End::B;
const MIB: usize = 1024 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 32) as u8
                ^ seed
        })
        .collect()
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms as i64)
}

/// One blob channel: a pipe and the server on its far end.
struct Chan {
    pipe: Pipe,
    server: BlobServer,
    events: Vec<BlobEvent>,
    now: Instant,
}

impl Chan {
    fn new(cap: usize) -> Chan {
        Chan {
            pipe: Pipe::new(cap),
            server: BlobServer::new(t(0)),
            events: Vec::new(),
            now: t(0),
        }
    }

    fn serve(&mut self, store: &mut BlobStore) {
        while let Some(e) = self.server.poll(self.now, &mut self.pipe.end(S), store) {
            self.events.push(e);
        }
        let cfg = store.config();
        assert!(
            store.used() <= cfg.total_cap,
            "used {} over the total cap",
            store.used()
        );
        assert!(store.allocated() as u64 <= store.used());
        assert!(self.server.buffered() <= BLOB_MSG_CAP + LEN_PREFIX);
    }

    fn put(&mut self, put: &mut BlobPut, store: &mut BlobStore) -> Result<PutDone, BlobError> {
        for _ in 0..1_000_000 {
            self.now += Duration::from_millis(1);
            if let Some(r) = put.poll(self.now, &mut self.pipe.end(C)) {
                // Let the server see what followed (FIN, reset).
                for _ in 0..3 {
                    self.serve(store);
                }
                return r;
            }
            self.serve(store);
        }
        panic!("put did not finish");
    }

    fn get(&mut self, get: &mut BlobGet, store: &mut BlobStore) -> Result<GetDone, BlobError> {
        for _ in 0..1_000_000 {
            self.now += Duration::from_millis(1);
            if let Some(r) = get.poll(self.now, &mut self.pipe.end(C)) {
                self.serve(store);
                return r;
            }
            self.serve(store);
        }
        panic!("get did not finish");
    }
}

fn put_new(
    store: &mut BlobStore,
    name: &str,
    data: Vec<u8>,
    cap: usize,
) -> (Result<PutDone, BlobError>, Chan) {
    let mut ch = Chan::new(cap);
    let mut put = BlobPut::new(name, data).unwrap();
    let r = ch.put(&mut put, store);
    (r, ch)
}

fn get_new(store: &mut BlobStore, name: &str, cap: usize) -> Result<GetDone, BlobError> {
    let mut ch = Chan::new(PIPE_CAP);
    let mut get = BlobGet::new(name, cap).unwrap();
    ch.get(&mut get, store)
}

#[test]
fn put_then_get_is_byte_exact_for_0_1_1mib_and_8mib() {
    let mut store = BlobStore::default();
    for (i, len) in [0, 1, MIB, 8 * MIB].into_iter().enumerate() {
        let name = format!("blob-{len}");
        let data = pattern(len, i as u8);
        let (r, ch) = put_new(&mut store, &name, data.clone(), PIPE_CAP);
        let done = r.unwrap();
        assert_eq!(done.size, len as u64);
        assert_eq!(done.hash, blob_hash(&data));
        assert_eq!(done.resumed_from, 0);
        assert_eq!(ch.server.end(), Some(ServerEnd::Finished), "size {len}");
        assert!(ch.events.contains(&BlobEvent::Stored {
            name: name.clone(),
            size: len as u64
        }));
        let got = get_new(&mut store, &name, 16 * MIB).unwrap();
        assert_eq!(got.data.len(), len);
        assert!(got.data == data, "size {len}: content differs");
        assert_eq!(got.hash, blob_hash(&data));
    }
    assert_eq!(store.len(), 4);
    assert_eq!(store.used(), (9 * MIB + 1) as u64);
}

#[test]
fn a_tiny_pipe_moves_a_blob_both_ways_without_growing_anything() {
    let mut store = BlobStore::default();
    let data = pattern(20_000, 3);
    for cap in [1, 7] {
        let (r, _) = put_new(&mut store, "tiny", data.clone(), cap);
        r.unwrap();
        let mut ch = Chan::new(cap);
        let mut get = BlobGet::new("tiny", MIB).unwrap();
        assert_eq!(ch.get(&mut get, &mut store).unwrap().data, data);
    }
}

#[test]
fn an_upload_cut_mid_way_resumes_on_a_new_channel_from_what_the_server_kept() {
    let mut store = BlobStore::default();
    let data = pattern(MIB, 9);
    let mut ch = Chan::new(16 * 1024);
    let mut put = BlobPut::new("resume.bin", data.clone()).unwrap();
    while put.progress().0 < 300_000 {
        ch.now += Duration::from_millis(1);
        assert!(put.poll(ch.now, &mut ch.pipe.end(C)).is_none());
        ch.serve(&mut store);
    }
    // The session dies: the channel is reset under both ends.
    ch.pipe.end(C).reset(0);
    ch.serve(&mut store);
    let have = match ch.events.last() {
        Some(BlobEvent::Interrupted { name, have }) if name == "resume.bin" => *have,
        other => panic!("expected an interruption, got {other:?}"),
    };
    assert!(have >= 250_000 && have < MIB as u64, "have {have}");
    let stat = store.stat("resume.bin").unwrap();
    assert_eq!(
        (stat.size, stat.have, stat.hash),
        (MIB as u64, have, blob_hash(&data))
    );
    assert!(store.get("resume.bin").is_none(), "a partial is not a blob");

    // A new channel: Stat, then Put from `have`.
    let data = put.into_data();
    let mut ch2 = Chan::new(16 * 1024);
    let mut put2 = BlobPut::new("resume.bin", data.clone()).unwrap();
    let done = ch2.put(&mut put2, &mut store).unwrap();
    assert_eq!(done.resumed_from, have);
    assert_eq!(done.hash, blob_hash(&data));
    let (stored, hash) = store.get("resume.bin").unwrap();
    assert!(stored == data.as_slice());
    assert_eq!(hash, blob_hash(&data));
    assert_eq!(store.partials(), 0);

    // Putting it once more sends nothing.
    let (r, _) = put_new(&mut store, "resume.bin", data, PIPE_CAP);
    assert_eq!(r.unwrap().resumed_from, MIB as u64);
}

#[test]
fn a_download_cut_mid_way_resumes_and_is_still_verified_whole() {
    let mut store = BlobStore::default();
    let data = pattern(MIB, 5);
    store.insert("dl", data.clone(), t(0)).unwrap();
    let mut ch = Chan::new(8 * 1024);
    let mut get = BlobGet::new("dl", 2 * MIB).unwrap();
    while get.received() < 400_000 {
        ch.now += Duration::from_millis(1);
        assert!(get.poll(ch.now, &mut ch.pipe.end(C)).is_none());
        ch.serve(&mut store);
    }
    ch.pipe.end(S).reset(0);
    assert_eq!(
        get.poll(ch.now, &mut ch.pipe.end(C)),
        Some(Err(BlobError::ChannelClosed))
    );
    let resume = get.into_resume();
    let from = resume.data.len() as u64;
    let mut ch2 = Chan::new(8 * 1024);
    let mut get2 = BlobGet::resume(resume, 2 * MIB).unwrap();
    let done = ch2.get(&mut get2, &mut store).unwrap();
    assert_eq!(done.resumed_from, from);
    assert!(done.data == data);
}

/// Sends a raw Put header (any hash) and `body`, then FIN; returns the answer.
fn raw_put(store: &mut BlobStore, req: &BlobRequest, body: &[u8]) -> (BlobResponse, Chan) {
    let mut ch = Chan::new(PIPE_CAP);
    let mut w = MsgWriter::new(BLOB_MSG_CAP);
    w.send(req).unwrap();
    assert!(w.flush(&mut ch.pipe.end(C)).unwrap());
    assert_eq!(ch.pipe.end(C).write(body), Ok(body.len()));
    ch.pipe.end(C).finish().unwrap();
    let mut r = MsgReader::new(BLOB_MSG_CAP);
    for _ in 0..100 {
        ch.serve(store);
        if let Some(frame) = r.poll(&mut ch.pipe.end(C)).unwrap() {
            ch.serve(store);
            return (BlobResponse::decode(&frame).unwrap(), ch);
        }
    }
    panic!("no answer");
}

fn err_code(r: &BlobResponse) -> BlobCode {
    match r {
        BlobResponse::Err { code, .. } => BlobCode::from_code(*code),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[test]
fn a_put_whose_bytes_do_not_match_its_hash_is_refused_and_nothing_is_kept() {
    let mut store = BlobStore::default();
    let data = pattern(10_000, 1);
    let mut wrong = blob_hash(&data);
    wrong[0] ^= 1;
    let req = BlobRequest::Put {
        name: "x".into(),
        size: 10_000,
        hash: wrong,
        offset: 0,
    };
    let (resp, ch) = raw_put(&mut store, &req, &data);
    assert_eq!(err_code(&resp), BlobCode::BadHash);
    assert!(store.stat("x").is_none());
    assert_eq!(store.used(), 0);
    assert_eq!(store.stats().bad_hash, 1);
    assert_eq!(
        ch.events,
        vec![BlobEvent::Refused {
            code: BlobCode::BadHash
        }]
    );
    assert_eq!(ch.server.end(), Some(ServerEnd::Finished));
}

#[test]
fn a_get_that_does_not_match_its_hash_is_not_reported_as_success() {
    // A lying server: announces one hash, sends other bytes.
    let mut p = Pipe::new(PIPE_CAP);
    let mut get = BlobGet::new("lie", MIB).unwrap();
    assert!(get.poll(t(0), &mut p.end(C)).is_none());
    let mut w = MsgWriter::new(BLOB_MSG_CAP);
    w.send(&BlobResponse::Data {
        size: 4,
        hash: blob_hash(b"true"),
    })
    .unwrap();
    w.flush(&mut p.end(S)).unwrap();
    p.end(S).write(b"fake").unwrap();
    assert_eq!(get.poll(t(1), &mut p.end(C)), Some(Err(BlobError::BadHash)));
    assert!(get.into_resume().data.is_empty());
}

#[test]
fn bad_offsets_names_and_early_ends_are_refused_with_their_codes() {
    let mut store = BlobStore::default();
    let data = pattern(1000, 2);
    let hash = blob_hash(&data);
    // Resume of nothing.
    let req = BlobRequest::Put {
        name: "a".into(),
        size: 1000,
        hash,
        offset: 10,
    };
    assert_eq!(
        err_code(&raw_put(&mut store, &req, &[]).0),
        BlobCode::BadOffset
    );
    // Offset past the size.
    let req = BlobRequest::Put {
        name: "a".into(),
        size: 1000,
        hash,
        offset: 1001,
    };
    assert_eq!(
        err_code(&raw_put(&mut store, &req, &[]).0),
        BlobCode::BadOffset
    );
    // Bad names.
    for name in ["", "a/b", "sp ace", &"n".repeat(65)] {
        let req = BlobRequest::Put {
            name: name.into(),
            size: 1,
            hash,
            offset: 0,
        };
        assert_eq!(
            err_code(&raw_put(&mut store, &req, &[1]).0),
            BlobCode::BadName,
            "{name:?}"
        );
    }
    assert_eq!(BlobPut::new("a/b", vec![]).unwrap_err(), BlobError::BadName);
    assert_eq!(BlobGet::new("", 1).unwrap_err(), BlobError::BadName);
    // FIN before the end: incomplete, and the part is kept for resume.
    let req = BlobRequest::Put {
        name: "a".into(),
        size: 1000,
        hash,
        offset: 0,
    };
    let (resp, ch) = raw_put(&mut store, &req, &data[..600]);
    assert_eq!(err_code(&resp), BlobCode::Incomplete);
    assert!(ch.events.contains(&BlobEvent::Interrupted {
        name: "a".into(),
        have: 600
    }));
    assert_eq!(store.stat("a").unwrap().have, 600);
    // Resume at the wrong place, then at the right one.
    let req = BlobRequest::Put {
        name: "a".into(),
        size: 1000,
        hash,
        offset: 500,
    };
    assert_eq!(
        err_code(&raw_put(&mut store, &req, &data[500..]).0),
        BlobCode::BadOffset
    );
    let req = BlobRequest::Put {
        name: "a".into(),
        size: 1000,
        hash,
        offset: 600,
    };
    assert_eq!(
        raw_put(&mut store, &req, &data[600..]).0,
        BlobResponse::Stored { size: 1000, hash }
    );
    // Gets: unknown name, offset past the end.
    assert!(matches!(
        get_new(&mut store, "nope", MIB),
        Err(BlobError::Remote {
            code: BlobCode::NotFound,
            ..
        })
    ));
    let mut ch = Chan::new(PIPE_CAP);
    let mut get = BlobGet::resume(
        dsb_app::bus::blob::GetResume {
            name: "a".into(),
            data: vec![0; 1001],
            expect: None,
        },
        MIB,
    )
    .unwrap();
    assert!(matches!(
        ch.get(&mut get, &mut store),
        Err(BlobError::Remote {
            code: BlobCode::BadOffset,
            ..
        })
    ));
}

#[test]
fn a_put_over_the_per_blob_cap_is_refused_before_its_data_moves() {
    let cfg = StoreConfig {
        blob_cap: 64 * 1024,
        ..StoreConfig::default()
    };
    let mut store = BlobStore::new(cfg);
    let mut ch = Chan::new(4096);
    let mut put = BlobPut::new("big", pattern(4 * MIB, 1)).unwrap();
    let r = ch.put(&mut put, &mut store);
    assert!(
        matches!(
            r,
            Err(BlobError::Remote {
                code: BlobCode::TooLarge,
                ..
            })
        ),
        "{r:?}"
    );
    // At most what the pipe held when the refusal arrived, never the blob.
    assert!(put.progress().0 <= 2 * 4096, "sent {}", put.progress().0);
    assert_eq!(store.used(), 0);
    assert_eq!(store.partials(), 0);
    assert_eq!(
        ch.events,
        vec![BlobEvent::Refused {
            code: BlobCode::TooLarge
        }]
    );
    assert_eq!(ch.pipe.reset_seen_by(S), Some(reset_code::ABORTED));
    assert_eq!(ch.server.end(), Some(ServerEnd::Closed));
}

#[test]
fn a_refused_put_from_a_client_that_keeps_sending_is_stopped_by_flow_control() {
    let cfg = StoreConfig {
        blob_cap: 1000,
        ..StoreConfig::default()
    };
    let mut store = BlobStore::new(cfg);
    let req = BlobRequest::Put {
        name: "b".into(),
        size: 10 * MIB as u64,
        hash: [0; 32],
        offset: 0,
    };
    let mut ch = Chan::new(4096);
    let mut w = MsgWriter::new(BLOB_MSG_CAP);
    w.send(&req).unwrap();
    w.flush(&mut ch.pipe.end(C)).unwrap();
    let mut pushed = 0usize;
    for _ in 0..10_000 {
        pushed += ch.pipe.end(C).write(&[0; 4096]).unwrap_or(0);
        ch.serve(&mut store);
    }
    assert!(
        pushed as u64 <= BLOB_DRAIN_MAX + 2 * 4096,
        "pushed {pushed}"
    );
    assert_eq!(store.used(), 0);
}

#[test]
fn the_total_cap_drops_the_oldest_partial_first_and_never_evicts_blobs() {
    let cfg = StoreConfig {
        blob_cap: 2000,
        total_cap: 4000,
        ..StoreConfig::default()
    };
    let mut store = BlobStore::new(cfg);
    let (r, _) = put_new(&mut store, "a", pattern(2000, 1), PIPE_CAP);
    r.unwrap();
    // A partial of 1500 (interrupted at 500) reserves its whole size.
    let c = pattern(1500, 2);
    let req = BlobRequest::Put {
        name: "c".into(),
        size: 1500,
        hash: blob_hash(&c),
        offset: 0,
    };
    raw_put(&mut store, &req, &c[..500]);
    assert_eq!(store.used(), 3500);
    // 1000 more does not fit: the partial goes, the blob stays.
    let (r, _) = put_new(&mut store, "d", pattern(1000, 3), PIPE_CAP);
    r.unwrap();
    assert_eq!(store.used(), 3000);
    assert!(store.stat("c").is_none());
    assert_eq!(store.stats().evicted_partials, 1);
    // 1500 more cannot fit even with no partials: store-full.
    let (r, _) = put_new(&mut store, "e", pattern(1500, 4), PIPE_CAP);
    assert!(
        matches!(
            r,
            Err(BlobError::Remote {
                code: BlobCode::StoreFull,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(store.used(), 3000);
    assert!(store.get("a").is_some() && store.get("d").is_some());
}

#[test]
fn the_partial_table_is_bounded_and_the_least_recently_used_goes_first() {
    let cfg = StoreConfig {
        max_partials: 2,
        ..StoreConfig::default()
    };
    let mut store = BlobStore::new(cfg);
    for (i, name) in ["p1", "p2", "p3"].into_iter().enumerate() {
        let d = pattern(100, i as u8);
        let req = BlobRequest::Put {
            name: name.into(),
            size: 100,
            hash: blob_hash(&d),
            offset: 0,
        };
        raw_put(&mut store, &req, &d[..10]);
    }
    assert_eq!(store.partials(), 2);
    assert!(store.stat("p1").is_none());
    assert!(store.stat("p2").is_some() && store.stat("p3").is_some());
    assert_eq!(store.used(), 200);
}

#[test]
fn a_get_over_the_callers_cap_buffers_nothing() {
    let mut store = BlobStore::default();
    store.insert("big", pattern(100_000, 1), t(0)).unwrap();
    assert_eq!(get_new(&mut store, "big", 99_999), Err(BlobError::TooLarge));
    assert_eq!(
        get_new(&mut store, "big", 100_000).unwrap().data.len(),
        100_000
    );
}

#[test]
fn a_stalled_transfer_is_reset_after_the_idle_timeout() {
    let mut store = BlobStore::default();
    let mut ch = Chan::new(PIPE_CAP);
    let mut put = BlobPut::new("slow", pattern(10, 1)).unwrap();
    // The client never shows up after its Stat; the server gives up.
    assert!(put.poll(t(0), &mut ch.pipe.end(C)).is_none());
    ch.serve(&mut store);
    assert_eq!(ch.server.poll_at(), Some(t(0) + BLOB_IDLE_TIMEOUT));
    ch.now = t(0) + BLOB_IDLE_TIMEOUT;
    ch.serve(&mut store);
    assert_eq!(ch.server.end(), Some(ServerEnd::Reset(reset_code::TIMEOUT)));
    // And the client, with no answer for as long, too.
    let mut p = Pipe::new(PIPE_CAP);
    let mut get = BlobGet::new("x", 10).unwrap();
    assert!(get.poll(t(0), &mut p.end(C)).is_none());
    assert_eq!(
        get.poll(t(0) + BLOB_IDLE_TIMEOUT, &mut p.end(C)),
        Some(Err(BlobError::Timeout))
    );
}

#[test]
fn stat_reports_complete_partial_and_missing_blobs() {
    let mut store = BlobStore::default();
    let data = pattern(300, 1);
    let hash = store.insert("s", data, t(0)).unwrap();
    let mut ch = Chan::new(PIPE_CAP);
    let mut w = MsgWriter::new(BLOB_MSG_CAP);
    let mut r = MsgReader::new(BLOB_MSG_CAP);
    let mut ask = |name: &str, ch: &mut Chan, store: &mut BlobStore| {
        w.send(&BlobRequest::Stat { name: name.into() }).unwrap();
        w.flush(&mut ch.pipe.end(C)).unwrap();
        ch.serve(store);
        BlobResponse::decode(&r.poll(&mut ch.pipe.end(C)).unwrap().unwrap()).unwrap()
    };
    assert_eq!(
        ask("s", &mut ch, &mut store),
        BlobResponse::Stat {
            size: 300,
            have: 300,
            hash
        }
    );
    assert_eq!(
        err_code(&ask("missing", &mut ch, &mut store)),
        BlobCode::NotFound
    );
    assert_eq!(
        err_code(&ask("bad/name", &mut ch, &mut store)),
        BlobCode::BadName
    );
    // Several Stats on one channel, then the client finishes: a clean end.
    ch.pipe.end(C).finish().unwrap();
    ch.serve(&mut store);
    assert_eq!(ch.server.end(), Some(ServerEnd::Finished));
}
