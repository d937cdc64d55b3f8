//! Fuzz the blob store's server end against a hostile client: the input is
//! what the client writes (chunks, FIN, RESET as in `rpc_peer`), after an
//! optional valid `Put` header so the fuzzer reaches uploads at once. Never
//! panics; the store never holds more than its caps; the server's own
//! buffers stay bounded.
#![no_main]

use dsb_app::bus::blob::{blob_hash, BlobRequest, BlobServer, BlobStore, StoreConfig, BLOB_MSG_CAP};
use dsb_app::bus::channel::{ChannelIo, End, Pipe};
use dsb_app::bus::codec::MsgWriter;
use libfuzzer_sys::fuzz_target;
use smoltcp::time::{Duration, Instant};

const CFG: StoreConfig = StoreConfig {
    blob_cap: 4096,
    total_cap: 8192,
    max_blobs: 4,
    max_partials: 2,
};

fuzz_target!(|data: &[u8]| {
    let mut store = BlobStore::new(CFG);
    let _ = store.insert("have", vec![1; 100], Instant::from_millis(0));
    let mut now = Instant::from_millis(0);
    let mut rest = data;
    // Several channels in a row share the store.
    for _round in 0..3 {
        let mut server = BlobServer::new(now);
        let mut pipe = Pipe::new(16 * 1024);
        if let Some((&first, tail)) = rest.split_first() {
            rest = tail;
            if first & 1 == 1 {
                // A well-formed Put header, then the fuzzer's bytes as data.
                let size = u64::from(first) * 20;
                let body = vec![first; size as usize];
                let put = BlobRequest::Put {
                    name: format!("b{}", first % 5),
                    size,
                    hash: blob_hash(&body),
                    offset: 0,
                };
                let mut w = MsgWriter::new(BLOB_MSG_CAP);
                let _ = w.send(&put);
                let _ = w.flush(&mut pipe.end(End::A));
            }
        }
        while let Some((&len, tail)) = rest.split_first() {
            let n = usize::from(len & 0x3f).min(tail.len());
            let (chunk, tail) = tail.split_at(n);
            rest = tail;
            let _ = pipe.end(End::A).write(chunk);
            let end = len >> 6;
            if end == 1 {
                let _ = pipe.end(End::A).finish();
            } else if end == 2 {
                pipe.end(End::A).reset(9);
            }
            now += Duration::from_millis(10);
            while server.poll(now, &mut pipe.end(End::B), &mut store).is_some() {}
            assert!(store.used() <= CFG.total_cap, "store used {}", store.used());
            assert!(store.len() <= CFG.max_blobs && store.partials() <= CFG.max_partials);
            assert!(server.buffered() <= 2 * BLOB_MSG_CAP + 16 * 1024);
            let mut sink = [0u8; 4096];
            while matches!(pipe.end(End::A).read(&mut sink), Ok(n) if n > 0) {}
            if server.is_done() || end == 3 {
                break;
            }
        }
    }
});
