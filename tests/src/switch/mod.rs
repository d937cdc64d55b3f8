//! The segment switch: a learning Ethernet switch between datagram sockets,
//! with seeded fault injection on every port, counters and one pcap of the
//! whole segment. `make run VMS=N` attaches each VM's NIC to one port; other
//! tools attach by sending frames to a port (see docs/protocol.md, "Segment
//! switch port protocol").
//!
//! - [`core`]: the switch as a sans-IO state machine (frames and time in,
//!   frames per port out), unit-tested in simulated time.
//! - [`faults`]: `LOSS`, `DUP`, `REORDER`, `DELAY`, `RATE` per egress port.
//! - [`table`]: the bounded, ageing MAC learning table.
//! - [`net`]: ports on loopback UDP or unix datagram sockets, the `poll(2)` loop.
//! - [`pcap`]: the segment capture.

pub mod core;
pub mod faults;
pub mod net;
pub mod pcap;
pub mod table;

pub use self::core::{PortStats, Switch, SwitchConfig};
pub use faults::FaultConfig;
pub use net::{BoundPort, Control, PortSpec, Report, RunOptions};

use smoltcp::time::Duration;

/// Usage of the `switch` binary.
pub const USAGE: &str = "usage: switch --port SPEC [--port SPEC ...] [--loss PCT] [--dup PCT] \
[--reorder PCT] [--delay MS] [--rate MBIT] [--seed N] [--queue FRAMES] [--mac-capacity N] \
[--mac-ageing SECS] [--pcap FILE] [--stats SECS] [--duration SECS]\n\
  SPEC: udp:127.0.0.1:<port>[,peer=127.0.0.1:<port>] or unix:<path>[,peer=<path>]";

/// Everything the `switch` binary was told.
#[derive(Clone, Debug)]
pub struct Options {
    pub ports: Vec<PortSpec>,
    pub switch: SwitchConfig,
    pub run: RunOptions,
}

fn parse_u64(flag: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{flag}: expected a whole number in {min}..={max}, got {v:?}"))
}

impl Options {
    /// Parses the command line (without the program name); one-line errors.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options {
            ports: Vec::new(),
            switch: SwitchConfig::new(1),
            run: RunOptions::default(),
        };
        crate::cli::parse(args, |flag, value| {
            let f = &mut o.switch.faults;
            match flag {
                "--port" => o.ports.push(PortSpec::parse(&value()?)?),
                "--loss" => f.loss_pct = faults::parse_pct("--loss", &value()?)?,
                "--dup" => f.dup_pct = faults::parse_pct("--dup", &value()?)?,
                "--reorder" => f.reorder_pct = faults::parse_pct("--reorder", &value()?)?,
                "--delay" => f.delay = faults::parse_delay_ms(&value()?)?,
                "--rate" => f.rate_mbps = faults::parse_rate(&value()?)?,
                "--seed" => o.switch.seed = parse_u64(flag, &value()?, 0, u64::MAX)?,
                "--queue" => {
                    o.switch.queue_frames =
                        parse_u64(flag, &value()?, 1, core::MAX_QUEUE_FRAMES as u64)? as usize
                }
                "--mac-capacity" => {
                    o.switch.mac_capacity = parse_u64(flag, &value()?, 1, 1 << 20)? as usize
                }
                "--mac-ageing" => {
                    o.switch.mac_ageing =
                        Duration::from_secs(parse_u64(flag, &value()?, 1, 86_400)?)
                }
                "--pcap" => o.run.pcap = Some(value()?.into()),
                "--stats" => {
                    o.run.stats_every = Some(std::time::Duration::from_secs(parse_u64(
                        flag,
                        &value()?,
                        1,
                        86_400,
                    )?))
                }
                "--duration" => {
                    o.run.duration = Some(std::time::Duration::from_secs(parse_u64(
                        flag,
                        &value()?,
                        1,
                        86_400,
                    )?))
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if o.ports.is_empty() {
            return Err("no --port given".into());
        }
        o.switch.ports = o.ports.len();
        o.switch.validate()?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Options, String> {
        Options::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn options_parse() {
        let o = parse(
            "--port udp:127.0.0.1:40000 --port unix:/tmp/x.sock --loss 5 --dup 1 --reorder 2 \
             --delay 10 --rate 100 --seed 9 --queue 64 --stats 5",
        )
        .unwrap();
        assert_eq!(o.ports.len(), 2);
        assert_eq!(o.switch.ports, 2);
        assert_eq!(o.switch.faults.loss_pct, 5.0);
        assert_eq!(o.switch.faults.delay, Duration::from_millis(10));
        assert_eq!(o.switch.faults.rate_mbps, Some(100.0));
        assert_eq!(o.switch.seed, 9);
        assert_eq!(o.switch.queue_frames, 64);
    }

    #[test]
    fn bad_options_are_one_line_errors() {
        for (line, want) in [
            ("", "no --port given"),
            (
                "--port udp:127.0.0.1:1 --loss 200",
                "--loss: expected a percentage",
            ),
            (
                "--port udp:127.0.0.1:1 --frob 1",
                "unknown option \"--frob\"",
            ),
            ("--port udp:127.0.0.1:1 --delay", "--delay: missing value"),
            ("--port udp:192.168.1.1:1", "not a loopback address"),
            (
                "--port udp:127.0.0.1:1 --queue 0",
                "--queue: expected a whole number",
            ),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(want), "{line:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
