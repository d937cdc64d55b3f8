//! Pacing: spread a congestion window over a round trip instead of sending
//! it in one burst (RFC 9002 §7.7).
//!
//! A token bucket refilled at `N × cwnd / srtt` (N = 2 in slow start so the
//! pacer never holds slow start back, 5/4 in congestion avoidance); its depth
//! is what can be sent in `burst_interval` at that rate, clamped to
//! `[min_burst, max_burst]` datagrams — the burst allowance.

use smoltcp::time::{Duration, Instant};

/// Token-bucket pacer.
#[derive(Debug, Clone)]
pub struct Pacer {
    mss: u64,
    burst_interval: Duration,
    min_burst: u64,
    max_burst: u64,
    capacity: u64,
    tokens: u64,
    last_window: u64,
    prev: Instant,
}

/// `(numerator, denominator)` of the pacing gain.
fn gain(slow_start: bool) -> (u128, u128) {
    if slow_start {
        (2, 1)
    } else {
        (5, 4)
    }
}

impl Pacer {
    /// A full bucket for `window` at `now`.
    pub fn new(
        mss: u64,
        burst_interval: Duration,
        min_burst: u64,
        max_burst: u64,
        srtt: Duration,
        window: u64,
        now: Instant,
    ) -> Self {
        let mut p = Pacer {
            mss,
            burst_interval,
            min_burst: min_burst.max(1),
            max_burst: max_burst.max(min_burst.max(1)),
            capacity: 0,
            tokens: 0,
            last_window: window,
            prev: now,
        };
        p.capacity = p.optimal_capacity(srtt, window);
        p.tokens = p.capacity;
        p
    }

    fn optimal_capacity(&self, srtt: Duration, window: u64) -> u64 {
        let rtt = u128::from(srtt.total_micros().max(1));
        let cap = u128::from(window) * u128::from(self.burst_interval.total_micros()) / rtt;
        let cap = u64::try_from(cap).unwrap_or(u64::MAX);
        cap.clamp(self.min_burst * self.mss, self.max_burst * self.mss)
    }

    /// Record a transmission of `bytes`.
    pub fn on_transmit(&mut self, bytes: u64) {
        self.tokens = self.tokens.saturating_sub(bytes);
    }

    /// `None` if `bytes` may be sent now, else when to try again.
    pub fn delay(
        &mut self,
        srtt: Duration,
        bytes: u64,
        window: u64,
        slow_start: bool,
        now: Instant,
    ) -> Option<Instant> {
        if window != self.last_window {
            self.capacity = self.optimal_capacity(srtt, window);
            self.tokens = self.tokens.min(self.capacity);
            self.last_window = window;
        }
        if self.tokens >= bytes {
            return None;
        }
        let rtt = u128::from(srtt.total_micros());
        if rtt == 0 || window == 0 {
            return None;
        }
        let (num, den) = gain(slow_start);
        let elapsed = u128::from(super::since(now, self.prev).total_micros());
        let new_tokens = u128::from(window) * num * elapsed / (den * rtt);
        let new_tokens = u64::try_from(new_tokens).unwrap_or(u64::MAX);
        self.tokens = self.tokens.saturating_add(new_tokens).min(self.capacity);
        self.prev = now;
        if self.tokens >= bytes {
            return None;
        }
        let missing = u128::from(bytes - self.tokens);
        // time for `missing` tokens at rate window*num/(den*rtt), rounded up
        let denom = u128::from(window) * num;
        let us = (missing * den * rtt).div_ceil(denom);
        let us = u64::try_from(us).unwrap_or(u64::MAX).max(1);
        Some(now + Duration::from_micros(us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_a_window_over_the_rtt_after_the_burst() {
        let mss = 1200;
        let rtt = Duration::from_millis(10);
        let window = 100 * mss;
        let now = Instant::from_millis(0);
        let mut p = Pacer::new(mss, Duration::from_millis(1), 4, 64, rtt, window, now);
        // burst allowance: 1 ms worth of the window, at least 4 packets
        let mut sent = 0;
        while p.delay(rtt, mss, window, false, now).is_none() {
            p.on_transmit(mss);
            sent += 1;
        }
        assert_eq!(sent, 10);
        // then one packet every rtt/(1.25 * 100) = 80 µs
        let next = p.delay(rtt, mss, window, false, now).unwrap();
        assert_eq!(next, Instant::from_micros(80));
        assert!(p.delay(rtt, mss, window, false, next).is_none());
    }
}
