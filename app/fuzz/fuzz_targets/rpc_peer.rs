//! Fuzz the RPC state machines against a hostile peer: the input is what
//! the peer writes on the channel, cut into chunks (first byte of each
//! chunk: its length) and sometimes followed by FIN or RESET. An
//! `RpcServer` answers every request with its body; an `RpcClient` with
//! calls in flight reads the same bytes as answers. Never panics; the
//! buffers stay within their caps; every call ends exactly once.
#![no_main]

use dsb_app::bus::channel::{ChannelIo, End, Pipe};
use dsb_app::bus::rpc::{RpcClient, RpcConfig, RpcResult, RpcServer, RPC_MSG_CAP};
use libfuzzer_sys::fuzz_target;
use smoltcp::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let cfg = RpcConfig::default();
    let mut server = RpcServer::new(cfg);
    let mut client = RpcClient::new(cfg);
    let mut to_server = Pipe::new(64 * 1024);
    let mut to_client = Pipe::new(64 * 1024);
    let t0 = Instant::from_millis(0);
    let mut calls = 0;
    for i in 0..4u8 {
        if client.call(vec![i; usize::from(i) * 100], t0, t0 + Duration::from_secs(1)).is_ok() {
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
        assert!(server.buffered() <= 2 * RPC_MSG_CAP + 64 * 1024, "{}", server.buffered());
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
});
