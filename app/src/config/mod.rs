//! Typed image configuration, parsed from the kernel command line (`-append`).
//!
//! The command line is a list of `key=value` options separated by ASCII whitespace.
//! Every option is optional; an unknown key, a bad or empty value, a duplicate key
//! or an over-long line is an error ([`ConfigError`]) that the image prints as
//! `config: error: <option>: <why>` before any networking starts.
//!
//! | key               | values                               | default  | meaning |
//! |-------------------|--------------------------------------|----------|---------|
//! | `nodes`           | `1`, `2`, `3`                        | `1`      | network nodes (one NIC, one smoltcp interface each) |
//! | `transport`       | `auto`, `tcp`, `udp-sec`             | `auto`   | session transport for the bus layers |
//! | `udpsec`          | `on`, `off`                          | `on`     | whether the udp-sec transport may be used |
//! | `scenario`        | `normal`, `spoof`, `services`        | `normal` | self-test scenario (`services`: `nodes=3`) |
//! | `log`             | `error`, `warn`, `info`, `debug`, `trace` | `warn` | most verbose log level printed |
//! | `pcap`            | `0`, `1`                             | `0`      | informational: the launcher is capturing frames |
//! | `dhcp_timeout_ms` | `100..=60000`                        | `5000`   | DHCP lease deadline per node, from stack start |
//! | `ping_timeout_ms` | `100..=60000`                        | `3000`   | ICMP echo deadline per node, from the lease |
//! | `run_timeout_ms`  | `1000..=600000`                      | `30000`  | whole-run deadline, from boot |
//! | `udpsec_drop`     | `on`, `off`                          | `off`    | fault injection: every node drops inbound udp-sec datagrams at its link |
//! | `ip`              | `auto`, `dhcp`, `<a.b.c.d>/<8..30>`  | `auto`   | address when no DHCP lease came by `dhcp_timeout_ms`: `auto` = the MAC rule (`52:54:00:12:34:NN` -> `10.0.2.(100+NN)/24`), `dhcp` = none (fail), or this one |
//! | `gateway`         | `required`, `optional`               | `required` (`optional` with `mode=serve`) | whether the gateway's echo reply gates the node (`optional`: the bus starts at the address, the echo is a self-test only) |
//! | `idle`            | `halt`, `poll`                       | `halt`   | wait for work with `hlt` (timer + NIC interrupts) or busy-poll |
//! | `idle_test_ms`    | `0..=600000`                         | `0`      | debug: after `SELFTEST: all ok`, keep serving (idle) this long before exiting |
//! | `mode`            | `selftest`, `serve`                  | `selftest` | `serve`: a long-running node, no verdict, runs until QEMU is stopped |
//! | `id`              | a device id (`[A-Za-z0-9._-]`, 1..=32) | `node-a`.. | the node's device id (`nodes=1` only; an identity file's id must match) |
//! | `trust`           | `<id>:<64 hex>,...` (at most 16)     | none     | pinned Ed25519 device keys |
//! | `tofu`            | `on`, `off`                          | `on`     | trust on first use for ids not pinned |
//! | `allow`           | `<service>:<id>\|*,...` (at most 16) | `ping:*,sd:*` | serve mode: who may use which service (deny by default) |
//! | `udpsec_cc`       | `cubic`, `reno`                      | `cubic`  | udp-sec congestion controller |
//! | `echo_bytes`      | `0..=16777216`                       | `0`      | serve mode: after the ping, echo this many bytes with each peer, hash-checked |
//! | `dial`            | `lower-id`, `everyone`               | `lower-id` | whom the node dials on its own (`everyone`: ignore the tie-break; for tests, e.g. an impostor VM) |
//!
//! Limits: the line is at most [`MAX_CMDLINE_LEN`] bytes of printable ASCII
//! (plus whitespace); a key is at most [`MAX_KEY_LEN`] bytes, a value at most
//! [`MAX_VALUE_LEN`] bytes.

use core::str::FromStr;

use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::net::GatewayPing;

mod bus;
mod error;
mod render;

pub use bus::{AllowEntry, Mode, Who, MAX_ALLOW, MAX_TRUST};
pub use error::{ConfigError, Why};

pub use dsb_transports::udpsec::CongestionControl;

/// Longest accepted kernel command line, in bytes.
pub const MAX_CMDLINE_LEN: usize = 4096;
/// Longest accepted option name, in bytes.
pub const MAX_KEY_LEN: usize = 32;
/// Longest accepted option value, in bytes (a `trust=` list of keys is long).
pub const MAX_VALUE_LEN: usize = 1280;
/// Most nodes (NICs) one image runs.
pub const MAX_NODES: u8 = 3;

/// Which session transport the bus layers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// udp-sec when enabled and available, otherwise tcp.
    Auto,
    /// Noise over TCP.
    Tcp,
    /// Noise over UDP (udp-sec).
    UdpSec,
}

impl Transport {
    /// The command-line spelling.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Auto => "auto",
            Transport::Tcp => "tcp",
            Transport::UdpSec => "udp-sec",
        }
    }
}

/// Which self-test scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Honest nodes only.
    Normal,
    /// A node impersonates another (identity-binding test).
    Spoof,
    /// Published services: directory calls, a blob round trip, a refused
    /// blob channel (`nodes=3`).
    Services,
}

impl Scenario {
    /// The command-line spelling.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::Spoof => "spoof",
            Scenario::Services => "services",
        }
    }
}

/// Which address a node takes when DHCP gives none (`ip=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpMode {
    /// The MAC rule ([`crate::net::static_fallback_for`]).
    Auto,
    /// None: no lease is a failure.
    Dhcp,
    /// This address.
    Static(Ipv4Cidr),
}

/// How the main loop waits for work (`idle=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleMode {
    /// Halt the CPU until the next deadline or a NIC interrupt.
    Halt,
    /// Busy-poll (the behaviour before issue 12; for comparison).
    Poll,
}

/// Most verbose log level printed on the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Plus informational lines.
    Info,
    /// Plus debugging lines (smoltcp's included).
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The matching `log` crate filter.
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// The whole image configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of nodes, `1..=MAX_NODES`.
    pub nodes: u8,
    /// Session transport.
    pub transport: Transport,
    /// Whether udp-sec may be used.
    pub udpsec: bool,
    /// Self-test scenario.
    pub scenario: Scenario,
    /// Console log level.
    pub log: LogLevel,
    /// Informational: frames are being captured.
    pub pcap: bool,
    /// DHCP deadline per node, milliseconds.
    pub dhcp_timeout_ms: u32,
    /// ICMP echo deadline per node, milliseconds.
    pub ping_timeout_ms: u32,
    /// Whole-run deadline, milliseconds from boot.
    pub run_timeout_ms: u32,
    /// Fault injection: drop inbound udp-sec datagrams (makes udp-sec unreachable).
    pub udpsec_drop: bool,
    /// Address without a DHCP lease.
    pub ip: IpMode,
    /// Whether the gateway must answer its echo (`None`: the mode's
    /// default, see [`Config::gateway_ping`]).
    pub gateway: Option<GatewayPing>,
    /// How the main loop waits.
    pub idle: IdleMode,
    /// Debug: keep serving this long after the self-test passed.
    pub idle_test_ms: u32,
    /// Self-test or serving node.
    pub mode: Mode,
    /// The device id (`nodes=1` only).
    pub id: Option<dsb_noise::DeviceId>,
    /// Pinned (id, Ed25519 device key) pairs.
    pub trust: heapless::Vec<(dsb_noise::DeviceId, [u8; 32]), MAX_TRUST>,
    /// Trust on first use.
    pub tofu: bool,
    /// Who may use which service (`None`: the mode's default).
    pub allow: Option<heapless::Vec<AllowEntry, MAX_ALLOW>>,
    /// Congestion controller of udp-sec connections.
    pub udpsec_cc: CongestionControl,
    /// Serve mode: bytes echoed with each peer after the ping.
    pub echo_bytes: u32,
    /// Dial every peer seen, ignoring the lower-id rule.
    pub dial_everyone: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodes: 1,
            transport: Transport::Auto,
            udpsec: true,
            scenario: Scenario::Normal,
            log: LogLevel::Warn,
            pcap: false,
            dhcp_timeout_ms: 5000,
            ping_timeout_ms: 3000,
            run_timeout_ms: 30_000,
            udpsec_drop: false,
            ip: IpMode::Auto,
            gateway: None,
            idle: IdleMode::Halt,
            idle_test_ms: 0,
            mode: Mode::Selftest,
            id: None,
            trust: heapless::Vec::new(),
            tofu: true,
            allow: None,
            udpsec_cc: CongestionControl::Cubic,
            echo_bytes: 0,
            dial_everyone: false,
        }
    }
}

/// Every known key, in the order of the table above (bit positions for duplicate checks).
const KEYS: [&str; 22] = [
    "nodes",
    "transport",
    "udpsec",
    "scenario",
    "log",
    "pcap",
    "dhcp_timeout_ms",
    "ping_timeout_ms",
    "run_timeout_ms",
    "udpsec_drop",
    "ip",
    "gateway",
    "idle",
    "idle_test_ms",
    "mode",
    "id",
    "trust",
    "tofu",
    "allow",
    "udpsec_cc",
    "echo_bytes",
    "dial",
];

impl Config {
    /// The static address node `index` (with NIC `mac`) takes when DHCP gives
    /// none: the MAC rule for `ip=auto`, none for `ip=dhcp`, and for an
    /// explicit `ip=` that address plus `index` (so an image's nodes differ).
    pub fn fallback_address(
        &self,
        mac: smoltcp::wire::EthernetAddress,
        index: usize,
    ) -> Option<Ipv4Cidr> {
        match self.ip {
            IpMode::Auto => crate::net::static_fallback_for(mac),
            IpMode::Dhcp => None,
            IpMode::Static(c) => {
                let addr = u32::from(c.address()).checked_add(u32::try_from(index).ok()?)?;
                Some(Ipv4Cidr::new(Ipv4Address::from(addr), c.prefix_len()))
            }
        }
    }

    /// Parses a kernel command line. An empty (or all-whitespace) line gives the defaults.
    pub fn parse(cmdline: &[u8]) -> Result<Config, ConfigError> {
        if cmdline.len() > MAX_CMDLINE_LEN {
            return Err(ConfigError::new(
                b"cmdline",
                Why::TooLong {
                    max: MAX_CMDLINE_LEN,
                },
            ));
        }
        if cmdline
            .iter()
            .any(|b| !(b.is_ascii_graphic() || b.is_ascii_whitespace()))
        {
            return Err(ConfigError::new(b"cmdline", Why::NonPrintable));
        }

        let mut config = Config::default();
        let mut seen: u32 = 0;
        for token in cmdline
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            let Some(eq) = token.iter().position(|&b| b == b'=') else {
                return Err(ConfigError::new(token, Why::NotKeyValue));
            };
            let (key, rest) = token.split_at(eq);
            let value = rest.get(1..).unwrap_or(&[]);
            if key.is_empty() {
                return Err(ConfigError::new(b"cmdline", Why::EmptyKey));
            }
            if key.len() > MAX_KEY_LEN {
                return Err(ConfigError::new(key, Why::TooLong { max: MAX_KEY_LEN }));
            }
            let Some(index) = KEYS.iter().position(|k| k.as_bytes() == key) else {
                return Err(ConfigError::new(key, Why::UnknownOption));
            };
            let bit = 1u32 << index;
            if seen & bit != 0 {
                return Err(ConfigError::new(key, Why::Duplicate));
            }
            seen |= bit;
            if value.is_empty() {
                return Err(ConfigError::new(key, Why::EmptyValue));
            }
            if value.len() > MAX_VALUE_LEN {
                return Err(ConfigError::new(key, Why::TooLong { max: MAX_VALUE_LEN }));
            }
            config.apply(key, value)?;
        }
        config.check()
    }

    fn apply(&mut self, key: &[u8], value: &[u8]) -> Result<(), ConfigError> {
        let bad = |expected| ConfigError::bad_value(key, value, expected);
        match key {
            b"nodes" => {
                self.nodes = match value {
                    b"1" => 1,
                    b"2" => 2,
                    b"3" => 3,
                    _ => return Err(bad("1|2|3")),
                }
            }
            b"transport" => {
                self.transport = match value {
                    b"auto" => Transport::Auto,
                    b"tcp" => Transport::Tcp,
                    b"udp-sec" => Transport::UdpSec,
                    _ => return Err(bad("auto|tcp|udp-sec")),
                }
            }
            b"udpsec" => {
                self.udpsec = match value {
                    b"on" => true,
                    b"off" => false,
                    _ => return Err(bad("on|off")),
                }
            }
            b"udpsec_drop" => {
                self.udpsec_drop = match value {
                    b"on" => true,
                    b"off" => false,
                    _ => return Err(bad("on|off")),
                }
            }
            b"scenario" => {
                self.scenario = match value {
                    b"normal" => Scenario::Normal,
                    b"spoof" => Scenario::Spoof,
                    b"services" => Scenario::Services,
                    _ => return Err(bad("normal|spoof|services")),
                }
            }
            b"log" => {
                self.log = match value {
                    b"error" => LogLevel::Error,
                    b"warn" => LogLevel::Warn,
                    b"info" => LogLevel::Info,
                    b"debug" => LogLevel::Debug,
                    b"trace" => LogLevel::Trace,
                    _ => return Err(bad("error|warn|info|debug|trace")),
                }
            }
            b"pcap" => {
                self.pcap = match value {
                    b"0" => false,
                    b"1" => true,
                    _ => return Err(bad("0|1")),
                }
            }
            b"dhcp_timeout_ms" => {
                self.dhcp_timeout_ms =
                    parse_ranged(value, 100, 60_000).ok_or_else(|| bad("100..60000"))?
            }
            b"ping_timeout_ms" => {
                self.ping_timeout_ms =
                    parse_ranged(value, 100, 60_000).ok_or_else(|| bad("100..60000"))?
            }
            b"run_timeout_ms" => {
                self.run_timeout_ms =
                    parse_ranged(value, 1000, 600_000).ok_or_else(|| bad("1000..600000"))?
            }
            b"ip" => {
                self.ip = match value {
                    b"auto" => IpMode::Auto,
                    b"dhcp" => IpMode::Dhcp,
                    _ => IpMode::Static(
                        parse_cidr(value).ok_or_else(|| bad("auto|dhcp|a.b.c.d/8..30"))?,
                    ),
                }
            }
            b"gateway" => {
                self.gateway = Some(match value {
                    b"required" => GatewayPing::Required,
                    b"optional" => GatewayPing::Optional,
                    _ => return Err(bad("required|optional")),
                })
            }
            b"idle" => {
                self.idle = match value {
                    b"halt" => IdleMode::Halt,
                    b"poll" => IdleMode::Poll,
                    _ => return Err(bad("halt|poll")),
                }
            }
            b"idle_test_ms" => {
                self.idle_test_ms =
                    parse_ranged(value, 0, 600_000).ok_or_else(|| bad("0..600000"))?
            }
            b"mode" => {
                self.mode = match value {
                    b"selftest" => Mode::Selftest,
                    b"serve" => Mode::Serve,
                    _ => return Err(bad("selftest|serve")),
                }
            }
            b"id" => {
                self.id = Some(bus::parse_id(value).ok_or_else(|| bad("1..32 of [A-Za-z0-9._-]"))?)
            }
            b"trust" => {
                self.trust = bus::parse_trust(value)
                    .ok_or_else(|| bad("<id>:<64 hex>,... (at most 16, no id twice)"))?
            }
            b"tofu" => {
                self.tofu = match value {
                    b"on" => true,
                    b"off" => false,
                    _ => return Err(bad("on|off")),
                }
            }
            b"allow" => {
                self.allow = Some(
                    bus::parse_allow(value)
                        .ok_or_else(|| bad("<service>:<id>|*,... (at most 16)"))?,
                )
            }
            b"echo_bytes" => {
                self.echo_bytes =
                    parse_ranged(value, 0, 16 << 20).ok_or_else(|| bad("0..16777216"))?
            }
            b"dial" => {
                self.dial_everyone = match value {
                    b"lower-id" => false,
                    b"everyone" => true,
                    _ => return Err(bad("lower-id|everyone")),
                }
            }
            b"udpsec_cc" => {
                self.udpsec_cc = match value {
                    b"cubic" => CongestionControl::Cubic,
                    b"reno" => CongestionControl::Reno,
                    _ => return Err(bad("cubic|reno")),
                }
            }
            _ => return Err(ConfigError::new(key, Why::UnknownOption)),
        }
        Ok(())
    }

    /// Whether the gateway's echo gates the node: as configured, else
    /// required for the self-test (its `SELFTEST: icmp ping ok` comes
    /// before the bus markers) and optional for a serving node (the bus
    /// starts once the interface has an address).
    pub fn gateway_ping(&self) -> GatewayPing {
        self.gateway.unwrap_or(match self.mode {
            Mode::Selftest => GatewayPing::Required,
            Mode::Serve => GatewayPing::Optional,
        })
    }

    /// Checks that belong to the whole line, after every option parsed.
    fn check(self) -> Result<Config, ConfigError> {
        if self.id.is_some() && self.nodes != 1 {
            return Err(ConfigError::new(b"id", Why::Conflict { with: "nodes=1" }));
        }
        if self.scenario == Scenario::Services && self.nodes != 3 {
            return Err(ConfigError::new(
                b"scenario",
                Why::Conflict { with: "nodes=3" },
            ));
        }
        Ok(self)
    }
}

/// Parses `a.b.c.d/p` with `p` in 8..=30 and a unicast host address.
fn parse_cidr(value: &[u8]) -> Option<Ipv4Cidr> {
    let text = core::str::from_utf8(value).ok()?;
    let (addr, prefix) = text.split_once('/')?;
    let addr = Ipv4Address::from_str(addr).ok()?;
    let prefix = u8::try_from(parse_ranged(prefix.as_bytes(), 8, 30)?).ok()?;
    let cidr = Ipv4Cidr::new(addr, prefix);
    let host_bits = u32::from(addr) & !(u32::MAX << (32 - prefix));
    let usable = !addr.is_multicast()
        && !addr.is_loopback()
        && !addr.is_unspecified()
        && host_bits != 0
        && host_bits != !(u32::MAX << (32 - prefix));
    usable.then_some(cidr)
}

/// Parses a decimal `u32` in `min..=max`; no sign, no leading `+`, at most 10 digits.
fn parse_ranged(value: &[u8], min: u32, max: u32) -> Option<u32> {
    if value.is_empty() || value.len() > 10 {
        return None;
    }
    let mut n: u32 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    (min..=max).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::error::NAME_CAP;
    use super::*;
    use alloc::string::ToString;

    fn err(line: &str) -> alloc::string::String {
        Config::parse(line.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn empty_line_gives_defaults() {
        assert_eq!(Config::parse(b"").unwrap(), Config::default());
        assert_eq!(Config::parse(b"  \t\n ").unwrap(), Config::default());
    }

    #[test]
    fn every_key_parses() {
        let c = Config::parse(
            b"nodes=3 transport=udp-sec udpsec=off scenario=spoof log=debug pcap=1 \
              dhcp_timeout_ms=100 ping_timeout_ms=60000 run_timeout_ms=1000 udpsec_drop=on udpsec_cc=reno",
        )
        .unwrap();
        assert_eq!(
            c,
            Config {
                nodes: 3,
                transport: Transport::UdpSec,
                udpsec: false,
                scenario: Scenario::Spoof,
                log: LogLevel::Debug,
                pcap: true,
                dhcp_timeout_ms: 100,
                ping_timeout_ms: 60_000,
                run_timeout_ms: 1000,
                udpsec_drop: true,
                ip: IpMode::Auto,
                gateway: None,
                idle: IdleMode::Halt,
                idle_test_ms: 0,
                udpsec_cc: CongestionControl::Reno,
                ..Config::default()
            }
        );
    }

    #[test]
    fn address_gateway_and_idle_options() {
        let c = Config::parse(b"ip=10.0.2.50/24 gateway=optional idle=poll idle_test_ms=10000")
            .unwrap();
        assert_eq!(
            c.ip,
            IpMode::Static(Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 50), 24))
        );
        assert_eq!(c.gateway_ping(), GatewayPing::Optional);
        assert_eq!(Config::default().gateway_ping(), GatewayPing::Required);
        let serve = Config::parse(b"mode=serve").unwrap();
        assert_eq!(serve.gateway_ping(), GatewayPing::Optional);
        let strict = Config::parse(b"mode=serve gateway=required").unwrap();
        assert_eq!(strict.gateway_ping(), GatewayPing::Required);
        assert_eq!(c.idle, IdleMode::Poll);
        assert_eq!(c.idle_test_ms, 10_000);
        assert_eq!(Config::parse(b"ip=dhcp").unwrap().ip, IpMode::Dhcp);
        for bad in [
            "ip=10.0.2.50",
            "ip=10.0.2.0/24",
            "ip=10.0.2.255/24",
            "ip=224.0.0.1/24",
            "ip=10.0.2.5/31",
            "ip=10.0.2.500/24",
            "ip=x/24",
        ] {
            let e = err(bad);
            assert!(e.starts_with("ip: bad value"), "{bad}: {e}");
            assert!(e.ends_with("(expected auto|dhcp|a.b.c.d/8..30)"), "{e}");
        }
        assert_eq!(
            err("gateway=maybe"),
            "gateway: bad value \"maybe\" (expected required|optional)"
        );
        assert_eq!(
            err("idle=spin"),
            "idle: bad value \"spin\" (expected halt|poll)"
        );
        assert_eq!(
            err("idle_test_ms=600001"),
            "idle_test_ms: bad value \"600001\" (expected 0..600000)"
        );
    }

    #[test]
    fn the_bus_options_parse_and_conflict_with_several_nodes() {
        let k = "01".repeat(32);
        let c = Config::parse(
            alloc::format!("mode=serve id=node-7 tofu=off trust=node-1:{k} allow=blob:node-1,sd:*")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Serve);
        assert_eq!(c.id.unwrap().as_str(), "node-7");
        assert!(!c.tofu);
        assert_eq!(c.trust.len(), 1);
        assert_eq!(c.allow.as_ref().map(|a| a.len()), Some(2));
        assert_eq!(err("nodes=2 id=x"), "id: needs nodes=1");
        assert_eq!(
            err("mode=forever"),
            "mode: bad value \"forever\" (expected selftest|serve)"
        );
        assert!(err("trust=node-1:zz").starts_with("trust: bad value"));
        assert!(err("allow=blob").starts_with("allow: bad value"));
    }

    #[test]
    fn unknown_key_is_named() {
        assert_eq!(err("nodes=2 colour=blue"), "colour: unknown option");
    }

    #[test]
    fn bad_value_says_what_was_expected() {
        assert_eq!(err("nodes=4"), "nodes: bad value \"4\" (expected 1|2|3)");
        assert_eq!(
            err("transport=quic"),
            "transport: bad value \"quic\" (expected auto|tcp|udp-sec)"
        );
        assert_eq!(
            err("dhcp_timeout_ms=99"),
            "dhcp_timeout_ms: bad value \"99\" (expected 100..60000)"
        );
        assert_eq!(
            err("ping_timeout_ms=+500"),
            "ping_timeout_ms: bad value \"+500\" (expected 100..60000)"
        );
        assert_eq!(
            err("run_timeout_ms=99999999999"),
            "run_timeout_ms: bad value \"99999999999\" (expected 1000..600000)"
        );
    }

    #[test]
    fn echo_bytes_and_dial_parse_with_limits() {
        let c = Config::parse(b"mode=serve echo_bytes=1048576 dial=everyone").unwrap();
        assert_eq!(c.echo_bytes, 1 << 20);
        assert!(c.dial_everyone);
        assert!(!Config::default().dial_everyone);
        assert_eq!(Config::default().echo_bytes, 0);
        assert_eq!(
            err("echo_bytes=16777217"),
            "echo_bytes: bad value \"16777217\" (expected 0..16777216)"
        );
        assert_eq!(
            err("dial=random"),
            "dial: bad value \"random\" (expected lower-id|everyone)"
        );
    }

    #[test]
    fn udpsec_cc_selects_the_controller() {
        assert_eq!(Config::default().udpsec_cc, CongestionControl::Cubic);
        assert_eq!(
            Config::parse(b"udpsec_cc=cubic").unwrap().udpsec_cc,
            CongestionControl::Cubic
        );
        assert_eq!(
            Config::parse(b"udpsec_cc=reno").unwrap().udpsec_cc,
            CongestionControl::Reno
        );
        assert_eq!(
            err("udpsec_cc=bbr"),
            "udpsec_cc: bad value \"bbr\" (expected cubic|reno)"
        );
        assert_eq!(
            err("udpsec_cc=Cubic"),
            "udpsec_cc: bad value \"Cubic\" (expected cubic|reno)"
        );
        assert_eq!(err("udpsec_cc="), "udpsec_cc: empty value");
        assert_eq!(
            err("udpsec_cc=reno udpsec_cc=reno"),
            "udpsec_cc: duplicate option"
        );
        let e = Config::parse(b"udpsec_cc=vegas").unwrap_err();
        assert_eq!(e.option(), "udpsec_cc");
        assert_eq!(e.label(), "bad-value");
    }

    #[test]
    fn duplicate_key_is_rejected_even_with_same_value() {
        assert_eq!(err("nodes=2 log=info nodes=2"), "nodes: duplicate option");
    }

    #[test]
    fn empty_value_and_empty_key() {
        assert_eq!(err("nodes="), "nodes: empty value");
        assert_eq!(err("=2"), "cmdline: empty option name");
        assert_eq!(err("nodes"), "nodes: expected key=value");
    }

    #[test]
    fn too_long_line_key_and_value() {
        let long = "log=info ".repeat(MAX_CMDLINE_LEN / 9 + 1);
        assert_eq!(
            err(&long),
            alloc::format!("cmdline: too long (max {MAX_CMDLINE_LEN} bytes)")
        );
        let key = "k".repeat(MAX_KEY_LEN + 1) + "=1";
        assert_eq!(
            err(&key),
            alloc::format!("{}: too long (max 32 bytes)", "k".repeat(MAX_KEY_LEN + 1))
        );
        let value = "log=".to_string() + &"x".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(
            err(&value),
            alloc::format!("log: too long (max {MAX_VALUE_LEN} bytes)")
        );
    }

    #[test]
    fn long_names_are_cut_in_messages() {
        let e =
            Config::parse(b"nodes=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
                .unwrap_err();
        assert_eq!(e.label(), "bad-value");
        let shown = alloc::format!("\"{}...\"", "a".repeat(NAME_CAP - 3));
        assert!(e.to_string().contains(&shown), "{e}");
    }

    #[test]
    fn non_printable_bytes_are_rejected() {
        assert_eq!(err("nodes=1\u{7f}"), "cmdline: non-printable byte");
        assert_eq!(
            Config::parse(b"nodes=\xff").unwrap_err().to_string(),
            "cmdline: non-printable byte"
        );
    }

    #[test]
    fn whitespace_of_any_kind_separates() {
        let c = Config::parse(b"\tnodes=2\n\nlog=trace  ").unwrap();
        assert_eq!(c.nodes, 2);
        assert_eq!(c.log, LogLevel::Trace);
    }

    #[test]
    fn value_may_contain_equals_but_is_then_bad() {
        assert_eq!(
            err("log=info=1"),
            "log: bad value \"info=1\" (expected error|warn|info|debug|trace)"
        );
    }
}
