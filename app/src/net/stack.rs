//! One node's network stack: a smoltcp `Interface` + `SocketSet` over any
//! `phy::Device`, with DHCPv4 and an ICMP echo to the gateway as a small state
//! machine that reports [`NetEvent`]s.
//!
//! Addressing: DHCP first. With [`NetStackConfig::fallback`] set, a stack that
//! got no lease by `dhcp_timeout` takes that static address instead of failing
//! ([`NetEvent::StaticFallback`]), stops DHCP, and is up at once (there is no
//! gateway to ping). [`static_fallback_for`] is the collision-free rule the
//! image uses for the MACs QEMU setups hand out. With
//! [`GatewayPing::Optional`], a leased stack is up at once and the gateway
//! echo runs as a self-test beside it: a silent gateway is
//! [`NetEvent::GatewayUnreachable`], not a failure.
//!
//! Time is always passed in. Call [`NetStack::poll`] whenever the device may have
//! frames or [`NetStack::poll_at`] is reached, then drain [`NetStack::next_event`].
//! Other layers add their own sockets through [`NetStack::sockets_mut`].

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{Config as IfaceConfig, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::{dhcpv4, icmp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr,
};

use super::guard::{GuardStats, LinkGuard};
use super::ping::{PingInput, Pinger};

/// Queued events beyond this are dropped (oldest first) and counted.
pub const EVENT_QUEUE_CAP: usize = 16;
/// ICMP socket: packets buffered each way.
pub const ICMP_PACKETS: usize = 4;
/// ICMP socket: payload bytes buffered each way.
pub const ICMP_BUFFER_BYTES: usize = 512;
/// smoltcp DHCP: DISCOVER and first REQUEST are re-sent after this long.
pub const DHCP_RETRY: Duration = Duration::from_millis(1000);

/// Whether the stack needs the gateway's echo reply before it is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayPing {
    /// Up only after the echo reply; no reply in time is [`StackFailure::PingTimeout`].
    Required,
    /// Up as soon as the address is applied; the echo is a self-test whose
    /// outcome is [`NetEvent::PingOk`] or [`NetEvent::GatewayUnreachable`].
    Optional,
}

/// The MAC prefix of QEMU set-ups (QEMU's own default NIC is `52:54:00:12:34:56`).
pub const QEMU_MAC_PREFIX: [u8; 5] = [0x52, 0x54, 0x00, 0x12, 0x34];
/// Base of the static fallback addresses: `10.0.2.(100 + NN)`.
pub const FALLBACK_HOST_BASE: u8 = 100;

/// The static fallback address of a NIC with MAC `52:54:00:12:34:NN`, NN in
/// 1..=154: `10.0.2.(100 + NN)/24`; `None` for any other MAC.
///
/// Collision-free on a segment where every NIC's MAC differs (the VM harness
/// gives VM k `52:54:00:12:34:0k`, an image's own NICs are `..:01`..`..:03`).
/// The range `10.0.2.101..=254` lies in QEMU slirp's subnet but outside the
/// addresses slirp uses itself (`.2`, `.3`) and leases (`.15`..`.30`), so
/// static and DHCP nodes can share a segment.
pub fn static_fallback_for(mac: EthernetAddress) -> Option<Ipv4Cidr> {
    let b = mac.as_bytes();
    let (prefix, last) = (b.get(..5)?, *b.get(5)?);
    if prefix != QEMU_MAC_PREFIX || last == 0 || last > 255 - FALLBACK_HOST_BASE - 1 {
        return None;
    }
    Some(Ipv4Cidr::new(
        Ipv4Address::new(10, 0, 2, FALLBACK_HOST_BASE + last),
        24,
    ))
}

/// Settings of one stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetStackConfig {
    /// The NIC's MAC address (must be unicast).
    pub mac: EthernetAddress,
    /// Seed for smoltcp (ports, DHCP transaction ids) and the ICMP ident.
    pub random_seed: u64,
    /// No lease this long after start (or after losing one): [`NetEvent::DhcpTimeout`].
    pub dhcp_timeout: Duration,
    /// No echo reply this long after the lease: [`NetEvent::PingTimeout`].
    pub ping_timeout: Duration,
    /// Echo requests are re-sent this often while no reply came.
    pub ping_interval: Duration,
    /// Static address taken when no lease came by `dhcp_timeout`; `None`:
    /// that is a failure ([`NetEvent::DhcpTimeout`]).
    pub fallback: Option<Ipv4Cidr>,
    /// Whether the gateway must answer before the stack is up.
    pub gateway_ping: GatewayPing,
}

impl NetStackConfig {
    /// Defaults: DHCP 5 s, ping 3 s, echo re-sent every 200 ms, no static
    /// fallback, gateway ping required.
    pub fn new(mac: EthernetAddress, random_seed: u64) -> NetStackConfig {
        NetStackConfig {
            mac,
            random_seed,
            dhcp_timeout: Duration::from_millis(5000),
            ping_timeout: Duration::from_millis(3000),
            ping_interval: Duration::from_millis(200),
            fallback: None,
            gateway_ping: GatewayPing::Required,
        }
    }
}

/// An IPv4 lease as applied to the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Address and prefix.
    pub cidr: Ipv4Cidr,
    /// The router option, or the DHCP server when the lease has none (QEMU slirp with `restrict=on`).
    pub gateway: Ipv4Address,
    /// Whether `gateway` came from the router option.
    pub gateway_from_router: bool,
}

/// Something that happened in the stack, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A lease was applied (address and default route).
    DhcpBound(Lease),
    /// The lease was lost; the address was removed and DHCP starts over.
    DhcpLost,
    /// The gateway answered an echo request.
    PingOk {
        /// Sequence number of the answered request.
        seq: u16,
        /// Its round-trip time.
        rtt: Duration,
    },
    /// No lease within `dhcp_timeout`.
    DhcpTimeout,
    /// No echo reply within `ping_timeout` of the lease.
    PingTimeout,
    /// No lease within `dhcp_timeout`: the static fallback address was
    /// applied (no gateway, no default route); DHCP stopped.
    StaticFallback(Ipv4Cidr),
    /// [`GatewayPing::Optional`]: no echo reply within `ping_timeout`. The
    /// stack stays up.
    GatewayUnreachable,
}

/// Why the stack stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackFailure {
    /// No lease in time.
    DhcpTimeout,
    /// No echo reply in time.
    PingTimeout,
}

impl StackFailure {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            StackFailure::DhcpTimeout => "dhcp-timeout",
            StackFailure::PingTimeout => "ping-timeout",
        }
    }
}

/// Where the stack is in its bring-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a DHCP lease until the deadline.
    AwaitLease {
        /// Give up at this moment.
        deadline: Instant,
    },
    /// Leased; waiting for the gateway's echo reply.
    Pinging,
    /// Ready for the bus layers: leased and the gateway answered (or its
    /// answer is optional), or on the static fallback address.
    Up,
    /// Bring-up failed; the stack still polls (the lease may come late) but reports nothing more.
    Failed(StackFailure),
}

/// Rejected stack construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetStackError {
    /// The MAC address is multicast, broadcast or all-zero.
    MacNotUnicast,
}

impl NetStackError {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            NetStackError::MacNotUnicast => "mac-not-unicast",
        }
    }
}

/// One node's stack: device, interface, sockets, DHCP and the gateway ping.
pub struct NetStack<D: Device> {
    /// The NIC behind the link guard (source binding, neighbour seeding).
    device: LinkGuard<D>,
    iface: Interface,
    sockets: SocketSet<'static>,
    /// The DHCP socket; removed once the static fallback is applied.
    dhcp: Option<SocketHandle>,
    /// The static fallback address in use.
    fallback: Option<Ipv4Cidr>,
    icmp: SocketHandle,
    config: NetStackConfig,
    phase: Phase,
    lease: Option<Lease>,
    pinger: Option<Pinger>,
    events: VecDeque<NetEvent>,
    events_dropped: u32,
    icmp_ignored: u32,
}

impl<D: Device> NetStack<D> {
    /// Builds the interface and its DHCP + ICMP sockets; DHCP starts at `now`.
    pub fn new(
        device: D,
        config: NetStackConfig,
        now: Instant,
    ) -> Result<NetStack<D>, NetStackError> {
        if !config.mac.is_unicast() {
            return Err(NetStackError::MacNotUnicast);
        }
        let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(config.mac));
        iface_config.random_seed = config.random_seed;
        let mut device = LinkGuard::new(device, config.mac);
        let iface = Interface::new(iface_config, &mut device, now);

        let mut sockets = SocketSet::new(Vec::new());
        let mut dhcp_socket = dhcpv4::Socket::new();
        let mut retry = dhcp_socket.get_retry_config();
        retry.discover_timeout = DHCP_RETRY;
        retry.initial_request_timeout = DHCP_RETRY;
        dhcp_socket.set_retry_config(retry);
        let dhcp = Some(sockets.add(dhcp_socket));

        let icmp_socket = icmp::Socket::new(
            icmp::PacketBuffer::new(
                vec![icmp::PacketMetadata::EMPTY; ICMP_PACKETS],
                vec![0u8; ICMP_BUFFER_BYTES],
            ),
            icmp::PacketBuffer::new(
                vec![icmp::PacketMetadata::EMPTY; ICMP_PACKETS],
                vec![0u8; ICMP_BUFFER_BYTES],
            ),
        );
        let icmp = sockets.add(icmp_socket);

        let mut stack = NetStack {
            device,
            iface,
            sockets,
            dhcp,
            fallback: None,
            icmp,
            config,
            phase: Phase::AwaitLease {
                deadline: now + config.dhcp_timeout,
            },
            lease: None,
            pinger: None,
            events: VecDeque::with_capacity(EVENT_QUEUE_CAP),
            events_dropped: 0,
            icmp_ignored: 0,
        };
        let ident = stack.ping_ident();
        stack
            .sockets
            .get_mut::<icmp::Socket>(stack.icmp)
            .bind(icmp::Endpoint::Ident(ident))
            // Binding a fresh socket to a non-zero ident cannot fail; ident 0 is avoided.
            .ok();
        Ok(stack)
    }

    /// Drives the interface and the bring-up state machine at `now`.
    /// Returns whether anything may have changed (worth polling again soon).
    pub fn poll(&mut self, now: Instant) -> bool {
        let mut changed =
            self.iface.poll(now, &mut self.device, &mut self.sockets) != PollResult::None;
        changed |= self.process_dhcp(now);
        changed |= self.process_icmp(now);
        if self.transmit_ping(now) {
            changed = true;
            self.iface.poll(now, &mut self.device, &mut self.sockets);
        }
        self.check_deadlines(now);
        changed
    }

    /// The next moment [`NetStack::poll`] must run even if no frame arrives.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let mut at = self.iface.poll_at(now, &self.sockets);
        let mut consider = |t: Option<Instant>| {
            at = match (at, t) {
                (Some(a), Some(b)) => Some(core::cmp::min(a, b)),
                (a, b) => a.or(b),
            }
        };
        match self.phase {
            Phase::AwaitLease { deadline } => consider(Some(deadline)),
            Phase::Pinging => consider(self.pinger.as_ref().and_then(Pinger::poll_at)),
            Phase::Up | Phase::Failed(_) => {}
        }
        // An optional gateway echo runs on after the stack is up.
        if self.phase == Phase::Up {
            consider(self.pinger.as_ref().and_then(Pinger::poll_at));
        }
        at
    }

    /// Takes the oldest unread event.
    pub fn next_event(&mut self) -> Option<NetEvent> {
        self.events.pop_front()
    }

    /// Where bring-up stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current lease, if any.
    pub fn lease(&self) -> Option<Lease> {
        self.lease
    }

    /// The static fallback address in use, if DHCP gave up.
    pub fn static_address(&self) -> Option<Ipv4Cidr> {
        self.fallback
    }

    /// The interface's IPv4 address and prefix, leased or static.
    pub fn address(&self) -> Option<Ipv4Cidr> {
        self.lease.map(|l| l.cidr).or(self.fallback)
    }

    /// The settings the stack was built with.
    pub fn config(&self) -> &NetStackConfig {
        &self.config
    }

    /// Events dropped because the queue was full (nobody drained it).
    pub fn events_dropped(&self) -> u32 {
        self.events_dropped
    }

    /// ICMP messages that did not answer our echo (foreign, malformed, stale).
    pub fn icmp_ignored(&self) -> u32 {
        self.icmp_ignored
    }

    /// The smoltcp interface (addresses, routes, multicast groups).
    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    /// The smoltcp interface, mutably.
    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// The socket set; other layers add their sockets here.
    pub fn sockets(&self) -> &SocketSet<'static> {
        &self.sockets
    }

    /// The socket set, mutably.
    pub fn sockets_mut(&mut self) -> &mut SocketSet<'static> {
        &mut self.sockets
    }

    /// Interface and sockets together (for calls that need both, e.g. multicast joins).
    pub fn iface_and_sockets(&mut self) -> (&mut Interface, &mut SocketSet<'static>) {
        (&mut self.iface, &mut self.sockets)
    }

    /// The device.
    pub fn device(&self) -> &D {
        self.device.inner()
    }

    /// What the link guard dropped and seeded.
    /// Fault injection: drop inbound UDP datagrams to `ports` (inclusive) at
    /// the link, before smoltcp sees them.
    pub fn set_udp_blackhole(&mut self, ports: Option<(u16, u16)>) {
        self.device.set_udp_blackhole(ports);
    }

    pub fn guard_stats(&self) -> GuardStats {
        self.device.stats()
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        self.device.inner_mut()
    }

    fn ping_ident(&self) -> u16 {
        let ident = (self.config.random_seed >> 16) as u16;
        if ident == 0 {
            0x5a5a
        } else {
            ident
        }
    }

    fn push_event(&mut self, event: NetEvent) {
        if self.events.len() >= EVENT_QUEUE_CAP {
            self.events.pop_front();
            self.events_dropped = self.events_dropped.saturating_add(1);
        }
        self.events.push_back(event);
    }

    fn process_dhcp(&mut self, now: Instant) -> bool {
        let Some(dhcp) = self.dhcp else {
            return false;
        };
        let event = self.sockets.get_mut::<dhcpv4::Socket>(dhcp).poll();
        match event {
            None => false,
            Some(dhcpv4::Event::Configured(config)) => {
                let (gateway, from_router) = match config.router {
                    Some(router) => (router, true),
                    None => (config.server.address, false),
                };
                let lease = Lease {
                    cidr: config.address,
                    gateway,
                    gateway_from_router: from_router,
                };
                self.apply_lease(lease, now);
                true
            }
            Some(dhcpv4::Event::Deconfigured) => {
                if self.lease.take().is_some() {
                    self.device.set_local(None);
                    self.iface.update_ip_addrs(|addrs| addrs.clear());
                    self.iface.routes_mut().remove_default_ipv4_route();
                    self.push_event(NetEvent::DhcpLost);
                }
                if matches!(self.phase, Phase::Pinging | Phase::Up) {
                    self.pinger = None;
                    self.phase = Phase::AwaitLease {
                        deadline: now + self.config.dhcp_timeout,
                    };
                }
                true
            }
        }
    }

    fn apply_lease(&mut self, lease: Lease, now: Instant) {
        let same = self.lease == Some(lease);
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            // One address fits any capacity smoltcp allows.
            addrs.push(IpCidr::Ipv4(lease.cidr)).ok();
        });
        // Replaces any previous default route; the table holds at least one route.
        self.iface
            .routes_mut()
            .add_default_ipv4_route(lease.gateway)
            .ok();
        self.lease = Some(lease);
        self.device.set_local(Some(lease.cidr));
        if same {
            // A renewal with identical settings: nothing to report.
            return;
        }
        self.push_event(NetEvent::DhcpBound(lease));
        if matches!(self.phase, Phase::AwaitLease { .. }) {
            self.pinger = Some(Pinger::new(
                self.ping_ident(),
                lease.gateway,
                now,
                self.config.ping_timeout,
                self.config.ping_interval,
            ));
            self.phase = match self.config.gateway_ping {
                GatewayPing::Required => Phase::Pinging,
                GatewayPing::Optional => Phase::Up,
            };
        }
    }

    /// No lease in time and a fallback is configured: take it, stop DHCP.
    fn apply_fallback(&mut self, cidr: Ipv4Cidr) {
        if let Some(dhcp) = self.dhcp.take() {
            self.sockets.remove(dhcp);
        }
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            // One address fits any capacity smoltcp allows.
            addrs.push(IpCidr::Ipv4(cidr)).ok();
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        self.fallback = Some(cidr);
        self.device.set_local(Some(cidr));
        self.pinger = None;
        self.phase = Phase::Up;
        self.push_event(NetEvent::StaticFallback(cidr));
    }

    fn process_icmp(&mut self, now: Instant) -> bool {
        let mut changed = false;
        loop {
            let socket = self.sockets.get_mut::<icmp::Socket>(self.icmp);
            let Ok((bytes, from)) = socket.recv() else {
                break;
            };
            changed = true;
            #[allow(irrefutable_let_patterns)]
            let IpAddress::Ipv4(from) = from
            else {
                continue;
            };
            let Some(pinger) = self.pinger.as_mut() else {
                self.icmp_ignored = self.icmp_ignored.saturating_add(1);
                continue;
            };
            let was_answered = pinger.answered();
            match pinger.on_icmp(now, from, bytes) {
                PingInput::Reply { seq, rtt } if !was_answered => {
                    if self.phase == Phase::Pinging {
                        self.phase = Phase::Up;
                        self.push_event(NetEvent::PingOk { seq, rtt });
                    } else if self.phase == Phase::Up && !self.gateway_gave_up(now) {
                        // Optional gateway ping: the self-test passed.
                        self.push_event(NetEvent::PingOk { seq, rtt });
                    }
                }
                PingInput::Reply { .. } => {}
                PingInput::Ignored(_) => {
                    self.icmp_ignored = self.icmp_ignored.saturating_add(1);
                }
            }
        }
        changed
    }

    /// The optional echo is over (answered or timed out): stop sending it.
    fn gateway_gave_up(&self, now: Instant) -> bool {
        self.pinger.as_ref().is_none_or(|p| p.timed_out(now))
    }

    fn transmit_ping(&mut self, now: Instant) -> bool {
        let optional_running = self.phase == Phase::Up
            && self
                .pinger
                .as_ref()
                .is_some_and(|p| !p.answered() && !p.timed_out(now));
        if self.phase != Phase::Pinging && !optional_running {
            return false;
        }
        let Some(pinger) = self.pinger.as_mut() else {
            return false;
        };
        let socket = self.sockets.get_mut::<icmp::Socket>(self.icmp);
        if !socket.can_send() {
            return false;
        }
        let Some(repr) = pinger.poll_transmit(now) else {
            return false;
        };
        let target = IpAddress::Ipv4(pinger.target());
        match socket.send(repr.buffer_len(), target) {
            Ok(buf) => {
                let mut packet = Icmpv4Packet::new_unchecked(buf);
                repr.emit(&mut packet, &self.device.capabilities().checksum);
                true
            }
            Err(_) => {
                pinger.transmit_failed(now);
                false
            }
        }
    }

    fn check_deadlines(&mut self, now: Instant) {
        match self.phase {
            Phase::AwaitLease { deadline } if now >= deadline => match self.config.fallback {
                Some(cidr) => self.apply_fallback(cidr),
                None => {
                    self.phase = Phase::Failed(StackFailure::DhcpTimeout);
                    self.push_event(NetEvent::DhcpTimeout);
                }
            },
            Phase::Up
                if self.config.gateway_ping == GatewayPing::Optional
                    && self
                        .pinger
                        .as_ref()
                        .is_some_and(|p| !p.answered() && p.timed_out(now)) =>
            {
                self.pinger = None;
                self.push_event(NetEvent::GatewayUnreachable);
            }
            Phase::Pinging if self.pinger.as_ref().is_some_and(|p| p.timed_out(now)) => {
                self.phase = Phase::Failed(StackFailure::PingTimeout);
                self.push_event(NetEvent::PingTimeout);
            }
            _ => {}
        }
    }
}
