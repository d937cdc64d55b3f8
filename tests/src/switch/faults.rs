//! Fault injection on one egress port: seeded loss, duplication, reordering,
//! fixed delay and a rate limit with a bounded queue.
//!
//! Every copy of a frame leaving the switch through a port draws the same three
//! random numbers (loss, duplicate, reorder) from that port's own ChaCha8
//! stream, whichever knobs are on, so the decisions for a port depend only on
//! the seed and the frames sent to that port: the same seed and the same frames
//! give the same faults, and turning one knob on does not change another's.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smoltcp::time::{Duration, Instant};

/// Largest `DELAY`, in milliseconds.
pub const MAX_DELAY_MS: u64 = 10_000;
/// Lowest and highest `RATE`, in Mbit/s.
pub const MIN_RATE_MBPS: f64 = 0.01;
pub const MAX_RATE_MBPS: f64 = 100_000.0;
/// A frame chosen for reordering waits for the next frame to the same port at
/// most this long (plus the delay), then goes out anyway.
pub const REORDER_HOLD: Duration = Duration::from_millis(20);

/// The fault knobs, the same for every port.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Percentage of copies dropped (`LOSS`), 0..=100.
    pub loss_pct: f64,
    /// Percentage of copies sent twice (`DUP`), 0..=100.
    pub dup_pct: f64,
    /// Percentage of copies held back until the next frame to the same port
    /// has gone out (`REORDER`), 0..=100.
    pub reorder_pct: f64,
    /// Fixed one-way delay added to every copy (`DELAY`).
    pub delay: Duration,
    /// Serialisation rate of every egress port in Mbit/s (`RATE`); `None` = unlimited.
    pub rate_mbps: Option<f64>,
}

impl FaultConfig {
    /// Whether any knob is on.
    pub fn any(&self) -> bool {
        *self != FaultConfig::default()
    }

    /// Checks ranges; returns a one-line error naming the knob.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("LOSS", self.loss_pct),
            ("DUP", self.dup_pct),
            ("REORDER", self.reorder_pct),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{name}: {v} is not a percentage in 0..=100"));
            }
        }
        if self.delay > Duration::from_millis(MAX_DELAY_MS) {
            return Err(format!(
                "DELAY: {} ms is over the {MAX_DELAY_MS} ms limit",
                self.delay.total_millis()
            ));
        }
        if let Some(r) = self.rate_mbps {
            if !(MIN_RATE_MBPS..=MAX_RATE_MBPS).contains(&r) {
                return Err(format!(
                    "RATE: {r} Mbit/s is outside {MIN_RATE_MBPS}..={MAX_RATE_MBPS}"
                ));
            }
        }
        Ok(())
    }

    /// One line for logs: `loss=5% dup=0% reorder=2% delay=0ms rate=unlimited`.
    pub fn describe(&self) -> String {
        format!(
            "loss={}% dup={}% reorder={}% delay={}ms rate={}",
            self.loss_pct,
            self.dup_pct,
            self.reorder_pct,
            self.delay.total_millis(),
            match self.rate_mbps {
                Some(r) => format!("{r}Mbit/s"),
                None => "unlimited".into(),
            }
        )
    }
}

/// Parses a percentage knob value (`5`, `2.5`).
pub fn parse_pct(name: &str, v: &str) -> Result<f64, String> {
    let x: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{name}: expected a percentage 0..100, got {v:?}"))?;
    if !x.is_finite() || !(0.0..=100.0).contains(&x) {
        return Err(format!("{name}: expected a percentage 0..100, got {v:?}"));
    }
    Ok(x)
}

/// Parses `DELAY` in whole milliseconds.
pub fn parse_delay_ms(v: &str) -> Result<Duration, String> {
    let ms: u64 = v
        .trim()
        .parse()
        .ok()
        .filter(|ms| *ms <= MAX_DELAY_MS)
        .ok_or_else(|| format!("DELAY: expected milliseconds 0..={MAX_DELAY_MS}, got {v:?}"))?;
    Ok(Duration::from_millis(ms))
}

/// Parses `RATE` in Mbit/s; `0` means unlimited.
pub fn parse_rate(v: &str) -> Result<Option<f64>, String> {
    let r: f64 = v.trim().parse().map_err(|_| {
        format!(
            "RATE: expected Mbit/s ({MIN_RATE_MBPS}..={MAX_RATE_MBPS}, 0 = unlimited), got {v:?}"
        )
    })?;
    if r == 0.0 {
        return Ok(None);
    }
    if !r.is_finite() || !(MIN_RATE_MBPS..=MAX_RATE_MBPS).contains(&r) {
        return Err(format!(
            "RATE: expected Mbit/s ({MIN_RATE_MBPS}..={MAX_RATE_MBPS}, 0 = unlimited), got {v:?}"
        ));
    }
    Ok(Some(r))
}

/// What happens to one copy of a frame on its way out of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Dropped (`LOSS`).
    pub lost: bool,
    /// Sent twice (`DUP`).
    pub duplicate: bool,
    /// Held back for the next frame (`REORDER`).
    pub reorder: bool,
}

/// The per-port fault state: its random stream and when its line is free.
#[derive(Debug)]
pub struct Egress {
    rng: ChaCha8Rng,
    /// When the (rate-limited) line finishes the last frame queued on it.
    busy_until: Instant,
}

impl Egress {
    /// Port `port`'s own stream of the seed.
    pub fn new(seed: u64, port: usize) -> Egress {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(port as u64);
        Egress {
            rng,
            busy_until: Instant::ZERO,
        }
    }

    fn chance(&mut self, pct: f64) -> bool {
        // Always draw, so every knob sees the same position of the stream.
        let x = self.rng.next_u32();
        pct > 0.0 && (f64::from(x) / 4_294_967_296.0) * 100.0 < pct
    }

    /// Draws the decisions for the next copy.
    pub fn decide(&mut self, cfg: &FaultConfig) -> Decision {
        let lost = self.chance(cfg.loss_pct);
        let duplicate = self.chance(cfg.dup_pct);
        let reorder = self.chance(cfg.reorder_pct);
        Decision {
            lost,
            duplicate: duplicate && !lost,
            reorder: reorder && !lost,
        }
    }

    /// When a copy of `len` bytes offered at `now` is delivered: after the
    /// frames already on the line (at `RATE`), plus `DELAY`.
    pub fn schedule(&mut self, cfg: &FaultConfig, now: Instant, len: usize) -> Instant {
        let depart = match cfg.rate_mbps {
            Some(rate) => {
                let start = if self.busy_until > now {
                    self.busy_until
                } else {
                    now
                };
                // bits / (Mbit/s) = microseconds
                let us = ((len as f64) * 8.0 / rate).ceil() as u64;
                let done = start + Duration::from_micros(us.max(1));
                self.busy_until = done;
                done
            }
            None => now,
        };
        depart + cfg.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knob_parsers_reject_bad_values_with_one_line() {
        assert_eq!(parse_pct("LOSS", "5").unwrap(), 5.0);
        assert_eq!(parse_pct("LOSS", "2.5").unwrap(), 2.5);
        for bad in ["-1", "101", "x", "", "nan"] {
            let e = parse_pct("LOSS", bad).unwrap_err();
            assert!(e.starts_with("LOSS: expected a percentage"), "{e}");
            assert!(!e.contains('\n'));
        }
        assert_eq!(parse_delay_ms("20").unwrap(), Duration::from_millis(20));
        assert!(parse_delay_ms("10001").is_err());
        assert!(parse_delay_ms("-3").is_err());
        assert_eq!(parse_rate("0").unwrap(), None);
        assert_eq!(parse_rate("10").unwrap(), Some(10.0));
        assert!(parse_rate("abc").unwrap_err().starts_with("RATE:"));
        assert!(parse_rate("1e9").is_err());
    }

    #[test]
    fn same_seed_same_decisions_and_ports_differ() {
        let cfg = FaultConfig {
            loss_pct: 30.0,
            dup_pct: 30.0,
            reorder_pct: 30.0,
            ..FaultConfig::default()
        };
        let run = |seed, port| {
            let mut e = Egress::new(seed, port);
            (0..200).map(|_| e.decide(&cfg)).collect::<Vec<_>>()
        };
        assert_eq!(run(7, 0), run(7, 0));
        assert_ne!(run(7, 0), run(7, 1));
        assert_ne!(run(7, 0), run(8, 0));
    }

    #[test]
    fn one_knob_does_not_move_another() {
        let loss_only = FaultConfig {
            loss_pct: 20.0,
            ..FaultConfig::default()
        };
        let loss_and_dup = FaultConfig {
            dup_pct: 50.0,
            ..loss_only
        };
        let mut a = Egress::new(1, 0);
        let mut b = Egress::new(1, 0);
        for _ in 0..500 {
            assert_eq!(a.decide(&loss_only).lost, b.decide(&loss_and_dup).lost);
        }
    }

    #[test]
    fn rate_serialises_back_to_back_frames() {
        let cfg = FaultConfig {
            rate_mbps: Some(8.0), // 1 byte per microsecond
            delay: Duration::from_millis(1),
            ..FaultConfig::default()
        };
        let mut e = Egress::new(0, 0);
        let t0 = Instant::from_millis(5);
        assert_eq!(e.schedule(&cfg, t0, 1000), t0 + Duration::from_micros(2000));
        assert_eq!(e.schedule(&cfg, t0, 1000), t0 + Duration::from_micros(3000));
        // An idle line starts again from `now`.
        let t1 = Instant::from_millis(100);
        assert_eq!(e.schedule(&cfg, t1, 500), t1 + Duration::from_micros(1500));
    }
}
