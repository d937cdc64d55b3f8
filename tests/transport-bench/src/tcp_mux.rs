//! Our TCP path over the same link: each side runs a smoltcp interface
//! (Medium::Ip, IP MTU 1228 = a 1200-byte UDP payload plus IPv4 and UDP
//! headers, so TCP's packets carry the same wire bytes as udp-sec's and
//! QUIC's largest datagrams, MSS 1188) whose device hands packets to the link, the product `TcpTransport`
//! (Noise XK with attestation from `dsb-noise`, 2-byte framing, 16 KiB
//! plaintext per message, 64 KiB socket buffers, Nagle off, smoltcp's 10 ms
//! delayed ACK) and the mux on top. Reno is set explicitly on every TCP
//! socket (it is also smoltcp's default once `socket-tcp-reno` is enabled).
//! Goodput counts from the TCP connect (SYN) to the last byte read from the
//! mux channel, so the TCP and Noise handshakes are included.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::link::{Link, LinkConfig, Node, Sim};
use dsb_noise::{DeviceId, Identity};
use dsb_transports::mux::{Mux, Role};
use dsb_transports::sockets::SmolSockets;
use dsb_transports::tcp::{TcpConfig, TcpTransport};
use dsb_transports::transport::{ConnId, Cx, PeerAddr, Transport, TransportEvent};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use smoltcp::iface::{Config as IfaceConfig, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::CongestionControl;
use smoltcp::socket::Socket;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};

use crate::common::{self, BulkReceiver, BulkSender, Trust, DEADLINE, LEN, MAX_IP_PACKET, SERVICE};

const PORT: u16 = 37021;
/// Mux bytes moved into the transport per call (one Noise message at most).
const PUMP: usize = 16 * 1024;
/// Bound on drive rounds at one instant (each round polls everything once).
const MAX_ROUNDS: usize = 256;

/// IP packets between a smoltcp interface and the link.
#[derive(Default)]
struct Queue {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

struct RxToken(Vec<u8>);
struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl Device for Queue {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let p = self.rx.pop_front()?;
        Some((RxToken(p), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MAX_IP_PACKET;
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

/// One node: interface + TCP transport + mux, as a link [`Node`].
pub struct TcpMux {
    iface: Interface,
    dev: Queue,
    sockets: SocketSet<'static>,
    tcp: TcpTransport,
    trust: Trust,
    rng: ChaCha20Rng,
    conn: Option<ConnId>,
    /// The multiplexer (authenticated once the transport reports it).
    pub mux: Mux,
    deadline: Option<Instant>,
    buf: Vec<u8>,
    /// Sockets already given their congestion controller.
    configured: Vec<SocketHandle>,
}

impl TcpMux {
    fn new(id: &str, addr: Ipv4Address, role: Role, seed: u64, now: Instant) -> Self {
        let mut dev = Queue::default();
        let mut cfg = IfaceConfig::new(HardwareAddress::Ip);
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut dev, now);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(addr), 24)).unwrap();
        });
        // SECURITY: test keys, not for production.
        let identity = Rc::new(Identity::from_test_seed(id).unwrap());
        TcpMux {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            tcp: TcpTransport::new(identity, TcpConfig::default()),
            trust: Trust(None),
            rng: ChaCha20Rng::seed_from_u64(seed),
            conn: None,
            mux: Mux::new(role, common::mux_config(), now).unwrap(),
            deadline: None,
            buf: vec![0; 64 * 1024],
            configured: Vec::new(),
        }
    }

    /// Reno, explicitly, on every TCP socket the transport created since the
    /// last call (a new socket carries no data yet; switching later would
    /// reset its controller). smoltcp already defaults to Reno with the
    /// `socket-tcp-reno` feature; this makes the choice independent of that.
    fn reno(&mut self) {
        for (h, s) in self.sockets.iter_mut() {
            if let Socket::Tcp(s) = s {
                if !self.configured.contains(&h) {
                    self.configured.push(h);
                    s.set_congestion_control(CongestionControl::Reno);
                }
            }
        }
    }

    fn poll_transport(&mut self, now: Instant) {
        let mut cx = Cx {
            now,
            sockets: &mut SmolSockets::new(&mut self.iface, &mut self.sockets),
            trust: &mut self.trust,
            rng: &mut self.rng,
        };
        self.tcp.poll(&mut cx);
        self.reno();
    }

    /// Runs interface, transport and mux until nothing moves at `now`.
    fn drive(&mut self, now: Instant) {
        for _ in 0..MAX_ROUNDS {
            let r1 = self.iface.poll(now, &mut self.dev, &mut self.sockets);
            self.poll_transport(now);
            while let Some(ev) = self.tcp.poll_event() {
                match ev {
                    TransportEvent::Authenticated { conn, .. } => {
                        self.conn = Some(conn);
                        self.mux.set_authenticated(now);
                    }
                    other => panic!("tcp transport: {other:?}"),
                }
            }
            let mut moved = false;
            if let Some(conn) = self.conn {
                loop {
                    let n = self.tcp.read(conn, &mut self.buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    self.mux.handle_bytes(now, &self.buf[..n]).unwrap();
                    moved = true;
                }
                if self.mux.poll_at().is_some_and(|t| t <= now) {
                    self.mux.handle_timeout(now).unwrap();
                }
                loop {
                    let cap = self.tcp.write_capacity(conn).min(PUMP);
                    if cap == 0 {
                        break;
                    }
                    let n = self.mux.poll_transmit(&mut self.buf[..cap]);
                    if n == 0 {
                        break;
                    }
                    let w = self.tcp.write(conn, &self.buf[..n]).unwrap();
                    assert_eq!(w, n, "transport short write");
                    moved = true;
                }
                self.poll_transport(now);
            }
            let r2 = self.iface.poll(now, &mut self.dev, &mut self.sockets);
            if !moved && r1 == PollResult::None && r2 == PollResult::None {
                break;
            }
        }
        self.deadline = [
            self.iface.poll_at(now, &self.sockets),
            self.tcp.poll_at(),
            self.mux.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min();
    }
}

impl Node for TcpMux {
    fn handle_datagram(&mut self, _now: Instant, datagram: &[u8]) {
        self.dev.rx.push_back(datagram.to_vec());
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.dev.tx.is_empty() {
            self.drive(now);
        }
        let p = self.dev.tx.pop_front()?;
        buf[..p.len()].copy_from_slice(&p);
        Some(p.len())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.dev.rx.is_empty() {
            self.deadline
        } else {
            // Packets waiting: process them at once.
            Some(Instant::ZERO)
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.drive(now);
    }
}

/// One 8 MiB transfer A → B; goodput in Mbit/s (simulated time, TCP connect
/// → last byte read from the mux channel) and CPU per byte (from the connect).
pub fn goodput(loss: f64, seed: u64) -> common::Run {
    let now = Instant::from_millis(0);
    let data = common::pattern(LEN);
    let (ip_a, ip_b) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
    let mut a = TcpMux::new("bench-a", ip_a, Role::Initiator, seed ^ 0xa, now);
    let mut b = TcpMux::new("bench-b", ip_b, Role::Responder, seed ^ 0xb, now);
    let id_a = DeviceId::new("bench-a").unwrap();
    let id_b = DeviceId::new("bench-b").unwrap();
    // SECURITY: test keys, not for production.
    let bind_a = Identity::from_test_seed("bench-a").unwrap().binding();
    let bind_b = Identity::from_test_seed("bench-b").unwrap().binding();
    b.trust = Trust(Some((id_a, bind_a)));
    b.mux.register_service(SERVICE).unwrap();
    {
        let mut cx = Cx {
            now,
            sockets: &mut SmolSockets::new(&mut b.iface, &mut b.sockets),
            trust: &mut b.trust,
            rng: &mut b.rng,
        };
        b.tcp.listen(&mut cx).unwrap();
        b.reno();
    }
    let cpu0 = common::thread_cpu_ns();
    {
        let mut cx = Cx {
            now,
            sockets: &mut SmolSockets::new(&mut a.iface, &mut a.sockets),
            trust: &mut a.trust,
            rng: &mut a.rng,
        };
        let peer = PeerAddr {
            device_id: id_b,
            binding: bind_b,
            ip: ip_b,
            tcp_port: Some(PORT),
            udpsec_port: None,
        };
        a.tcp.connect(&mut cx, &peer).unwrap();
        a.reno();
    }
    a.drive(now);
    b.drive(now);
    let link = Link::new(LinkConfig::symmetric(common::ip_path(loss)), seed);
    let mut sim = Sim::new(now, a, b, link, MAX_IP_PACKET);
    let mut tx = BulkSender::new(data);
    let mut rx = BulkReceiver::default();
    let done = sim.run_until(DEADLINE, |sim| {
        tx.poll(&mut sim.a.mux);
        rx.poll(&mut sim.b.mux);
        rx.read == LEN
    });
    let cpu = common::thread_cpu_ns() - cpu0;
    assert!(
        done,
        "tcp+mux loss {loss} seed {seed}: incomplete ({} bytes)",
        rx.read
    );
    common::Run::new(rx.read, sim.now - now, cpu)
}
