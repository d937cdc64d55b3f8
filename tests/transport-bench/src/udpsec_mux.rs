//! udp-sec with the multiplexer on top: one mux channel carries the payload
//! over one udp-sec connection. The handshake is the product one,
//! [`NoiseHandshake`] (Noise XK with attestation and identity binding from
//! `dsb-noise`, test identities), as `UdpSecTransport` runs it.

use dsb_noise::{HandshakeConfig, Identity};
use dsb_transports::mux::{Mux, Role, MAX_CONTROL_FRAME_LEN, MAX_FRAME_LEN};
use dsb_transports::udpsec::{Config, Connection, Event, NoiseHandshake};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smoltcp::time::Instant;

use crate::common::{self, BulkReceiver, BulkSender, Trust, DEADLINE, LEN, MAX_DATAGRAM, SERVICE};
use crate::link::{Link, LinkConfig, Node, Sim};

const SESSION_ID: u64 = 0x5eed_0000_0000_0001;

/// Mux bytes moved into udp-sec per step (one mux data frame and its header).
const PUMP: usize = MAX_FRAME_LEN;

/// A udp-sec connection with a mux riding on its byte stream.
pub struct UdpsecMux {
    conn: Connection<NoiseHandshake>,
    /// The multiplexer (authenticated once udp-sec reports `Connected`).
    pub mux: Mux,
    trust: Trust,
    scratch: Vec<u8>,
}

impl UdpsecMux {
    fn new(conn: Connection<NoiseHandshake>, trust: Trust, role: Role, now: Instant) -> Self {
        UdpsecMux {
            conn,
            trust,
            mux: Mux::new(role, common::mux_config(), now).unwrap(),
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Moves bytes udp-sec → mux and mux → udp-sec, the way the node does:
    /// the mux writes whole frames into at most the connection's free send
    /// buffer, so every byte it hands out is taken at once.
    fn pump(&mut self, now: Instant) {
        while let Some(e) = self.conn.poll_event() {
            if let Event::Connected { .. } = e {
                self.mux.set_authenticated(now);
            }
        }
        loop {
            let n = self.conn.read(&mut self.scratch);
            if n == 0 {
                break;
            }
            self.mux
                .handle_bytes(now, &self.scratch[..n])
                .expect("mux input");
        }
        loop {
            let cap = self.conn.send_capacity().min(PUMP);
            if cap < MAX_CONTROL_FRAME_LEN {
                break;
            }
            let n = self.mux.poll_transmit(&mut self.scratch[..cap]);
            if n == 0 {
                break;
            }
            let w = self.conn.write(&self.scratch[..n]);
            assert_eq!(w, n, "udp-sec took less than its free send buffer");
        }
    }
}

impl Node for UdpsecMux {
    fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let _ = self.conn.handle_datagram(now, datagram, &mut self.trust);
        self.pump(now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.pump(now);
        self.conn.poll_transmit(now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        [self.conn.poll_timeout(), self.mux.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }
    fn handle_timeout(&mut self, now: Instant) {
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
        if self.mux.poll_at().is_some_and(|t| t <= now) {
            self.mux.handle_timeout(now).expect("mux timer");
        }
        self.pump(now);
    }
}

/// The two test identities (A initiates, B responds). SECURITY: test keys,
/// not for production.
pub fn identities() -> (Identity, Identity) {
    (
        Identity::from_test_seed("bench-a").unwrap(),
        Identity::from_test_seed("bench-b").unwrap(),
    )
}

/// One udp-sec + mux connection A → B on the benchmark link with `loss`
/// (both ways), B serving `services`, clock at zero (connect). Nothing has
/// moved yet: the handshake runs inside `Sim::run_until`. Every benchmark on
/// udp-sec starts here, so their seeds mean the same thing.
pub fn connect(
    ids: &(Identity, Identity),
    loss: f64,
    seed: u64,
    services: &[&str],
) -> Sim<UdpsecMux, UdpsecMux> {
    let now = Instant::from_millis(0);
    let (id_a, id_b) = ids;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let hs_cfg = HandshakeConfig::default();
    let hs_i = NoiseHandshake::initiator(
        id_a,
        id_b.device_id(),
        id_b.binding(),
        &mut rng,
        now,
        &hs_cfg,
    )
    .unwrap();
    let hs_r = NoiseHandshake::responder(id_b, &mut rng, now, &hs_cfg).unwrap();
    let mut cfg = Config::default();
    if std::env::var("BENCH_UDPSEC_CC").as_deref() == Ok("reno") {
        cfg.congestion = dsb_transports::udpsec::CongestionControl::Reno;
    }
    let a = Connection::connect(cfg.clone(), SESSION_ID, hs_i, now).unwrap();
    let b = Connection::accept(cfg, SESSION_ID, hs_r, now);
    let a = UdpsecMux::new(a, Trust(None), Role::Initiator, now);
    let trust_b = Trust(Some((*id_a.device_id(), id_a.binding())));
    let mut b = UdpsecMux::new(b, trust_b, Role::Responder, now);
    for s in services {
        b.mux.register_service(s).unwrap();
    }
    let link = Link::new(LinkConfig::symmetric(common::path(loss)), seed);
    Sim::new(now, a, b, link, MAX_DATAGRAM)
}

/// One 8 MiB transfer A → B; goodput in Mbit/s (simulated time, connect →
/// last byte read) and CPU per byte (from creating the handshakes to the last
/// byte read: handshake, both endpoints, the link, the checking receiver).
pub fn goodput(loss: f64, seed: u64) -> common::Run {
    let now = Instant::from_millis(0);
    let data = common::pattern(LEN);
    let ids = identities();
    let cpu0 = common::thread_cpu_ns();
    let mut sim = connect(&ids, loss, seed, &[SERVICE]);
    let mut tx = BulkSender::new(data);
    let mut rx = BulkReceiver::default();
    let verbose = common::verbose();
    let mut avg = common::TimeAvg::default();
    let mut stalls = common::Stalls::default();
    let done = sim.run_until(DEADLINE, |sim| {
        if verbose {
            let st = sim.a.conn.stats();
            stalls.sample(sim.now, st.packets_sent);
            avg.sample(
                sim.now,
                [
                    st.cwnd as f64,
                    st.bytes_in_flight as f64,
                    f64::from(u8::from(st.app_limited)),
                ],
            );
        }
        tx.poll(&mut sim.a.mux);
        rx.poll(&mut sim.b.mux);
        rx.read == LEN
    });
    let cpu = common::thread_cpu_ns() - cpu0;
    assert!(
        done,
        "udp-sec+mux loss {loss} seed {seed}: incomplete ({} bytes)",
        rx.read
    );
    if verbose {
        let s = sim.a.conn.stats();
        eprintln!(
            "    udp-sec: sent {} lost {} congestion {} tlp {} rto {} retx bytes {} cwnd {} srtt {} datagrams a->b {} b->a {} (ack-only {}, immediate-ack asked {}) avg cwnd {:.0} inflight {:.0} app-limited {:.3} stalls {}",
            s.packets_sent,
            s.packets_lost,
            s.congestion_events,
            s.tlp_count,
            s.rto_count,
            s.stream_bytes_retransmitted,
            s.cwnd,
            s.srtt,
            sim.emitted[0],
            sim.emitted[1],
            sim.b.conn.stats().acks_sent,
            s.immediate_acks_requested,
            avg.avg()[0],
            avg.avg()[1],
            avg.avg()[2],
            stalls,
        );
    }
    common::Run::new(rx.read, sim.now - now, cpu)
}
