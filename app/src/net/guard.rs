//! A link-layer guard between a NIC and smoltcp: source binding and
//! neighbour seeding.
//!
//! - **Source binding.** The guard remembers which Ethernet address each
//!   on-link IPv4 source used (first seen wins, entries expire after
//!   [`BINDING_TTL`] without traffic). A frame whose IPv4 source is bound to a
//!   *different* Ethernet address is dropped and counted. This is what keeps
//!   QEMU's slirp from killing guest-to-guest TCP on a shared hub: slirp sees
//!   every frame and answers a SYN between two guests with a RST forged from
//!   the destination's IP address (but its own MAC).
//! - **Neighbour seeding.** smoltcp learns neighbours only from ARP and sends
//!   at most one ARP request per second. When the guard first sees an on-link
//!   source it hands smoltcp a synthetic ARP request from that neighbour
//!   (aimed at our address), so the neighbour cache is filled from traffic
//!   already seen (e.g. a discovery announce) and smoltcp's ARP reply teaches
//!   the peer our address as well. Session setup then does not wait a second.
//!
//! ARP itself is unauthenticated; neither mechanism weakens anything, and
//! authentication is end to end (Noise) anyway. Memory is bounded by
//! [`MAX_BINDINGS`] and [`MAX_INJECTED`].

use heapless::{Deque, Vec as HVec};
use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet, UdpPacket,
};

/// Most IPv4 sources remembered (least recently seen replaced beyond this).
pub const MAX_BINDINGS: usize = 32;
/// A binding is forgotten this long after its source was last seen.
pub const BINDING_TTL: Duration = Duration::from_secs(30);
/// Most synthetic ARP frames waiting for smoltcp.
pub const MAX_INJECTED: usize = 4;
/// Largest frame the guard copies (Ethernet header + 1500).
pub const FRAME_MAX: usize = 1514;
/// Frames dropped per `receive` call before giving up for this call.
const MAX_DROPS_PER_CALL: usize = 16;
/// Length of an Ethernet + ARP (IPv4) frame.
const ARP_FRAME_LEN: usize = 42;

#[derive(Clone, Copy, Debug)]
struct Binding {
    ip: Ipv4Address,
    mac: EthernetAddress,
    last_seen: Instant,
}

/// Counters of what the guard did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Frames dropped because their IPv4 source is bound to another MAC.
    pub spoofed: u64,
    /// Synthetic ARP requests handed to smoltcp.
    pub seeded: u64,
    /// UDP datagrams dropped by the fault-injection blackhole.
    pub blackholed: u64,
}

/// A [`Device`] wrapper applying source binding and neighbour seeding.
pub struct LinkGuard<D: Device> {
    inner: D,
    insp: Inspector,
    frame: [u8; FRAME_MAX],
}

/// The guard's state, apart from the device and the frame buffer.
struct Inspector {
    local: Option<Ipv4Cidr>,
    local_mac: EthernetAddress,
    bindings: HVec<Binding, MAX_BINDINGS>,
    injected: Deque<[u8; ARP_FRAME_LEN], MAX_INJECTED>,
    /// Fault injection: inbound UDP to these ports (inclusive) is dropped.
    blackhole: Option<(u16, u16)>,
    stats: GuardStats,
}

impl<D: Device> LinkGuard<D> {
    pub fn new(inner: D, local_mac: EthernetAddress) -> Self {
        LinkGuard {
            inner,
            insp: Inspector {
                local: None,
                local_mac,
                bindings: HVec::new(),
                injected: Deque::new(),
                blackhole: None,
                stats: GuardStats::default(),
            },
            frame: [0; FRAME_MAX],
        }
    }

    /// Our address and subnet (neighbour seeding needs them); `None` when unleased.
    pub fn set_local(&mut self, cidr: Option<Ipv4Cidr>) {
        self.insp.local = cidr;
    }

    /// Fault injection: drop every inbound UDP datagram whose destination
    /// port is in `ports` (inclusive), as a filtering network would.
    pub fn set_udp_blackhole(&mut self, ports: Option<(u16, u16)>) {
        self.insp.blackhole = ports;
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    pub fn stats(&self) -> GuardStats {
        self.insp.stats
    }
}

impl Inspector {
    /// Inspects one received frame: `false` = drop it.
    fn admit(&mut self, now: Instant, frame: &[u8]) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return true; // smoltcp rejects it itself
        };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return true;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return true;
        };
        if let Some((lo, hi)) = self.blackhole {
            if ip.next_header() == IpProtocol::Udp {
                if let Ok(udp) = UdpPacket::new_checked(ip.payload()) {
                    if (lo..=hi).contains(&udp.dst_port()) {
                        self.stats.blackholed += 1;
                        return false;
                    }
                }
            }
        }
        let (src, mac) = (ip.src_addr(), eth.src_addr());
        let unicast = !(src.is_multicast() || src.is_broadcast() || src.is_unspecified());
        if !unicast || !mac.is_unicast() || mac == self.local_mac {
            return true;
        }
        self.bindings.retain(|b| now < b.last_seen + BINDING_TTL);
        if let Some(b) = self.bindings.iter_mut().find(|b| b.ip == src) {
            if b.mac != mac {
                self.stats.spoofed += 1;
                return false;
            }
            b.last_seen = now;
            return true;
        }
        let fresh = Binding {
            ip: src,
            mac,
            last_seen: now,
        };
        if self.bindings.is_full() {
            if let Some(oldest) =
                (0..self.bindings.len()).min_by_key(|&i| self.bindings[i].last_seen)
            {
                self.bindings.swap_remove(oldest);
            }
        }
        let _ = self.bindings.push(fresh);
        self.seed(src, mac);
        true
    }

    /// Queues an ARP request from (`ip`, `mac`) for our address, if `ip` is on-link.
    fn seed(&mut self, ip: Ipv4Address, mac: EthernetAddress) {
        let Some(local) = self.local else { return };
        if ip == local.address() || !local.contains_addr(&ip) || self.injected.is_full() {
            return;
        }
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: local.address(),
        };
        let mut buf = [0u8; ARP_FRAME_LEN];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: mac,
            dst_addr: self.local_mac,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut eth);
        arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        if self.injected.push_back(buf).is_ok() {
            self.stats.seeded += 1;
        }
    }
}

/// A received frame, copied out of the NIC (or synthesized).
pub struct GuardRx<'a>(&'a [u8]);

impl phy::RxToken for GuardRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl<D: Device> Device for LinkGuard<D> {
    type RxToken<'a>
        = GuardRx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = D::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // A seeded ARP goes out right after the frame that taught us the
        // neighbour; smoltcp handles all ingress before any egress in a poll,
        // so the neighbour is known before anything is sent to it.
        if let Some(arp) = self.insp.injected.pop_front() {
            self.frame[..ARP_FRAME_LEN].copy_from_slice(&arp);
            let tx = self.inner.transmit(now)?;
            return Some((GuardRx(&self.frame[..ARP_FRAME_LEN]), tx));
        }
        for _ in 0..MAX_DROPS_PER_CALL {
            let (rx, _) = self.inner.receive(now)?;
            let frame = &mut self.frame;
            let insp = &mut self.insp;
            let (len, admitted) = phy::RxToken::consume(rx, |bytes| {
                let len = bytes.len().min(FRAME_MAX);
                frame[..len].copy_from_slice(&bytes[..len]);
                (len, insp.admit(now, &frame[..len]))
            });
            if admitted {
                let tx = self.inner.transmit(now)?;
                return Some((GuardRx(&self.frame[..len]), tx));
            }
        }
        None
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.inner.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}
