//! The node runtime: discovery → dialer → handshake → identity binding →
//! multiplexed streams, on top of one [`Network`].
//!
//! Generic over the network beneath it and fed the time from outside, so the
//! image runs it over smoltcp and virtio-net, host tests run the very same
//! code over smoltcp and the simulated wire, and `dsb-host` runs it over the
//! operating system's sockets. [`Node<D>`] is the smoltcp case ([`NetStack`]
//! over the `phy::Device` `D`). The node never prints: it reports
//! [`NodeEvent`]s, and the image turns them into markers.
//!
//! One concern per module:
//! - [`discovery_io`]: the discovery socket (announces out, datagrams in);
//! - [`dialer`]: whom to dial, over which transport, retries and fallback;
//! - [`admission`]: who may open a session to us (identity, one per pair);
//! - [`sessions`]: the session table, access per session, transport
//!   events, the byte pump;
//! - `owned`: channels the node drives itself: the services it serves
//!   (`ping` echo, `sd` directory, `blob` store) and the client ends of the
//!   application's calls and transfers;
//! - `requests`: the results of those calls and transfers until collected;
//! - `api`, `api_requests`: what applications call (publish, connect,
//!   open, read, write; call, blob_put, blob_get).
//!
//! Nothing of the application is sent or delivered before both sides agree
//! that the session exists (key confirmation at the initiator, identity
//! admission at the responder).

pub mod admission;
mod api;
mod api_requests;
pub mod dialer;
pub mod discovery_io;
pub mod event;
mod owned;
mod requests;
pub mod sessions;
mod transports;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::num::NonZeroU16;

use dsb_discovery::{Discovery, DiscoveryConfig};
use dsb_noise::{DeviceId, Identity};
use dsb_transports::mux::MuxConfig;
use dsb_transports::tcp::{TcpConfig, TcpTransport};
use dsb_transports::transport::{Cx, Transport, TransportKind};
use dsb_transports::udpsec::{UdpSecConfig, UdpSecTransport};
use rand_core::CryptoRngCore;
use smoltcp::time::{Duration, Instant};

use crate::bus::blob::{BlobStore, StoreConfig};
use crate::bus::Services;
use crate::config::Transport as TransportMode;
use crate::net::{NetStack, Network};
use admission::Admission;
use dialer::Dialer;
use discovery_io::DiscoveryIo;
use event::Events;
pub use event::{
    BlobServed, BusFailure, Direction, DownReason, FallbackReason, NodeEvent, EVENT_QUEUE_CAP,
};
pub use owned::{CallId, TransferId, Transferred};
use requests::{Finished, Requests};
pub use requests::{Progress, MAX_ATTEMPTS, MAX_CALLS, MAX_TRANSFERS, RESUME_WINDOW};
pub use sessions::SessionStats;
use sessions::Sessions;
use transports::Transports;

/// Most sessions (authenticated peers) one node holds.
pub const MAX_SESSIONS: usize = 8;
/// Connections each transport holds: every session, plus room for the
/// moments two exist with one peer (simultaneous dials, a restart).
pub const MAX_CONNS: usize = MAX_SESSIONS + 2;

/// Whom this node dials on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialPolicy {
    /// The protocol's rule: dial peers whose device id is higher than ours
    /// (and peers the application asked for with `connect`).
    LowerId,
    /// Dial every peer seen, ignoring the tie-break (a tool that needs
    /// sessions at once, or a test of simultaneous dials; the image's
    /// spoofing adversary uses it too).
    Everyone,
}

/// Settings of one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// TCP session port announced and listened on.
    pub tcp_port: u16,
    /// Pinned (device id, Ed25519 device key) pairs: provisioned trust that
    /// trust-on-first-use can never override.
    pub pinned: Vec<(dsb_discovery::DeviceId, [u8; 32])>,
    /// Trust on first use: an unknown id is bound to the first device key
    /// that proves it (announce or handshake). Off: only pinned ids.
    pub tofu: bool,
    /// High half of announce sequence numbers; must grow across reboots.
    pub boot_epoch: u32,
    /// Which transport carries sessions this node opens.
    pub transport: TransportMode,
    /// udp-sec port to listen on and announce (`None`: udp-sec off).
    pub udpsec_port: Option<u16>,
    /// `auto`: a udp-sec handshake must authenticate within this, else TCP.
    pub udpsec_deadline: Duration,
    /// Congestion controller of udp-sec connections.
    pub udpsec_cc: dsb_transports::udpsec::CongestionControl,
    pub dial: DialPolicy,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub mux: MuxConfig,
    /// Caps of the blob store created when `blob` is published.
    pub blob_store: StoreConfig,
}

impl NodeConfig {
    /// TCP on `tcp_port`, udp-sec off, `auto` selection.
    pub fn new(tcp_port: u16) -> Self {
        NodeConfig {
            tcp_port,
            pinned: Vec::new(),
            tofu: true,
            boot_epoch: 0,
            transport: TransportMode::Auto,
            udpsec_port: None,
            udpsec_deadline: Duration::from_secs(2),
            udpsec_cc: dsb_transports::udpsec::CongestionControl::default(),
            dial: DialPolicy::LowerId,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
            mux: MuxConfig {
                idle_timeout: Duration::from_secs(6),
                keepalive_interval: Duration::from_secs(2),
                ..MuxConfig::default()
            },
            blob_store: StoreConfig::default(),
        }
    }
}

/// Everything that exists once the stack is up.
struct Bus {
    discovery: Discovery,
    io: DiscoveryIo,
    transports: Transports,
    dialer: Dialer,
    sessions: Sessions,
    /// Sessions the application asked to close (done on the next poll).
    closing: heapless::Vec<DeviceId, MAX_SESSIONS>,
    /// Calls and transfers of the application, and their results.
    requests: Requests,
    /// Time of the latest poll (for calls made between polls).
    last_poll: Instant,
}

/// One node: the network beneath it and, once that is up, its bus.
pub struct NodeOn<N: Network> {
    stack: N,
    identity: Rc<Identity>,
    cfg: NodeConfig,
    bus: Option<Bus>,
    events: Events,
    /// What this node publishes (announced, and enforced per session).
    services: Services,
    /// The store served under `blob` (once `blob` is published).
    store: Option<BlobStore>,
}

pub(crate) fn noise_id(id: &dsb_discovery::DeviceId) -> Option<DeviceId> {
    DeviceId::new(id.as_str()).ok()
}

/// A node on smoltcp over the `phy::Device` `D` (the image, the simulated wire).
pub type Node<D> = NodeOn<NetStack<D>>;

impl<N: Network> NodeOn<N> {
    pub fn new(stack: N, identity: Identity, cfg: NodeConfig) -> Self {
        NodeOn {
            stack,
            identity: Rc::new(identity),
            cfg,
            bus: None,
            events: Events::default(),
            services: Services::default(),
            store: None,
        }
    }

    pub fn device_id(&self) -> &DeviceId {
        self.identity.device_id()
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn stack(&self) -> &N {
        &self.stack
    }

    pub fn stack_mut(&mut self) -> &mut N {
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

    /// The transport of the session with `peer`.
    pub fn session_kind(&self, peer: &DeviceId) -> Option<TransportKind> {
        Some(self.bus.as_ref()?.sessions.get(peer)?.kind)
    }

    /// Whether this node opened the session with `peer` (Noise initiator).
    pub fn session_initiated(&self, peer: &DeviceId) -> Option<bool> {
        Some(self.bus.as_ref()?.sessions.get(peer)?.initiated)
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

    pub fn next_event(&mut self) -> Option<NodeEvent> {
        self.events.pop()
    }

    pub fn events_dropped(&self) -> u32 {
        self.events.dropped()
    }

    /// Drives the stack and, once it is up, the bus. Returns whether anything moved.
    pub fn poll(&mut self, now: Instant, rng: &mut dyn CryptoRngCore) -> bool {
        let mut moved = self.stack.poll(now);
        if self.bus.is_none() && self.stack.is_up() {
            self.start_bus(now, rng);
        }
        if self.bus.is_some() {
            self.poll_bus(now, rng);
            moved |= self.stack.poll(now);
            if let Some(bus) = self.bus.as_mut() {
                bus.io.confirm_sent(&self.stack.sockets(), &mut self.events);
            }
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
            min(b.dialer.poll_at(now));
            min(b.sessions.poll_at());
            min(b.requests.poll_at());
        }
        t
    }

    fn start_bus(&mut self, now: Instant, rng: &mut dyn CryptoRngCore) {
        let events = &mut self.events;
        let Some(cidr) = self.stack.address() else {
            return;
        };
        let mut sockets = self.stack.sockets();
        let (io, multicast) = match DiscoveryIo::open(&mut sockets, cidr) {
            Ok(x) => x,
            Err(e) => {
                events.push(NodeEvent::BusFailed(e));
                return;
            }
        };
        let id = self.identity.device_id();
        let Ok(disc_id) = dsb_discovery::DeviceId::new(id.as_bytes()) else {
            events.push(NodeEvent::BusFailed(BusFailure::DeviceId));
            return;
        };
        let mut dcfg = DiscoveryConfig::new(disc_id, self.identity.noise_static_public());
        dcfg.tcp_port = NonZeroU16::new(self.cfg.tcp_port);
        dcfg.boot_epoch = self.cfg.boot_epoch;
        dcfg.pinned = self.cfg.pinned.clone();
        dcfg.trust_on_first_use = self.cfg.tofu;
        dcfg.services = api::announced(&self.services);
        let mut discovery = Discovery::new(dcfg, self.identity.device_signing_key().clone(), now);

        let mut tcp = TcpTransport::new(
            self.identity.clone(),
            TcpConfig {
                port: self.cfg.tcp_port,
                max_conns: MAX_CONNS,
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
                    max_conns: MAX_CONNS,
                    endpoint: dsb_transports::udpsec::EndpointConfig {
                        max_connections: MAX_CONNS,
                        max_half_open: 4,
                        ..Default::default()
                    },
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
            // Nobody can reach us before we listen: an empty admission is enough here.
            let dialer = Dialer::default();
            let sessions = Sessions::new();
            let mut trust = Admission {
                now,
                local: *id,
                discovery: &mut discovery,
                dialer: &dialer,
                sessions: &sessions,
            };
            let mut cx = Cx {
                now,
                sockets: &mut sockets,
                trust: &mut trust,
                rng,
            };
            if tcp.listen(&mut cx).is_err() {
                events.push(NodeEvent::BusFailed(BusFailure::TcpListen));
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
                    events.push(NodeEvent::BusFailed(BusFailure::UdpSecListen));
                    return;
                }
                TransportMode::Auto => {
                    udpsec_event = Some(NodeEvent::UdpSecFallback {
                        peer: None,
                        reason: if udpsec_port.is_some() {
                            FallbackReason::ListenFailed
                        } else {
                            FallbackReason::Disabled
                        },
                    });
                }
                TransportMode::Tcp => {}
            }
        }
        let announced = udpsec.as_ref().and_then(|u| u.port());
        discovery.set_ports(
            now,
            NonZeroU16::new(self.cfg.tcp_port),
            announced.and_then(NonZeroU16::new),
        );
        events.push(NodeEvent::DiscoveryUp { multicast });
        if let Some(e) = udpsec_event {
            events.push(e);
        }
        self.bus = Some(Bus {
            discovery,
            io,
            transports: Transports { tcp, udpsec },
            dialer: Dialer::default(),
            sessions: Sessions::new(),
            closing: heapless::Vec::new(),
            requests: Requests::default(),
            last_poll: now,
        });
    }

    fn poll_bus(&mut self, now: Instant, rng: &mut dyn CryptoRngCore) {
        let Some(bus) = self.bus.as_mut() else { return };
        bus.last_poll = now;
        let events = &mut self.events;
        let cfg = &self.cfg;
        let local = *self.identity.device_id();
        let mut sockets = self.stack.sockets();

        // 1. Discovery: receive, expire, send what the schedule says.
        let dialer = &mut bus.dialer;
        bus.io
            .poll(now, &mut sockets, &mut bus.discovery, events, |id| {
                dialer.forget(&id)
            });

        // Calls that cannot read an inbound handshake (connect, close, read,
        // write) get a trust store that admits nobody; `poll_transports`
        // hands the transports the real admission.
        let mut cx = Cx {
            now,
            sockets: &mut sockets,
            trust: &mut dsb_noise::NoTrust,
            rng,
        };

        // 2. Dial the peers we should dial.
        bus.dialer.dial(
            &mut cx,
            &mut bus.transports,
            &bus.discovery,
            &bus.sessions,
            cfg,
            &local,
            events,
        );

        // 3. Transport I/O (inbound handshakes are admitted here) and events.
        bus.poll_transports(&mut cx, local);
        bus.dialer.expire(&mut cx, &mut bus.transports, events);
        while let Some((kind, ev)) = bus.transports.poll_event() {
            bus.sessions.on_transport_event(
                &mut cx,
                &mut bus.transports,
                &mut bus.dialer,
                &bus.discovery,
                &self.services,
                cfg,
                &local,
                kind,
                ev,
                events,
            );
        }

        // 4. Sessions: closes the application asked for and those of
        //    peers that restarted, then transport → mux → services → mux →
        //    transport.
        for peer in core::mem::take(&mut bus.closing) {
            bus.sessions
                .close(&mut cx, &mut bus.transports, &peer, events);
        }
        for peer in bus.sessions.restarted(&bus.discovery) {
            bus.sessions.close_for(
                &mut cx,
                &mut bus.transports,
                &peer,
                DownReason::PeerRestarted,
                events,
            );
        }
        bus.sessions.pump(
            &mut cx,
            &mut bus.transports,
            &mut bus.dialer,
            &self.services,
            &mut self.store,
            cfg,
            events,
        );

        // 5. Results of calls and transfers; waiting transfers start or
        //    continue (and ask the dialer for a session they need).
        let mut tell = |f: Finished| {
            events.push(match f {
                Finished::Call(id) => NodeEvent::CallDone(id),
                Finished::Transfer(id) => NodeEvent::TransferDone(id),
                Finished::Served(peer, ev) => NodeEvent::BlobServed {
                    peer,
                    what: event::BlobServed::from_event(&ev),
                },
            })
        };
        bus.requests.settle(&mut bus.sessions.done, &mut tell);
        bus.requests.resume(&mut bus.sessions, now, &mut tell);
        for peer in bus.requests.waiting_peers() {
            if bus.sessions.get(peer).is_none() {
                bus.dialer.want(*peer);
            }
        }
        bus.poll_transports(&mut cx, local);
        bus.dialer.tidy(now, cfg);
    }
}

impl Bus {
    /// Polls both transports with this node's admission as the trust store.
    fn poll_transports(&mut self, cx: &mut Cx<'_>, local: DeviceId) {
        let mut trust = Admission {
            now: cx.now,
            local,
            discovery: &mut self.discovery,
            dialer: &self.dialer,
            sessions: &self.sessions,
        };
        let mut cx = Cx {
            now: cx.now,
            sockets: &mut *cx.sockets,
            trust: &mut trust,
            rng: &mut *cx.rng,
        };
        self.transports.poll(&mut cx);
    }
}
