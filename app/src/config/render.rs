//! The canonical command line of a [`Config`]: the options that differ from
//! their defaults, in table order, single-spaced (the default config is the
//! empty line). `Config::parse(c.to_string())` gives `c` back and the line
//! is never longer than any line that parses to `c` (host tests and the
//! `config_parse` fuzz target check both), so a configuration can be logged
//! or handed on exactly.

use core::fmt;

use super::{bus::Who, Config, IdleMode, IpMode, LogLevel, Mode};
use crate::net::GatewayPing;

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Writes ` key=value` pairs, without the first space.
struct Line<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl Line<'_, '_> {
    fn key(&mut self, key: &str) -> fmt::Result {
        if !self.first {
            self.f.write_str(" ")?;
        }
        self.first = false;
        write!(self.f, "{key}=")
    }

    fn opt(&mut self, key: &str, value: impl fmt::Display) -> fmt::Result {
        self.key(key)?;
        write!(self.f, "{value}")
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Config::default();
        let mut l = Line { f, first: true };
        if self.nodes != d.nodes {
            l.opt("nodes", self.nodes)?;
        }
        if self.transport != d.transport {
            l.opt("transport", self.transport.label())?;
        }
        if self.udpsec != d.udpsec {
            l.opt("udpsec", on_off(self.udpsec))?;
        }
        if self.scenario != d.scenario {
            l.opt("scenario", self.scenario.label())?;
        }
        if self.log != d.log {
            let log = match self.log {
                LogLevel::Error => "error",
                LogLevel::Warn => "warn",
                LogLevel::Info => "info",
                LogLevel::Debug => "debug",
                LogLevel::Trace => "trace",
            };
            l.opt("log", log)?;
        }
        if self.pcap != d.pcap {
            l.opt("pcap", u8::from(self.pcap))?;
        }
        for (key, v, dv) in [
            ("dhcp_timeout_ms", self.dhcp_timeout_ms, d.dhcp_timeout_ms),
            ("ping_timeout_ms", self.ping_timeout_ms, d.ping_timeout_ms),
            ("run_timeout_ms", self.run_timeout_ms, d.run_timeout_ms),
        ] {
            if v != dv {
                l.opt(key, v)?;
            }
        }
        if self.udpsec_drop != d.udpsec_drop {
            l.opt("udpsec_drop", on_off(self.udpsec_drop))?;
        }
        match self.ip {
            IpMode::Auto => {}
            IpMode::Dhcp => l.opt("ip", "dhcp")?,
            IpMode::Static(cidr) => l.opt("ip", cidr)?,
        }
        match self.gateway {
            Some(GatewayPing::Required) => l.opt("gateway", "required")?,
            Some(GatewayPing::Optional) => l.opt("gateway", "optional")?,
            None => {}
        }
        if self.idle != d.idle {
            l.opt(
                "idle",
                if self.idle == IdleMode::Poll {
                    "poll"
                } else {
                    "halt"
                },
            )?;
        }
        if self.idle_test_ms != d.idle_test_ms {
            l.opt("idle_test_ms", self.idle_test_ms)?;
        }
        if self.mode != d.mode {
            l.opt(
                "mode",
                if self.mode == Mode::Serve {
                    "serve"
                } else {
                    "selftest"
                },
            )?;
        }
        if let Some(id) = &self.id {
            l.opt("id", id.as_str())?;
        }
        for (i, (id, key)) in self.trust.iter().enumerate() {
            if i == 0 {
                l.key("trust")?;
            } else {
                l.f.write_str(",")?;
            }
            write!(l.f, "{}:", id.as_str())?;
            for b in key {
                write!(l.f, "{b:02x}")?;
            }
        }
        if self.tofu != d.tofu {
            l.opt("tofu", on_off(self.tofu))?;
        }
        for (i, a) in self.allow.iter().flatten().enumerate() {
            if i == 0 {
                l.key("allow")?;
            } else {
                l.f.write_str(",")?;
            }
            match &a.who {
                Who::Any => write!(l.f, "{}:*", a.service.as_str())?,
                Who::Id(id) => write!(l.f, "{}:{}", a.service.as_str(), id.as_str())?,
            }
        }
        if self.udpsec_cc != d.udpsec_cc {
            l.opt("udpsec_cc", self.udpsec_cc.label())?;
        }
        if self.echo_bytes != d.echo_bytes {
            l.opt("echo_bytes", self.echo_bytes)?;
        }
        if self.dial_everyone != d.dial_everyone {
            l.opt("dial", "everyone")?;
        }
        Ok(())
    }
}
