//! What applications call on a node: publish services with an access
//! policy, ask for sessions, open channels, and read and write them.
//! Everything is poll-based: calls only change state; bytes move and events
//! appear in the next `Node::poll`, and events are drained with
//! `Node::next_event`.
//!
//! ```text
//! node.publish("blob", Access::only([&peer])?)?;  // announced, enforced
//! node.connect(&peer)?;                            // dial (whatever the ids)
//! ... NodeEvent::SessionUp { peer, .. }
//! let ch = node.open(&peer, "echo")?;              // OPEN on the wire
//! ... NodeEvent::ChannelOpened { ch, .. } or ChannelRefused { reason, .. }
//! node.write(ch, b"hello")?;                       // 0 / WouldBlock = backpressure
//! ... NodeEvent::ChannelReadable(ch)
//! node.read(ch, &mut buf)?;                        // Ok(0) = peer finished
//! ```

use crate::net::Network;
use dsb_discovery::{PeerInfo, Services as AnnouncedServices};
use dsb_noise::DeviceId;
use dsb_transports::mux::{ChannelError, ServiceName};

use super::sessions::SessionStats;
use super::NodeOn;
use crate::bus::channel::{ChannelIo, MuxChannel};
use crate::bus::{Access, ApiError, ChannelRef, Handler, Services};

/// The services this node announces (the first 8 published).
pub(crate) fn announced(services: &Services) -> AnnouncedServices {
    let mut out = AnnouncedServices::new();
    for p in services.iter() {
        if let Ok(n) = dsb_discovery::ServiceName::new(p.name.as_bytes()) {
            let _ = out.push(n);
        }
    }
    out
}

impl<N: Network> NodeOn<N> {
    /// Publishes `name` with `access` (deny by default: pass
    /// `Access::AnyAuthenticated` explicitly to open it to every
    /// authenticated peer). Publishing again changes the policy. The name
    /// goes into the signed announce; every session enforces the policy at
    /// once. `ping` (byte echo), `sd` (service directory) and `blob` (a
    /// blob store with the caps of [`super::NodeConfig::blob_store`]) are
    /// served by the node itself; other names are the application's
    /// (`ChannelAccepted` events).
    pub fn publish(&mut self, name: &str, access: Access) -> Result<(), ApiError> {
        self.services.publish(name, access)?;
        if self.services.get(name.as_bytes()).map(|p| p.handler) == Some(Handler::Blob) {
            self.ensure_store(self.cfg.blob_store);
        }
        self.services_changed(&[]);
        Ok(())
    }

    /// Withdraws `name`: no longer announced; new OPENs get
    /// `unknown-service`; channels already open stay. True if it was published.
    pub fn withdraw(&mut self, name: &str) -> bool {
        if !self.services.withdraw(name) {
            return false;
        }
        let gone: heapless::Vec<ServiceName, 1> =
            ServiceName::new(name.as_bytes()).into_iter().collect();
        self.services_changed(&gone);
        true
    }

    /// What this node publishes.
    pub fn published(&self) -> &Services {
        &self.services
    }

    fn services_changed(&mut self, withdrawn: &[ServiceName]) {
        if let Some(bus) = self.bus.as_mut() {
            bus.sessions.apply_services(&self.services, withdrawn);
            let now = bus.last_poll;
            bus.discovery.set_services(now, announced(&self.services));
        }
    }

    /// Asks for a session with `peer` (a discovered device): it is dialled
    /// on the next poll whatever the ids, and `SessionUp` follows. Ok at
    /// once if a session exists.
    pub fn connect(&mut self, peer: &DeviceId) -> Result<(), ApiError> {
        let bus = self.bus.as_mut().ok_or(ApiError::NotReady)?;
        if bus.sessions.get(peer).is_some() {
            return Ok(());
        }
        let id =
            dsb_discovery::DeviceId::new(peer.as_bytes()).map_err(|_| ApiError::UnknownPeer)?;
        if bus.discovery.peer(&id).is_none() {
            return Err(ApiError::UnknownPeer);
        }
        if bus.dialer.want(*peer) {
            Ok(())
        } else {
            Err(ApiError::Busy)
        }
    }

    /// Closes the session with `peer` on the next poll (GOAWAY, then the
    /// transport closes gracefully); `SessionDown { reason: Local }` follows.
    /// False if there is no such session.
    pub fn disconnect(&mut self, peer: &DeviceId) -> bool {
        let Some(bus) = self.bus.as_mut() else {
            return false;
        };
        if bus.sessions.get(peer).is_none() {
            return false;
        }
        if !bus.closing.contains(peer) {
            let _ = bus.closing.push(*peer);
        }
        true
    }

    /// Opens a channel to `service` on the session with `peer`. The peer
    /// answers with `ChannelOpened` or `ChannelRefused` (access denied,
    /// unknown service, no free channel). Bytes may be written at once;
    /// they are delivered only if the peer accepts.
    pub fn open(&mut self, peer: &DeviceId, service: &str) -> Result<ChannelRef, ApiError> {
        let bus = self.bus.as_mut().ok_or(ApiError::NotReady)?;
        let s = bus.sessions.get_mut(peer).ok_or(ApiError::NoSession)?;
        let name = ServiceName::new(service.as_bytes()).ok_or(ApiError::InvalidName)?;
        let id = s.mux.open(service)?;
        s.opening.push((id, name));
        Ok(s.handle(id))
    }

    /// The channel as a byte stream ([`ChannelIo`]), for code written
    /// against that interface.
    pub fn channel(&mut self, ch: ChannelRef) -> Result<MuxChannel<'_>, ApiError> {
        let bus = self.bus.as_mut().ok_or(ApiError::NotReady)?;
        let s = bus.sessions.for_handle(&ch).ok_or(ApiError::StaleChannel)?;
        Ok(MuxChannel {
            mux: &mut s.mux,
            id: ch.id,
        })
    }

    /// Queues bytes on a channel; returns how many were taken. `Ok(0)` never
    /// happens for non-empty `data`: no room is `Err(Channel(WouldBlock))`
    /// (backpressure: wait for `ChannelWritable`).
    pub fn write(&mut self, ch: ChannelRef, data: &[u8]) -> Result<usize, ApiError> {
        Ok(self.channel(ch)?.write(data)?)
    }

    /// Reads what arrived; `Ok(0)` once the peer finished and all was read;
    /// `Err(Channel(WouldBlock))` when nothing is waiting.
    pub fn read(&mut self, ch: ChannelRef, buf: &mut [u8]) -> Result<usize, ApiError> {
        Ok(self.channel(ch)?.read(buf)?)
    }

    /// Bytes `write` would take now (credit and buffer permitting).
    pub fn write_capacity(&mut self, ch: ChannelRef) -> usize {
        self.channel(ch).map_or(0, |c| c.write_capacity())
    }

    /// Ends our direction of the channel after what was written.
    pub fn finish(&mut self, ch: ChannelRef) -> Result<(), ApiError> {
        match self.channel(ch)?.finish() {
            Ok(()) | Err(ChannelError::Finished) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes the peer still lets us send on the channel (its credit):
    /// zero means the reader is holding this writer back.
    pub fn send_credit(&mut self, ch: ChannelRef) -> Option<u32> {
        let bus = self.bus.as_mut()?;
        let s = bus.sessions.for_handle(&ch)?;
        s.mux.send_credit(ch.id)
    }

    /// Bytes waiting to be read on the channel.
    pub fn readable_len(&mut self, ch: ChannelRef) -> usize {
        let Some(bus) = self.bus.as_mut() else {
            return 0;
        };
        bus.sessions
            .for_handle(&ch)
            .map_or(0, |s| s.mux.readable_len(ch.id))
    }

    /// Abandons the channel both ways with an application code (`< 0xFF00`).
    pub fn reset(&mut self, ch: ChannelRef, code: u16) -> Result<(), ApiError> {
        let bus = self.bus.as_mut().ok_or(ApiError::NotReady)?;
        let s = bus.sessions.for_handle(&ch).ok_or(ApiError::StaleChannel)?;
        s.mux.reset(ch.id, code)?;
        Ok(())
    }

    /// Statistics of the session with `peer`.
    pub fn session_stats(&self, peer: &DeviceId) -> Option<SessionStats> {
        Some(self.bus.as_ref()?.sessions.get(peer)?.stats())
    }

    /// Statistics of every session.
    pub fn sessions(&self) -> impl Iterator<Item = SessionStats> + '_ {
        self.bus
            .iter()
            .flat_map(|b| b.sessions.iter().map(|s| s.stats()))
    }

    /// The peers discovery currently knows (verified announces).
    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo> {
        self.bus.iter().flat_map(|b| b.discovery.peers())
    }

    /// Inbound channels refused because a service's policy denied the peer.
    pub fn channels_denied(&self) -> u64 {
        self.bus.as_ref().map_or(0, |b| b.sessions.denied)
    }
}
