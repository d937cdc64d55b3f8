//! A fake QEMU user network (slirp with `restrict=on`) for host tests: a DHCP
//! server that leases 10.0.2.15, .16, ... in the order clients ask (as slirp
//! does), ARP and ICMP echo for the gateway 10.0.2.2, and nothing else. With
//! `restrict=on` the leases carry no router option; the DHCP server's address
//! is the gateway.
//!
//! [`Slirp::answer`] maps one frame to the frames slirp would send back;
//! [`SlirpStation`] puts it on a simulated wire as one more station.

use smoltcp::phy::{ChecksumCapabilities, Device, RxToken, TxToken};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol,
    Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

use crate::simwire::SimDevice;

/// slirp's own MAC address.
pub const SLIRP_MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 10, 0, 2, 2]);
/// The gateway (and DHCP server) address.
pub const GW: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
/// The first address leased.
pub const FIRST_LEASE: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
/// Most clients leased (beyond this, DHCP requests go unanswered).
pub const MAX_LEASES: usize = 16;

/// The fake slirp.
#[derive(Clone, Debug)]
pub struct Slirp {
    /// Answer DHCP.
    pub dhcp: bool,
    /// Answer echo requests to the gateway.
    pub ping: bool,
    /// Router option in leases (`None` = restrict=on behaviour).
    pub router_option: Option<Ipv4Address>,
    /// Echo requests seen (answered or not).
    pub seen_echo_requests: usize,
    /// Leases handed out, in order (MAC, address).
    pub leases: Vec<(EthernetAddress, Ipv4Address)>,
}

impl Default for Slirp {
    fn default() -> Self {
        Slirp::restrict_on()
    }
}

impl Slirp {
    /// slirp as QEMU runs it with `restrict=on`.
    pub fn restrict_on() -> Slirp {
        Slirp {
            dhcp: true,
            ping: true,
            router_option: None,
            seen_echo_requests: 0,
            leases: Vec::new(),
        }
    }

    /// The address leased to `mac`, assigning the next one on first request.
    fn lease_for(&mut self, mac: EthernetAddress) -> Option<Ipv4Address> {
        if let Some((_, ip)) = self.leases.iter().find(|(m, _)| *m == mac) {
            return Some(*ip);
        }
        if self.leases.len() >= MAX_LEASES {
            return None;
        }
        let [a, b, c, d] = FIRST_LEASE.octets();
        let ip = Ipv4Address::new(a, b, c, d + self.leases.len() as u8);
        self.leases.push((mac, ip));
        Some(ip)
    }

    fn mac_of(&self, ip: Ipv4Address) -> EthernetAddress {
        self.leases
            .iter()
            .find(|(_, i)| *i == ip)
            .map(|(m, _)| *m)
            .unwrap_or(EthernetAddress::BROADCAST)
    }

    /// Answers one frame; returns the frames slirp sends back.
    pub fn answer(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return vec![];
        };
        match eth.ethertype() {
            EthernetProtocol::Arp => self.answer_arp(eth.payload()),
            EthernetProtocol::Ipv4 => self.answer_ipv4(eth.src_addr(), eth.payload()),
            _ => vec![],
        }
    }

    fn answer_arp(&mut self, payload: &[u8]) -> Vec<Vec<u8>> {
        let Ok(packet) = ArpPacket::new_checked(payload) else {
            return vec![];
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&packet)
        else {
            return vec![];
        };
        if target_protocol_addr != GW {
            return vec![];
        }
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: SLIRP_MAC,
            source_protocol_addr: GW,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        let mut buf = vec![0u8; 14 + reply.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: SLIRP_MAC,
            dst_addr: source_hardware_addr,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut eth);
        reply.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        vec![buf]
    }

    fn answer_ipv4(&mut self, src_mac: EthernetAddress, payload: &[u8]) -> Vec<Vec<u8>> {
        let caps = ChecksumCapabilities::default();
        let Ok(ip) = Ipv4Packet::new_checked(payload) else {
            return vec![];
        };
        let Ok(ip_repr) = Ipv4Repr::parse(&ip, &caps) else {
            return vec![];
        };
        match ip_repr.next_header {
            IpProtocol::Udp if self.dhcp => self.answer_dhcp(src_mac, ip.payload()),
            IpProtocol::Icmp if ip_repr.dst_addr == GW => {
                let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
                    return vec![];
                };
                let Ok(Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }) = Icmpv4Repr::parse(&icmp, &caps)
                else {
                    return vec![];
                };
                self.seen_echo_requests += 1;
                if !self.ping {
                    return vec![];
                }
                let reply = Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                let mut body = vec![0u8; reply.buffer_len()];
                reply.emit(&mut Icmpv4Packet::new_unchecked(&mut body[..]), &caps);
                vec![ipv4_frame(
                    GW,
                    ip_repr.src_addr,
                    src_mac,
                    IpProtocol::Icmp,
                    &body,
                )]
            }
            _ => vec![],
        }
    }

    fn answer_dhcp(&mut self, src_mac: EthernetAddress, udp_bytes: &[u8]) -> Vec<Vec<u8>> {
        let Ok(udp) = UdpPacket::new_checked(udp_bytes) else {
            return vec![];
        };
        if udp.dst_port() != 67 {
            return vec![];
        }
        let Ok(dhcp) = DhcpPacket::new_checked(udp.payload()) else {
            return vec![];
        };
        let Ok(request) = DhcpRepr::parse(&dhcp) else {
            return vec![];
        };
        let message_type = match request.message_type {
            DhcpMessageType::Discover => DhcpMessageType::Offer,
            DhcpMessageType::Request => DhcpMessageType::Ack,
            _ => return vec![],
        };
        let Some(your_ip) = self.lease_for(request.client_hardware_address) else {
            return vec![];
        };
        let _ = src_mac;
        let reply = DhcpRepr {
            message_type,
            transaction_id: request.transaction_id,
            secs: 0,
            client_hardware_address: request.client_hardware_address,
            client_ip: Ipv4Address::UNSPECIFIED,
            your_ip,
            server_ip: GW,
            router: self.router_option,
            subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
            relay_agent_ip: Ipv4Address::UNSPECIFIED,
            broadcast: false,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(GW),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: Some(86_400),
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut dhcp_buf = vec![0u8; reply.buffer_len()];
        if reply
            .emit(&mut DhcpPacket::new_unchecked(&mut dhcp_buf[..]))
            .is_err()
        {
            return vec![];
        }
        let mut udp_buf = vec![0u8; 8 + dhcp_buf.len()];
        UdpRepr {
            src_port: 67,
            dst_port: 68,
        }
        .emit(
            &mut UdpPacket::new_unchecked(&mut udp_buf[..]),
            &IpAddress::Ipv4(GW),
            &IpAddress::Ipv4(Ipv4Address::BROADCAST),
            dhcp_buf.len(),
            |p| p.copy_from_slice(&dhcp_buf),
            &ChecksumCapabilities::default(),
        );
        vec![ipv4_frame(
            GW,
            Ipv4Address::BROADCAST,
            EthernetAddress::BROADCAST,
            IpProtocol::Udp,
            &udp_buf,
        )]
    }

    /// Leases handed out so far, in order.
    pub fn leases(&self) -> &[(EthernetAddress, Ipv4Address)] {
        &self.leases
    }

    /// Destination MAC for `ip` (broadcast when unknown).
    pub fn neighbour(&self, ip: Ipv4Address) -> EthernetAddress {
        self.mac_of(ip)
    }
}

/// An IPv4 frame from slirp.
pub fn ipv4_frame(
    src: Ipv4Address,
    dst: Ipv4Address,
    dst_mac: EthernetAddress,
    proto: IpProtocol,
    body: &[u8],
) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: body.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len() + body.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: SLIRP_MAC,
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let mut packet = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut packet, &ChecksumCapabilities::default());
    packet.payload_mut().copy_from_slice(body);
    buf
}

/// slirp as one station of a simulated wire.
pub struct SlirpStation {
    pub slirp: Slirp,
    dev: SimDevice,
}

impl SlirpStation {
    pub fn new(slirp: Slirp, dev: SimDevice) -> Self {
        SlirpStation { slirp, dev }
    }

    /// Answers every frame that has reached slirp by `now`.
    pub fn poll(&mut self, now: Instant) {
        while let Some((rx, _)) = self.dev.receive(now) {
            let replies = rx.consume(|f| self.slirp.answer(f));
            for r in replies {
                if let Some(tx) = self.dev.transmit(now) {
                    tx.consume(r.len(), |b| b.copy_from_slice(&r));
                }
            }
        }
    }
}
