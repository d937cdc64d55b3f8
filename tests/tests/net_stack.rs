//! The node network core over a simulated wire: a fake QEMU slirp (DHCP server,
//! ARP, ICMP echo at 10.0.2.2) answers the frames a `NetStack` sends, in
//! simulated time. Proves the bring-up order, the restrict=on gateway rule and
//! that every timeout fires as an event instead of a hang.

use std::collections::VecDeque;

use dsb_app::net::{Lease, NetEvent, NetStack, NetStackConfig, NetStackError, Phase, StackFailure};
use dsb_tests::slirp::{Slirp, GW};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress, Ipv4Address, Ipv4Cidr};

const NODE_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x01]);
const LEASE_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);

/// A device whose frames are two queues the test reads and fills.
#[derive(Default)]
struct QueueDevice {
    to_stack: VecDeque<Vec<u8>>,
    from_stack: VecDeque<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push_back(buf);
        r
    }
}

impl phy::Device for QueueDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _t: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.to_stack.pop_front()?;
        Some((Rx(frame), Tx(&mut self.from_stack)))
    }

    fn transmit(&mut self, _t: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.from_stack))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// Runs stack + slirp in 1 ms steps until `until`; returns events with their times.
fn run(
    stack: &mut NetStack<QueueDevice>,
    slirp: &mut Slirp,
    from: Instant,
    until: Instant,
) -> Vec<(Instant, NetEvent)> {
    let mut events = vec![];
    let mut now = from;
    while now < until {
        stack.poll(now);
        while let Some(e) = stack.next_event() {
            events.push((now, e));
        }
        let sent: Vec<Vec<u8>> = stack.device_mut().from_stack.drain(..).collect();
        for frame in sent {
            let replies = slirp.answer(&frame);
            stack.device_mut().to_stack.extend(replies);
        }
        now += Duration::from_millis(1);
    }
    events
}

fn new_stack(config: NetStackConfig) -> NetStack<QueueDevice> {
    NetStack::new(QueueDevice::default(), config, Instant::ZERO).unwrap()
}

fn kinds(events: &[(Instant, NetEvent)]) -> Vec<NetEvent> {
    events.iter().map(|(_, e)| *e).collect()
}

#[test]
fn dhcp_then_gateway_ping_without_router_option() {
    let mut stack = new_stack(NetStackConfig::new(NODE_MAC, 42));
    let mut slirp = Slirp::restrict_on();
    let events = run(
        &mut stack,
        &mut slirp,
        Instant::ZERO,
        Instant::from_millis(200),
    );
    let lease = Lease {
        cidr: Ipv4Cidr::new(LEASE_IP, 24),
        gateway: GW,
        gateway_from_router: false,
    };
    assert!(matches!(
        kinds(&events).as_slice(),
        [NetEvent::DhcpBound(l), NetEvent::PingOk { .. }] if *l == lease
    ));
    // Both within a few simulated milliseconds: nothing waits for a retry timer.
    assert!(
        events.iter().all(|(t, _)| *t < Instant::from_millis(10)),
        "{events:?}"
    );
    assert_eq!(stack.phase(), Phase::Up);
    assert_eq!(stack.lease(), Some(lease));
    assert!(stack.iface().has_ip_addr(LEASE_IP));
    assert_eq!(
        stack
            .iface()
            .routes()
            .get_default_ipv4_route()
            .map(|r| r.via_router),
        Some(IpAddress::Ipv4(GW))
    );
}

#[test]
fn router_option_wins_over_server_address() {
    let router = Ipv4Address::new(10, 0, 2, 1);
    let mut stack = new_stack(NetStackConfig::new(NODE_MAC, 1));
    let mut slirp = Slirp {
        router_option: Some(router),
        ping: false,
        ..Slirp::restrict_on()
    };
    let events = run(
        &mut stack,
        &mut slirp,
        Instant::ZERO,
        Instant::from_millis(50),
    );
    assert!(matches!(
        kinds(&events).first(),
        Some(NetEvent::DhcpBound(Lease { gateway, gateway_from_router: true, .. })) if *gateway == router
    ));
}

#[test]
fn no_dhcp_server_times_out_at_the_configured_deadline() {
    let mut config = NetStackConfig::new(NODE_MAC, 7);
    config.dhcp_timeout = Duration::from_millis(300);
    let mut stack = new_stack(config);
    let mut slirp = Slirp {
        dhcp: false,
        ..Slirp::restrict_on()
    };
    let events = run(
        &mut stack,
        &mut slirp,
        Instant::ZERO,
        Instant::from_millis(1000),
    );
    assert_eq!(
        events,
        vec![(Instant::from_millis(300), NetEvent::DhcpTimeout)]
    );
    assert_eq!(stack.phase(), Phase::Failed(StackFailure::DhcpTimeout));
}

#[test]
fn silent_gateway_times_out_after_retrying_the_echo() {
    let mut config = NetStackConfig::new(NODE_MAC, 7);
    config.ping_timeout = Duration::from_millis(1000);
    config.ping_interval = Duration::from_millis(200);
    let mut stack = new_stack(config);
    let mut slirp = Slirp {
        ping: false,
        ..Slirp::restrict_on()
    };
    let events = run(
        &mut stack,
        &mut slirp,
        Instant::ZERO,
        Instant::from_millis(3000),
    );
    let kinds = kinds(&events);
    assert!(matches!(
        kinds.as_slice(),
        [NetEvent::DhcpBound(_), NetEvent::PingTimeout]
    ));
    let bound_at = events[0].0;
    assert_eq!(events[1].0, bound_at + Duration::from_millis(1000));
    // One request at once, then one every 200 ms until the deadline.
    assert_eq!(slirp.seen_echo_requests, 5);
    assert_eq!(stack.phase(), Phase::Failed(StackFailure::PingTimeout));
}

#[test]
fn poll_at_reports_the_dhcp_deadline_when_idle() {
    let mut config = NetStackConfig::new(NODE_MAC, 7);
    config.dhcp_timeout = Duration::from_millis(300);
    let mut stack = new_stack(config);
    stack.poll(Instant::ZERO);
    let at = stack.poll_at(Instant::ZERO).unwrap();
    assert!(at <= Instant::from_millis(300), "{at}");
}

#[test]
fn multicast_mac_is_rejected() {
    let config = NetStackConfig::new(EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]), 0);
    let err = NetStack::new(QueueDevice::default(), config, Instant::ZERO).err();
    assert_eq!(
        err.map(|e| e.label()),
        Some(NetStackError::MacNotUnicast.label())
    );
}

#[test]
fn garbage_frames_are_survived() {
    let mut stack = new_stack(NetStackConfig::new(NODE_MAC, 3));
    for len in [0usize, 1, 13, 14, 60, 1514] {
        stack.device_mut().to_stack.push_back(vec![0xa5; len]);
    }
    let mut slirp = Slirp::restrict_on();
    let events = run(
        &mut stack,
        &mut slirp,
        Instant::ZERO,
        Instant::from_millis(100),
    );
    assert!(matches!(
        kinds(&events).last(),
        Some(NetEvent::PingOk { .. })
    ));
}

#[test]
fn static_fallback_rule_is_per_mac_and_collision_free() {
    use dsb_app::net::static_fallback_for;
    let mac = |n: u8| EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, n]);
    assert_eq!(
        static_fallback_for(mac(1)),
        Some(Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 101), 24))
    );
    assert_eq!(
        static_fallback_for(mac(8)),
        Some(Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 108), 24))
    );
    let all: Vec<_> = (1..=154)
        .filter_map(|n| static_fallback_for(mac(n)))
        .collect();
    let mut unique = all.clone();
    unique.sort_by_key(|c| c.address().octets());
    unique.dedup();
    assert_eq!(unique.len(), 154, "one address per MAC");
    assert!(
        all.iter().all(|c| c.address().octets()[3] > 30),
        "clear of slirp's leases"
    );
    assert_eq!(static_fallback_for(mac(0)), None);
    assert_eq!(static_fallback_for(mac(155)), None);
    assert_eq!(
        static_fallback_for(EthernetAddress([0x02, 0, 0, 0, 0, 1])),
        None
    );
}

#[test]
fn no_dhcp_server_falls_back_to_the_static_address_and_is_up_without_a_gateway() {
    let mut config = NetStackConfig::new(NODE_MAC, 7);
    config.dhcp_timeout = Duration::from_millis(300);
    config.fallback = dsb_app::net::static_fallback_for(NODE_MAC);
    let mut stack = new_stack(config);
    let mut slirp = Slirp {
        dhcp: false,
        ..Slirp::restrict_on()
    };
    let events = run(
        &mut stack,
        &mut slirp,
        Instant::ZERO,
        Instant::from_millis(3000),
    );
    let cidr = Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 101), 24);
    assert_eq!(
        events,
        vec![(Instant::from_millis(300), NetEvent::StaticFallback(cidr))]
    );
    assert_eq!(stack.phase(), Phase::Up);
    assert_eq!(stack.address(), Some(cidr));
    assert_eq!(stack.lease(), None);
    assert!(stack.iface().has_ip_addr(cidr.address()));
    assert!(stack.iface().routes().get_default_ipv4_route().is_none());
    // DHCP stopped: nothing more is sent after the fallback (no DISCOVERs, no pings).
    let quiet_from = Instant::from_millis(3000);
    stack.poll(quiet_from);
    assert!(stack.device_mut().from_stack.is_empty());
    assert_eq!(slirp.seen_echo_requests, 0);
    // Nothing left to time out: poll_at says nothing is due.
    assert_eq!(stack.poll_at(quiet_from), None);
}

#[test]
fn two_stacks_on_static_fallback_addresses_reach_each_other() {
    use dsb_tests::simwire::{Wire, WireConfig};
    use smoltcp::iface::SocketSet;
    use smoltcp::socket::udp;
    let wire = Wire::new(2, WireConfig::default(), 3);
    let mac_b = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x02]);
    let mut stacks: Vec<_> = [(NODE_MAC, 0), (mac_b, 1)]
        .into_iter()
        .map(|(mac, i)| {
            let mut c = NetStackConfig::new(mac, 10 + i as u64);
            c.dhcp_timeout = Duration::from_millis(200);
            c.fallback = dsb_app::net::static_fallback_for(mac);
            NetStack::new(wire.device(i), c, Instant::ZERO).unwrap()
        })
        .collect();
    let mk = |s: &mut SocketSet<'static>| {
        let mut sock = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 512]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 512]),
        );
        sock.bind(5000).unwrap();
        s.add(sock)
    };
    let ha = mk(stacks[0].sockets_mut());
    let hb = mk(stacks[1].sockets_mut());
    let mut now = Instant::ZERO;
    let mut got = None;
    while now < Instant::from_millis(2000) && got.is_none() {
        for s in stacks.iter_mut() {
            s.poll(now);
        }
        if now == Instant::from_millis(250) {
            let a = stacks[0].sockets_mut().get_mut::<udp::Socket>(ha);
            a.send_slice(b"hello", (Ipv4Address::new(10, 0, 2, 102), 5000))
                .unwrap();
        }
        if let Ok((data, meta)) = stacks[1].sockets_mut().get_mut::<udp::Socket>(hb).recv() {
            got = Some((data.to_vec(), meta.endpoint.addr));
        }
        now += Duration::from_millis(1);
    }
    assert_eq!(
        got,
        Some((
            b"hello".to_vec(),
            IpAddress::Ipv4(Ipv4Address::new(10, 0, 2, 101))
        ))
    );
}

#[test]
fn optional_gateway_ping_is_up_at_the_lease_and_a_silent_gateway_is_not_a_failure() {
    let mut config = NetStackConfig::new(NODE_MAC, 7);
    config.gateway_ping = dsb_app::net::GatewayPing::Optional;
    config.ping_timeout = Duration::from_millis(500);
    let mut stack = new_stack(config);
    let mut slirp = Slirp {
        ping: false,
        ..Slirp::restrict_on()
    };
    let events = run(
        &mut stack,
        &mut slirp,
        Instant::ZERO,
        Instant::from_millis(2000),
    );
    assert!(matches!(
        kinds(&events).as_slice(),
        [NetEvent::DhcpBound(_), NetEvent::GatewayUnreachable]
    ));
    assert_eq!(stack.phase(), Phase::Up);
    assert_eq!(events[1].0, events[0].0 + Duration::from_millis(500));
    let sent = slirp.seen_echo_requests;
    assert!(sent >= 2, "the echo was tried: {sent}");

    // With a gateway that answers: up at the lease, PingOk as a self-test.
    let mut config = NetStackConfig::new(NODE_MAC, 7);
    config.gateway_ping = dsb_app::net::GatewayPing::Optional;
    let mut stack = new_stack(config);
    let mut slirp = Slirp::restrict_on();
    let events = run(
        &mut stack,
        &mut slirp,
        Instant::ZERO,
        Instant::from_millis(200),
    );
    assert!(matches!(
        kinds(&events).as_slice(),
        [NetEvent::DhcpBound(_), NetEvent::PingOk { .. }]
    ));
    assert_eq!(stack.phase(), Phase::Up);
}
