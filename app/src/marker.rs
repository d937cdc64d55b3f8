//! Serial markers: the exact console lines the test harness matches.
//!
//! Every marker text lives here, in [`Marker`]'s `Display`. The image prints a
//! marker as one bare line, prefixed with `[<device_id>] ` when more than one node
//! runs ([`NodePrefix`]). Ordinary log lines look different on purpose: the image
//! prints them as `  [<level>] <text>` (two spaces, level in brackets), after the
//! same node prefix.

use core::fmt;

use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};

use crate::config::ConfigError;
use crate::rng::EntropySource;

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
        }
    }
}

/// One console marker.
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
    /// `SELFTEST: icmp ping ok`.
    IcmpPingOk,
    /// `SELFTEST: all ok`.
    AllOk,
    /// `SELFTEST: FAIL <what>`.
    Fail(Failure),
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
            Marker::IcmpPingOk => f.write_str("SELFTEST: icmp ping ok"),
            Marker::AllOk => f.write_str("SELFTEST: all ok"),
            Marker::Fail(what) => write!(f, "SELFTEST: FAIL {}", what.label()),
        }
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
