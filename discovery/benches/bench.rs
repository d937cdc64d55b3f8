//! Discovery benchmarks: `BENCH <name> <value> <unit>` lines, medians of several runs.
//!
//! SECURITY: test keys, not for production (fixed seeds below).

use std::hint::black_box;
use std::time::Instant as Clock;

use dsb_discovery::{
    AnnounceRepr, DeviceId, Discovery, DiscoveryConfig, ServiceName, Services, SignedAnnounce,
    SigningKey,
};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint};

const RUNS: usize = 9;

/// Median time per iteration, in nanoseconds, of `iters` calls of `f` (over RUNS runs).
fn median_ns(iters: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Clock::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[RUNS / 2]
}

fn sample() -> (SigningKey, Vec<u8>) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let services: Services = ["dsoftbus.ping", "mux", "files"]
        .iter()
        .map(|s| ServiceName::try_from(*s).unwrap())
        .collect();
    let repr = AnnounceRepr {
        device_id: DeviceId::try_from("node-a").unwrap(),
        device_key: key.verifying_key().to_bytes(),
        noise_static: [0x42; 32],
        tcp_port: core::num::NonZeroU16::new(37021),
        udp_sec_port: core::num::NonZeroU16::new(37022),
        services,
        seq: 1 << 32,
    };
    let bytes = repr.to_bytes(&key).unwrap();
    (key, bytes)
}

fn main() {
    let (key, bytes) = sample();

    let parse = median_ns(20_000, || {
        black_box(SignedAnnounce::parse(black_box(&bytes)).unwrap());
    });
    println!("BENCH announce_parse_ns {parse:.0} ns");

    let parsed = SignedAnnounce::parse(&bytes).unwrap();
    let verify = median_ns(200, || {
        black_box(black_box(&parsed).verify().unwrap());
    });
    println!("BENCH announce_verify_us {:.1} us", verify / 1000.0);

    let repr = parsed.repr.clone();
    let mut buf = [0u8; dsb_discovery::MAX_ANNOUNCE_LEN];
    let sign = median_ns(200, || {
        black_box(repr.emit(&key, &mut buf).unwrap());
    });
    println!("BENCH announce_emit_us {:.1} us", sign / 1000.0);

    // A node under a flood of announces it refuses before verification
    // (replays of a known peer's older announce).
    let cfg = DiscoveryConfig::new(DeviceId::try_from("victim").unwrap(), [1; 32]);
    let mut victim = Discovery::new(
        cfg,
        SigningKey::from_bytes(&[1; 32]),
        Instant::from_millis(0),
    );
    let from = IpEndpoint::new(IpAddress::v4(10, 0, 0, 2), 37020);
    let mut newer = repr.clone();
    newer.seq += 1;
    victim
        .handle_datagram(
            Instant::from_millis(0),
            from,
            &newer.to_bytes(&key).unwrap(),
        )
        .unwrap();
    let mut t = 0i64;
    let reject = median_ns(20_000, || {
        t += 1;
        let r = victim.handle_datagram(Instant::from_micros(t), from, black_box(&bytes));
        black_box(r.unwrap_err());
    });
    println!("BENCH discovery_reject_ns {reject:.0} ns");
}
