//! The node runtime: discovery → connect → handshake → identity binding →
//! multiplexed streams, on top of one [`NetStack`].
//!
//! Generic over smoltcp's `phy::Device` and fed the time from outside, so the
//! image runs it over virtio-net and host tests run the very same code over
//! the simulated wire. The node never prints: it reports [`NodeEvent`]s, and
//! the image turns them into markers.
//!
//! Policy:
//! - exactly one session per pair of peers: the lower device id connects; a
//!   newer session the peer opened replaces an older one (it gave that up);
//! - the transport is chosen per peer: `tcp` and `udp-sec` force theirs;
//!   `auto` uses udp-sec when the peer announces a udp-sec port and its
//!   handshake authenticates within `udpsec_deadline`, else TCP (the peer is
//!   then remembered as udp-sec-unreachable until discovery loses it);
//! - a peer is connected to only after its signed announce verified, and the
//!   handshake must authenticate exactly the keys that announce bound;
//! - nothing of the application is sent or delivered before that;
//! - a failed or lost session is retried with exponential backoff.

pub mod services;
pub mod trust;

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::num::NonZeroU16;

use dsb_discovery::{
    AnnounceError, Discovery, DiscoveryConfig, PeerEvent, ServiceName, DISCOVERY_GROUP,
    DISCOVERY_PORT,
};
use dsb_noise::{DeviceId, Identity};
use dsb_transports::mux::{Mux, MuxConfig, Role};
use dsb_transports::tcp::{TcpConfig, TcpTransport};
use dsb_transports::transport::{
    ConnId, Cx, PeerAddr, Transport, TransportError, TransportEvent, TransportKind,
};
use dsb_transports::udpsec::{UdpSecConfig, UdpSecTransport};
use rand_core::CryptoRngCore;
use smoltcp::iface::SocketHandle;
use smoltcp::phy::Device;
use smoltcp::socket::udp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

use crate::config::Transport as TransportMode;
use crate::net::{NetStack, Phase};
use services::{Client, ClientEvent, EchoServer};
use trust::PeerTrust;

/// Most sessions (authenticated peers) one node holds.
pub const MAX_SESSIONS: usize = 8;
/// Most queued node events (oldest dropped beyond this).
pub const EVENT_QUEUE_CAP: usize = 64;
/// Discovery socket: datagrams buffered each way.
pub const DISCOVERY_PACKETS: usize = 16;
/// Discovery socket: bytes buffered each way.
pub const DISCOVERY_BUFFER: usize = 8 * 1024;
/// Largest discovery datagram read (bigger ones are truncated by smoltcp's buffer and rejected).
const DATAGRAM_MAX: usize = 1500;
/// Bytes moved between transport and mux per step.
const PUMP: usize = 4096;
/// Peers remembered as udp-sec-unreachable (`auto` then uses TCP for them).
pub const MAX_UDPSEC_FAILED: usize = MAX_SESSIONS * 2;

/// How this node behaves on the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Test adversary: announces someone else's device id with its own keys
    /// and tries to connect to every peer it sees, ignoring the tie-break.
    Spoofer,
}

/// Settings of one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// TCP session port announced and listened on.
    pub tcp_port: u16,
    /// Pinned (device id, Ed25519 device key) pairs: provisioned trust that
    /// trust-on-first-use can never override.
    pub pinned: Vec<(dsb_discovery::DeviceId, [u8; 32])>,
    /// High half of announce sequence numbers; must grow across reboots.
    pub boot_epoch: u32,
    /// Bytes the self-test client moves through the bulk echo per session.
    pub bulk_bytes: u64,
    /// Bytes the self-test client pushes into the peer's slow sink (0 = skip).
    pub sink_bytes: u64,
    /// Read rate of our sink, bytes per second.
    pub sink_rate: u64,
    /// Which transport carries sessions this node opens.
    pub transport: TransportMode,
    /// udp-sec port to listen on and announce (`None`: udp-sec off).
    pub udpsec_port: Option<u16>,
    /// `auto`: a udp-sec handshake must authenticate within this, else TCP.
    pub udpsec_deadline: Duration,
    /// Bulk echo bytes per udp-sec session (instead of `bulk_bytes`).
    pub udpsec_bulk_bytes: u64,
    /// Slow-sink bytes per udp-sec session (instead of `sink_bytes`).
    pub udpsec_sink_bytes: u64,
    /// Congestion controller of udp-sec connections.
    pub udpsec_cc: dsb_transports::udpsec::CongestionControl,
    pub behaviour: Behaviour,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub mux: MuxConfig,
}

impl NodeConfig {
    /// TCP on `tcp_port`, udp-sec off, `auto` selection.
    pub fn new(tcp_port: u16) -> Self {
        NodeConfig {
            tcp_port,
            pinned: Vec::new(),
            boot_epoch: 0,
            bulk_bytes: 64 * 1024,
            sink_bytes: 0,
            sink_rate: 256 * 1024,
            transport: TransportMode::Auto,
            udpsec_port: None,
            udpsec_deadline: Duration::from_secs(2),
            udpsec_bulk_bytes: 64 * 1024,
            udpsec_sink_bytes: 0,
            udpsec_cc: dsb_transports::udpsec::CongestionControl::default(),
            behaviour: Behaviour::Honest,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
            mux: MuxConfig {
                idle_timeout: Duration::from_secs(6),
                keepalive_interval: Duration::from_secs(2),
                ..MuxConfig::default()
            },
        }
    }

    /// (bulk, sink) bytes the self-test client moves over a session of `kind`.
    pub fn load(&self, kind: TransportKind) -> (u64, u64) {
        match kind {
            TransportKind::Tcp => (self.bulk_bytes, self.sink_bytes),
            TransportKind::UdpSec => (self.udpsec_bulk_bytes, self.udpsec_sink_bytes),
        }
    }
}

/// What happened in the node, in order. The image prints these as markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// Discovery socket bound, receive path active.
    DiscoveryUp {
        multicast: bool,
    },
    /// An announce went out (`count` so far).
    AnnounceSent {
        count: u32,
    },
    PeerFound(DeviceId),
    PeerLost(DeviceId),
    /// A datagram on the discovery port was dropped.
    AnnounceIgnored(AnnounceError),
    /// The udp-sec socket is bound and accepting sessions.
    UdpSecListening {
        port: u16,
    },
    /// udp-sec is off (`peer: None`) or a peer is not reachable over it
    /// (`reason` a stable label): TCP carries the session instead.
    UdpSecFallback {
        peer: Option<DeviceId>,
        reason: &'static str,
    },
    TransportSelected {
        peer: DeviceId,
        kind: TransportKind,
    },
    SessionConnect(DeviceId),
    IdentityBound(DeviceId),
    /// The peer failed to prove the identity it claimed (or that we expected).
    IdentityMismatch(DeviceId),
    /// A handshake failed for another reason.
    HandshakeFailed {
        peer: Option<DeviceId>,
        error: TransportError,
    },
    AuthOk(DeviceId),
    /// The authenticated session runs over udp-sec.
    UdpSecSessionOk(DeviceId),
    PingOk {
        peer: DeviceId,
        kind: TransportKind,
        rtt: Duration,
    },
    MuxDataOk {
        peer: DeviceId,
        kind: TransportKind,
        bytes: u64,
    },
    /// The slow sink received everything while the writer was held back by credit.
    BackpressureOk {
        peer: DeviceId,
        kind: TransportKind,
        bytes: u64,
        blocked: u32,
        peak_buffered: usize,
    },
    /// Every self-test step completed over this session.
    SessionOk {
        peer: DeviceId,
        kind: TransportKind,
    },
    /// The session ended; `reason` is a stable label (transport or mux error).
    SessionClosed {
        peer: DeviceId,
        reason: &'static str,
    },
    /// The self-test client failed on a session.
    ServiceFailed {
        peer: DeviceId,
        what: &'static str,
    },
    /// Our own node could not start its bus layer (socket bind, listen).
    BusFailed(&'static str),
}

struct Session {
    peer: DeviceId,
    conn: ConnId,
    kind: TransportKind,
    sink_bytes: u64,
    mux: Mux,
    client: Client,
    server: EchoServer,
    ping_ok: bool,
    bulk_ok: bool,
}

struct Attempt {
    peer: DeviceId,
    kind: TransportKind,
    conn: ConnId,
    /// `auto` over udp-sec: fall back to TCP when not authenticated by then.
    deadline: Option<Instant>,
}

struct Backoff {
    peer: DeviceId,
    next: Instant,
    delay: Duration,
}

/// The transports of one node (udp-sec only when enabled).
struct Transports {
    tcp: TcpTransport,
    udpsec: Option<UdpSecTransport>,
}

impl Transports {
    fn get(&mut self, kind: TransportKind) -> Option<&mut dyn Transport> {
        match kind {
            TransportKind::Tcp => Some(&mut self.tcp),
            TransportKind::UdpSec => self.udpsec.as_mut().map(|u| u as &mut dyn Transport),
        }
    }

    fn poll(&mut self, cx: &mut Cx<'_, '_>) {
        self.tcp.poll(cx);
        if let Some(u) = self.udpsec.as_mut() {
            u.poll(cx);
        }
    }

    fn poll_event(&mut self) -> Option<(TransportKind, TransportEvent)> {
        if let Some(e) = self.tcp.poll_event() {
            return Some((TransportKind::Tcp, e));
        }
        let e = self.udpsec.as_mut()?.poll_event()?;
        Some((TransportKind::UdpSec, e))
    }

    fn poll_at(&self) -> Option<Instant> {
        let u = self.udpsec.as_ref().and_then(|u| u.poll_at());
        match (self.tcp.poll_at(), u) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Everything that exists once the stack is up.
struct Bus {
    discovery: Discovery,
    socket: SocketHandle,
    target: IpEndpoint,
    transports: Transports,
    /// Peers whose udp-sec handshake failed or timed out (`auto` uses TCP).
    udpsec_failed: Vec<DeviceId>,
    sessions: Vec<Session>,
    attempts: Vec<Attempt>,
    backoff: Vec<Backoff>,
    announces: u32,
    /// Session ids for the bulk pattern seed.
    session_counter: u32,
}

/// One node: its network stack and, once that is up, its bus.
pub struct Node<D: Device> {
    stack: NetStack<D>,
    identity: Rc<Identity>,
    cfg: NodeConfig,
    bus: Option<Bus>,
    events: VecDeque<NodeEvent>,
    events_dropped: u32,
}

fn noise_id(id: &dsb_discovery::DeviceId) -> Option<DeviceId> {
    DeviceId::new(id.as_str()).ok()
}

impl<D: Device> Node<D> {
    pub fn new(stack: NetStack<D>, identity: Identity, cfg: NodeConfig) -> Self {
        Node {
            stack,
            identity: Rc::new(identity),
            cfg,
            bus: None,
            events: VecDeque::new(),
            events_dropped: 0,
        }
    }

    pub fn device_id(&self) -> &DeviceId {
        self.identity.device_id()
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn stack(&self) -> &NetStack<D> {
        &self.stack
    }

    pub fn stack_mut(&mut self) -> &mut NetStack<D> {
        &mut self.stack
    }

    /// The discovery state, once the bus is up.
    pub fn discovery(&self) -> Option<&Discovery> {
        self.bus.as_ref().map(|b| &b.discovery)
    }

    /// Peers with an authenticated session.
    pub fn session_peers(&self) -> impl Iterator<Item = &DeviceId> {
        self.bus
            .iter()
            .flat_map(|b| b.sessions.iter().map(|s| &s.peer))
    }

    /// Most bytes the mux of the session with `peer` buffered at once (server side view).
    pub fn session_peak_buffered(&self, peer: &DeviceId) -> Option<usize> {
        let b = self.bus.as_ref()?;
        b.sessions
            .iter()
            .find(|s| s.peer == *peer)
            .map(|s| s.server.peak_buffered.max(s.client.max_buffered()))
    }

    /// The transport of the session with `peer`.
    pub fn session_kind(&self, peer: &DeviceId) -> Option<TransportKind> {
        let b = self.bus.as_ref()?;
        b.sessions.iter().find(|s| s.peer == *peer).map(|s| s.kind)
    }

    /// udp-sec counters: transport, endpoint (drops by label).
    pub fn udpsec_stats(
        &self,
    ) -> Option<(
        dsb_transports::udpsec::UdpSecStats,
        dsb_transports::udpsec::EndpointStats,
    )> {
        let u = self.bus.as_ref()?.transports.udpsec.as_ref()?;
        Some((u.stats(), *u.endpoint_stats()))
    }

    /// Mux statistics of the session with `peer`.
    pub fn session_stats(&self, peer: &DeviceId) -> Option<dsb_transports::mux::MuxStats> {
        let b = self.bus.as_ref()?;
        b.sessions
            .iter()
            .find(|s| s.peer == *peer)
            .map(|s| s.mux.stats())
    }

    pub fn next_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    pub fn events_dropped(&self) -> u32 {
        self.events_dropped
    }

    fn push(events: &mut VecDeque<NodeEvent>, dropped: &mut u32, e: NodeEvent) {
        if events.len() >= EVENT_QUEUE_CAP {
            events.pop_front();
            *dropped = dropped.saturating_add(1);
        }
        events.push_back(e);
    }

    /// Drives the stack and, once it is up, the bus. Returns whether anything moved.
    pub fn poll(&mut self, now: Instant, rng: &mut dyn CryptoRngCore) -> bool {
        let mut moved = self.stack.poll(now);
        if self.bus.is_none() && self.stack.phase() == Phase::Up {
            self.start_bus(now, rng);
        }
        if self.bus.is_some() {
            self.poll_bus(now, rng);
            moved |= self.stack.poll(now);
        }
        moved
    }

    /// When `poll` must run again at the latest.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let mut t = self.stack.poll_at(now);
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if let Some(b) = &self.bus {
            min(Some(b.discovery.poll_at()));
            min(b.transports.poll_at());
            for a in &b.attempts {
                min(a.deadline);
            }
            for s in &b.sessions {
                min(s.mux.poll_at());
            }
            for k in &b.backoff {
                min(Some(k.next));
            }
        }
        t
    }

    fn start_bus(&mut self, now: Instant, rng: &mut dyn CryptoRngCore) {
        let (events, dropped) = (&mut self.events, &mut self.events_dropped);
        let Some(lease) = self.stack.lease() else {
            return;
        };
        let (iface, sockets) = self.stack.iface_and_sockets();

        let mut sock = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; DISCOVERY_PACKETS],
                vec![0; DISCOVERY_BUFFER],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; DISCOVERY_PACKETS],
                vec![0; DISCOVERY_BUFFER],
            ),
        );
        if sock.bind(DISCOVERY_PORT).is_err() {
            Self::push(events, dropped, NodeEvent::BusFailed("discovery bind"));
            return;
        }
        let socket = sockets.add(sock);
        let group = Ipv4Address::from(DISCOVERY_GROUP);
        let multicast = iface.join_multicast_group(group).is_ok();
        let target_ip = if multicast {
            group
        } else {
            lease.cidr.broadcast().unwrap_or(Ipv4Address::BROADCAST)
        };

        let id = self.identity.device_id();
        let Ok(disc_id) = dsb_discovery::DeviceId::new(id.as_bytes()) else {
            Self::push(events, dropped, NodeEvent::BusFailed("device id"));
            return;
        };
        let mut dcfg = DiscoveryConfig::new(disc_id, self.identity.noise_static_public());
        dcfg.tcp_port = NonZeroU16::new(self.cfg.tcp_port);
        dcfg.boot_epoch = self.cfg.boot_epoch;
        dcfg.pinned = self.cfg.pinned.clone();
        for name in [services::PING_SERVICE, services::BULK_SERVICE] {
            if let Ok(n) = ServiceName::new(name.as_bytes()) {
                let _ = dcfg.services.push(n);
            }
        }
        let discovery = Discovery::new(dcfg, self.identity.device_signing_key().clone(), now);

        let mut tcp = TcpTransport::new(
            self.identity.clone(),
            TcpConfig {
                port: self.cfg.tcp_port,
                ..TcpConfig::default()
            },
        );
        let udpsec_port = match self.cfg.transport {
            TransportMode::Tcp => None,
            TransportMode::Auto | TransportMode::UdpSec => self.cfg.udpsec_port,
        };
        let mut udpsec = udpsec_port.map(|port| {
            UdpSecTransport::new(
                self.identity.clone(),
                UdpSecConfig {
                    port,
                    conn: dsb_transports::udpsec::Config {
                        congestion: self.cfg.udpsec_cc,
                        ..Default::default()
                    },
                    ..UdpSecConfig::default()
                },
            )
        });
        let mut udpsec_event = None;
        {
            let trust = PeerTrust(&discovery);
            let mut cx = Cx {
                now,
                iface,
                sockets,
                trust: &trust,
                rng,
            };
            if tcp.listen(&mut cx).is_err() {
                Self::push(events, dropped, NodeEvent::BusFailed("tcp listen"));
                return;
            }
            if let (Some(u), Some(port)) = (udpsec.as_mut(), udpsec_port) {
                if u.listen(&mut cx).is_ok() {
                    udpsec_event = Some(NodeEvent::UdpSecListening { port });
                } else {
                    udpsec = None;
                }
            }
        }
        if udpsec.is_none() {
            match self.cfg.transport {
                TransportMode::UdpSec => {
                    Self::push(events, dropped, NodeEvent::BusFailed("udp-sec listen"));
                    return;
                }
                TransportMode::Auto => {
                    udpsec_event = Some(NodeEvent::UdpSecFallback {
                        peer: None,
                        reason: if udpsec_port.is_some() {
                            "listen-failed"
                        } else {
                            "disabled"
                        },
                    });
                }
                TransportMode::Tcp => {}
            }
        }
        let mut discovery = discovery;
        let announced = udpsec.as_ref().and_then(|u| u.port());
        discovery.set_ports(
            now,
            NonZeroU16::new(self.cfg.tcp_port),
            announced.and_then(NonZeroU16::new),
        );
        Self::push(events, dropped, NodeEvent::DiscoveryUp { multicast });
        if let Some(e) = udpsec_event {
            Self::push(events, dropped, e);
        }
        self.bus = Some(Bus {
            discovery,
            socket,
            target: IpEndpoint::new(IpAddress::Ipv4(target_ip), DISCOVERY_PORT),
            transports: Transports { tcp, udpsec },
            udpsec_failed: Vec::new(),
            sessions: Vec::new(),
            attempts: Vec::new(),
            backoff: Vec::new(),
            announces: 0,
            session_counter: 0,
        });
    }

    fn poll_bus(&mut self, now: Instant, rng: &mut dyn CryptoRngCore) {
        let Some(bus) = self.bus.as_mut() else { return };
        let (iface, sockets) = self.stack.iface_and_sockets();
        let events = &mut self.events;
        let dropped = &mut self.events_dropped;
        let cfg = &self.cfg;
        let local = *self.identity.device_id();

        // 1. Discovery: receive, then send what the schedule says.
        {
            let sock = sockets.get_mut::<udp::Socket>(bus.socket);
            let mut buf = [0u8; DATAGRAM_MAX];
            while let Ok((data, meta)) = sock.recv() {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                match bus.discovery.handle_datagram(now, meta.endpoint, &buf[..n]) {
                    Ok(Some(PeerEvent::Found(id))) => {
                        if let Some(id) = noise_id(&id) {
                            Self::push(events, dropped, NodeEvent::PeerFound(id));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => Self::push(events, dropped, NodeEvent::AnnounceIgnored(e)),
                }
            }
            while let Some(bytes) = bus.discovery.poll_transmit(now) {
                if sock.send_slice(&bytes, bus.target).is_ok() {
                    bus.announces = bus.announces.saturating_add(1);
                    Self::push(
                        events,
                        dropped,
                        NodeEvent::AnnounceSent {
                            count: bus.announces,
                        },
                    );
                }
            }
        }
        bus.discovery.expire(now);
        while let Some(ev) = bus.discovery.poll_event() {
            match ev {
                PeerEvent::Found(id) => {
                    if let Some(id) = noise_id(&id) {
                        Self::push(events, dropped, NodeEvent::PeerFound(id));
                    }
                }
                PeerEvent::Lost(id, _) => {
                    if let Some(id) = noise_id(&id) {
                        bus.udpsec_failed.retain(|p| *p != id);
                        Self::push(events, dropped, NodeEvent::PeerLost(id));
                    }
                }
                PeerEvent::Updated(_) => {}
            }
        }

        // 2. Connect to peers we should connect to, over the transport chosen for each.
        let mut to_connect: Vec<(PeerAddr, TransportKind)> = Vec::new();
        for p in bus.discovery.peers() {
            let Some(peer) = noise_id(&p.device_id) else {
                continue;
            };
            let we_connect = match cfg.behaviour {
                Behaviour::Honest => local.as_bytes() < peer.as_bytes(),
                Behaviour::Spoofer => true,
            };
            if !we_connect
                || bus.sessions.iter().any(|s| s.peer == peer)
                || bus.attempts.iter().any(|a| a.peer == peer)
                || bus.backoff.iter().any(|b| b.peer == peer && b.next > now)
                || bus.sessions.len() + bus.attempts.len() >= MAX_SESSIONS
            {
                continue;
            }
            let IpAddress::Ipv4(ip) = p.addr;
            let addr = PeerAddr {
                device_id: peer,
                binding: dsb_noise::Binding {
                    device_key: p.device_key.to_bytes(),
                    noise_static: p.noise_static,
                },
                ip,
                tcp_port: p.tcp_port.map(NonZeroU16::get),
                udpsec_port: p.udp_sec_port.map(NonZeroU16::get),
            };
            let kind = match cfg.transport {
                TransportMode::Tcp => TransportKind::Tcp,
                TransportMode::UdpSec => TransportKind::UdpSec,
                TransportMode::Auto => {
                    let usable = bus.transports.udpsec.is_some()
                        && addr.udpsec_port.is_some()
                        && !bus.udpsec_failed.contains(&peer);
                    if usable {
                        TransportKind::UdpSec
                    } else {
                        if bus.transports.udpsec.is_some() && addr.udpsec_port.is_none() {
                            Self::push(
                                events,
                                dropped,
                                NodeEvent::UdpSecFallback {
                                    peer: Some(peer),
                                    reason: "not-offered",
                                },
                            );
                        }
                        TransportKind::Tcp
                    }
                }
            };
            to_connect.push((addr, kind));
        }
        let trust = PeerTrust(&bus.discovery);
        let mut cx = Cx {
            now,
            iface,
            sockets,
            trust: &trust,
            rng,
        };
        for (peer, kind) in to_connect {
            Self::push(
                events,
                dropped,
                NodeEvent::TransportSelected {
                    peer: peer.device_id,
                    kind,
                },
            );
            Self::push(events, dropped, NodeEvent::SessionConnect(peer.device_id));
            let started = match bus.transports.get(kind) {
                Some(t) => t.connect(&mut cx, &peer),
                None => Err(TransportError::NotOffered),
            };
            match started {
                Ok(conn) => bus.attempts.push(Attempt {
                    peer: peer.device_id,
                    kind,
                    conn,
                    deadline: (kind == TransportKind::UdpSec
                        && cfg.transport == TransportMode::Auto)
                        .then(|| now + cfg.udpsec_deadline),
                }),
                Err(error) => {
                    Self::push(
                        events,
                        dropped,
                        NodeEvent::HandshakeFailed {
                            peer: Some(peer.device_id),
                            error,
                        },
                    );
                    Self::back_off(&mut bus.backoff, cfg, peer.device_id, now);
                }
            }
        }

        // 3. Transport I/O and its events.
        bus.transports.poll(&mut cx);
        // `auto`: a udp-sec handshake that did not authenticate in time gives way to TCP.
        let mut i = 0;
        while i < bus.attempts.len() {
            let a = &bus.attempts[i];
            if a.deadline.is_some_and(|d| d <= now) {
                let a = bus.attempts.swap_remove(i);
                if let Some(t) = bus.transports.get(a.kind) {
                    t.close(&mut cx, a.conn);
                }
                Self::udpsec_failed(&mut bus.udpsec_failed, a.peer);
                Self::push(
                    events,
                    dropped,
                    NodeEvent::UdpSecFallback {
                        peer: Some(a.peer),
                        reason: "timeout",
                    },
                );
                continue;
            }
            i += 1;
        }
        while let Some((kind, ev)) = bus.transports.poll_event() {
            match ev {
                TransportEvent::Authenticated { conn, peer } => {
                    let initiated = bus
                        .attempts
                        .iter()
                        .any(|a| a.kind == kind && a.conn == conn);
                    bus.attempts.retain(|a| !(a.kind == kind && a.conn == conn));
                    if !initiated {
                        // The peer opened a new session: it gave up any older one.
                        if let Some(pos) = bus.sessions.iter().position(|s| s.peer == peer) {
                            let old = bus.sessions.swap_remove(pos);
                            if let Some(t) = bus.transports.get(old.kind) {
                                t.close(&mut cx, old.conn);
                            }
                            Self::push(
                                events,
                                dropped,
                                NodeEvent::SessionClosed {
                                    peer,
                                    reason: "superseded",
                                },
                            );
                        }
                    }
                    if bus.sessions.iter().any(|s| s.peer == peer)
                        || bus.sessions.len() >= MAX_SESSIONS
                    {
                        if let Some(t) = bus.transports.get(kind) {
                            t.close(&mut cx, conn);
                        }
                        continue;
                    }
                    if !initiated {
                        Self::push(events, dropped, NodeEvent::TransportSelected { peer, kind });
                        let peer_offers_udpsec = bus.discovery.peers().any(|p| {
                            noise_id(&p.device_id) == Some(peer) && p.udp_sec_port.is_some()
                        });
                        if kind == TransportKind::Tcp
                            && cfg.transport == TransportMode::Auto
                            && bus.transports.udpsec.is_some()
                            && peer_offers_udpsec
                        {
                            // Both sides could run udp-sec; the peer fell back to TCP.
                            Self::push(
                                events,
                                dropped,
                                NodeEvent::UdpSecFallback {
                                    peer: Some(peer),
                                    reason: "peer-chose-tcp",
                                },
                            );
                        }
                    }
                    Self::push(events, dropped, NodeEvent::IdentityBound(peer));
                    let role = if initiated {
                        Role::Initiator
                    } else {
                        Role::Responder
                    };
                    let Ok(mut mux) = Mux::new(role, cfg.mux, now) else {
                        if let Some(t) = bus.transports.get(kind) {
                            t.close(&mut cx, conn);
                        }
                        Self::push(events, dropped, NodeEvent::BusFailed("mux config"));
                        continue;
                    };
                    mux.set_authenticated(now);
                    if EchoServer::register(&mut mux).is_err() {
                        if let Some(t) = bus.transports.get(kind) {
                            t.close(&mut cx, conn);
                        }
                        continue;
                    }
                    Self::push(events, dropped, NodeEvent::AuthOk(peer));
                    if kind == TransportKind::UdpSec {
                        Self::push(events, dropped, NodeEvent::UdpSecSessionOk(peer));
                    }
                    bus.backoff.retain(|b| b.peer != peer);
                    bus.session_counter = bus.session_counter.wrapping_add(1);
                    let seed = bus.session_counter ^ u32::from(local.as_bytes()[0]) << 24;
                    let (bulk_bytes, sink_bytes) = cfg.load(kind);
                    bus.sessions.push(Session {
                        peer,
                        conn,
                        kind,
                        sink_bytes,
                        mux,
                        client: Client::new(bulk_bytes, sink_bytes, seed),
                        server: EchoServer::new(cfg.sink_rate),
                        ping_ok: false,
                        bulk_ok: false,
                    });
                }
                TransportEvent::HandshakeFailed {
                    conn,
                    claimed,
                    error,
                } => {
                    let expected = bus
                        .attempts
                        .iter()
                        .find(|a| a.kind == kind && a.conn == conn)
                        .map(|a| a.peer);
                    bus.attempts.retain(|a| !(a.kind == kind && a.conn == conn));
                    let peer = expected.or(claimed);
                    if error.is_identity_mismatch() {
                        if let Some(p) = peer {
                            Self::push(events, dropped, NodeEvent::IdentityMismatch(p));
                        }
                    } else {
                        Self::push(events, dropped, NodeEvent::HandshakeFailed { peer, error });
                    }
                    let Some(p) = expected else {
                        continue;
                    };
                    if kind == TransportKind::UdpSec
                        && cfg.transport == TransportMode::Auto
                        && !error.is_identity_failure()
                    {
                        // Not an identity problem: try TCP right away.
                        Self::udpsec_failed(&mut bus.udpsec_failed, p);
                        Self::push(
                            events,
                            dropped,
                            NodeEvent::UdpSecFallback {
                                peer: Some(p),
                                reason: error.label(),
                            },
                        );
                    } else {
                        Self::back_off(&mut bus.backoff, cfg, p, now);
                    }
                }
                TransportEvent::Closed { conn, error } => {
                    if let Some(pos) = bus
                        .sessions
                        .iter()
                        .position(|s| s.kind == kind && s.conn == conn)
                    {
                        let s = bus.sessions.swap_remove(pos);
                        let reason = error.map_or("closed", |e| e.label());
                        Self::push(
                            events,
                            dropped,
                            NodeEvent::SessionClosed {
                                peer: s.peer,
                                reason,
                            },
                        );
                        Self::back_off(&mut bus.backoff, cfg, s.peer, now);
                    }
                }
            }
        }

        // 4. Sessions: transport → mux → services → mux → transport.
        let mut closing: Vec<(TransportKind, ConnId, DeviceId, &'static str)> = Vec::new();
        let mut buf = [0u8; PUMP];
        for s in bus.sessions.iter_mut() {
            let Some(transport) = bus.transports.get(s.kind) else {
                closing.push((s.kind, s.conn, s.peer, "no-transport"));
                continue;
            };
            let mut failed: Option<&'static str> = None;
            loop {
                match transport.read(s.conn, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Err(e) = s.mux.handle_bytes(now, &buf[..n]) {
                            failed = Some(e.label());
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if s.mux.poll_at().is_some_and(|t| t <= now) {
                if let Err(e) = s.mux.handle_timeout(now) {
                    failed = Some(e.label());
                }
            }
            while let Some(ev) = s.mux.poll_event() {
                let _ = s.server.on_event(&mut s.mux, ev);
            }
            s.server.poll(now, &mut s.mux);
            if !s.client.is_done() {
                while let Some(ev) = s.client.poll(now, &mut s.mux) {
                    let (peer, kind) = (s.peer, s.kind);
                    match ev {
                        ClientEvent::PingOk { rtt } => {
                            s.ping_ok = true;
                            Self::push(events, dropped, NodeEvent::PingOk { peer, kind, rtt });
                        }
                        ClientEvent::BulkOk { bytes, .. } => {
                            s.bulk_ok = true;
                            Self::push(events, dropped, NodeEvent::MuxDataOk { peer, kind, bytes });
                            if s.ping_ok && s.sink_bytes == 0 {
                                Self::push(events, dropped, NodeEvent::SessionOk { peer, kind });
                            }
                        }
                        ClientEvent::BackpressureOk {
                            bytes,
                            blocked,
                            peak_buffered,
                        } => {
                            Self::push(
                                events,
                                dropped,
                                NodeEvent::BackpressureOk {
                                    peer,
                                    kind,
                                    bytes,
                                    blocked,
                                    peak_buffered,
                                },
                            );
                            if s.ping_ok && s.bulk_ok {
                                Self::push(events, dropped, NodeEvent::SessionOk { peer, kind });
                            }
                        }
                        ClientEvent::Failed(what) => {
                            Self::push(events, dropped, NodeEvent::ServiceFailed { peer, what });
                            break;
                        }
                    }
                }
            }
            // Move what the mux has to send into the transport, within its capacity.
            loop {
                let cap = transport.write_capacity(s.conn).min(PUMP);
                if cap == 0 {
                    break;
                }
                let n = s.mux.poll_transmit(&mut buf[..cap]);
                if n == 0 {
                    break;
                }
                match transport.write(s.conn, &buf[..n]) {
                    Ok(w) if w == n => {}
                    Ok(_) => {
                        failed = Some("transport-short-write");
                        break;
                    }
                    Err(e) => {
                        failed = Some(e.label());
                        break;
                    }
                }
            }
            if failed.is_none() && s.mux.is_closed() {
                failed = Some(s.mux.error().map_or("mux-closed", |e| e.label()));
            }
            if let Some(reason) = failed {
                closing.push((s.kind, s.conn, s.peer, reason));
            }
        }
        for (kind, conn, peer, reason) in closing {
            if let Some(t) = bus.transports.get(kind) {
                t.close(&mut cx, conn);
            }
            bus.sessions.retain(|s| !(s.kind == kind && s.conn == conn));
            Self::push(events, dropped, NodeEvent::SessionClosed { peer, reason });
            Self::back_off(&mut bus.backoff, cfg, peer, now);
        }
        bus.transports.poll(&mut cx);
        bus.backoff
            .retain(|b| b.next > now || b.delay < cfg.reconnect_max);
    }

    /// Remembers `peer` as not reachable over udp-sec (bounded, oldest forgotten).
    fn udpsec_failed(failed: &mut Vec<DeviceId>, peer: DeviceId) {
        if failed.contains(&peer) {
            return;
        }
        if failed.len() >= MAX_UDPSEC_FAILED {
            failed.remove(0);
        }
        failed.push(peer);
    }

    fn back_off(backoff: &mut Vec<Backoff>, cfg: &NodeConfig, peer: DeviceId, now: Instant) {
        match backoff.iter_mut().find(|b| b.peer == peer) {
            Some(b) => {
                let next = b.delay + b.delay;
                b.delay = if next > cfg.reconnect_max {
                    cfg.reconnect_max
                } else {
                    next
                };
                b.next = now + b.delay;
            }
            None => {
                if backoff.len() >= MAX_SESSIONS * 2 {
                    backoff.remove(0);
                }
                backoff.push(Backoff {
                    peer,
                    next: now + cfg.reconnect_min,
                    delay: cfg.reconnect_min,
                });
            }
        }
    }
}
