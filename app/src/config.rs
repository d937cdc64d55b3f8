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
//! | `scenario`        | `normal`, `spoof`                    | `normal` | self-test scenario |
//! | `log`             | `error`, `warn`, `info`, `debug`, `trace` | `warn` | most verbose log level printed |
//! | `pcap`            | `0`, `1`                             | `0`      | informational: the launcher is capturing frames |
//! | `dhcp_timeout_ms` | `100..=60000`                        | `5000`   | DHCP lease deadline per node, from stack start |
//! | `ping_timeout_ms` | `100..=60000`                        | `3000`   | ICMP echo deadline per node, from the lease |
//! | `run_timeout_ms`  | `1000..=600000`                      | `30000`  | whole-run deadline, from boot |
//! | `udpsec_cc`       | `cubic`, `reno`                      | `cubic`  | udp-sec congestion controller |
//!
//! Limits: the line is at most [`MAX_CMDLINE_LEN`] bytes of printable ASCII
//! (plus whitespace); a key is at most [`MAX_KEY_LEN`] bytes, a value at most
//! [`MAX_VALUE_LEN`] bytes.

use core::fmt;

pub use dsb_transports::udpsec::CongestionControl;

/// Longest accepted kernel command line, in bytes.
pub const MAX_CMDLINE_LEN: usize = 1024;
/// Longest accepted option name, in bytes.
pub const MAX_KEY_LEN: usize = 32;
/// Longest accepted option value, in bytes.
pub const MAX_VALUE_LEN: usize = 64;
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
}

impl Scenario {
    /// The command-line spelling.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::Spoof => "spoof",
        }
    }
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
    /// Congestion controller of udp-sec connections.
    pub udpsec_cc: CongestionControl,
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
            udpsec_cc: CongestionControl::Cubic,
        }
    }
}

/// Why an option was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The key is not one of the known options.
    UnknownOption,
    /// The value is not one of the accepted ones.
    BadValue {
        /// What would have been accepted, e.g. `1|2|3`.
        expected: &'static str,
    },
    /// `key=` with nothing after `=`.
    EmptyValue,
    /// `=value` with nothing before `=`.
    EmptyKey,
    /// A token without `=`.
    NotKeyValue,
    /// The same key given twice.
    Duplicate,
    /// The whole line, a key or a value is over its limit.
    TooLong {
        /// The limit that was exceeded, in bytes.
        max: usize,
    },
    /// A byte that is neither printable ASCII nor whitespace.
    NonPrintable,
}

impl Why {
    /// Stable label of this rejection.
    pub fn label(&self) -> &'static str {
        match self {
            Why::UnknownOption => "unknown-option",
            Why::BadValue { .. } => "bad-value",
            Why::EmptyValue => "empty-value",
            Why::EmptyKey => "empty-key",
            Why::NotKeyValue => "not-key-value",
            Why::Duplicate => "duplicate",
            Why::TooLong { .. } => "too-long",
            Why::NonPrintable => "non-printable",
        }
    }
}

/// A rejected command line: which option, and why.
///
/// `Display` gives `<option>: <why>`; the image prefixes `config: error: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    option: OptionName,
    value: OptionName,
    why: Why,
}

impl ConfigError {
    fn new(option: &[u8], why: Why) -> Self {
        ConfigError {
            option: OptionName::from_bytes(option),
            value: OptionName::empty(),
            why,
        }
    }

    fn bad_value(option: &[u8], value: &[u8], expected: &'static str) -> Self {
        ConfigError {
            option: OptionName::from_bytes(option),
            value: OptionName::from_bytes(value),
            why: Why::BadValue { expected },
        }
    }

    /// The option the error is about (`cmdline` for the line as a whole).
    pub fn option(&self) -> &str {
        self.option.as_str()
    }

    /// Why it was rejected.
    pub fn why(&self) -> Why {
        self.why
    }

    /// Stable label of the rejection.
    pub fn label(&self) -> &'static str {
        self.why.label()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.option.as_str())?;
        match self.why {
            Why::UnknownOption => f.write_str("unknown option"),
            Why::BadValue { expected } => write!(
                f,
                "bad value \"{}\" (expected {})",
                self.value.as_str(),
                expected
            ),
            Why::EmptyValue => f.write_str("empty value"),
            Why::EmptyKey => f.write_str("empty option name"),
            Why::NotKeyValue => f.write_str("expected key=value"),
            Why::Duplicate => f.write_str("duplicate option"),
            Why::TooLong { max } => write!(f, "too long (max {max} bytes)"),
            Why::NonPrintable => f.write_str("non-printable byte"),
        }
    }
}

/// A short, printable copy of (part of) an option name or value, for messages.
///
/// Holds at most `NAME_CAP` bytes of printable ASCII; longer input is cut and
/// ends in `...`, anything else becomes `?`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct OptionName {
    buf: [u8; NAME_CAP],
    len: u8,
}

const NAME_CAP: usize = 40;

impl OptionName {
    const fn empty() -> Self {
        OptionName {
            buf: [0; NAME_CAP],
            len: 0,
        }
    }

    fn from_bytes(src: &[u8]) -> Self {
        let mut name = Self::empty();
        let keep = if src.len() > NAME_CAP {
            NAME_CAP - 3
        } else {
            src.len()
        };
        for (dst, &b) in name.buf.iter_mut().zip(src.iter().take(keep)) {
            *dst = if b.is_ascii_graphic() { b } else { b'?' };
        }
        let mut len = keep;
        if src.len() > NAME_CAP {
            for dst in name.buf.iter_mut().skip(keep) {
                *dst = b'.';
            }
            len = NAME_CAP;
        }
        name.len = len as u8;
        name
    }

    fn as_str(&self) -> &str {
        let bytes = self.buf.get(..usize::from(self.len)).unwrap_or(&[]);
        // Only printable ASCII is ever stored.
        core::str::from_utf8(bytes).unwrap_or("?")
    }
}

impl fmt::Debug for OptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Every known key, in the order of the table above (bit positions for duplicate checks).
const KEYS: [&str; 10] = [
    "nodes",
    "transport",
    "udpsec",
    "scenario",
    "log",
    "pcap",
    "dhcp_timeout_ms",
    "ping_timeout_ms",
    "run_timeout_ms",
    "udpsec_cc",
];

impl Config {
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
        let mut seen: u16 = 0;
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
            let bit = 1u16 << index;
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
        Ok(config)
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
            b"scenario" => {
                self.scenario = match value {
                    b"normal" => Scenario::Normal,
                    b"spoof" => Scenario::Spoof,
                    _ => return Err(bad("normal|spoof")),
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
              dhcp_timeout_ms=100 ping_timeout_ms=60000 run_timeout_ms=1000 udpsec_cc=reno",
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
                udpsec_cc: CongestionControl::Reno,
            }
        );
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
        let long = "log=info ".repeat(200);
        assert_eq!(err(&long), "cmdline: too long (max 1024 bytes)");
        let key = "k".repeat(MAX_KEY_LEN + 1) + "=1";
        assert_eq!(
            err(&key),
            alloc::format!("{}: too long (max 32 bytes)", "k".repeat(MAX_KEY_LEN + 1))
        );
        let value = "log=".to_string() + &"x".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(err(&value), "log: too long (max 64 bytes)");
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
