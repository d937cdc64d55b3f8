//! Round-trip estimation and loss detection.
//!
//! RTT and RTO follow RFC 6298 (`srtt`, `rttvar`, `RTO = srtt + max(G,
//! 4·rttvar)`), plus the peer's maximum ack delay as in RFC 9002, clamped to
//! `[min_rto, max_rto]`; the caller doubles it on repeated timeouts. Loss
//! detection does not wait for a timeout: a packet is lost once a packet
//! sent [`PACKET_THRESHOLD`] numbers later is acknowledged, or once it is
//! older than 9/8 of the RTT while a later packet was acknowledged (RFC 9002
//! §6.1).

use smoltcp::time::{Duration, Instant};

/// Reordering threshold in packets.
pub const PACKET_THRESHOLD: u32 = 3;
/// Timer granularity.
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 6298 estimator.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    initial: Duration,
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Duration,
    latest: Duration,
}

impl RttEstimator {
    /// Before any sample, `srtt` reads as `initial`.
    pub fn new(initial: Duration) -> Self {
        RttEstimator {
            initial,
            srtt: None,
            rttvar: initial / 2,
            min_rtt: Duration::MAX,
            latest: initial,
        }
    }

    /// True once a sample was taken.
    pub fn has_sample(&self) -> bool {
        self.srtt.is_some()
    }

    /// Add a sample; `ack_delay` is subtracted when that keeps it ≥ min RTT.
    pub fn update(&mut self, sample: Duration, ack_delay: Duration) {
        self.latest = sample;
        self.min_rtt = self.min_rtt.min(sample);
        let adjusted = if sample.total_micros()
            >= self
                .min_rtt
                .total_micros()
                .saturating_add(ack_delay.total_micros())
        {
            Duration::from_micros(sample.total_micros() - ack_delay.total_micros())
        } else {
            sample
        };
        match self.srtt {
            None => {
                self.srtt = Some(adjusted);
                self.rttvar = adjusted / 2;
            }
            Some(srtt) => {
                let s = srtt.total_micros();
                let a = adjusted.total_micros();
                let dev = s.abs_diff(a);
                self.rttvar =
                    Duration::from_micros((3 * self.rttvar.total_micros()).saturating_add(dev) / 4);
                self.srtt = Some(Duration::from_micros((7 * s).saturating_add(a) / 8));
            }
        }
    }

    /// Smoothed RTT (the initial RTT before a sample).
    pub fn srtt(&self) -> Duration {
        self.srtt.unwrap_or(self.initial)
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// Smallest sample (zero before any).
    pub fn min_rtt(&self) -> Duration {
        if self.min_rtt == Duration::MAX {
            Duration::ZERO
        } else {
            self.min_rtt
        }
    }

    /// Most recent sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// `srtt + max(G, 4·rttvar) + max_ack_delay`, clamped to `[min, max]`.
    pub fn rto(&self, max_ack_delay: Duration, min: Duration, max: Duration) -> Duration {
        let var = (self.rttvar * 4).max(GRANULARITY);
        (self.srtt() + var + max_ack_delay).clamp(min, max)
    }

    /// Time threshold for loss: 9/8 × max(srtt, latest), at least [`GRANULARITY`].
    pub fn loss_delay(&self) -> Duration {
        let base = self.srtt().max(self.latest);
        Duration::from_micros(base.total_micros().saturating_mul(9) / 8).max(GRANULARITY)
    }
}

/// Is a packet sent at `sent` with number `pn` lost, given the largest
/// acknowledged number and the time threshold?
pub fn is_lost(
    pn: u32,
    sent: Instant,
    largest_acked: u32,
    now: Instant,
    loss_delay: Duration,
) -> bool {
    pn < largest_acked
        && (largest_acked - pn >= PACKET_THRESHOLD || super::since(now, sent) >= loss_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_smoothing_and_rto() {
        let mut r = RttEstimator::new(Duration::from_millis(100));
        assert_eq!(r.srtt(), Duration::from_millis(100));
        r.update(Duration::from_millis(40), Duration::ZERO);
        assert_eq!(r.srtt(), Duration::from_millis(40));
        assert_eq!(r.rttvar(), Duration::from_millis(20));
        r.update(Duration::from_millis(80), Duration::ZERO);
        // rttvar = 3/4*20 + 1/4*40 = 25; srtt = 7/8*40 + 1/8*80 = 45
        assert_eq!(r.rttvar(), Duration::from_millis(25));
        assert_eq!(r.srtt(), Duration::from_millis(45));
        let rto = r.rto(
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_secs(60),
        );
        assert_eq!(rto, Duration::from_millis(145));
        let clamped = r.rto(
            Duration::ZERO,
            Duration::from_millis(200),
            Duration::from_secs(60),
        );
        assert_eq!(clamped, Duration::from_millis(200));
    }

    #[test]
    fn ack_delay_is_subtracted_only_above_min_rtt() {
        let mut r = RttEstimator::new(Duration::from_millis(100));
        r.update(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(r.srtt(), Duration::from_millis(10));
        let mut r2 = r.clone();
        r2.update(Duration::from_millis(20), Duration::from_millis(5));
        assert_eq!(r2.latest(), Duration::from_millis(20));
        // adjusted sample 15: srtt = (70 + 15) / 8
        assert_eq!(r2.srtt(), Duration::from_micros(10_625));
    }

    #[test]
    fn loss_by_packet_or_time_threshold() {
        let d = Duration::from_millis(10);
        let t0 = Instant::from_millis(0);
        assert!(is_lost(1, t0, 4, t0, d));
        assert!(!is_lost(2, t0, 4, t0, d));
        assert!(is_lost(2, t0, 4, Instant::from_millis(10), d));
        assert!(!is_lost(4, t0, 4, Instant::from_millis(100), d));
    }
}
