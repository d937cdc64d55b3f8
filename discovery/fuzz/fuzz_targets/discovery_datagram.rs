//! Fuzz the whole receive path: arbitrary datagrams from arbitrary sources at
//! arbitrary times never panic and never grow a table past its cap.
#![no_main]

use dsb_discovery::{DeviceId, Discovery, DiscoveryConfig, SigningKey};
use libfuzzer_sys::fuzz_target;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint};

fuzz_target!(|data: &[u8]| {
    // SECURITY: test keys, not for production.
    let Ok(id) = DeviceId::try_from("fuzz") else {
        return;
    };
    let mut d = Discovery::new(
        DiscoveryConfig::new(id, [1; 32]),
        SigningKey::from_bytes(&[1; 32]),
        Instant::from_millis(0),
    );
    // Records: [len u8][addr 4][time delta u16][bytes...]
    let mut rest = data;
    let mut now = 0i64;
    while let [len, a, b, c, e, t0, t1, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (pkt, next) = tail.split_at(len);
        now += i64::from(u16::from_be_bytes([*t0, *t1]));
        let src = IpEndpoint::new(IpAddress::v4(*a, *b, *c, *e), 37020);
        let _ = d.handle_datagram(Instant::from_millis(now), src, pkt);
        let _ = d.poll_transmit(Instant::from_millis(now));
        assert!(d.peer_table().len() <= d.peer_table().capacity());
        assert!(d.source_limiter().len() <= d.source_limiter().capacity());
        rest = next;
    }
});
