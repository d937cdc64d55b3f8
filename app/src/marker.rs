//! Serial markers: the exact console lines the test harness matches.
//!
//! Every marker text lives here, in [`Marker`]'s `Display`. The image prints a
//! marker as one bare line, prefixed with `[<device_id>] ` when more than one node
//! runs ([`NodePrefix`]). Ordinary log lines look different on purpose: the image
//! prints them as `  [<level>] <text>` (two spaces, level in brackets), after the
//! same node prefix.

use core::fmt;

use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};

use dsb_noise::DeviceId;
use dsb_transports::transport::TransportKind;

use crate::bus::ServiceList;
use crate::config::ConfigError;
use crate::node::{Direction, DownReason, FallbackReason, NodeEvent};
use crate::rng::EntropySource;
use crate::selftest::TestEvent;

/// What went wrong, for `SELFTEST: FAIL <what>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No DHCP lease before `dhcp_timeout_ms`.
    DhcpTimeout,
    /// No echo reply from the gateway before `ping_timeout_ms`.
    PingTimeout,
    /// Fewer virtio-net NICs than `nodes`.
    NicCount,
    /// A virtio-net device could not be initialised.
    NicInit,
    /// The whole run went past `run_timeout_ms`.
    RunDeadline,
    /// No hardware entropy for long-term keys (and no `test-keys`).
    NoEntropy,
    /// A node could not start discovery or its session listener.
    BusStart,
    /// The identity file is unreadable or does not match `id=`.
    Identity,
    /// The requested transport is not available (`transport=udp-sec udpsec=off`).
    TransportUnavailable,
    /// The udp-sec slow-sink test: the writer was never held back by zero
    /// credit, the sink was not slow, or the reader buffered beyond its cap.
    UdpSecBackpressure,
    /// The bulk echo came back different from what was sent.
    BulkMismatch,
    /// A check of the `services` scenario failed (directory, blob, access).
    Services,
}

impl Failure {
    /// Stable text after `SELFTEST: FAIL `.
    pub fn label(self) -> &'static str {
        match self {
            Failure::DhcpTimeout => "dhcp timeout",
            Failure::PingTimeout => "icmp ping timeout",
            Failure::NicCount => "nic count",
            Failure::NicInit => "nic init",
            Failure::RunDeadline => "run deadline",
            Failure::NoEntropy => "no entropy for keys",
            Failure::BusStart => "bus start",
            Failure::Identity => "identity",
            Failure::TransportUnavailable => "transport unavailable",
            Failure::UdpSecBackpressure => "udp-sec backpressure",
            Failure::BulkMismatch => "bulk mismatch",
            Failure::Services => "services",
        }
    }
}

/// One console marker (short-lived: built, printed, dropped).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Marker<'a> {
    /// First line once the serial port works: `dsoftbus: boot`.
    Boot,
    /// Which entropy source seeded the RNG.
    Rng(EntropySource),
    /// `config: error: <option>: <why>`.
    ConfigError(&'a ConfigError),
    /// `net: virtio-net up mac=<mac>` (lowercase hex, colons).
    VirtioNetUp(EthernetAddress),
    /// `net: smoltcp iface up`.
    IfaceUp,
    /// `net: dhcp bound <ip>/<prefix> gw=<gw>`.
    DhcpBound {
        /// Leased address and prefix.
        cidr: Ipv4Cidr,
        /// Router option, or the DHCP server when there is none.
        gateway: Ipv4Address,
    },
    /// `net: dhcp unavailable (fallback static <ip>/<prefix>)`.
    DhcpUnavailable {
        /// The static address taken.
        cidr: Ipv4Cidr,
    },
    /// `SELFTEST: icmp ping ok`.
    IcmpPingOk,
    /// `SELFTEST: all ok`.
    AllOk,
    /// `SELFTEST: FAIL <what>`.
    Fail(Failure),
    /// The deterministic-keys warning (only with the `test-keys` feature).
    TestKeys,
    /// `dsoftbusd: identity device=<id> key=<64 hex> source=<fw_cfg|generated|test-keys>`:
    /// the public device key peers pin with `trust=` (never a secret).
    Identity {
        id: DeviceId,
        key: [u8; 32],
        source: &'static str,
    },
    /// `dsoftbusd: discovery up (udp multicast 239.42.0.1:37020)` or `(udp broadcast)`.
    DiscoveryUp { multicast: bool },
    /// `dsoftbusd: discovery announce sent`.
    AnnounceSent,
    /// `dsoftbusd: discovery peer found device=<id>`.
    PeerFound(DeviceId),
    /// `dsoftbusd: announce ignored (<label>)`.
    AnnounceIgnored(&'static str),
    /// `dsoftbusd: transport selected <tcp|udp-sec>`.
    TransportSelected(TransportKind),
    /// `dsoftbusd: session connect peer=<id>`.
    SessionConnect(DeviceId),
    /// `dsoftbusd: identity bound peer=<id>`.
    IdentityBound(DeviceId),
    /// `dsoftbusd: identity mismatch peer=<id>`.
    IdentityMismatch(DeviceId),
    /// `dsoftbusd: auth ok`.
    AuthOk,
    /// `SELFTEST: dsoftbus ping ok`.
    DsoftbusPingOk,
    /// `dsoftbus:mux data ok (<tcp|udp-sec>)`.
    MuxDataOk(TransportKind),
    /// `dsoftbusd: dual-node session ok`.
    DualNodeSessionOk,
    /// `dsoftbus: udp-sec os listener up <port>`.
    UdpSecListenerUp(u16),
    /// `dsoftbus: udp-sec os session ok`.
    UdpSecSessionOk,
    /// `dsoftbus: udp-sec os disabled (fallback tcp)`: udp-sec is off here.
    UdpSecDisabled,
    /// `dsoftbus: udp-sec os unavailable [peer=<id> ]reason=<label> (fallback tcp)`:
    /// udp-sec is on but does not carry the session (with that peer).
    UdpSecUnavailable {
        peer: Option<DeviceId>,
        reason: FallbackReason,
    },
    /// `dsoftbusd: peer online device=<id> services=<a,b>`.
    PeerOnline {
        peer: DeviceId,
        services: ServiceList,
    },
    /// `dsoftbusd: peer offline device=<id>`.
    PeerOffline(DeviceId),
    /// `dsoftbusd: session up peer=<id> transport=<t>`.
    SessionUp { peer: DeviceId, kind: TransportKind },
    /// `dsoftbusd: session down peer=<id> reason=<label>`.
    SessionDown { peer: DeviceId, reason: DownReason },
    /// `dsoftbusd: channel denied peer=<id> service=<name>` (on the refusing node).
    ChannelDenied {
        peer: DeviceId,
        service: dsb_transports::mux::ServiceName,
    },
    /// `dsoftbusd: ping ok peer=<id> rtt_us=<n>`: a serving node's health check.
    PingOk { peer: DeviceId, rtt_us: u64 },
    /// `dsoftbusd: echo ok peer=<id> bytes=<n> ms=<t>`: the bytes came back
    /// through the peer's echo with the hash of what was sent.
    EchoOk { peer: DeviceId, bytes: u64, ms: u64 },
    /// `SELFTEST: rpc ok`.
    RpcOk,
    /// `SELFTEST: blob ok`.
    BlobOk,
    /// `SELFTEST: access denied ok`.
    AccessDeniedOk,
    /// `dsoftbusd: handshake rejected (<label>)`: we refused an inbound handshake.
    HandshakeRejected(&'static str),
    /// `dsoftbusd: session refused peer=<id> reason=<label>`: our attempt failed.
    SessionRefused {
        peer: DeviceId,
        reason: &'static str,
    },
    /// `SELFTEST: udp-sec control ok` (ping/pong over udp-sec).
    UdpSecControlOk,
    /// `SELFTEST: udp-sec bulk ok` (at least 1 MiB echoed, hash-checked).
    UdpSecBulkOk,
    /// `SELFTEST: udp-sec backpressure ok` (writer held by credit, memory under cap).
    UdpSecBackpressureOk,
    /// `SELFTEST: udp-sec fallback ok (<what happened>)`: a TCP session
    /// completed after udp-sec was found off (`peer: None`) or unusable with `peer`.
    UdpSecFallbackOk {
        peer: Option<DeviceId>,
        reason: FallbackReason,
    },
}

impl Marker<'_> {
    /// The marker a node event prints, if any. `AnnounceSent` prints once
    /// (the first); ignored announces and failed handshakes go through the
    /// caller's [`LabelLimit`]. The `SELFTEST: udp-sec
    /// ...` verdicts come from [`crate::selftest`].
    pub fn for_node_event(event: &NodeEvent) -> Option<Marker<'static>> {
        Some(match *event {
            NodeEvent::DiscoveryUp { multicast } => Marker::DiscoveryUp { multicast },
            NodeEvent::AnnounceSent { count: 1 } => Marker::AnnounceSent,
            NodeEvent::PeerFound(id) => Marker::PeerFound(id),
            NodeEvent::AnnounceIgnored(e) => Marker::AnnounceIgnored(e.label()),
            NodeEvent::TransportSelected { kind, .. } => Marker::TransportSelected(kind),
            NodeEvent::SessionConnect(id) => Marker::SessionConnect(id),
            NodeEvent::IdentityBound(id) => Marker::IdentityBound(id),
            NodeEvent::IdentityMismatch(id) => Marker::IdentityMismatch(id),
            NodeEvent::AuthOk(_) => Marker::AuthOk,
            NodeEvent::PeerOnline { peer, services, .. } => Marker::PeerOnline { peer, services },
            NodeEvent::PeerOffline(peer) => Marker::PeerOffline(peer),
            NodeEvent::SessionUp { peer, kind, .. } => Marker::SessionUp { peer, kind },
            NodeEvent::SessionDown { peer, reason, .. } => Marker::SessionDown { peer, reason },
            NodeEvent::ChannelDenied { peer, service } => Marker::ChannelDenied { peer, service },
            NodeEvent::UdpSecListening { port } => Marker::UdpSecListenerUp(port),
            NodeEvent::UdpSecSessionOk(_) => Marker::UdpSecSessionOk,
            NodeEvent::UdpSecFallback {
                peer: None,
                reason: FallbackReason::Disabled,
            } => Marker::UdpSecDisabled,
            NodeEvent::UdpSecFallback { peer, reason } => {
                Marker::UdpSecUnavailable { peer, reason }
            }
            NodeEvent::HandshakeFailed {
                direction: Direction::Inbound,
                error,
                ..
            } => Marker::HandshakeRejected(error.label()),
            NodeEvent::HandshakeFailed {
                direction: Direction::Outbound,
                peer: Some(peer),
                error,
            } => Marker::SessionRefused {
                peer,
                reason: error.label(),
            },
            _ => return None,
        })
    }
}

impl Marker<'_> {
    /// The marker a self-test event prints, if any (the `SELFTEST: udp-sec
    /// ...` verdicts come from [`crate::selftest::NetSelftest`]).
    pub fn for_test_event(event: &TestEvent) -> Option<Marker<'static>> {
        Some(match *event {
            TestEvent::PingOk { .. } => Marker::DsoftbusPingOk,
            TestEvent::MuxDataOk { kind, .. } => Marker::MuxDataOk(kind),
            TestEvent::SessionOk { .. } => Marker::DualNodeSessionOk,
            TestEvent::RpcOk { .. } => Marker::RpcOk,
            TestEvent::BlobOk { .. } => Marker::BlobOk,
            TestEvent::AccessDeniedOk { .. } => Marker::AccessDeniedOk,
            _ => return None,
        })
    }
}

impl fmt::Display for Marker<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Marker::Boot => f.write_str("dsoftbus: boot"),
            Marker::Rng(EntropySource::Rdrand) => f.write_str("rng: seeded from RDRAND"),
            Marker::Rng(EntropySource::None) => {
                f.write_str("rng: WARNING no hardware entropy (RDRAND absent)")
            }
            Marker::ConfigError(e) => write!(f, "config: error: {e}"),
            Marker::VirtioNetUp(mac) => write!(f, "net: virtio-net up mac={}", Mac(*mac)),
            Marker::IfaceUp => f.write_str("net: smoltcp iface up"),
            Marker::DhcpBound { cidr, gateway } => {
                write!(f, "net: dhcp bound {cidr} gw={gateway}")
            }
            Marker::DhcpUnavailable { cidr } => {
                write!(f, "net: dhcp unavailable (fallback static {cidr})")
            }
            Marker::IcmpPingOk => f.write_str("SELFTEST: icmp ping ok"),
            Marker::AllOk => f.write_str("SELFTEST: all ok"),
            Marker::Fail(what) => write!(f, "SELFTEST: FAIL {}", what.label()),
            Marker::TestKeys => f.write_str(dsb_noise::TEST_KEYS_WARNING),
            Marker::Identity { id, key, source } => {
                write!(f, "dsoftbusd: identity device={} key=", id.as_str())?;
                for b in key {
                    write!(f, "{b:02x}")?;
                }
                write!(f, " source={source}")
            }
            Marker::DiscoveryUp { multicast: true } => {
                f.write_str("dsoftbusd: discovery up (udp multicast 239.42.0.1:37020)")
            }
            Marker::DiscoveryUp { multicast: false } => {
                f.write_str("dsoftbusd: discovery up (udp broadcast)")
            }
            Marker::AnnounceSent => f.write_str("dsoftbusd: discovery announce sent"),
            Marker::PeerFound(id) => {
                write!(f, "dsoftbusd: discovery peer found device={}", id.as_str())
            }
            Marker::AnnounceIgnored(label) => write!(f, "dsoftbusd: announce ignored ({label})"),
            Marker::TransportSelected(kind) => write!(f, "dsoftbusd: transport selected {kind}"),
            Marker::SessionConnect(id) => {
                write!(f, "dsoftbusd: session connect peer={}", id.as_str())
            }
            Marker::IdentityBound(id) => {
                write!(f, "dsoftbusd: identity bound peer={}", id.as_str())
            }
            Marker::IdentityMismatch(id) => {
                write!(f, "dsoftbusd: identity mismatch peer={}", id.as_str())
            }
            Marker::AuthOk => f.write_str("dsoftbusd: auth ok"),
            Marker::DsoftbusPingOk => f.write_str("SELFTEST: dsoftbus ping ok"),
            Marker::MuxDataOk(kind) => write!(f, "dsoftbus:mux data ok ({kind})"),
            Marker::DualNodeSessionOk => f.write_str("dsoftbusd: dual-node session ok"),
            Marker::UdpSecListenerUp(port) => write!(f, "dsoftbus: udp-sec os listener up {port}"),
            Marker::UdpSecSessionOk => f.write_str("dsoftbus: udp-sec os session ok"),
            Marker::UdpSecDisabled => f.write_str("dsoftbus: udp-sec os disabled (fallback tcp)"),
            Marker::UdpSecControlOk => f.write_str("SELFTEST: udp-sec control ok"),
            Marker::UdpSecBulkOk => f.write_str("SELFTEST: udp-sec bulk ok"),
            Marker::UdpSecBackpressureOk => f.write_str("SELFTEST: udp-sec backpressure ok"),
            Marker::UdpSecUnavailable { peer, reason } => {
                f.write_str("dsoftbus: udp-sec os unavailable ")?;
                if let Some(p) = peer {
                    write!(f, "peer={} ", p.as_str())?;
                }
                write!(f, "reason={} (fallback tcp)", reason.label())
            }
            Marker::HandshakeRejected(label) => {
                write!(f, "dsoftbusd: handshake rejected ({label})")
            }
            Marker::PeerOnline { peer, services } => write!(
                f,
                "dsoftbusd: peer online device={} services={services}",
                peer.as_str()
            ),
            Marker::PeerOffline(peer) => {
                write!(f, "dsoftbusd: peer offline device={}", peer.as_str())
            }
            Marker::SessionUp { peer, kind } => write!(
                f,
                "dsoftbusd: session up peer={} transport={kind}",
                peer.as_str()
            ),
            Marker::SessionDown { peer, reason } => write!(
                f,
                "dsoftbusd: session down peer={} reason={reason}",
                peer.as_str()
            ),
            Marker::ChannelDenied { peer, service } => write!(
                f,
                "dsoftbusd: channel denied peer={} service={}",
                peer.as_str(),
                service.as_str()
            ),
            Marker::PingOk { peer, rtt_us } => write!(
                f,
                "dsoftbusd: ping ok peer={} rtt_us={rtt_us}",
                peer.as_str()
            ),
            Marker::EchoOk { peer, bytes, ms } => write!(
                f,
                "dsoftbusd: echo ok peer={} bytes={bytes} ms={ms}",
                peer.as_str()
            ),
            Marker::RpcOk => f.write_str("SELFTEST: rpc ok"),
            Marker::BlobOk => f.write_str("SELFTEST: blob ok"),
            Marker::AccessDeniedOk => f.write_str("SELFTEST: access denied ok"),
            Marker::SessionRefused { peer, reason } => write!(
                f,
                "dsoftbusd: session refused peer={} reason={reason}",
                peer.as_str()
            ),
            Marker::UdpSecFallbackOk { peer: None, .. } => {
                f.write_str("SELFTEST: udp-sec fallback ok (udp-sec off)")
            }
            Marker::UdpSecFallbackOk {
                peer: Some(p),
                reason,
            } => write!(
                f,
                "SELFTEST: udp-sec fallback ok (peer={} {})",
                p.as_str(),
                reason.label()
            ),
        }
    }
}

/// Most distinct labels one [`LabelLimit`] tracks (further labels share a slot).
pub const LABEL_LIMIT_SLOTS: usize = 24;

/// Console rate limit per label: a line is printed at counts 1, 2, 4, 8, ...
/// of its label, so a flood of one rejection cannot flood the console while
/// every kind of rejection still shows up at once. Counts are never lost.
#[derive(Clone, Debug, Default)]
pub struct LabelLimit {
    slots: heapless::Vec<(&'static str, u32), LABEL_LIMIT_SLOTS>,
    overflow: u32,
}

impl LabelLimit {
    /// Counts one `label`; true when this occurrence should be printed.
    pub fn allow(&mut self, label: &'static str) -> bool {
        let count = match self.slots.iter_mut().find(|(l, _)| *l == label) {
            Some((_, c)) => {
                *c = c.saturating_add(1);
                *c
            }
            None => match self.slots.push((label, 1)) {
                Ok(()) => 1,
                Err(_) => {
                    self.overflow = self.overflow.saturating_add(1);
                    self.overflow
                }
            },
        };
        count.is_power_of_two()
    }

    /// How often `label` was seen.
    pub fn count(&self, label: &str) -> u32 {
        self.slots
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, c)| *c)
    }
}

/// A MAC address as `52:54:00:12:34:01` (smoltcp's own `Display` uses dashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub EthernetAddress);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.as_bytes();
        let mut first = true;
        for byte in b {
            if !first {
                f.write_str(":")?;
            }
            first = false;
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Device ids of the nodes, by index: `node-a`, `node-b`, `node-c`.
pub const NODE_IDS: [&str; 3] = ["node-a", "node-b", "node-c"];

/// The `[<device_id>] ` line prefix, or nothing when only one node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePrefix(pub Option<&'static str>);

impl NodePrefix {
    /// Prefix for node `index` of `nodes`: none when `nodes == 1`.
    pub fn for_node(index: usize, nodes: usize) -> NodePrefix {
        if nodes <= 1 {
            NodePrefix(None)
        } else {
            NodePrefix(NODE_IDS.get(index).copied())
        }
    }
}

impl fmt::Display for NodePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "[{id}] "),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn platform_markers_match_the_contract() {
        let mac = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x0a]);
        assert_eq!(
            Marker::VirtioNetUp(mac).to_string(),
            "net: virtio-net up mac=52:54:00:12:34:0a"
        );
        assert_eq!(Marker::IfaceUp.to_string(), "net: smoltcp iface up");
        let bound = Marker::DhcpBound {
            cidr: Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24),
            gateway: Ipv4Address::new(10, 0, 2, 2),
        };
        assert_eq!(
            bound.to_string(),
            "net: dhcp bound 10.0.2.15/24 gw=10.0.2.2"
        );
        assert_eq!(Marker::IcmpPingOk.to_string(), "SELFTEST: icmp ping ok");
        assert_eq!(Marker::AllOk.to_string(), "SELFTEST: all ok");
        assert_eq!(
            Marker::Fail(Failure::DhcpTimeout).to_string(),
            "SELFTEST: FAIL dhcp timeout"
        );
        assert_eq!(
            Marker::Fail(Failure::PingTimeout).to_string(),
            "SELFTEST: FAIL icmp ping timeout"
        );
        assert_eq!(
            Marker::Fail(Failure::NicCount).to_string(),
            "SELFTEST: FAIL nic count"
        );
    }

    #[test]
    fn bus_markers_match_the_contract() {
        let b = DeviceId::new("node-b").unwrap();
        let cases = [
            (
                Marker::DiscoveryUp { multicast: true },
                "dsoftbusd: discovery up (udp multicast 239.42.0.1:37020)",
            ),
            (
                Marker::DiscoveryUp { multicast: false },
                "dsoftbusd: discovery up (udp broadcast)",
            ),
            (Marker::AnnounceSent, "dsoftbusd: discovery announce sent"),
            (
                Marker::PeerFound(b),
                "dsoftbusd: discovery peer found device=node-b",
            ),
            (
                Marker::AnnounceIgnored("replay"),
                "dsoftbusd: announce ignored (replay)",
            ),
            (
                Marker::TransportSelected(TransportKind::Tcp),
                "dsoftbusd: transport selected tcp",
            ),
            (
                Marker::TransportSelected(TransportKind::UdpSec),
                "dsoftbusd: transport selected udp-sec",
            ),
            (
                Marker::SessionConnect(b),
                "dsoftbusd: session connect peer=node-b",
            ),
            (
                Marker::IdentityBound(b),
                "dsoftbusd: identity bound peer=node-b",
            ),
            (
                Marker::IdentityMismatch(b),
                "dsoftbusd: identity mismatch peer=node-b",
            ),
            (Marker::AuthOk, "dsoftbusd: auth ok"),
            (Marker::DsoftbusPingOk, "SELFTEST: dsoftbus ping ok"),
            (
                Marker::MuxDataOk(TransportKind::Tcp),
                "dsoftbus:mux data ok (tcp)",
            ),
            (Marker::DualNodeSessionOk, "dsoftbusd: dual-node session ok"),
            (Marker::TestKeys, "SECURITY: test keys, not for production"),
            (
                Marker::MuxDataOk(TransportKind::UdpSec),
                "dsoftbus:mux data ok (udp-sec)",
            ),
            (
                Marker::UdpSecListenerUp(37031),
                "dsoftbus: udp-sec os listener up 37031",
            ),
            (Marker::UdpSecSessionOk, "dsoftbus: udp-sec os session ok"),
            (
                Marker::UdpSecDisabled,
                "dsoftbus: udp-sec os disabled (fallback tcp)",
            ),
            (Marker::UdpSecControlOk, "SELFTEST: udp-sec control ok"),
            (Marker::UdpSecBulkOk, "SELFTEST: udp-sec bulk ok"),
            (
                Marker::UdpSecBackpressureOk,
                "SELFTEST: udp-sec backpressure ok",
            ),
            (
                Marker::UdpSecFallbackOk {
                    peer: None,
                    reason: FallbackReason::Disabled,
                },
                "SELFTEST: udp-sec fallback ok (udp-sec off)",
            ),
            (
                Marker::UdpSecFallbackOk {
                    peer: Some(b),
                    reason: FallbackReason::Unreachable,
                },
                "SELFTEST: udp-sec fallback ok (peer=node-b unreachable)",
            ),
            (
                Marker::UdpSecUnavailable {
                    peer: Some(b),
                    reason: FallbackReason::Unreachable,
                },
                "dsoftbus: udp-sec os unavailable peer=node-b reason=unreachable (fallback tcp)",
            ),
            (
                Marker::HandshakeRejected("unknown-peer"),
                "dsoftbusd: handshake rejected (unknown-peer)",
            ),
            (
                Marker::SessionRefused {
                    peer: b,
                    reason: "refused",
                },
                "dsoftbusd: session refused peer=node-b reason=refused",
            ),
            (
                Marker::Fail(Failure::BulkMismatch),
                "SELFTEST: FAIL bulk mismatch",
            ),
            (
                Marker::PeerOnline {
                    peer: b,
                    services: ServiceList::from_names([&b"ping"[..], b"sd", b"blob"]),
                },
                "dsoftbusd: peer online device=node-b services=ping,sd,blob",
            ),
            (
                Marker::PeerOffline(b),
                "dsoftbusd: peer offline device=node-b",
            ),
            (
                Marker::SessionUp {
                    peer: b,
                    kind: TransportKind::UdpSec,
                },
                "dsoftbusd: session up peer=node-b transport=udp-sec",
            ),
            (
                Marker::SessionDown {
                    peer: b,
                    reason: DownReason::Superseded,
                },
                "dsoftbusd: session down peer=node-b reason=superseded",
            ),
            (
                Marker::ChannelDenied {
                    peer: b,
                    service: dsb_transports::mux::ServiceName::new(b"blob").unwrap(),
                },
                "dsoftbusd: channel denied peer=node-b service=blob",
            ),
            (
                Marker::PingOk {
                    peer: b,
                    rtt_us: 412,
                },
                "dsoftbusd: ping ok peer=node-b rtt_us=412",
            ),
            (
                Marker::EchoOk {
                    peer: b,
                    bytes: 1 << 20,
                    ms: 830,
                },
                "dsoftbusd: echo ok peer=node-b bytes=1048576 ms=830",
            ),
            (Marker::RpcOk, "SELFTEST: rpc ok"),
            (Marker::BlobOk, "SELFTEST: blob ok"),
            (Marker::AccessDeniedOk, "SELFTEST: access denied ok"),
            (
                Marker::Fail(Failure::UdpSecBackpressure),
                "SELFTEST: FAIL udp-sec backpressure",
            ),
        ];
        for (m, text) in cases {
            assert_eq!(m.to_string(), text);
        }
    }

    #[test]
    fn label_limit_prints_powers_of_two_per_label() {
        let mut l = LabelLimit::default();
        let printed: alloc::vec::Vec<bool> = (0..9).map(|_| l.allow("replay")).collect();
        assert_eq!(
            printed,
            [true, true, false, true, false, false, false, true, false]
        );
        assert!(l.allow("malformed"), "another label prints at once");
        assert_eq!(l.count("replay"), 9);
    }

    #[test]
    fn config_error_marker() {
        let e = crate::config::Config::parse(b"nodes=9").unwrap_err();
        assert_eq!(
            Marker::ConfigError(&e).to_string(),
            "config: error: nodes: bad value \"9\" (expected 1|2|3)"
        );
    }

    #[test]
    fn prefix_only_with_several_nodes() {
        assert_eq!(NodePrefix::for_node(0, 1).to_string(), "");
        assert_eq!(NodePrefix::for_node(0, 2).to_string(), "[node-a] ");
        assert_eq!(NodePrefix::for_node(2, 3).to_string(), "[node-c] ");
        assert_eq!(
            format!("{}{}", NodePrefix::for_node(1, 2), Marker::IfaceUp),
            "[node-b] net: smoltcp iface up"
        );
    }
}
