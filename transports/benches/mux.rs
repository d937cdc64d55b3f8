//! Goodput of two in-memory muxes: 16 MiB through one channel, the stream
//! moved in Noise-message-sized chunks (65519 bytes), no crypto, no network.
//! Prints `BENCH mux_mem_goodput_mbps <median> Mbit/s`.

use std::time::Instant as StdInstant;

use dsb_transports::mux::{ChannelError, Mux, MuxConfig, MuxEvent, Role, NOISE_MAX_PLAINTEXT};
use smoltcp::time::Instant;

const TOTAL: usize = 16 << 20;
const RUNS: usize = 5;

fn pump(from: &mut Mux, to: &mut Mux, buf: &mut [u8]) -> usize {
    let mut moved = 0;
    loop {
        let n = from.poll_transmit(buf);
        if n == 0 {
            return moved;
        }
        to.handle_bytes(Instant::ZERO, &buf[..n])
            .expect("honest peer");
        moved += n;
    }
}

/// Seconds to move TOTAL bytes a -> b.
fn run() -> f64 {
    let cfg = MuxConfig::default();
    let mut a = Mux::new(Role::Initiator, cfg, Instant::ZERO).unwrap();
    let mut b = Mux::new(Role::Responder, cfg, Instant::ZERO).unwrap();
    b.register_service("bulk").unwrap();
    a.set_authenticated(Instant::ZERO);
    b.set_authenticated(Instant::ZERO);
    let data: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let mut wire = vec![0u8; NOISE_MAX_PLAINTEXT];
    let mut sink = vec![0u8; 64 * 1024];
    let start = StdInstant::now();
    let id = a.open("bulk").unwrap();
    let (mut sent, mut received) = (0usize, 0usize);
    while received < TOTAL {
        while sent < TOTAL {
            let end = (sent % data.len()) + (TOTAL - sent).min(data.len() - sent % data.len());
            match a.write(id, &data[sent % data.len()..end]) {
                Ok(n) => sent += n,
                Err(ChannelError::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
        pump(&mut a, &mut b, &mut wire);
        loop {
            match b.read(id, &mut sink) {
                Ok(n) if n > 0 => received += n,
                _ => break,
            }
        }
        pump(&mut b, &mut a, &mut wire);
        while let Some(ev) = b.poll_event() {
            std::hint::black_box(ev == MuxEvent::Accepted { id });
        }
        while a.poll_event().is_some() {}
    }
    assert_eq!(received, TOTAL);
    start.elapsed().as_secs_f64()
}

fn main() {
    let mut secs: Vec<f64> = (0..RUNS).map(|_| run()).collect();
    secs.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let median = secs[RUNS / 2];
    let mbps = (TOTAL as f64 * 8.0) / median / 1e6;
    println!("BENCH mux_mem_goodput_mbps {mbps:.0} Mbit/s");
}
