//! The discovery fuzz harnesses (`announce_parse`, and the input format of
//! `discovery_datagram`, decoder and encoder, with its harness), so the
//! seed generator (`examples/seeds.rs`) writes exactly what the target reads.
//!
//! `discovery_datagram` input: one config byte, then records
//! `[kind u8][src ipv4 4][dt_ms u16 LE][body]`:
//! - kind 0, raw: `[len u16 LE][len bytes]` (a datagram as received);
//! - kind 1, signed: an announce the harness builds and signs with one of
//!   [`KEYS`] test keys (so the fuzzer produces validly signed announces and
//!   the table caps are reached), optionally with one byte flipped after
//!   signing: `[key u8][id_len u8][id][noise u8][tcp u16][udp u16][n u8]
//!   n*([len u8][name])[seq u64 LE][tamper u16 LE]`;
//! - kind 2: `forget` the id `[len u8][id]`; kind 3: poll transmit and events.
//!
//! SECURITY: test keys, not for production.

use std::num::NonZeroU16;
use std::sync::OnceLock;

use dsb_discovery::{
    AnnounceRepr, BucketConfig, DeviceId, Discovery, DiscoveryConfig, PeerEvent, ServiceName,
    Services, SignedAnnounce, SigningKey, EVENT_QUEUE_CAP, MAX_PINNED,
};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint};

/// Number of signing keys the fuzzer may choose from (index `KEYS` = our own key).
pub const KEYS: usize = 6;
/// Our own device id.
pub const LOCAL_ID: &str = "fuzz";
/// The pinned id (bound to key 0).
pub const PINNED_ID: &str = "pinned";

/// Test signing keys: seed `[i + 1; 32]`; the last one is ours.
// SECURITY: test keys, not for production.
pub fn keys() -> &'static [SigningKey; KEYS + 1] {
    static K: OnceLock<[SigningKey; KEYS + 1]> = OnceLock::new();
    K.get_or_init(|| core::array::from_fn(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])))
}

/// Maps any byte onto the name charset `[A-Za-z0-9._-]`.
pub fn name_byte(b: u8) -> u8 {
    const SET: &[u8; 65] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    SET[usize::from(b) % SET.len()]
}

#[path = "../../../tests/support/fuzz_input.rs"]
mod input;
pub use input::{put_blob, Input};

impl Input<'_> {
    /// A length-prefixed name mapped onto the charset (1..=32 bytes).
    pub fn name(&mut self) -> Option<Vec<u8>> {
        let len = usize::from(self.u8()? % 32) + 1;
        Some(self.bytes(len)?.iter().map(|&b| name_byte(b)).collect())
    }
}

/// The fields of a signed record (kind 1).
#[derive(Clone, Debug)]
pub struct SignedRecord {
    pub key: u8,
    pub id: Vec<u8>,
    pub noise: u8,
    pub tcp: u16,
    pub udp: u16,
    pub services: Vec<Vec<u8>>,
    pub seq: u64,
    pub tamper: u16,
}

/// Encoder for the seed generator.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    fn head(&mut self, kind: u8, src: [u8; 4], dt_ms: u16) {
        self.0.push(kind);
        self.0.extend_from_slice(&src);
        self.0.extend_from_slice(&dt_ms.to_le_bytes());
    }
    fn name(&mut self, n: &[u8]) {
        // Names are written so that `Input::name` reads them back unchanged.
        self.0.push((n.len() - 1) as u8);
        for &b in n {
            let i = (0u8..=255).find(|&i| name_byte(i) == b).unwrap_or(0);
            self.0.push(i);
        }
    }
    pub fn raw(&mut self, src: [u8; 4], dt_ms: u16, bytes: &[u8]) {
        self.head(0, src, dt_ms);
        self.0
            .extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        self.0.extend_from_slice(bytes);
    }
    pub fn signed(&mut self, src: [u8; 4], dt_ms: u16, r: &SignedRecord) {
        self.head(1, src, dt_ms);
        self.0.push(r.key);
        self.name(&r.id);
        self.0.push(r.noise);
        self.0.extend_from_slice(&r.tcp.to_le_bytes());
        self.0.extend_from_slice(&r.udp.to_le_bytes());
        self.0.push(r.services.len() as u8);
        for s in &r.services {
            self.name(s);
        }
        self.0.extend_from_slice(&r.seq.to_le_bytes());
        self.0.extend_from_slice(&r.tamper.to_le_bytes());
    }
    pub fn forget(&mut self, src: [u8; 4], dt_ms: u16, id: &[u8]) {
        self.head(2, src, dt_ms);
        self.name(id);
    }
    pub fn poll(&mut self, dt_ms: u16) {
        self.head(3, [0; 4], dt_ms);
    }
}

/// Builds and signs the announce of a kind-1 record (`None` if a name is invalid).
pub fn build_signed(r: &SignedRecord) -> Option<Vec<u8>> {
    let key = &keys()[usize::from(r.key) % (KEYS + 1)];
    let mut services = Services::new();
    for s in r.services.iter().take(8) {
        let name = ServiceName::new(s).ok()?;
        if !services.contains(&name) {
            services.push(name).ok()?;
        }
    }
    let repr = AnnounceRepr {
        device_id: DeviceId::new(&r.id).ok()?,
        device_key: key.verifying_key().to_bytes(),
        noise_static: [r.noise; 32],
        tcp_port: NonZeroU16::new(r.tcp),
        udp_sec_port: NonZeroU16::new(r.udp),
        services,
        seq: r.seq,
    };
    let mut bytes = repr.to_bytes(key).ok()?;
    if r.tamper != 0 {
        let at = usize::from(r.tamper) % bytes.len();
        bytes[at] ^= (r.tamper >> 8) as u8 | 1;
    }
    Some(bytes)
}

fn read_signed(inp: &mut Input<'_>) -> Option<SignedRecord> {
    let key = inp.u8()?;
    let id = inp.name()?;
    let noise = inp.u8()?;
    let tcp = inp.u16()?;
    let udp = inp.u16()?;
    let n = inp.u8()? % 9;
    let mut services = Vec::new();
    for _ in 0..n {
        services.push(inp.name()?);
    }
    let seq = inp.u64()?;
    let tamper = inp.u16()?;
    Some(SignedRecord {
        key,
        id,
        noise,
        tcp,
        udp,
        services,
        seq,
        tamper,
    })
}

/// Small caps so that every table fills up within a few records.
fn config(flags: u8) -> DiscoveryConfig {
    let id = DeviceId::try_from(LOCAL_ID).expect("constant id is valid");
    let mut c = DiscoveryConfig::new(id, [1; 32]);
    c.max_peers = 4;
    c.max_tofu_bindings = 5;
    c.max_sources = 6;
    c.trust_on_first_use = flags & 1 == 0;
    c.tofu_forget_after = (flags & 2 != 0).then(|| Duration::from_secs(6));
    c.per_source = BucketConfig {
        burst: 4,
        per_sec: 2,
    };
    c.per_device = BucketConfig {
        burst: 3,
        per_sec: 1,
    };
    c.new_devices = BucketConfig {
        burst: 4,
        per_sec: 2,
    };
    let pinned = DeviceId::try_from(PINNED_ID).expect("constant id is valid");
    c.pinned
        .push((pinned, keys()[0].verifying_key().to_bytes()));
    c
}

/// The `discovery_datagram` harness: never panics, and after every record
/// every table is within its cap and nothing unsigned was accepted.
pub fn run_datagrams(data: &[u8]) {
    let mut inp = Input(data);
    let Some(flags) = inp.u8() else { return };
    let mut d = Discovery::new(config(flags), keys()[KEYS].clone(), Instant::from_millis(0));
    let (peer_cap, src_cap) = (d.peer_table().capacity(), d.source_limiter().capacity());
    let tofu_cap = d.bindings().tofu_capacity();
    let mut now = 0i64;
    let mut buf: Vec<u8>;
    while let (Some(kind), Some(src), Some(dt)) = (inp.u8(), inp.bytes(4), inp.u16()) {
        now += i64::from(dt);
        let t = Instant::from_millis(now);
        let src = IpEndpoint::new(IpAddress::v4(src[0], src[1], src[2], src[3]), 37020);
        let pkt: Option<&[u8]> = match kind % 4 {
            0 => {
                let Some(len) = inp.u16() else { break };
                let len = usize::from(len).min(inp.0.len());
                inp.bytes(len)
            }
            1 => {
                let Some(r) = read_signed(&mut inp) else {
                    break;
                };
                buf = build_signed(&r).unwrap_or_default();
                Some(&buf[..])
            }
            2 => {
                let Some(id) = inp.name() else { break };
                if let Ok(id) = DeviceId::new(&id) {
                    d.forget(&id);
                }
                None
            }
            _ => {
                while d.poll_transmit(t).is_some() {}
                while d.poll_event().is_some() {}
                None
            }
        };
        if let Some(pkt) = pkt {
            match d.handle_datagram(t, src, pkt) {
                Ok(Some(PeerEvent::Found(id) | PeerEvent::Updated(id))) => {
                    // Only a verified announce is ever accepted, and the
                    // table then holds exactly what it said.
                    let a = SignedAnnounce::parse(pkt).expect("accepted announce parses");
                    assert!(
                        a.verify().is_ok(),
                        "accepted an announce that does not verify"
                    );
                    let p = d.peer(&id).expect("found/updated peer is in the table");
                    assert_eq!(p.seq, a.repr.seq);
                    assert_eq!(p.noise_static, a.repr.noise_static);
                }
                Ok(Some(PeerEvent::Lost(..))) => panic!("handle_datagram returned a Lost event"),
                Ok(None) | Err(_) => {}
            }
        }
        assert!(d.peer_table().len() <= peer_cap);
        assert!(d.source_limiter().len() <= src_cap);
        assert!(d.bindings().tofu_len() <= tofu_cap);
        assert!(d.bindings().pinned_len() <= MAX_PINNED);
        assert!(d.pending_events() <= EVENT_QUEUE_CAP);
    }
}

/// `announce_parse`: the parser never panics, and whatever parses re-emits
/// canonically (`emit(parse(b)) == b`, with the received signature).
pub fn run_announce_parse(data: &[u8]) {
    use dsb_discovery::{
        AnnounceError, SignedAnnounce, MAGIC, MAX_ANNOUNCE_LEN, MAX_VALID_ANNOUNCE_LEN,
        MIN_ANNOUNCE_LEN, SIGNATURE_LEN, VERSION,
    };
    match SignedAnnounce::parse(data) {
        Ok(a) => {
            assert_eq!(a.buffer_len(), data.len());
            assert!((MIN_ANNOUNCE_LEN..=MAX_VALID_ANNOUNCE_LEN).contains(&data.len()));
            assert_eq!(&a.signature[..], &data[data.len() - SIGNATURE_LEN..]);
            let mut out = [0u8; MAX_ANNOUNCE_LEN];
            let n = a.emit(&mut out).expect("a parsed announce re-emits");
            assert_eq!(&out[..n], data, "re-emission is not canonical");
            // Verification must not panic either (it almost always fails here).
            let _ = a.verify();
        }
        Err(AnnounceError::Oversized) => assert!(data.len() > MAX_ANNOUNCE_LEN),
        Err(AnnounceError::BadMagic) => assert_ne!(data.get(..4), Some(&MAGIC[..])),
        Err(AnnounceError::BadVersion) => assert_ne!(data.get(4), Some(&VERSION)),
        Err(e) => assert_eq!(e, AnnounceError::Malformed),
    }
}
