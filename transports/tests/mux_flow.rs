//! Credit-based flow control: a slow reader blocks the writer (backpressure)
//! with buffered memory under the configured caps, and the writer resumes as
//! the reader drains. Per-channel and session-wide windows both bind.

mod mux_support;

use dsb_transports::mux::{ChannelError, MuxConfig, MuxEvent};
use mux_support::*;

fn small_config() -> MuxConfig {
    MuxConfig {
        recv_window: 4096,
        session_window: 16384,
        send_buffer: 8192,
        max_pending_send: 16384,
        max_frame_payload: 1024,
        ..MuxConfig::default()
    }
}

#[test]
fn slow_reader_blocks_the_writer_then_it_resumes() {
    let cfg = small_config();
    let mut p = Pair::new(cfg, 5, &["bulk"]);
    let id = p.a.open("bulk").unwrap();
    let data = Rng::new(5).bytes(200_000);
    let mut sent = 0;
    // Write and pump without reading until the writer is blocked.
    let mut blocked = false;
    for _ in 0..1000 {
        match p.a.write(id, &data[sent..]) {
            Ok(n) => sent += n,
            Err(ChannelError::WouldBlock) => {
                if p.step().unwrap() == 0 {
                    blocked = true;
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
        p.step().unwrap();
    }
    assert!(blocked, "writer must end up blocked by credit");
    // Exactly: the receiver's window + the sender's buffer.
    assert_eq!(sent, cfg.recv_window as usize + cfg.send_buffer);
    assert_eq!(p.b.stats().recv_buffered, cfg.recv_window as usize);
    assert_eq!(p.a.stats().send_buffered, cfg.send_buffer);
    assert!(p.a.stats().buffered_bytes() <= cfg.memory_bound());
    assert!(p.b.stats().buffered_bytes() <= cfg.memory_bound());
    assert_eq!(p.a.write(id, &data[sent..]), Err(ChannelError::WouldBlock));
    assert_eq!(p.a.write_capacity(id), 0);
    events(&mut p.a);

    // Reading less than half the window grants nothing yet: still blocked.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1000];
    let n = p.b.read(id, &mut buf).unwrap();
    got.extend_from_slice(&buf[..n]);
    p.settle().unwrap();
    assert_eq!(p.a.write_capacity(id), 0);
    assert_eq!(p.b.stats().recv_buffered, cfg.recv_window as usize - 1000);

    // Draining the window lets data flow and wakes the writer.
    read_all(&mut p.b, id, &mut got, 1000);
    p.settle().unwrap();
    assert!(events(&mut p.a).contains(&MuxEvent::Writable { id }));
    assert!(p.a.write_capacity(id) > 0);

    // Finish the transfer with a slow, bounded reader and check every byte.
    let mut finished = false;
    for _ in 0..100_000 {
        write_some(&mut p.a, id, &data, &mut sent, 3000);
        if sent == data.len() && !finished {
            p.a.finish(id).unwrap();
            finished = true;
        }
        p.step().unwrap();
        let mut one = vec![0u8; 700];
        match p.b.read(id, &mut one) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&one[..n]),
            Err(ChannelError::WouldBlock) => {}
            Err(ChannelError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(p.a.stats().send_buffered <= cfg.send_buffer);
        assert!(p.b.stats().recv_buffered <= cfg.recv_window as usize);
    }
    assert!(got == data, "every byte arrives in order");
}

#[test]
fn session_window_caps_all_channels_together() {
    let cfg = MuxConfig {
        recv_window: 8192,
        session_window: 8192,
        send_buffer: 8192,
        max_pending_send: 12000,
        max_frame_payload: 1000,
        ..MuxConfig::default()
    };
    let mut p = Pair::new(cfg, 6, &["x", "y", "z"]);
    let ids = [
        p.a.open("x").unwrap(),
        p.a.open("y").unwrap(),
        p.a.open("z").unwrap(),
    ];
    let data = Rng::new(6).bytes(50_000);
    let mut sent = [0usize; 3];
    for _ in 0..200 {
        for (k, id) in ids.iter().enumerate() {
            write_some(&mut p.a, *id, &data, &mut sent[k], 5000);
        }
        p.step().unwrap();
    }
    // 3 x 8192 would fit the per-channel windows; the session window holds it to 8192.
    assert_eq!(p.b.stats().recv_buffered, 8192);
    // The sender's session-wide cap holds its buffers to 12000 (< 3 x 8192).
    assert_eq!(p.a.stats().send_buffered, 12000);
    assert_eq!(sent.iter().sum::<usize>(), 8192 + 12000);
    for id in ids {
        assert_eq!(p.a.write(id, b"more"), Err(ChannelError::WouldBlock));
    }

    // Draining one channel frees session credit for the others.
    let mut got = vec![Vec::new(); 3];
    for _ in 0..10_000 {
        for (k, id) in ids.iter().enumerate() {
            write_some(&mut p.a, *id, &data, &mut sent[k], 5000);
            if sent[k] == data.len() {
                p.a.finish(*id).unwrap();
            }
        }
        p.step().unwrap();
        for (k, id) in ids.iter().enumerate() {
            read_all(&mut p.b, *id, &mut got[k], 4000);
        }
        assert!(p.b.stats().recv_buffered <= cfg.session_window as usize);
        assert!(p.a.stats().send_buffered <= cfg.max_pending_send);
        if got.iter().all(|g| g.len() == data.len()) {
            break;
        }
    }
    for g in &got {
        assert!(*g == data);
    }
}

#[test]
fn transmit_respects_the_callers_buffer_and_frame_size() {
    let cfg = MuxConfig {
        max_frame_payload: 512,
        ..MuxConfig::default()
    };
    let mut p = Pair::new(cfg, 7, &["bulk"]);
    let id = p.open_ab("bulk");
    p.a.write(id, &[7u8; 10_000]).unwrap();
    let mut buf = [0u8; 300];
    let n = p.a.poll_transmit(&mut buf);
    assert!(n > 0 && n <= 300);
    // Every DATA frame carries at most max_frame_payload bytes.
    let mut big = vec![0u8; 65_519];
    let n = p.a.poll_transmit(&mut big);
    let mut off = 0;
    while off < n {
        let h = dsb_transports::mux::Header::parse(&big[off..n]).unwrap();
        assert!(usize::from(h.len) <= 512);
        off += 8 + usize::from(h.len);
    }
    assert_eq!(off, n, "only whole frames are emitted");
}

#[test]
fn a_channel_left_unread_does_not_starve_the_others() {
    let cfg = MuxConfig {
        recv_window: 6000,
        session_window: 8192,
        send_buffer: 4000,
        max_pending_send: 16384,
        max_frame_payload: 1000,
        ..MuxConfig::default()
    };
    let mut p = Pair::new(cfg, 12, &["parked", "live"]);
    let parked = p.open_ab("parked");
    let live = p.open_ab("live");
    // 6000 bytes sit unread on `parked` for the whole test.
    p.a.write(parked, &[1u8; 4000]).unwrap();
    p.settle().unwrap();
    p.a.write(parked, &[1u8; 2000]).unwrap();
    p.settle().unwrap();
    assert_eq!(p.b.readable_len(parked), 6000);
    // `live` only ever has the remaining 2192 bytes of session credit, in
    // pieces smaller than half the session window, and must still complete.
    let data = Rng::new(12).bytes(100_000);
    let (mut sent, mut got) = (0, Vec::new());
    for _ in 0..10_000 {
        write_some(&mut p.a, live, &data, &mut sent, 4000);
        p.step().unwrap();
        read_all(&mut p.b, live, &mut got, 500);
        assert_eq!(p.b.readable_len(parked), 6000);
        if got.len() == data.len() {
            break;
        }
    }
    assert!(got == data, "received {} of {}", got.len(), data.len());
}
