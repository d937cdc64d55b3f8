//! The QUIC reference: quinn-proto 0.11 (sans-IO) over the same link, TLS 1.3
//! via rustls + ring with a self-signed certificate. Datagrams are capped at
//! 1200 bytes (initial MTU 1200, MTU discovery off, max UDP payload 1200);
//! one unidirectional stream carries the payload; the congestion controller
//! is NewReno or Cubic with quinn's defaults.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use crate::link::{Link, LinkConfig, Node, Sim};
use bytes::BytesMut;
use quinn_proto::congestion::{ControllerFactory, CubicConfig, NewRenoConfig};
use quinn_proto::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use quinn_proto::{
    ClientConfig, Connection, ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig,
    Event, ReadError, ReadableError, ServerConfig, StreamEvent, StreamId, TransportConfig, VarInt,
    WriteError,
};
use smoltcp::time::Instant;

use crate::common::{self, DEADLINE, LEN, MAX_DATAGRAM};

/// Which congestion controller quinn runs.
#[derive(Clone, Copy, Debug)]
pub enum Cc {
    /// `NewRenoConfig::default()`.
    NewReno,
    /// `CubicConfig::default()`.
    Cubic,
}

/// Stream receive window: 2 MiB, far above the path's BDP (125 kB; ~200 kB
/// with a full queue), so flow control never limits.
const STREAM_WINDOW: u32 = 2 << 20;
/// Connection receive window and send window: 4 MiB.
const CONN_WINDOW: u32 = 4 << 20;

fn transport(cc: Cc) -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    let factory: Arc<dyn ControllerFactory + Send + Sync> = match cc {
        Cc::NewReno => Arc::new(NewRenoConfig::default()),
        Cc::Cubic => Arc::new(CubicConfig::default()),
    };
    t.initial_mtu(MAX_DATAGRAM as u16)
        .min_mtu(MAX_DATAGRAM as u16)
        .mtu_discovery_config(None)
        .congestion_controller_factory(factory)
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONN_WINDOW))
        .send_window(CONN_WINDOW as u64)
        .max_idle_timeout(None);
    Arc::new(t)
}

fn endpoint_config() -> Arc<EndpointConfig> {
    let mut c = EndpointConfig::default();
    c.max_udp_payload_size(MAX_DATAGRAM as u16).unwrap();
    Arc::new(c)
}

/// Self-signed certificate for "localhost" (server) and the client trusting it.
fn configs(cc: Cc) -> (ServerConfig, ClientConfig) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let mut server = ServerConfig::with_single_cert(vec![cert.clone()], key).unwrap();
    server.transport_config(transport(cc));
    let mut roots = quinn_proto::rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client = ClientConfig::with_root_certificates(Arc::new(roots)).unwrap();
    client.transport_config(transport(cc));
    (server, client)
}

/// One quinn endpoint with at most one connection, as a link [`Node`].
pub struct QuicNode {
    endpoint: Endpoint,
    /// The connection (the server's appears with the first Initial).
    pub conn: Option<(ConnectionHandle, Connection)>,
    remote: SocketAddr,
    /// Datagrams the endpoint itself answered with.
    responses: VecDeque<Vec<u8>>,
    /// Simulated time zero as a std `Instant` (quinn's clock type).
    base: StdInstant,
    timeout: Option<Instant>,
    buf: Vec<u8>,
}

impl QuicNode {
    fn std(&self, t: Instant) -> StdInstant {
        self.base + std::time::Duration::from_micros(t.total_micros() as u64)
    }

    /// Back to simulated time, rounded up to the next µs (so that a timer
    /// never appears due before quinn considers it due).
    fn sim(&self, t: StdInstant) -> Instant {
        let ns = t.saturating_duration_since(self.base).as_nanos();
        Instant::from_micros(ns.div_ceil(1000) as i64)
    }

    /// Hands endpoint events to the endpoint and its answers back, then caches the timer.
    fn settle(&mut self) {
        if let Some((ch, conn)) = self.conn.as_mut() {
            while let Some(ev) = conn.poll_endpoint_events() {
                if let Some(back) = self.endpoint.handle_event(*ch, ev) {
                    conn.handle_event(back);
                }
            }
        }
        let t = self.conn.as_mut().and_then(|(_, c)| c.poll_timeout());
        self.timeout = t.map(|t| self.sim(t));
    }
}

impl Node for QuicNode {
    fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let t = self.std(now);
        self.buf.clear();
        let ev = self.endpoint.handle(
            t,
            self.remote,
            None,
            None,
            BytesMut::from(datagram),
            &mut self.buf,
        );
        match ev {
            Some(DatagramEvent::ConnectionEvent(_, ev)) => {
                if let Some((_, conn)) = self.conn.as_mut() {
                    conn.handle_event(ev);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                self.buf.clear();
                match self.endpoint.accept(incoming, t, &mut self.buf, None) {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => {
                        if let Some(tr) = e.response {
                            self.responses.push_back(self.buf[..tr.size].to_vec());
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(tr)) => {
                self.responses.push_back(self.buf[..tr.size].to_vec());
            }
            None => {}
        }
        self.settle();
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if let Some(d) = self.responses.pop_front() {
            out[..d.len()].copy_from_slice(&d);
            return Some(d.len());
        }
        let t = self.std(now);
        self.buf.clear();
        // One datagram per call (no GSO batches): the link sees each on its own.
        let tr = self
            .conn
            .as_mut()
            .and_then(|(_, c)| c.poll_transmit(t, 1, &mut self.buf));
        let n = tr.map(|tr| {
            out[..tr.size].copy_from_slice(&self.buf[..tr.size]);
            tr.size
        });
        self.settle();
        n
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timeout
    }

    fn handle_timeout(&mut self, now: Instant) {
        let t = self.std(now);
        if let Some((_, c)) = self.conn.as_mut() {
            c.handle_timeout(t);
        }
        self.settle();
    }
}

fn node(endpoint: Endpoint, remote: SocketAddr, base: StdInstant) -> QuicNode {
    QuicNode {
        endpoint,
        conn: None,
        remote,
        responses: VecDeque::new(),
        base,
        timeout: None,
        buf: Vec::with_capacity(MAX_DATAGRAM),
    }
}

/// Client side: opens one unidirectional stream once connected and writes the payload.
struct Sender {
    data: Vec<u8>,
    stream: Option<StreamId>,
    written: usize,
}

impl Sender {
    fn poll(&mut self, conn: &mut Connection) {
        while let Some(ev) = conn.poll() {
            if let Event::ConnectionLost { reason } = ev {
                panic!("client lost the connection: {reason}");
            }
        }
        if conn.is_handshaking() {
            return;
        }
        let id = match self.stream {
            Some(id) => id,
            None => match conn.streams().open(Dir::Uni) {
                Some(id) => {
                    self.stream = Some(id);
                    id
                }
                None => return,
            },
        };
        while self.written < self.data.len() {
            match conn.send_stream(id).write(&self.data[self.written..]) {
                Ok(n) => self.written += n,
                Err(WriteError::Blocked) => break,
                Err(e) => panic!("quinn write: {e}"),
            }
        }
        if self.written == self.data.len() {
            let _ = conn.send_stream(id).finish();
        }
    }
}

/// Server side: accepts the stream and reads (checking) every byte.
#[derive(Default)]
struct Receiver {
    stream: Option<StreamId>,
    read: usize,
}

impl Receiver {
    fn poll(&mut self, conn: &mut Connection) {
        while let Some(ev) = conn.poll() {
            match ev {
                Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) if self.stream.is_none() => {
                    self.stream = conn.streams().accept(Dir::Uni);
                }
                Event::ConnectionLost { reason } => panic!("server lost the connection: {reason}"),
                _ => {}
            }
        }
        let Some(id) = self.stream else { return };
        let mut rs = conn.recv_stream(id);
        let mut chunks = match rs.read(true) {
            Ok(c) => c,
            Err(ReadableError::ClosedStream) => return,
            Err(e) => panic!("quinn read: {e}"),
        };
        loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => {
                    for (k, &b) in chunk.bytes.iter().enumerate() {
                        assert_eq!(
                            b,
                            common::pattern_byte((self.read + k) as u64),
                            "quic stream corrupted at {}",
                            self.read + k
                        );
                    }
                    self.read += chunk.bytes.len();
                }
                Ok(None) | Err(ReadError::Blocked) => break,
                Err(e) => panic!("quinn read: {e}"),
            }
        }
        let _ = chunks.finalize();
    }
}

/// One 8 MiB transfer client → server; goodput in Mbit/s (simulated time,
/// connect → last byte read) and CPU per byte (from the connect to the last
/// byte read: handshake, both endpoints, the link, the checking receiver).
pub fn goodput(cc: Cc, loss: f64, seed: u64) -> common::Run {
    let base = StdInstant::now();
    let now = Instant::from_millis(0);
    let client_addr = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000));
    let server_addr = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 4433));
    let (server_cfg, client_cfg) = configs(cc);
    let data = common::pattern(LEN);
    let mut rng_seed = [0u8; 32];
    rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
    let mut client_ep = Endpoint::new(endpoint_config(), None, false, Some(rng_seed));
    rng_seed[8] = 1;
    let server_ep = Endpoint::new(
        endpoint_config(),
        Some(Arc::new(server_cfg)),
        false,
        Some(rng_seed),
    );
    let cpu0 = common::thread_cpu_ns();
    let conn = client_ep
        .connect(base, client_cfg, server_addr, "localhost")
        .unwrap();
    let mut a = node(client_ep, server_addr, base);
    a.conn = Some(conn);
    a.settle();
    let b = node(server_ep, client_addr, base);
    let link = Link::new(LinkConfig::symmetric(common::path(loss)), seed);
    let mut sim = Sim::new(now, a, b, link, MAX_DATAGRAM);
    let mut tx = Sender {
        data,
        stream: None,
        written: 0,
    };
    let mut rx = Receiver::default();
    let verbose = common::verbose();
    let mut avg = common::TimeAvg::default();
    let mut stalls = common::Stalls::default();
    let done = sim.run_until(DEADLINE, |sim| {
        if let Some((_, c)) = sim.a.conn.as_mut() {
            if verbose {
                avg.sample(sim.now, [c.stats().path.cwnd as f64, 0.0, 0.0]);
                stalls.sample(sim.now, c.stats().path.sent_packets);
            }
            tx.poll(c);
        }
        if let Some((_, c)) = sim.b.conn.as_mut() {
            rx.poll(c);
        }
        rx.read == LEN
    });
    let cpu = common::thread_cpu_ns() - cpu0;
    assert!(
        done,
        "quic {cc:?} loss {loss} seed {seed}: incomplete ({} bytes)",
        rx.read
    );
    if verbose {
        if let Some((_, c)) = sim.a.conn.as_ref() {
            let s = c.stats();
            eprintln!(
                "    quic: sent {} lost {} congestion {} cwnd {} rtt {:?} datagrams a->b {} b->a {} (ack frames {}) avg cwnd {:.0} stalls {}",
                s.path.sent_packets,
                s.path.lost_packets,
                s.path.congestion_events,
                s.path.cwnd,
                s.path.rtt,
                sim.emitted[0],
                sim.emitted[1],
                sim.b.conn.as_ref().map_or(0, |(_, c)| c.stats().frame_tx.acks),
                avg.avg()[0],
                stalls,
            );
        }
    }
    common::Run::new(rx.read, sim.now - now, cpu)
}
