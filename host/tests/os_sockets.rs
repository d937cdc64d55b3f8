//! `OsSockets` keeps the smoltcp model the transports rely on: listen slots
//! that turn into connections, a RST for a connection no slot takes, the
//! states of a graceful close on both sides, an abort the peer sees as a
//! reset, bounded buffers, UDP between two bound sockets. Inside a network
//! namespace like every OS-mode test.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dsb_host::{default_address, HostError, HostStack, OsSockets};
use dsb_transports::sockets::{SocketId, Sockets, TcpState, UdpSpec};
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Cidr};

const A: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 2);

fn ep(ip: Ipv4Addr, port: u16) -> IpEndpoint {
    IpEndpoint::new(IpAddress::Ipv4(ip), port)
}

/// Polls both until `cond` holds (at most 2 s).
fn until(
    a: &mut OsSockets,
    b: &mut OsSockets,
    what: &str,
    mut cond: impl FnMut(&mut OsSockets, &mut OsSockets) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        a.poll();
        b.poll();
        if cond(a, b) {
            return;
        }
        assert!(Instant::now() < end, "{what}: not within 2 s");
        a.wait(Duration::from_millis(1)).expect("wait");
    }
}

fn state(s: &OsSockets, id: SocketId) -> TcpState {
    s.tcp_status(id).state
}

#[test]
fn tcp_follows_the_listen_slot_model() {
    dsb_host::netns::in_netns(|| {
        let mut a = OsSockets::new(A);
        let mut b = OsSockets::new(B);
        let buf = 4096;
        let slot = a.tcp_listen(5000, buf).expect("listen");
        assert_eq!(state(&a, slot), TcpState::Listen);
        assert!(a.listening(5000));

        // A connection takes the slot.
        let c = b.tcp_connect(ep(A, 5000), 0, buf).expect("connect");
        until(&mut a, &mut b, "established", |a, b| {
            state(a, slot) == TcpState::Established && state(b, c) == TcpState::Established
        });
        let remote = a.tcp_status(slot).remote.expect("remote");
        assert_eq!(remote.addr, IpAddress::Ipv4(B));
        assert_eq!(b.tcp_status(c).remote, Some(ep(A, 5000)));

        // A second one finds no slot: reset at once, as smoltcp answers a SYN.
        let refused = b.tcp_connect(ep(A, 5000), 0, buf).expect("connect");
        until(&mut a, &mut b, "refused", |_, b| {
            state(b, refused) == TcpState::Closed
        });
        assert!(!b.tcp_status(refused).is_open());
        assert_eq!(a.stats().accept_refused, 1);
        b.tcp_remove(refused);

        // Bounded send buffer; bytes arrive in order.
        let big: Vec<u8> = (0..3 * buf).map(|i| (i % 251) as u8).collect();
        let mut sent = b.tcp_send(c, &big).expect("send");
        assert_eq!(sent, buf, "the send buffer holds `buffer` bytes");
        assert!(!b.tcp_status(c).can_send());
        let mut got = Vec::new();
        until(&mut a, &mut b, "data", |a, b| {
            if let Some(rest) = big.get(sent..) {
                sent += b.tcp_send(c, rest).expect("send");
            }
            assert!(
                a.tcp_status(slot).recv_queue <= buf,
                "bounded receive buffer"
            );
            while a.tcp_status(slot).can_recv() {
                a.tcp_recv(slot, &mut |d| {
                    got.extend_from_slice(d);
                    d.len()
                })
                .expect("recv");
            }
            got.len() == big.len()
        });
        assert!(got == big);

        // Graceful close from b: a sees CLOSE-WAIT (may still send), then
        // closes too; both end without a peer socket open.
        b.tcp_close(c);
        until(&mut a, &mut b, "fin", |a, _| {
            state(a, slot) == TcpState::CloseWait
        });
        let st = a.tcp_status(slot);
        assert!(st.may_send() && !st.may_recv());
        a.tcp_close(slot);
        until(&mut a, &mut b, "closed", |a, b| {
            !a.tcp_status(slot).is_active() && !b.tcp_status(c).is_active()
        });
        a.tcp_remove(slot);
        b.tcp_remove(c);

        // An abort is a reset at the peer.
        let slot = a.tcp_listen(5000, buf).expect("listen");
        let c = b.tcp_connect(ep(A, 5000), 0, buf).expect("connect");
        until(&mut a, &mut b, "established", |a, b| {
            state(a, slot) == TcpState::Established && state(b, c) == TcpState::Established
        });
        a.tcp_abort(slot);
        assert_eq!(a.tcp_status(slot).remote, None);
        until(&mut a, &mut b, "reset", |_, b| {
            state(b, c) == TcpState::Closed
        });
        assert_eq!(b.tcp_status(c).remote, None);

        // Nobody listens on 5001: refused.
        let c = b.tcp_connect(ep(A, 5001), 0, buf).expect("connect");
        until(&mut a, &mut b, "refused", |_, b| {
            state(b, c) == TcpState::Closed
        });
    });
}

#[test]
fn udp_binds_exclusively_or_shared_and_delivers_datagrams() {
    dsb_host::netns::in_netns(|| {
        let mut a = OsSockets::new(A);
        let mut b = OsSockets::new(B);
        let spec = |port, shared| UdpSpec {
            port,
            packets: 8,
            bytes: 8 * 1200,
            shared,
        };
        let ua = a.udp_bind(spec(6000, false)).expect("bind");
        let ub = b
            .udp_bind(spec(6000, false))
            .expect("own address, same port");
        assert!(a.udp_bind(spec(6000, false)).is_err(), "exclusive");
        // Shared sockets: every node of the host binds the port.
        let sa = a.udp_bind(spec(6001, true)).expect("shared");
        let sb = b.udp_bind(spec(6001, true)).expect("shared twice");
        assert!(a.udp_join_multicast(sa, Ipv4Addr::new(239, 42, 0, 1)));
        assert!(b.udp_join_multicast(sb, Ipv4Addr::new(239, 42, 0, 1)));

        a.udp_send(ua, b"to b", ep(B, 6000)).expect("send");
        a.udp_send(sa, b"to the group", ep(Ipv4Addr::new(239, 42, 0, 1), 6001))
            .expect("send to the group");
        let mut got: Vec<(Vec<u8>, IpEndpoint)> = Vec::new();
        until(&mut a, &mut b, "datagrams", |_, b| {
            for s in [ub, sb] {
                while b.udp_recv(s, &mut |d, from| got.push((d.to_vec(), from))) {}
            }
            got.len() >= 2
        });
        assert!(got.contains(&(b"to b".to_vec(), ep(A, 6000))));
        assert!(got.contains(&(b"to the group".to_vec(), ep(A, 6001))));
        a.udp_close(ua);
        assert!(!a.udp_recv(ua, &mut |_, _| {}));
        assert_eq!(
            a.udp_send(ua, b"x", ep(B, 6000)).unwrap_err().label(),
            "no-socket"
        );
    });
}

#[test]
fn the_address_is_the_given_one_or_the_default_routes() {
    dsb_host::netns::in_netns(|| {
        // Only `lo`, no default route.
        assert_eq!(default_address(), Err(HostError::NoDefaultRoute));
        assert_eq!(HostStack::new(None).err(), Some(HostError::NoDefaultRoute));
        assert_eq!(
            HostStack::new(Some(Ipv4Addr::new(192, 0, 2, 7))).err(),
            Some(HostError::AddressNotLocal(Ipv4Addr::new(192, 0, 2, 7)))
        );
        let given = HostStack::new(Some(B)).expect("on lo");
        assert_eq!(given.cidr(), Ipv4Cidr::new(B, 24));
        // `ip` run from this thread works in its namespace.
        let st = std::process::Command::new("ip")
            .args(["route", "add", "default", "dev", "lo", "src", "10.42.0.1"])
            .status()
            .expect("ip");
        assert!(st.success());
        assert_eq!(default_address(), Ok(A));
        let stack = HostStack::new(None).expect("default route");
        assert_eq!(stack.cidr(), Ipv4Cidr::new(A, 24));
    });
}
