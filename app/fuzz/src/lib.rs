//! The `app` fuzz harnesses, one `run_<target>` per target in
//! `fuzz_targets/` (each a thin wrapper), so the ordinary tests can compile
//! them and replay the committed seeds (`app/tests/fuzz_seeds.rs`).

use dsb_app::bus::blob::{
    blob_hash, BlobRequest, BlobServer, BlobStore, StoreConfig, BLOB_MSG_CAP,
};
use dsb_app::bus::channel::{ChannelIo, End, Pipe};
use dsb_app::bus::codec::MsgWriter;
use dsb_app::bus::rpc::{RpcClient, RpcConfig, RpcResult, RpcServer, RPC_MSG_CAP};
use dsb_app::config::{Config, MAX_CMDLINE_LEN, MAX_NODES};
use smoltcp::time::{Duration, Instant};

/// Fuzz the kernel command-line parser (`Config::parse`): never panics; a
/// parsed config is within every documented limit and round-trips through
/// its canonical command line; an error names a short printable option with
/// a stable label; white space (kind and amount) never changes the verdict.
pub fn run_config_parse(data: &[u8]) {
    let verdict = Config::parse(data);
    match &verdict {
        Ok(c) => {
            assert!(data.len() <= MAX_CMDLINE_LEN);
            assert!((1..=MAX_NODES).contains(&c.nodes));
            assert!((100..=60_000).contains(&c.dhcp_timeout_ms));
            assert!((100..=60_000).contains(&c.ping_timeout_ms));
            assert!((1000..=600_000).contains(&c.run_timeout_ms));
            // The canonical line parses back to the same config, and is
            // never longer than the line it came from.
            let line = c.to_string();
            assert_eq!(Config::parse(line.as_bytes()).as_ref(), Ok(c), "{line}");
            assert!(line.len() <= data.len(), "{line}");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!e.label().is_empty());
            assert!(e.option().len() <= 40, "{text}");
            assert!(
                text.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                "{text:?}"
            );
            assert!(text.len() < 200, "{text}");
        }
    }
    // Re-spacing the tokens with single spaces gives the same verdict.
    if data.len() <= MAX_CMDLINE_LEN
        && data
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        let tokens: Vec<&[u8]> = data
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        let respaced = tokens.join(&b' ');
        let again = Config::parse(&respaced);
        match (&verdict, &again) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.label(), b.label(), "{a} / {b}"),
            _ => panic!("white space changed the verdict: {verdict:?} / {again:?}"),
        }
    }
}

/// Fuzz the RPC state machines against a hostile peer: the input is what
/// the peer writes on the channel, cut into chunks (first byte of each
/// chunk: its length) and sometimes followed by FIN or RESET. An
/// `RpcServer` answers every request with its body; an `RpcClient` with
/// calls in flight reads the same bytes as answers. Never panics; the
/// buffers stay within their caps; every call ends exactly once.
pub fn run_rpc_peer(data: &[u8]) {
    let cfg = RpcConfig::default();
    let mut server = RpcServer::new(cfg);
    let mut client = RpcClient::new(cfg);
    let mut to_server = Pipe::new(64 * 1024);
    let mut to_client = Pipe::new(64 * 1024);
    let t0 = Instant::from_millis(0);
    let mut calls = 0;
    for i in 0..4u8 {
        if client
            .call(
                vec![i; usize::from(i) * 100],
                t0,
                t0 + Duration::from_secs(1),
            )
            .is_ok()
        {
            calls += 1;
        }
    }
    let mut done = 0;
    let mut rest = data;
    let mut now = t0;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len & 0x3f).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = tail;
        // The hostile peer's bytes, to both.
        let _ = to_server.end(End::A).write(chunk);
        let _ = to_client.end(End::A).write(chunk);
        match len >> 6 {
            1 => {
                let _ = to_server.end(End::A).finish();
                let _ = to_client.end(End::A).finish();
            }
            2 => {
                to_server.end(End::A).reset(7);
                to_client.end(End::A).reset(7);
            }
            _ => {}
        }
        now += Duration::from_millis(50);
        {
            let mut io = to_server.end(End::B);
            while let Some(req) = server.poll(&mut io) {
                let _ = server.respond(req.id, RpcResult::Ok(req.body));
            }
            let _ = server.poll(&mut io);
        }
        assert!(
            server.buffered() <= 2 * RPC_MSG_CAP + 64 * 1024,
            "{}",
            server.buffered()
        );
        while client.poll(now, &mut to_client.end(End::B)).is_some() {
            done += 1;
        }
        assert!(client.buffered() <= 2 * RPC_MSG_CAP + 64 * 1024);
        // Drain what they sent, as the hostile peer ignores it.
        let mut sink = [0u8; 4096];
        while matches!(to_server.end(End::A).read(&mut sink), Ok(n) if n > 0) {}
        while matches!(to_client.end(End::A).read(&mut sink), Ok(n) if n > 0) {}
    }
    // Past every deadline every call has ended, exactly once.
    now += Duration::from_secs(2);
    while client.poll(now, &mut to_client.end(End::B)).is_some() {
        done += 1;
    }
    assert_eq!(done, calls, "calls ended {done} times, {calls} were made");
}

/// The small store `blob_server` runs against.
pub const CFG: StoreConfig = StoreConfig {
    blob_cap: 4096,
    total_cap: 8192,
    max_blobs: 4,
    max_partials: 2,
};

/// Fuzz the blob store's server end against a hostile client: the input is
/// what the client writes (chunks, FIN, RESET as in `rpc_peer`), after an
/// optional valid `Put` header so the fuzzer reaches uploads at once. Never
/// panics; the store never holds more than its caps; the server's own
/// buffers stay bounded.
pub fn run_blob_server(data: &[u8]) {
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
            while server
                .poll(now, &mut pipe.end(End::B), &mut store)
                .is_some()
            {}
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
}
