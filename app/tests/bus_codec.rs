//! Length-prefixed postcard messages over an in-memory pipe: round trips of
//! typed messages, the length checks done before buffering, truncation,
//! skipping and backpressure.

use dsb_app::bus::channel::{ChannelIo, End, Pipe};
use dsb_app::bus::codec::{decode, encode, CodecError, MsgReader, MsgWriter, Read, LEN_PREFIX};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Hello { name: String, n: u64 },
    Bytes(Vec<u8>),
    Flag(Option<bool>),
}

/// Sends `msgs` through a pipe of `cap` bytes per direction, moving bytes
/// in both ends' turns, and returns what the reader got.
fn through(msgs: &[Msg], cap: usize, frame_cap: usize) -> Vec<Msg> {
    let mut p = Pipe::new(cap);
    let mut w = MsgWriter::new(frame_cap);
    let mut r = MsgReader::new(frame_cap);
    let mut out = Vec::new();
    let mut next = 0;
    for _ in 0..100_000 {
        if w.flush(&mut p.end(End::A)).unwrap() && next < msgs.len() {
            w.send(&msgs[next]).unwrap();
            next += 1;
        }
        while let Some(m) = r.poll(&mut p.end(End::B)).unwrap() {
            out.push(decode(&m).unwrap());
        }
        if out.len() == msgs.len() {
            break;
        }
    }
    out
}

#[test]
fn typed_messages_round_trip_through_any_pipe_capacity() {
    let msgs = vec![
        Msg::Hello {
            name: "node-a".into(),
            n: u64::MAX,
        },
        Msg::Bytes(vec![0xAB; 3000]),
        Msg::Flag(None),
        Msg::Flag(Some(true)),
        Msg::Bytes(Vec::new()),
    ];
    for cap in [1, 3, 7, 64, 4096, 65536] {
        assert_eq!(through(&msgs, cap, 4096), msgs, "pipe capacity {cap}");
    }
}

#[test]
fn a_zero_length_prefix_is_malformed() {
    let mut p = Pipe::new(64);
    p.end(End::A).write(&[0, 0, 0, 0]).unwrap();
    let mut r = MsgReader::new(16);
    assert_eq!(r.poll(&mut p.end(End::B)), Err(CodecError::Malformed));
    // The reader is done: it keeps saying so.
    assert_eq!(r.poll(&mut p.end(End::B)), Err(CodecError::Malformed));
}

#[test]
fn an_oversize_prefix_is_refused_before_anything_is_buffered() {
    let mut p = Pipe::new(64);
    p.end(End::A).write(&17u32.to_be_bytes()).unwrap();
    let mut r = MsgReader::new(16);
    assert_eq!(
        r.poll(&mut p.end(End::B)),
        Err(CodecError::TooLarge { len: 17 })
    );
    assert_eq!(r.allocated(), 0);
    // The huge one too, and the writer refuses to produce either.
    let mut p = Pipe::new(64);
    p.end(End::A).write(&u32::MAX.to_be_bytes()).unwrap();
    let mut r = MsgReader::new(16);
    assert_eq!(
        r.poll(&mut p.end(End::B)),
        Err(CodecError::TooLarge { len: u32::MAX })
    );
    assert_eq!(r.allocated(), 0);
    assert_eq!(
        MsgWriter::new(16).send_payload(&[0; 17]),
        Err(CodecError::TooLarge { len: 17 })
    );
    // Exactly the cap is fine.
    assert_eq!(through(&[Msg::Bytes(vec![1; 14])], 8, 16).len(), 1);
}

#[test]
fn a_stream_that_ends_inside_a_frame_is_truncated() {
    // Inside the prefix.
    let mut p = Pipe::new(64);
    p.end(End::A).write(&[0, 0]).unwrap();
    p.end(End::A).finish().unwrap();
    assert_eq!(
        MsgReader::new(16).poll(&mut p.end(End::B)),
        Err(CodecError::Truncated)
    );
    // Inside the payload.
    let mut p = Pipe::new(64);
    p.end(End::A).write(&[0, 0, 0, 5, 1, 2]).unwrap();
    p.end(End::A).finish().unwrap();
    let mut r = MsgReader::new(16);
    assert_eq!(r.poll(&mut p.end(End::B)), Err(CodecError::Truncated));
    // At a boundary it is a clean end.
    let mut p = Pipe::new(64);
    p.end(End::A).write(&[0, 0, 0, 1, 9]).unwrap();
    p.end(End::A).finish().unwrap();
    let mut r = MsgReader::new(16);
    assert_eq!(r.poll(&mut p.end(End::B)), Ok(Some(vec![9])));
    assert_eq!(r.poll(&mut p.end(End::B)), Err(CodecError::Eof));
}

#[test]
fn a_reset_channel_is_closed_for_reader_and_writer() {
    let mut p = Pipe::new(64);
    p.end(End::A).reset(1);
    assert_eq!(
        MsgReader::new(16).poll(&mut p.end(End::B)),
        Err(CodecError::Closed)
    );
    let mut w = MsgWriter::new(16);
    w.send_payload(b"x").unwrap();
    assert_eq!(w.flush(&mut p.end(End::B)), Err(CodecError::Closed));
}

#[test]
fn a_skipping_reader_discards_an_oversize_frame_and_keeps_its_head() {
    let mut p = Pipe::new(8);
    let mut bytes = 40u32.to_be_bytes().to_vec();
    bytes.extend((0..40u8).map(|i| i + 1));
    bytes.extend([0, 0, 0, 2, 7, 7]);
    let mut r = MsgReader::new(16);
    let mut got = Vec::new();
    let mut at = 0;
    while got.len() < 2 {
        if at < bytes.len() {
            at += p.end(End::A).write(&bytes[at..]).unwrap_or(0);
        }
        while let Some(x) = r.poll_or_skip(&mut p.end(End::B)).unwrap() {
            got.push(x);
        }
        assert!(r.buffered() <= 16 + LEN_PREFIX);
    }
    match &got[0] {
        Read::Skipped { len, head } => {
            assert_eq!(*len, 40);
            assert_eq!(head.as_slice(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        }
        other => panic!("expected a skip, got {other:?}"),
    }
    assert_eq!(got[1], Read::Msg(vec![7, 7]));
    assert_eq!(r.skipped(), 1);
}

#[test]
fn a_writer_holds_one_frame_and_waits_for_capacity() {
    let mut p = Pipe::new(3);
    let mut w = MsgWriter::new(64);
    w.send(&Msg::Bytes(vec![5; 10])).unwrap();
    let frame_len = w.pending();
    assert_eq!(w.flush(&mut p.end(End::A)), Ok(false));
    assert_eq!(w.pending(), frame_len - 3);
    assert_eq!(p.end(End::A).write_capacity(), 0);
    assert_eq!(w.send(&Msg::Flag(None)), Err(CodecError::Busy));
}

#[test]
fn encode_and_decode_are_strict() {
    let bytes = encode(&Msg::Hello {
        name: "x".into(),
        n: 1,
    })
    .unwrap();
    assert!(decode::<Msg>(&bytes).is_ok());
    assert_eq!(
        decode::<Msg>(&bytes[..bytes.len() - 1]),
        Err(CodecError::Malformed)
    );
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(decode::<Msg>(&long), Err(CodecError::Malformed));
    assert_eq!(decode::<Msg>(&[9]), Err(CodecError::Malformed));
}
