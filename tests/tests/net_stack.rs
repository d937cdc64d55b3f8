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
