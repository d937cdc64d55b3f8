//! RPC over an in-memory pipe: pipelining, ordering, deadlines, caps,
//! remote errors, closure and backpressure.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::time::Instant;

use super::*;
use crate::bus::channel::{ChannelIo, End, Pipe};
use crate::bus::codec::reset_code;
use crate::bus::sd::{self, SdRequest, SdResponse};

const CLIENT: End = End::A;
const SERVER: End = End::B;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms as i64)
}

/// Polls both ends `rounds` times; the server answers with `handler`
/// (None: keep the request unanswered in `held`).
fn drive(
    p: &mut Pipe,
    c: &mut RpcClient,
    s: &mut RpcServer,
    now: Instant,
    rounds: usize,
    held: &mut Vec<Incoming>,
    handler: &mut dyn FnMut(&Incoming) -> Option<RpcResult>,
) -> Vec<CallDone> {
    let mut done = Vec::new();
    for _ in 0..rounds {
        while let Some(d) = c.poll(now, &mut p.end(CLIENT)) {
            done.push(d);
        }
        while let Some(inc) = s.poll(&mut p.end(SERVER)) {
            match handler(&inc) {
                Some(r) => s.respond(inc.id, r).unwrap(),
                None => held.push(inc),
            }
        }
    }
    done
}

fn echo(inc: &Incoming) -> Option<RpcResult> {
    Some(RpcResult::Ok(inc.body.clone()))
}

#[test]
fn pipelined_calls_are_answered_out_of_order_and_matched_by_id() {
    let mut p = Pipe::new(5); // tiny: every frame crosses in pieces
    let mut c = RpcClient::new(RpcConfig::default());
    let mut s = RpcServer::new(RpcConfig::default());
    let ids: Vec<CallId> = (0..8u8)
        .map(|i| c.call(vec![i; 1 + i as usize * 10], t(0), t(1000)).unwrap())
        .collect();
    assert_eq!(c.in_flight(), 8);
    // Hold every request, then answer them last to first.
    let mut held = Vec::new();
    let done = drive(&mut p, &mut c, &mut s, t(1), 200, &mut held, &mut |_| None);
    assert!(done.is_empty());
    assert_eq!(held.len(), 8);
    for inc in held.iter().rev() {
        s.respond(inc.id, RpcResult::Ok(inc.body.clone())).unwrap();
    }
    let done = drive(
        &mut p,
        &mut c,
        &mut s,
        t(2),
        200,
        &mut Vec::new(),
        &mut echo,
    );
    assert_eq!(done.len(), 8);
    // Completed in the server's order (reverse), each with its own body.
    let order: Vec<CallId> = done.iter().map(|d| d.call).collect();
    let mut rev = ids.clone();
    rev.reverse();
    assert_eq!(order, rev);
    for d in &done {
        let i = ids.iter().position(|x| *x == d.call).unwrap();
        assert_eq!(d.result, Ok(vec![i as u8; 1 + i * 10]));
    }
    assert_eq!(c.in_flight(), 0);
    assert_eq!(c.stats().ok, 8);
}

#[test]
fn a_call_times_out_at_its_deadline_and_the_late_answer_is_dropped_and_counted() {
    let mut p = Pipe::new(1024);
    let mut c = RpcClient::new(RpcConfig::default());
    let mut s = RpcServer::new(RpcConfig::default());
    let slow = c.call(b"slow".to_vec(), t(0), t(100)).unwrap();
    let fast = c.call(b"fast".to_vec(), t(0), t(10_000)).unwrap();
    assert_eq!(c.poll_at(), Some(t(100)));
    let mut held = Vec::new();
    drive(&mut p, &mut c, &mut s, t(50), 4, &mut held, &mut |_| None);
    assert_eq!(held.len(), 2);
    // Just before the deadline nothing happens; at it, a timeout.
    assert!(c.poll(t(99), &mut p.end(CLIENT)).is_none());
    let d = c.poll(t(100), &mut p.end(CLIENT)).unwrap();
    assert_eq!(
        d,
        CallDone {
            call: slow,
            result: Err(RpcError::Timeout)
        }
    );
    // The server answers both; the late one is dropped, the other delivered.
    for inc in &held {
        s.respond(inc.id, RpcResult::Ok(inc.body.clone())).unwrap();
    }
    let done = drive(
        &mut p,
        &mut c,
        &mut s,
        t(200),
        4,
        &mut Vec::new(),
        &mut echo,
    );
    assert_eq!(
        done,
        vec![CallDone {
            call: fast,
            result: Ok(b"fast".to_vec())
        }]
    );
    assert_eq!(c.stats().late_responses, 1);
    assert_eq!(c.stats().timeouts, 1);
    // A deadline already past fails at once.
    assert_eq!(c.call(vec![1], t(300), t(300)), Err(RpcError::Timeout));
}

#[test]
fn caps_refuse_oversize_bodies_and_too_many_calls_locally() {
    let cfg = RpcConfig {
        msg_cap: 64,
        max_in_flight: 2,
        max_queued: 4,
    };
    let mut c = RpcClient::new(cfg);
    assert_eq!(cfg.max_body(), 64 - RPC_ENVELOPE_MAX);
    assert_eq!(
        c.call(vec![0; cfg.max_body() + 1], t(0), t(10)),
        Err(RpcError::TooLarge)
    );
    c.call(vec![0; cfg.max_body()], t(0), t(10)).unwrap();
    c.call(vec![], t(0), t(10)).unwrap();
    assert_eq!(c.call(vec![], t(0), t(10)), Err(RpcError::TooManyInFlight));
}

#[test]
fn a_request_over_the_servers_cap_is_answered_too_large_and_skipped() {
    let mut p = Pipe::new(256);
    let mut c = RpcClient::new(RpcConfig {
        msg_cap: 4096,
        ..RpcConfig::default()
    });
    let mut s = RpcServer::new(RpcConfig {
        msg_cap: 64,
        ..RpcConfig::default()
    });
    let big = c.call(vec![7; 1000], t(0), t(1000)).unwrap();
    let small = c.call(vec![1, 2, 3], t(0), t(1000)).unwrap();
    let done = drive(&mut p, &mut c, &mut s, t(1), 50, &mut Vec::new(), &mut echo);
    assert_eq!(
        done,
        vec![
            CallDone {
                call: big,
                result: Err(RpcError::TooLarge)
            },
            CallDone {
                call: small,
                result: Ok(vec![1, 2, 3])
            },
        ]
    );
    assert_eq!(s.stats().too_large, 1);
    assert!(s.buffered() <= 3 * 64);
}

#[test]
fn an_oversize_answer_becomes_too_large() {
    let mut p = Pipe::new(4096);
    let cfg = RpcConfig {
        msg_cap: 64,
        ..RpcConfig::default()
    };
    let mut c = RpcClient::new(cfg);
    let mut s = RpcServer::new(cfg);
    let id = c.call(vec![1], t(0), t(1000)).unwrap();
    let mut held = Vec::new();
    drive(&mut p, &mut c, &mut s, t(1), 3, &mut held, &mut |_| None);
    assert_eq!(
        s.respond(held[0].id, RpcResult::Ok(vec![0; 100])),
        Err(RespondError::TooLarge)
    );
    assert_eq!(
        s.respond(held[0].id, RpcResult::Ok(vec![])),
        Err(RespondError::UnknownId)
    );
    let done = drive(&mut p, &mut c, &mut s, t(2), 3, &mut Vec::new(), &mut echo);
    assert_eq!(
        done,
        vec![CallDone {
            call: id,
            result: Err(RpcError::TooLarge)
        }]
    );
}

#[test]
fn a_remote_error_reaches_the_caller_with_code_and_message() {
    let mut p = Pipe::new(4096);
    let mut c = RpcClient::new(RpcConfig::default());
    let mut s = RpcServer::new(RpcConfig::default());
    let id = c.call(b"x".to_vec(), t(0), t(1000)).unwrap();
    let long = "why ".repeat(40);
    let done = drive(
        &mut p,
        &mut c,
        &mut s,
        t(1),
        4,
        &mut Vec::new(),
        &mut |_| Some(RpcResult::err(code::SERVICE_BASE + 7, &long)),
    );
    let Err(RpcError::Remote { code: c7, message }) = &done[0].result else {
        panic!("expected a remote error, got {done:?}");
    };
    assert_eq!(done[0].call, id);
    assert_eq!(*c7, code::SERVICE_BASE + 7);
    assert_eq!(message.len(), REMOTE_MESSAGE_MAX);
    assert_eq!(done[0].result.as_ref().unwrap_err().label(), "remote-error");
}

#[test]
fn a_reset_channel_fails_every_call_in_flight() {
    let mut p = Pipe::new(4096);
    let mut c = RpcClient::new(RpcConfig::default());
    let mut s = RpcServer::new(RpcConfig::default());
    let a = c.call(vec![1], t(0), t(1000)).unwrap();
    let b = c.call(vec![2], t(0), t(1000)).unwrap();
    drive(
        &mut p,
        &mut c,
        &mut s,
        t(1),
        2,
        &mut Vec::new(),
        &mut |_| None,
    );
    p.end(SERVER).reset(5);
    let mut done = Vec::new();
    while let Some(d) = c.poll(t(2), &mut p.end(CLIENT)) {
        done.push(d);
    }
    done.sort_by_key(|d| d.call);
    assert_eq!(
        done,
        vec![
            CallDone {
                call: a,
                result: Err(RpcError::ChannelClosed)
            },
            CallDone {
                call: b,
                result: Err(RpcError::ChannelClosed)
            },
        ]
    );
    assert_eq!(c.call(vec![3], t(3), t(1000)), Err(RpcError::ChannelClosed));
}

#[test]
fn abort_reports_the_nodes_refusal_to_every_call() {
    let mut c = RpcClient::new(RpcConfig::default());
    let a = c.call(vec![1], t(0), t(1000)).unwrap();
    c.abort(RpcError::Denied);
    let mut p = Pipe::new(64);
    assert_eq!(
        c.poll(t(1), &mut p.end(CLIENT)),
        Some(CallDone {
            call: a,
            result: Err(RpcError::Denied)
        })
    );
    assert_eq!(c.call(vec![1], t(1), t(2)), Err(RpcError::Denied));
    assert_eq!(RpcError::UnknownService.label(), "unknown-service");
}

#[test]
fn garbage_from_the_server_resets_the_channel() {
    let mut p = Pipe::new(64);
    let mut c = RpcClient::new(RpcConfig::default());
    let a = c.call(vec![1], t(0), t(1000)).unwrap();
    p.end(SERVER).write(&[0, 0, 0, 2, 0xff, 0xff]).unwrap();
    assert_eq!(
        c.poll(t(1), &mut p.end(CLIENT)),
        Some(CallDone {
            call: a,
            result: Err(RpcError::Malformed)
        })
    );
    assert_eq!(p.reset_seen_by(SERVER), Some(reset_code::MALFORMED));
}

#[test]
fn a_full_server_stops_reading_until_it_answers() {
    let mut p = Pipe::new(4096);
    let mut c = RpcClient::new(RpcConfig::default());
    let mut s = RpcServer::new(RpcConfig {
        max_queued: 2,
        ..RpcConfig::default()
    });
    for i in 0..5u8 {
        c.call(vec![i], t(0), t(1000)).unwrap();
    }
    let mut held = Vec::new();
    drive(&mut p, &mut c, &mut s, t(1), 10, &mut held, &mut |_| None);
    assert_eq!(held.len(), 2);
    assert_eq!(s.unanswered(), 2);
    let first = held.remove(0);
    s.respond(first.id, RpcResult::Ok(vec![])).unwrap();
    drive(&mut p, &mut c, &mut s, t(2), 10, &mut held, &mut |_| None);
    assert_eq!(held.len(), 2);
}

#[test]
fn the_server_finishes_after_the_client_did_and_everything_is_answered() {
    let mut p = Pipe::new(4096);
    let mut c = RpcClient::new(RpcConfig::default());
    let mut s = RpcServer::new(RpcConfig::default());
    c.call(vec![1], t(0), t(1000)).unwrap();
    let mut held = Vec::new();
    drive(&mut p, &mut c, &mut s, t(1), 3, &mut held, &mut |_| None);
    p.end(CLIENT).finish().unwrap();
    assert!(s.poll(&mut p.end(SERVER)).is_none());
    assert_eq!(s.status(), ServerStatus::Open);
    s.respond(held[0].id, RpcResult::Ok(vec![9])).unwrap();
    assert!(s.poll(&mut p.end(SERVER)).is_none());
    assert_eq!(s.status(), ServerStatus::Finished);
    let d = c.poll(t(2), &mut p.end(CLIENT)).unwrap();
    assert_eq!(d.result, Ok(vec![9]));
}

#[test]
fn sd_lists_services_over_rpc() {
    let mut p = Pipe::new(4096);
    let mut c = RpcClient::new(RpcConfig::default());
    let mut s = RpcServer::new(RpcConfig::default());
    let id = c.call_msg(&SdRequest::List, t(0), t(1000)).unwrap();
    let services = [("blob", true), ("sd", true), ("secret", false)];
    let done = drive(
        &mut p,
        &mut c,
        &mut s,
        t(1),
        4,
        &mut Vec::new(),
        &mut |inc| Some(sd::answer(&inc.body, services.iter().copied())),
    );
    assert_eq!(done[0].call, id);
    let r = SdResponse::decode(done[0].result.as_ref().unwrap()).unwrap();
    assert_eq!(done[0].decode::<SdResponse>(), Ok(r.clone()));
    assert_eq!(done[0].decode::<u64>(), Err(RpcError::Malformed));
    assert_eq!(r.services.len(), 3);
    assert!(r.allows("blob"));
    assert!(!r.allows("secret"));
    assert!(!r.allows("nope"));
}

#[test]
fn ping_echoes_over_rpc() {
    let mut p = Pipe::new(4096);
    let mut c = RpcClient::new(RpcConfig::default());
    let mut s = RpcServer::new(RpcConfig::default());
    c.call(b"nonce-123".to_vec(), t(0), t(1000)).unwrap();
    c.call(vec![0; 65], t(0), t(1000)).unwrap();
    let done = drive(
        &mut p,
        &mut c,
        &mut s,
        t(1),
        4,
        &mut Vec::new(),
        &mut |inc| {
            Some(if inc.body.len() > 64 {
                RpcResult::err(code::TOO_LARGE, "over 64 bytes")
            } else {
                RpcResult::Ok(inc.body.clone())
            })
        },
    );
    assert_eq!(done[0].result, Ok(b"nonce-123".to_vec()));
    assert_eq!(done[1].result, Err(RpcError::TooLarge));
}
