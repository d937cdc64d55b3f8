//! Every rejection label, reached with hand-crafted frames from a raw peer.
//!
//! The mux under test is the session responder (opens even ids); the raw
//! peer plays the initiator (odd ids). Fatal errors end the session with a
//! GOAWAY carrying the error's code; refusals only reset one channel.

mod mux_support;

use dsb_transports::mux::{
    reset_code, ChannelError, Frame, Header, Mux, MuxConfig, MuxError, MuxEvent, RefuseReason,
    Role, MAX_FRAME_PAYLOAD, MAX_PENDING_REFUSALS,
};
use mux_support::*;

fn cfg() -> MuxConfig {
    MuxConfig {
        recv_window: 1000,
        session_window: 3000,
        ..MuxConfig::default()
    }
}

/// An authenticated responder accepting "echo" whose initial output was flushed,
/// already holding plenty of send credit from the raw peer.
fn responder() -> Mux {
    let mut m = Mux::new(Role::Responder, cfg(), T0).unwrap();
    m.register_service("echo").unwrap();
    m.register_service("echo2").unwrap();
    m.set_authenticated(T0);
    let tx = drain_tx(&mut m, 4096);
    assert_eq!(
        Frame::parse(&tx).unwrap(),
        Frame::WindowUpdate {
            channel: 0,
            increment: 3000
        }
    );
    feed_ok(
        &mut m,
        &[Frame::WindowUpdate {
            channel: 0,
            increment: 1 << 20,
        }],
    );
    m
}

fn bytes(frames: &[Frame<'_>]) -> Vec<u8> {
    frames.iter().flat_map(|f| frame(*f)).collect()
}

fn feed_ok(m: &mut Mux, frames: &[Frame<'_>]) {
    m.handle_bytes(T0, &bytes(frames)).unwrap();
}

fn open(channel: u32, name: &[u8]) -> Frame<'_> {
    Frame::Open {
        channel,
        initial_credit: 1 << 16,
        name,
    }
}

/// Feeding `input` must end the session with `label`, tell the peer so with a
/// GOAWAY, and keep failing the same way.
fn assert_fatal(m: &mut Mux, input: &[u8], label: &str) -> MuxError {
    let err = m.handle_bytes(T0, input).unwrap_err();
    assert_eq!(err.label(), label, "{err}");
    assert!(m.is_closed());
    assert_eq!(m.error(), Some(err));
    assert_eq!(m.stats().buffered_bytes(), 0, "buffers released");
    // Only the GOAWAY goes out: whatever else was owed is dropped.
    let tx = drain_tx(m, 4096);
    assert_eq!(Frame::parse(&tx), Ok(Frame::GoAway { code: err.code() }));
    assert_eq!(
        m.handle_bytes(T0, &frame(Frame::Ping { opaque: 1 })),
        Err(err)
    );
    assert_eq!(m.open("echo"), Err(ChannelError::SessionClosed));
    err
}

#[test]
fn data_before_auth() {
    let mut m = Mux::new(Role::Responder, cfg(), T0).unwrap();
    let err = m
        .handle_bytes(T0, &frame(Frame::Ping { opaque: 1 }))
        .unwrap_err();
    assert_eq!(err.label(), "data-before-auth");
    assert!(m.is_closed());
    // Nothing goes to a peer whose identity was never bound.
    m.set_authenticated(T0);
    assert!(drain_tx(&mut m, 4096).is_empty());
}

#[test]
fn malformed() {
    let flags = {
        let mut b = frame(Frame::Fin { channel: 1 });
        b[1] = 0x80;
        b
    };
    let cases: Vec<Vec<u8>> = vec![
        flags,
        frame(Frame::WindowUpdate {
            channel: 0,
            increment: 0,
        }),
        frame(Frame::Data {
            channel: 1,
            payload: b"",
        }),
        frame(open(1, b"bad name")),
        frame(open(1, b"")),
        frame(open(1, &[b'a'; 33])),
        // FIN with a payload, ACCEPT with 3 bytes, PING with 7.
        [
            Header {
                frame_type: 5,
                flags: 0,
                channel: 1,
                len: 1,
            }
            .to_bytes()
            .to_vec(),
            vec![0],
        ]
        .concat(),
        [
            Header {
                frame_type: 2,
                flags: 0,
                channel: 1,
                len: 3,
            }
            .to_bytes()
            .to_vec(),
            vec![0; 3],
        ]
        .concat(),
        [
            Header {
                frame_type: 7,
                flags: 0,
                channel: 0,
                len: 7,
            }
            .to_bytes()
            .to_vec(),
            vec![0; 7],
        ]
        .concat(),
    ];
    for case in cases {
        let mut m = responder();
        assert_fatal(&mut m, &case, "malformed");
    }
}

trait ToBytes {
    fn to_bytes(&self) -> [u8; 8];
}
impl ToBytes for Header {
    fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        self.emit(&mut b).unwrap();
        b
    }
}

#[test]
fn unknown_frame_type_is_rejected_from_the_header_alone() {
    let mut m = responder();
    let h = Header {
        frame_type: 0x42,
        flags: 0,
        channel: 1,
        len: 100,
    }
    .to_bytes();
    let err = assert_fatal(&mut m, &h, "unknown-frame-type");
    assert_eq!(err, MuxError::UnknownFrameType(0x42));
}

#[test]
fn oversized_frame_is_rejected_before_its_payload() {
    let mut m = responder();
    let len = (MAX_FRAME_PAYLOAD + 1) as u16;
    let h = Header {
        frame_type: 3,
        flags: 0,
        channel: 1,
        len,
    }
    .to_bytes();
    // Header split across two calls: the check runs once all 8 bytes are in.
    m.handle_bytes(T0, &h[..5]).unwrap();
    assert_eq!(m.stats().input_buffered, 5);
    assert_fatal(&mut m, &h[5..], "oversized-frame");
}

#[test]
fn invalid_channel_id() {
    let cases = [
        frame(Frame::Data {
            channel: 0,
            payload: b"x",
        }),
        frame(open(2, b"echo")), // the responder's own parity
        {
            let mut b = frame(Frame::Ping { opaque: 1 });
            b[5] = 3;
            b
        },
    ];
    for case in cases {
        let mut m = responder();
        assert_fatal(&mut m, &case, "invalid-channel-id");
    }
}

#[test]
fn unknown_channel() {
    let cases = [
        frame(Frame::Data {
            channel: 7,
            payload: b"x",
        }),
        frame(Frame::WindowUpdate {
            channel: 4,
            increment: 1,
        }), // our parity, never opened
        frame(Frame::Fin { channel: 9 }),
    ];
    for case in cases {
        let mut m = responder();
        assert_fatal(&mut m, &case, "unknown-channel");
    }
}

#[test]
fn duplicate_channel_id() {
    let mut m = responder();
    feed_ok(&mut m, &[open(3, b"echo")]);
    assert_fatal(&mut m, &frame(open(3, b"echo2")), "duplicate-channel-id");
    // Ids only grow: a lower, never-used id is a reuse too.
    let mut m = responder();
    feed_ok(&mut m, &[open(5, b"echo")]);
    assert_fatal(&mut m, &frame(open(1, b"echo2")), "duplicate-channel-id");
}

#[test]
fn duplicate_name_while_the_first_channel_is_live() {
    let mut m = responder();
    feed_ok(&mut m, &[open(1, b"echo")]);
    assert_fatal(&mut m, &frame(open(3, b"echo")), "duplicate-name");
}

#[test]
fn a_name_is_free_again_once_closed_both_ways_on_the_wire() {
    let mut m = responder();
    feed_ok(&mut m, &[open(1, b"echo"), Frame::Fin { channel: 1 }]);
    m.finish(dsb_transports::mux::ChannelId(1)).unwrap();
    drain_tx(&mut m, 4096); // our ACCEPT and FIN go out
    feed_ok(&mut m, &[open(3, b"echo")]);
    assert!(events(&mut m).contains(&MuxEvent::ChannelOpened {
        id: dsb_transports::mux::ChannelId(3),
        name: dsb_transports::mux::ServiceName::new(b"echo").unwrap()
    }));
}

#[test]
fn credit_overflow() {
    // More than the channel window (1000).
    let mut m = responder();
    feed_ok(&mut m, &[open(1, b"echo")]);
    let err = assert_fatal(
        &mut m,
        &frame(Frame::Data {
            channel: 1,
            payload: &[0; 1001],
        }),
        "credit-overflow",
    );
    assert_eq!(err, MuxError::CreditOverflow(1));

    // More than the session window (3000) spread over four channels.
    let mut m = responder();
    feed_ok(&mut m, &[open(1, b"echo"), open(3, b"echo2")]);
    let d1 = Frame::Data {
        channel: 1,
        payload: &[0; 1000],
    };
    let d3 = Frame::Data {
        channel: 3,
        payload: &[0; 1000],
    };
    feed_ok(&mut m, &[d1, d3]);
    m.register_service("echo3").unwrap();
    feed_ok(
        &mut m,
        &[
            open(5, b"echo3"),
            Frame::Data {
                channel: 5,
                payload: &[0; 1000],
            },
        ],
    );
    m.register_service("echo4").unwrap();
    feed_ok(&mut m, &[open(7, b"echo4")]);
    let err = assert_fatal(
        &mut m,
        &frame(Frame::Data {
            channel: 7,
            payload: &[0; 1],
        }),
        "credit-overflow",
    );
    assert_eq!(err, MuxError::CreditOverflow(0));

    // A session credit update that overflows u32.
    let mut m = responder();
    let wu = Frame::WindowUpdate {
        channel: 0,
        increment: u32::MAX,
    };
    assert_fatal(&mut m, &frame(wu), "credit-overflow");

    // A channel credit update that overflows u32.
    let mut m = responder();
    feed_ok(&mut m, &[open(1, b"echo")]);
    let wu = Frame::WindowUpdate {
        channel: 1,
        increment: u32::MAX,
    };
    assert_fatal(&mut m, &frame(wu), "credit-overflow");
}

#[test]
fn data_after_fin() {
    let mut m = responder();
    feed_ok(&mut m, &[open(1, b"echo"), Frame::Fin { channel: 1 }]);
    assert_fatal(
        &mut m,
        &frame(Frame::Data {
            channel: 1,
            payload: b"x",
        }),
        "data-after-fin",
    );
    let mut m = responder();
    feed_ok(&mut m, &[open(1, b"echo"), Frame::Fin { channel: 1 }]);
    assert_fatal(&mut m, &frame(Frame::Fin { channel: 1 }), "data-after-fin");
}

#[test]
fn unexpected_frame() {
    // DATA on our channel before the peer accepted it.
    let mut m = responder();
    let id = m.open("svc").unwrap();
    drain_tx(&mut m, 4096);
    assert_fatal(
        &mut m,
        &frame(Frame::Data {
            channel: id.0,
            payload: b"x",
        }),
        "unexpected-frame",
    );
    // A second ACCEPT.
    let mut m = responder();
    let id = m.open("svc").unwrap();
    drain_tx(&mut m, 4096);
    feed_ok(
        &mut m,
        &[Frame::Accept {
            channel: id.0,
            initial_credit: 10,
        }],
    );
    assert_fatal(
        &mut m,
        &frame(Frame::Accept {
            channel: id.0,
            initial_credit: 10,
        }),
        "unexpected-frame",
    );
    // ACCEPT for a channel the peer itself opened.
    let mut m = responder();
    feed_ok(&mut m, &[open(1, b"echo")]);
    assert_fatal(
        &mut m,
        &frame(Frame::Accept {
            channel: 1,
            initial_credit: 1,
        }),
        "unexpected-frame",
    );
    // Any frame for an id whose OPEN we have not sent yet.
    let mut m = responder();
    let id = m.open("svc").unwrap();
    let err = m
        .handle_bytes(
            T0,
            &frame(Frame::Accept {
                channel: id.0,
                initial_credit: 1,
            }),
        )
        .unwrap_err();
    assert_eq!(err.label(), "unexpected-frame");
}

#[test]
fn control_overflow_when_refusals_pile_up_unsent() {
    let mut m = responder();
    let names: Vec<String> = (0..=MAX_PENDING_REFUSALS)
        .map(|i| format!("nope{i}"))
        .collect();
    let frames: Vec<Frame<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| open(2 * i as u32 + 1, n.as_bytes()))
        .collect();
    let (ok, last) = frames.split_at(MAX_PENDING_REFUSALS);
    feed_ok(&mut m, ok);
    assert_fatal(&mut m, &bytes(last), "control-overflow");
}

#[test]
fn idle_timeout() {
    let mut m = responder();
    let deadline = m.poll_at().unwrap() + smoltcp::time::Duration::from_secs(60);
    let err = m.handle_timeout(deadline).unwrap_err();
    assert_eq!(err.label(), "idle-timeout");
}

#[test]
fn peer_goaway_ends_the_session_without_an_answer() {
    let mut m = responder();
    let err = m
        .handle_bytes(T0, &frame(Frame::GoAway { code: 7 }))
        .unwrap_err();
    assert_eq!(err, MuxError::PeerGoAway(7));
    assert_eq!(err.label(), "peer-goaway");
    assert!(drain_tx(&mut m, 4096).is_empty());
}

#[test]
fn local_close_sends_goaway_and_refuses_further_input() {
    let mut m = responder();
    m.close(0);
    assert_eq!(
        Frame::parse(&drain_tx(&mut m, 4096)),
        Ok(Frame::GoAway { code: 0 })
    );
    let err = m
        .handle_bytes(T0, &frame(Frame::Ping { opaque: 1 }))
        .unwrap_err();
    assert_eq!(err.label(), "session-closed");
}

#[test]
fn unknown_service_and_too_many_channels_reset_only_that_channel() {
    let mut m = Mux::new(
        Role::Responder,
        MuxConfig {
            max_channels: 1,
            ..cfg()
        },
        T0,
    )
    .unwrap();
    m.register_service("echo").unwrap();
    m.register_service("echo2").unwrap();
    m.set_authenticated(T0);
    drain_tx(&mut m, 4096);
    feed_ok(
        &mut m,
        &[open(1, b"nope"), open(3, b"echo"), open(5, b"echo2")],
    );
    let tx = drain_tx(&mut m, 4096);
    let mut resets = Vec::new();
    let mut off = 0;
    while off < tx.len() {
        let len = 8 + usize::from(Header::parse(&tx[off..]).unwrap().len);
        if let Frame::Reset { channel, code } = Frame::parse(&tx[off..off + len]).unwrap() {
            resets.push((channel, code));
        }
        off += len;
    }
    assert_eq!(
        resets,
        vec![
            (1, reset_code::UNKNOWN_SERVICE),
            (5, reset_code::TOO_MANY_CHANNELS)
        ]
    );
    let labels: Vec<&str> = events(&mut m)
        .iter()
        .filter_map(|e| match e {
            MuxEvent::Refused { reason, .. } => Some(reason.label()),
            _ => None,
        })
        .collect();
    assert_eq!(labels, vec!["unknown-service", "too-many-channels"]);
    assert_eq!(
        RefuseReason::from_reset_code(reset_code::TOO_MANY_CHANNELS)
            .unwrap()
            .label(),
        "too-many-channels"
    );
    // Late frames for the refused channels are stale, not fatal; the session goes on.
    feed_ok(
        &mut m,
        &[
            Frame::Fin { channel: 1 },
            Frame::Data {
                channel: 5,
                payload: b"late",
            },
        ],
    );
    assert!(!m.is_closed());
    assert_eq!(m.stats().stale_frames, 2);
}

#[test]
fn frames_for_a_channel_we_reset_are_ignored_and_their_credit_returned() {
    let mut m = responder();
    feed_ok(
        &mut m,
        &[
            open(1, b"echo"),
            Frame::Data {
                channel: 1,
                payload: &[1; 1000],
            },
        ],
    );
    m.reset(dsb_transports::mux::ChannelId(1), 9).unwrap();
    assert_eq!(m.stats().recv_buffered, 0);
    // In flight before the peer saw our RESET: harmless.
    feed_ok(
        &mut m,
        &[
            Frame::Data {
                channel: 1,
                payload: &[1; 1000],
            },
            Frame::Fin { channel: 1 },
        ],
    );
    // All 2000 bytes come back as session credit (the threshold is 1500).
    let tx = drain_tx(&mut m, 4096);
    let mut off = 0;
    let mut granted = 0;
    while off < tx.len() {
        let len = 8 + usize::from(Header::parse(&tx[off..]).unwrap().len);
        if let Frame::WindowUpdate {
            channel: 0,
            increment,
        } = Frame::parse(&tx[off..off + len]).unwrap()
        {
            granted += increment;
        }
        off += len;
    }
    assert_eq!(granted, 2000);
    assert!(!m.is_closed());
}
