//! The bus services of `dsb-app` over udp-sec + mux on the benchmark link
//! (issue 11), with the connection, seeds and losses of
//! `udpsec_goodput_mbps` ([`udpsec_mux::connect`]), so the figures compare
//! directly:
//!
//! - [`rpc_roundtrip`]: sequential calls (one in flight) of an
//!   [`RpcClient`] on A to an [`RpcServer`] on B that answers with the body;
//!   simulated time from `call` to the client's `CallDone`.
//! - [`blob_goodput`]: an 8 MiB upload with [`BlobPut`] on A into a
//!   [`BlobServer`] + [`BlobStore`] on B; goodput = blob bytes / simulated
//!   time from connect to the client's `PutDone` (B verified the BLAKE2s hash
//!   and committed the blob). The stored bytes are checked after the run.

use dsb_app::bus::blob::{BlobEvent, BlobPut, BlobServer, BlobStore, StoreConfig, BLOB_SERVICE};
use dsb_app::bus::channel::MuxChannel;
use dsb_app::bus::rpc::{RpcClient, RpcConfig, RpcResult, RpcServer};
use dsb_transports::mux::{ChannelId, Mux, MuxEvent};
use smoltcp::time::{Duration, Instant};

use crate::common::{self, DEADLINE, LEN};
use crate::udpsec_mux;

/// The RPC service B serves.
pub const RPC_SERVICE: &str = "rpc";
/// Name of the uploaded blob.
const BLOB_NAME: &str = "bench";

/// Drains `mux`'s events; the channel the peer opened, if one was. A reset
/// or refused channel ends the benchmark (the harness is broken).
fn events(mux: &mut Mux, side: &str) -> Option<ChannelId> {
    let mut opened = None;
    while let Some(ev) = mux.poll_event() {
        match ev {
            MuxEvent::ChannelOpened { id, .. } => opened = Some(id),
            MuxEvent::Reset { id, code } => panic!("{side}: channel {id:?} reset ({code:#x})"),
            MuxEvent::Refused { .. } => panic!("{side}: refused an OPEN: {ev:?}"),
            _ => {}
        }
    }
    opened
}

/// Round trips (simulated ms) of `calls` sequential RPC calls with a
/// `body`-byte body on the loss-free link, after `warmup` unmeasured calls
/// (the first carries the channel's OPEN and ACCEPT).
pub fn rpc_roundtrip(seed: u64, body: usize, warmup: usize, calls: usize) -> Vec<f64> {
    let ids = udpsec_mux::identities();
    let mut sim = udpsec_mux::connect(&ids, 0.0, seed, &[RPC_SERVICE]);
    let body: Vec<u8> = common::pattern(body);
    let mut client = RpcClient::new(RpcConfig::default());
    let mut server = RpcServer::new(RpcConfig::default());
    let (mut ca, mut cb) = (None, None);
    // The call in flight: issued at, with this id.
    let mut in_flight: Option<(Instant, dsb_app::bus::rpc::CallId)> = None;
    let mut issued = 0;
    let mut rtts = Vec::with_capacity(calls);
    let done = sim.run_until(DEADLINE, |sim| {
        let now = sim.now;
        // B: accept the channel, answer every request with its body.
        if let Some(id) = events(&mut sim.b.mux, "rpc server") {
            cb = Some(id);
        }
        if let Some(id) = cb {
            let mut io = MuxChannel {
                mux: &mut sim.b.mux,
                id,
            };
            while let Some(req) = server.poll(&mut io) {
                server.respond(req.id, RpcResult::Ok(req.body)).unwrap();
            }
            // Answers queued by `respond` are written by the next poll.
            let _ = server.poll(&mut io);
        }
        // A: open once the session is up, one call at a time.
        events(&mut sim.a.mux, "rpc client");
        if !sim.a.mux.is_authenticated() {
            return false;
        }
        let id = *ca.get_or_insert_with(|| sim.a.mux.open(RPC_SERVICE).expect("open rpc"));
        let mut io = MuxChannel {
            mux: &mut sim.a.mux,
            id,
        };
        loop {
            if in_flight.is_none() {
                if issued == warmup + calls {
                    return true;
                }
                let deadline = now + Duration::from_secs(60);
                let call = client.call(body.clone(), now, deadline).expect("call");
                in_flight = Some((now, call));
                issued += 1;
            }
            let Some(d) = client.poll(now, &mut io) else {
                return false;
            };
            let (at, call) = in_flight.take().expect("a call in flight");
            assert_eq!(d.call, call);
            assert_eq!(d.result.as_deref(), Ok(&body[..]), "answer");
            if issued > warmup {
                rtts.push((now - at).total_micros() as f64 / 1e3);
            }
        }
    });
    assert!(done, "rpc seed {seed}: {} of {calls} calls", rtts.len());
    rtts
}

/// One 8 MiB blob upload A → B on the benchmark link with `loss`; goodput
/// in Mbit/s (simulated time, connect → `PutDone`) and CPU per byte (from
/// creating the handshakes to `PutDone`: handshake, both endpoints with the
/// client's hash of the blob and the server's incremental one, the store,
/// the link). The stored copy is compared with the payload afterwards.
pub fn blob_goodput(loss: f64, seed: u64) -> common::Run {
    let start = Instant::from_millis(0);
    let data = common::pattern(LEN);
    let payload = data.clone();
    let ids = udpsec_mux::identities();
    let cpu0 = common::thread_cpu_ns();
    let mut put = BlobPut::new(BLOB_NAME, payload).expect("blob name");
    // The mux configuration's idle timeout: no run ends on a transfer timer.
    let idle = Duration::from_secs(600);
    put.set_idle_timeout(idle);
    let mut store = BlobStore::new(StoreConfig {
        blob_cap: LEN as u64,
        total_cap: LEN as u64,
        ..StoreConfig::default()
    });
    let mut sim = udpsec_mux::connect(&ids, loss, seed, &[BLOB_SERVICE]);
    let mut server: Option<(ChannelId, BlobServer)> = None;
    let mut served = Vec::new();
    let mut ca = None;
    let mut result = None;
    let done = sim.run_until(DEADLINE, |sim| {
        let now = sim.now;
        // B: one BlobServer for the channel A opens.
        if let Some(id) = events(&mut sim.b.mux, "blob server") {
            let mut s = BlobServer::new(now);
            s.set_idle_timeout(idle);
            server = Some((id, s));
        }
        if let Some((id, s)) = server.as_mut() {
            let mut io = MuxChannel {
                mux: &mut sim.b.mux,
                id: *id,
            };
            while let Some(ev) = s.poll(now, &mut io, &mut store) {
                served.push(ev);
            }
        }
        // A: open once the session is up, then drive the upload.
        events(&mut sim.a.mux, "blob client");
        if !sim.a.mux.is_authenticated() {
            return false;
        }
        let id = *ca.get_or_insert_with(|| sim.a.mux.open(BLOB_SERVICE).expect("open blob"));
        let mut io = MuxChannel {
            mux: &mut sim.a.mux,
            id,
        };
        if let Some(r) = put.poll(now, &mut io) {
            result = Some(r);
        }
        result.is_some()
    });
    let cpu = common::thread_cpu_ns() - cpu0;
    assert!(done, "blob loss {loss} seed {seed}: incomplete");
    let put_done = result.expect("result").expect("upload");
    assert_eq!(put_done.size, LEN as u64);
    assert_eq!(put_done.resumed_from, 0);
    let (stored, hash) = store.get(BLOB_NAME).expect("blob stored");
    assert!(stored == &data[..], "stored blob differs from the payload");
    assert_eq!(hash, put_done.hash);
    assert_eq!(
        served,
        vec![BlobEvent::Stored {
            name: BLOB_NAME.into(),
            size: LEN as u64
        }]
    );
    common::Run::new(LEN, sim.now - start, cpu)
}
