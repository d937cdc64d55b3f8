//! Writes the seed corpora of the transports targets into `seeds/<target>/`
//! (small, deterministic, committed): every mux frame type, mux sessions
//! opening, exchanging and closing channels, udp-sec datagrams and frames,
//! and scripted udp-sec sessions in both roles (handshake, data, acks,
//! close) plus a handshake flood.
//! Run: `cargo +nightly run --release --example seeds` in `transports/fuzz`.
//! SECURITY: test keys, not for production.

use std::fs;
use std::path::Path;

use dsb_transports::mux::Frame;
use dsb_transports::udpsec::frame::FrameWriter;
use dsb_transports::udpsec::packet::{Header, PacketType, FLAG_ACK, HEADER_LEN};
use dsb_transports_fuzz::{MuxOp, NoiseOp, UdpOp};

fn frame(f: Frame) -> Vec<u8> {
    let mut out = vec![0u8; f.buffer_len()];
    let n = f.emit(&mut out).expect("fits");
    out.truncate(n);
    out
}

fn frames(build: impl FnOnce(&mut FrameWriter)) -> Vec<u8> {
    let mut buf = vec![0u8; 1200];
    let mut w = FrameWriter::new(&mut buf);
    build(&mut w);
    let n = w.len();
    buf.truncate(n);
    buf
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(name), bytes).expect("write");
    };

    // mux_frame: one of each type.
    let all = [
        Frame::Open {
            channel: 2,
            initial_credit: 65536,
            name: b"echo",
        },
        Frame::Accept {
            channel: 1,
            initial_credit: 3000,
        },
        Frame::Data {
            channel: 2,
            payload: b"hello",
        },
        Frame::WindowUpdate {
            channel: 0,
            increment: 262_144,
        },
        Frame::Fin { channel: 2 },
        Frame::Reset {
            channel: 2,
            code: 0xff01,
        },
        Frame::Ping { opaque: 42 },
        Frame::Pong { opaque: 42 },
        Frame::GoAway { code: 0 },
    ];
    for (i, f) in all.iter().enumerate() {
        write("mux_frame", &format!("type_{}", i + 1), &frame(*f));
    }

    // mux_session: [role] ops. We are the initiator: the peer opens even ids.
    let mut s = vec![0u8];
    let mut stream = Vec::new();
    for f in [
        Frame::WindowUpdate {
            channel: 0,
            increment: 7000,
        },
        Frame::Open {
            channel: 2,
            initial_credit: 3000,
            name: b"echo",
        },
        Frame::Data {
            channel: 2,
            payload: &[0xab; 1000],
        },
        Frame::Ping { opaque: 7 },
    ] {
        stream.extend_from_slice(&frame(f));
    }
    for op in [
        MuxOp::Transmit(64), // grants the session window first
        MuxOp::Bytes(&stream),
        MuxOp::Misc(0),
        MuxOp::Read(0, 600),
        MuxOp::Open(1),
        MuxOp::Write(0, 2000),
        MuxOp::Transmit(1500),
        MuxOp::Frame {
            ty: 1,
            channel: 1,
            value: 3000,
            extra: 0,
            cut: 3,
        },
        MuxOp::Frame {
            ty: 2,
            channel: 2,
            value: 0,
            extra: 9,
            cut: 100,
        },
        MuxOp::Frame {
            ty: 4,
            channel: 2,
            value: 0,
            extra: 0,
            cut: 0,
        },
        MuxOp::Write(1, 4000),
        MuxOp::Transmit(16 * 1024),
        MuxOp::Frame {
            ty: 3,
            channel: 1,
            value: 5000,
            extra: 0,
            cut: 8,
        },
        MuxOp::Finish(1),
        MuxOp::Transmit(16 * 1024),
        MuxOp::Time(10_500),
        MuxOp::Transmit(64),
        MuxOp::Frame {
            ty: 7,
            channel: 0,
            value: 1,
            extra: 0,
            cut: 0,
        },
        MuxOp::Misc(0),
        MuxOp::Reset(0, 5),
        MuxOp::Transmit(100),
    ] {
        op.write(&mut s);
    }
    write("mux_session", "echo_exchange", &s);
    // Refusals and caps: opens for unknown and known services, many channels.
    let mut s = vec![1u8];
    for op in [
        MuxOp::Transmit(64),
        MuxOp::Open(0),
        MuxOp::Open(1),
        MuxOp::Transmit(256),
    ] {
        op.write(&mut s);
    }
    for (ch, name) in [(1u8, 0u8), (3, 1), (5, 2), (7, 3), (9, 0)] {
        MuxOp::Frame {
            ty: 0,
            channel: ch,
            value: 3000,
            extra: name,
            cut: 0,
        }
        .write(&mut s);
    }
    for op in [
        MuxOp::Transmit(4096),
        MuxOp::Misc(0),
        MuxOp::Misc(2),
        MuxOp::Transmit(64),
    ] {
        op.write(&mut s);
    }
    write("mux_session", "refusals_and_close", &s);
    let mut s = vec![0u8];
    MuxOp::Frame {
        ty: 8,
        channel: 0,
        value: 0,
        extra: 0,
        cut: 0,
    }
    .write(&mut s);
    MuxOp::Transmit(64).write(&mut s);
    write("mux_session", "goaway", &s);

    // udpsec_packet: handshake and data datagrams, frames alone.
    let all_frames = frames(|w| {
        w.ping();
        w.ack(5, [(10u32, 8u32), (5, 1)].into_iter());
        w.stream(0, b"hello");
        w.max_data(128 * 1024);
        w.close(0, "done");
    });
    let datagram = |typ: PacketType, flags: u8, pn: u32, payload: &[u8]| {
        let h = Header {
            typ,
            flags,
            session_id: 0x0102_0304_0506_0708,
            pn,
            ack: if flags != 0 { 3 } else { 0 },
            ack_bits: if flags != 0 { 5 } else { 0 },
            len: payload.len() as u16,
        };
        let mut d = vec![0u8; HEADER_LEN];
        h.emit(&mut d);
        d.extend_from_slice(payload);
        d
    };
    let mut plain_and_tag = all_frames.clone();
    plain_and_tag.extend_from_slice(&[0; 16]);
    write(
        "udpsec_packet",
        "data",
        &datagram(PacketType::Data, FLAG_ACK, 9, &plain_and_tag),
    );
    write(
        "udpsec_packet",
        "hs_init",
        &datagram(PacketType::HsInit, 0, 0, &[1; 48]),
    );
    write("udpsec_packet", "frames", &all_frames);

    // udpsec_endpoint: [flags] ops.
    // We are the responder for SIDS[0]; the peer's packets use I2R (key bit 0 = 0).
    let hello = frames(|w| {
        w.stream(0, b"hello");
        w.ping();
    });
    let ack0 = frames(|w| {
        w.ack(0, [(1u32, 0u32)].into_iter());
    });
    let more = frames(|w| {
        w.stream(5, &[7; 900]);
        w.max_data(256 * 1024);
    });
    let close = frames(|w| {
        w.close(0, "bye");
    });
    let mut s = vec![0u8];
    for op in [
        UdpOp::Hs {
            src: 1,
            sid: 0,
            typ: 0,
            fill: 1,
            len: 7,
        },
        UdpOp::Transmit(4),
        UdpOp::Hs {
            src: 1,
            sid: 0,
            typ: 2,
            fill: 3,
            len: 7,
        },
        UdpOp::Transmit(4),
        UdpOp::Data {
            src: 1,
            sid: 0,
            key: 0,
            pn: 0,
            ack: 0,
            ack_bits: 0,
            frames: &hello,
        },
        UdpOp::Events,
        UdpOp::Read(0, 100),
        UdpOp::Write(0, 3000),
        UdpOp::Transmit(8),
        UdpOp::Data {
            src: 1,
            sid: 0,
            key: 2,
            pn: 1,
            ack: 1,
            ack_bits: 1,
            frames: &ack0,
        },
        UdpOp::Data {
            src: 1,
            sid: 0,
            key: 0,
            pn: 3,
            ack: 0,
            ack_bits: 0,
            frames: &more,
        },
        UdpOp::Data {
            src: 1,
            sid: 0,
            key: 0,
            pn: 3,
            ack: 0,
            ack_bits: 0,
            frames: &more,
        },
        UdpOp::Time(50),
        UdpOp::Transmit(8),
        UdpOp::Data {
            src: 1,
            sid: 0,
            key: 4,
            pn: 4,
            ack: 0,
            ack_bits: 0,
            frames: &hello,
        },
        UdpOp::Data {
            src: 1,
            sid: 0,
            key: 0,
            pn: 5,
            ack: 0,
            ack_bits: 0,
            frames: &close,
        },
        UdpOp::Events,
        UdpOp::Time(5000),
        UdpOp::Transmit(8),
        UdpOp::Close(0, 1),
    ] {
        op.write(&mut s);
    }
    write("udpsec_endpoint", "responder_session", &s);
    // We are the initiator for SIDS[1]; the peer's packets use R2I (key bit 0 = 1).
    let mut s = vec![2u8];
    for op in [
        UdpOp::Connect(1),
        UdpOp::Transmit(2),
        UdpOp::Hs {
            src: 0,
            sid: 1,
            typ: 1,
            fill: 2,
            len: 7,
        },
        UdpOp::Transmit(2),
        UdpOp::Data {
            src: 0,
            sid: 1,
            key: 1,
            pn: 0,
            ack: 0,
            ack_bits: 0,
            frames: &hello,
        },
        UdpOp::Events,
        UdpOp::Write(1, 20_000),
        UdpOp::Transmit(40),
        UdpOp::Data {
            src: 0,
            sid: 1,
            key: 3,
            pn: 1,
            ack: 3,
            ack_bits: 7,
            frames: &ack0,
        },
        UdpOp::Time(100),
        UdpOp::Transmit(40),
        UdpOp::Time(2000),
        UdpOp::Close(1, 0),
        UdpOp::Transmit(8),
        UdpOp::Time(60_000),
        UdpOp::Events,
    ] {
        op.write(&mut s);
    }
    write("udpsec_endpoint", "initiator_session", &s);
    // Handshake flood: half-open cap, connection cap, rate limits, timeouts.
    let mut s = vec![4u8];
    for i in 0..12u8 {
        UdpOp::Hs {
            src: i % 4,
            sid: i,
            typ: 0,
            fill: 1,
            len: 7,
        }
        .write(&mut s);
    }
    for op in [
        UdpOp::Connect(2),
        UdpOp::Time(3000),
        UdpOp::Transmit(10),
        UdpOp::Events,
    ] {
        op.write(&mut s);
    }
    let bad = datagram(PacketType::HsFinish, 0, 0, &[3; 8]);
    UdpOp::Raw(3, &bad).write(&mut s);
    write("udpsec_endpoint", "handshake_flood", &s);

    // udpsec_noise: [flags] ops; flags bit 0 = the peer is an impostor.
    let round = |v: &mut Vec<u8>, k: usize| {
        for _ in 0..k {
            NoiseOp::Pump(3).write(v);
            NoiseOp::Deliver {
                to_us: 1,
                at: 0,
                xor: 0,
            }
            .write(v);
            NoiseOp::Deliver {
                to_us: 1,
                at: 0,
                xor: 0,
            }
            .write(v);
            NoiseOp::Deliver {
                to_us: 0,
                at: 0,
                xor: 0,
            }
            .write(v);
            NoiseOp::Deliver {
                to_us: 0,
                at: 0,
                xor: 0,
            }
            .write(v);
        }
    };
    for (name, flags, we_connect) in [
        ("we_connect", 0u8, true),
        ("peer_connects", 0, false),
        ("impostor_connects", 1, false),
        ("we_connect_to_impostor", 1, true),
    ] {
        let mut v = vec![flags];
        if we_connect {
            NoiseOp::Connect(0).write(&mut v);
        } else {
            NoiseOp::PeerConnect(0).write(&mut v);
        }
        round(&mut v, 4);
        NoiseOp::Events.write(&mut v);
        NoiseOp::Write(0, 3000).write(&mut v);
        NoiseOp::Write(1, 2000).write(&mut v);
        round(&mut v, 3);
        NoiseOp::Read(0, 4000).write(&mut v);
        NoiseOp::Read(1, 4000).write(&mut v);
        NoiseOp::Time(200).write(&mut v);
        round(&mut v, 2);
        NoiseOp::Events.write(&mut v);
        write("udpsec_noise", name, &v);
    }
    // A corrupted and a duplicated handshake datagram, then a timeout.
    let mut v = vec![0u8];
    NoiseOp::PeerConnect(1).write(&mut v);
    NoiseOp::Pump(1).write(&mut v);
    NoiseOp::Deliver {
        to_us: 2,
        at: 40,
        xor: 0x80,
    }
    .write(&mut v);
    NoiseOp::Deliver {
        to_us: 0,
        at: 0,
        xor: 0,
    }
    .write(&mut v);
    round(&mut v, 3);
    NoiseOp::Time(11_000).write(&mut v);
    round(&mut v, 1);
    NoiseOp::Events.write(&mut v);
    write("udpsec_noise", "corrupted_then_timeout", &v);
    println!("seeds written to {}", root.display());
}
