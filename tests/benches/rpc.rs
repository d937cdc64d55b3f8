//! RPC round trip in memory (issue 11): one `RpcClient` and one `RpcServer`
//! (`dsb_app::bus::rpc`) on a channel of two `Mux`es joined in memory (the
//! bytes of one's `poll_transmit` handed to the other's `handle_bytes`), each
//! end seen through `MuxChannel`. No crypto, no network: the figure is the
//! CPU cost of the bus and mux layers per call.
//!
//! Sequential calls (one in flight) with a 64-byte body, answered with the
//! same body. Prints `BENCH rpc_roundtrip_us <median> us`: wall-clock
//! microseconds per round trip, median of the batches.

use std::time::Instant as StdInstant;

use dsb_app::bus::channel::MuxChannel;
use dsb_app::bus::rpc::{RpcClient, RpcConfig, RpcResult, RpcServer};
use dsb_transports::mux::{ChannelId, Mux, MuxConfig, MuxEvent, Role, NOISE_MAX_PLAINTEXT};
use smoltcp::time::{Duration, Instant};

const SERVICE: &str = "rpc";
const BODY: usize = 64;
const CALLS_PER_BATCH: usize = 20_000;
const BATCHES: usize = 9;
const WARMUP: usize = 2_000;

/// Moves everything `from` has to send into `to`.
fn pump(from: &mut Mux, to: &mut Mux, buf: &mut [u8]) {
    loop {
        let n = from.poll_transmit(buf);
        if n == 0 {
            return;
        }
        to.handle_bytes(Instant::ZERO, &buf[..n])
            .expect("honest peer");
    }
}

struct Pair {
    a: Mux,
    b: Mux,
    /// The channel on A (opener, client) and on B (acceptor, server).
    ca: ChannelId,
    cb: ChannelId,
    client: RpcClient,
    server: RpcServer,
    wire: Vec<u8>,
}

impl Pair {
    fn new() -> Pair {
        let cfg = MuxConfig::default();
        let mut a = Mux::new(Role::Initiator, cfg, Instant::ZERO).unwrap();
        let mut b = Mux::new(Role::Responder, cfg, Instant::ZERO).unwrap();
        b.register_service(SERVICE).unwrap();
        a.set_authenticated(Instant::ZERO);
        b.set_authenticated(Instant::ZERO);
        let mut wire = vec![0u8; NOISE_MAX_PLAINTEXT];
        let ca = a.open(SERVICE).unwrap();
        pump(&mut a, &mut b, &mut wire);
        let mut cb = None;
        while let Some(ev) = b.poll_event() {
            if let MuxEvent::ChannelOpened { id, .. } = ev {
                cb = Some(id);
            }
        }
        pump(&mut b, &mut a, &mut wire);
        while a.poll_event().is_some() {}
        Pair {
            a,
            b,
            ca,
            cb: cb.expect("channel opened on B"),
            client: RpcClient::new(RpcConfig::default()),
            server: RpcServer::new(RpcConfig::default()),
            wire,
        }
    }

    /// One call, answered with its body; returns the answer's length.
    fn call(&mut self, body: &[u8]) -> usize {
        let now = Instant::ZERO;
        let deadline = now + Duration::from_secs(3600);
        let id = self.client.call(body.to_vec(), now, deadline).unwrap();
        loop {
            let mut io = MuxChannel {
                mux: &mut self.a,
                id: self.ca,
            };
            if let Some(done) = self.client.poll(now, &mut io) {
                assert_eq!(done.call, id);
                return done.result.expect("answer").len();
            }
            pump(&mut self.a, &mut self.b, &mut self.wire);
            let mut io = MuxChannel {
                mux: &mut self.b,
                id: self.cb,
            };
            while let Some(req) = self.server.poll(&mut io) {
                self.server
                    .respond(req.id, RpcResult::Ok(req.body))
                    .unwrap();
            }
            // Answers queued by `respond` are written by the next poll.
            let _ = self.server.poll(&mut io);
            pump(&mut self.b, &mut self.a, &mut self.wire);
            // Events are not needed here; keep the queues short.
            while self.a.poll_event().is_some() {}
            while self.b.poll_event().is_some() {}
        }
    }
}

fn main() {
    let body: Vec<u8> = (0..BODY).map(|i| (i * 7) as u8).collect();
    let mut pair = Pair::new();
    for _ in 0..WARMUP {
        assert_eq!(pair.call(&body), BODY);
    }
    let mut us: Vec<f64> = (0..BATCHES)
        .map(|b| {
            let start = StdInstant::now();
            for _ in 0..CALLS_PER_BATCH {
                std::hint::black_box(pair.call(&body));
            }
            let per = start.elapsed().as_secs_f64() * 1e6 / CALLS_PER_BATCH as f64;
            eprintln!("  rpc batch {b}: {per:.2} us per round trip");
            per
        })
        .collect();
    us.sort_by(|x, y| x.total_cmp(y));
    println!("BENCH rpc_roundtrip_us {:.2} us", us[BATCHES / 2]);
}
