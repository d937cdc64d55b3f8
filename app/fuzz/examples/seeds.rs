//! Writes the seed corpora of the `app/fuzz` targets into `seeds/<target>/`:
//! - `config_parse`: the command lines the Makefile, the scenarios and the
//!   docs use, and one of each documented error;
//! - `rpc_peer`, `blob_server`: valid message streams, framed by the
//!   services' own `MsgWriter` and cut into the harness's chunk format
//!   (a length byte `0..=63` whose top two bits ask for FIN (1) or RESET (2)
//!   after the chunk, then the chunk).
//!
//! Run: `cargo +nightly run --release --example seeds` in `app/fuzz`.

use std::fs;
use std::path::{Path, PathBuf};

use dsb_app::bus::blob::{blob_hash, BlobRequest, BLOB_MSG_CAP};
use dsb_app::bus::channel::{ChannelIo, End, Pipe};
use dsb_app::bus::codec::MsgWriter;
use dsb_app::bus::rpc::{RemoteError, RpcRequest, RpcResponse, RpcResult, RPC_MSG_CAP};
use serde::Serialize;

fn seeds_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// The bytes `MsgWriter` puts on a channel for `msgs`.
fn framed<T: Serialize>(cap: usize, msgs: &[T]) -> Vec<u8> {
    let mut pipe = Pipe::new(1 << 20);
    let mut w = MsgWriter::new(cap);
    for m in msgs {
        w.send(m).expect("encode");
        w.flush(&mut pipe.end(End::A)).expect("flush");
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.end(End::B).read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// `bytes` in the harness's chunk format; `end` (1 FIN, 2 RESET) after the last.
fn chunked(bytes: &[u8], end: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunks = bytes.chunks(63).peekable();
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        out.push(c.len() as u8 | if last { end << 6 } else { 0 });
        out.extend_from_slice(c);
    }
    out
}

fn config_parse() {
    let dir = seeds_dir("config_parse");
    let lines: [(&str, &str); 14] = [
        ("empty", ""),
        ("make_run", "nodes=1 transport=auto scenario=normal "),
        (
            "two_nodes_udpsec",
            "nodes=2 transport=udp-sec scenario=normal log=info",
        ),
        (
            "spoof",
            "nodes=3 transport=tcp scenario=spoof udpsec=off pcap=1",
        ),
        (
            "timeouts",
            "dhcp_timeout_ms=100 ping_timeout_ms=60000 run_timeout_ms=600000 log=trace",
        ),
        ("unknown", "colour=blue"),
        ("bad_value", "nodes=4"),
        ("duplicate", "nodes=1 nodes=2"),
        ("empty_value", "nodes="),
        ("empty_key", "=1"),
        ("no_equals", "nodes"),
        (
            "long_value",
            "log=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        ("tabs", "nodes=2\ttransport=tcp\n log=debug"),
        ("non_printable", "nodes=1\u{7f}"),
    ];
    for (name, line) in lines {
        fs::write(dir.join(name), line).expect("write");
    }
}

fn rpc_peer() {
    let dir = seeds_dir("rpc_peer");
    // What a client sends: the server answers each.
    let requests: Vec<RpcRequest> = (0..3)
        .map(|i| RpcRequest {
            id: i,
            body: vec![i as u8; 10 * i as usize],
        })
        .collect();
    // What a server answers the harness's four calls (ids 0..=3), in and out of order.
    let answers = |order: &[u32]| -> Vec<RpcResponse> {
        order
            .iter()
            .map(|&i| RpcResponse {
                id: i,
                result: if i == 2 {
                    RpcResult::Err(RemoteError::new(0x0100, "no such thing"))
                } else {
                    RpcResult::Ok(vec![i as u8; 100 * i as usize])
                },
            })
            .collect()
    };
    let seeds: [(&str, Vec<u8>); 5] = [
        ("requests_fin", chunked(&framed(RPC_MSG_CAP, &requests), 1)),
        (
            "requests_reset",
            chunked(&framed(RPC_MSG_CAP, &requests), 2),
        ),
        (
            "answers_in_order",
            chunked(&framed(RPC_MSG_CAP, &answers(&[0, 1, 2, 3])), 0),
        ),
        (
            "answers_out_of_order",
            chunked(&framed(RPC_MSG_CAP, &answers(&[3, 1, 0, 2])), 1),
        ),
        (
            "answer_twice",
            chunked(&framed(RPC_MSG_CAP, &answers(&[1, 1])), 0),
        ),
    ];
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes).expect("write");
    }
}

fn blob_server() {
    let dir = seeds_dir("blob_server");
    let body = vec![7u8; 200];
    let put = BlobRequest::Put {
        name: "seed".into(),
        size: body.len() as u64,
        hash: blob_hash(&body),
        offset: 0,
    };
    let mut upload = framed(BLOB_MSG_CAP, &[put]);
    upload.extend_from_slice(&body);
    let get = framed(
        BLOB_MSG_CAP,
        &[BlobRequest::Get {
            name: "have".into(),
            offset: 10,
        }],
    );
    let stat = framed(
        BLOB_MSG_CAP,
        &[BlobRequest::Stat {
            name: "have".into(),
        }],
    );
    let join = |parts: &[&[u8]]| -> Vec<u8> { parts.concat() };
    // Each of the harness's rounds (one channel) starts with a byte whose
    // low bit asks for the harness's own Put header, then chunks up to FIN.
    let seeds: [(&str, Vec<u8>); 4] = [
        (
            "put_get_stat",
            join(&[
                &[0],
                &chunked(&upload, 1),
                &[0],
                &chunked(&get, 1),
                &[0],
                &chunked(&stat, 1),
            ]),
        ),
        (
            "put_interrupted",
            join(&[&[0], &chunked(&upload[..120], 2)]),
        ),
        ("harness_put_data", join(&[&[3], &chunked(&[3u8; 60], 1)])),
        (
            "get_missing",
            join(&[
                &[0],
                &chunked(
                    &framed(
                        BLOB_MSG_CAP,
                        &[BlobRequest::Get {
                            name: "nope".into(),
                            offset: 0,
                        }],
                    ),
                    1,
                ),
            ]),
        ),
    ];
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes).expect("write");
    }
}

fn main() {
    config_parse();
    rpc_peer();
    blob_server();
    println!(
        "seeds written to {}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .display()
    );
}
