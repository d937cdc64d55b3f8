//! Discovery on the wire: the UDP socket on port 37020, announces out to the
//! multicast group (or the subnet broadcast address when the interface
//! cannot join the group), datagrams in to [`Discovery`].

use dsb_discovery::{Discovery, PeerEvent, DISCOVERY_GROUP, DISCOVERY_PORT};
use dsb_noise::DeviceId;
use dsb_transports::sockets::{SocketId, Sockets, UdpSpec};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};

use super::event::{BusFailure, Events, NodeEvent};
use super::noise_id;
use crate::bus::ServiceList;

/// Discovery socket: datagrams buffered each way.
pub const DISCOVERY_PACKETS: usize = 16;
/// Discovery socket: bytes buffered each way.
pub const DISCOVERY_BUFFER: usize = 8 * 1024;
/// Largest discovery datagram read (bigger ones are truncated and rejected).
const DATAGRAM_MAX: usize = 1500;

pub(crate) struct DiscoveryIo {
    socket: SocketId,
    target: IpEndpoint,
    /// Announces that left the socket for the interface.
    sent: u32,
    /// Announces handed to the socket and not yet seen leaving it.
    queued: u32,
}

impl DiscoveryIo {
    /// Binds the discovery socket (shared by every node of a host) and joins
    /// the group; `multicast` in the result says whether announces go to the
    /// group or to the broadcast address.
    pub fn open(sockets: &mut dyn Sockets, cidr: Ipv4Cidr) -> Result<(Self, bool), BusFailure> {
        let socket = sockets
            .udp_bind(UdpSpec {
                port: DISCOVERY_PORT,
                packets: DISCOVERY_PACKETS,
                bytes: DISCOVERY_BUFFER,
                shared: true,
            })
            .map_err(|_| BusFailure::DiscoveryBind)?;
        let group = Ipv4Address::from(DISCOVERY_GROUP);
        let multicast = sockets.udp_join_multicast(socket, group);
        let target_ip = if multicast {
            group
        } else {
            cidr.broadcast().unwrap_or(Ipv4Address::BROADCAST)
        };
        let io = DiscoveryIo {
            socket,
            target: IpEndpoint::new(IpAddress::Ipv4(target_ip), DISCOVERY_PORT),
            sent: 0,
            queued: 0,
        };
        Ok((io, multicast))
    }

    /// Receives every waiting datagram, expires peers, queues due announces.
    pub fn poll(
        &mut self,
        now: Instant,
        sockets: &mut dyn Sockets,
        discovery: &mut Discovery,
        events: &mut Events,
        mut on_lost: impl FnMut(DeviceId),
    ) {
        while sockets.udp_recv(self.socket, &mut |data, from| {
            let data = data.get(..DATAGRAM_MAX).unwrap_or(data);
            match discovery.handle_datagram(now, from, data) {
                Ok(Some(PeerEvent::Found(id))) => online(discovery, &id, true, events),
                Ok(Some(PeerEvent::Updated(id))) => online(discovery, &id, false, events),
                Ok(_) => {}
                Err(e) => events.push(NodeEvent::AnnounceIgnored(e)),
            }
        }) {}
        while let Some(bytes) = discovery.poll_transmit(now) {
            if sockets.udp_send(self.socket, &bytes, self.target).is_ok() {
                self.queued = self.queued.saturating_add(1);
            }
        }
        discovery.expire(now);
        while let Some(ev) = discovery.poll_event() {
            match ev {
                PeerEvent::Found(id) => online(discovery, &id, true, events),
                PeerEvent::Updated(id) => online(discovery, &id, false, events),
                PeerEvent::Lost(id, _) => {
                    if let Some(id) = noise_id(&id) {
                        on_lost(id);
                        events.push(NodeEvent::PeerOffline(id));
                    }
                }
            }
        }
    }

    /// After the interface was polled: announces no longer in the socket's
    /// transmit buffer went out to the device.
    pub fn confirm_sent(&mut self, sockets: &dyn Sockets, events: &mut Events) {
        if self.queued == 0 {
            return;
        }
        if sockets.udp_send_queue(self.socket) == 0 {
            for _ in 0..self.queued {
                self.sent = self.sent.saturating_add(1);
                events.push(NodeEvent::AnnounceSent { count: self.sent });
            }
            self.queued = 0;
        }
    }
}

/// A peer appeared (`found`) or changed what it announces: `PeerOnline`
/// with its services and transports (and `PeerFound` the first time).
fn online(discovery: &Discovery, id: &dsb_discovery::DeviceId, found: bool, events: &mut Events) {
    let (Some(peer), Some(info)) = (noise_id(id), discovery.peer(id)) else {
        return;
    };
    if found {
        events.push(NodeEvent::PeerFound(peer));
    }
    events.push(NodeEvent::PeerOnline {
        peer,
        services: ServiceList::from_names(info.services.iter().map(|s| s.as_bytes())),
        tcp: info.tcp_port.is_some(),
        udpsec: info.udp_sec_port.is_some(),
    });
}
