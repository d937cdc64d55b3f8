//! HyStart++ (RFC 9406): leave the first slow start when the round trip
//! time starts to grow (a queue is building), before the queue overflows.
//!
//! Rounds are counted by packet number: a round ends once a packet sent after
//! it began is acknowledged (`windowEnd` = the next packet number at the start
//! of the round). In each round the smallest RTT sample is kept. After at least
//! [`N_RTT_SAMPLE`] samples, a round whose minimum exceeds the previous round's
//! by `clamp(last / 8, 4 ms, 16 ms)` ends slow start and starts Conservative
//! Slow Start (CSS): growth divided by [`CSS_GROWTH_DIVISOR`] for at most
//! [`CSS_ROUNDS`] rounds, then congestion avoidance. A CSS round whose minimum
//! falls below the RTT that started CSS was a false alarm: back to slow start.
//!
//! The limit `L` on growth per ACK is infinite (the sender paces, RFC 9406
//! §4.2). Only the first slow start uses HyStart++; after a loss or a timeout
//! the controller runs standard slow start ([`HyStart::finish`]).

use smoltcp::time::Duration;

/// Lower bound of the RTT increase that ends slow start.
pub const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// Upper bound of the RTT increase that ends slow start.
pub const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// The threshold is the last round's minimum RTT divided by this (then clamped).
pub const MIN_RTT_DIVISOR: u64 = 8;
/// RTT samples a round needs before it can end slow start.
pub const N_RTT_SAMPLE: u32 = 8;
/// Slow-start growth is divided by this in CSS.
pub const CSS_GROWTH_DIVISOR: u64 = 4;
/// Rounds of CSS before congestion avoidance.
pub const CSS_ROUNDS: u32 = 5;

/// Where HyStart++ is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Standard slow start with delay-increase detection.
    SlowStart,
    /// Conservative slow start since the RTT rose to `baseline`; `rounds` done.
    Css {
        /// The round minimum that ended slow start.
        baseline: Duration,
        /// CSS rounds completed.
        rounds: u32,
    },
    /// HyStart++ is over (CSS completed, a loss, or a timeout).
    Done,
}

/// What the controller should do after an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep going (slow start or CSS).
    Continue,
    /// CSS is complete: set `ssthresh = cwnd` and enter congestion avoidance.
    EnterAvoidance,
}

/// HyStart++ state of one connection.
#[derive(Debug, Clone)]
pub struct HyStart {
    phase: Phase,
    /// Next packet number to be sent (SND.NXT).
    next_pn: u32,
    /// The current round ends once a packet number ≥ this is acknowledged.
    window_end: Option<u32>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
}

impl Default for HyStart {
    fn default() -> Self {
        Self::new()
    }
}

impl HyStart {
    /// In slow start, no round begun yet.
    pub const fn new() -> Self {
        HyStart {
            phase: Phase::SlowStart,
            next_pn: 0,
            window_end: None,
            last_round_min: None,
            current_round_min: None,
            samples: 0,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Divisor of slow-start growth: 1 in slow start, [`CSS_GROWTH_DIVISOR`] in CSS.
    pub fn growth_divisor(&self) -> u64 {
        match self.phase {
            Phase::Css { .. } => CSS_GROWTH_DIVISOR,
            Phase::SlowStart | Phase::Done => 1,
        }
    }

    /// Packet `pn` was sent.
    pub fn on_sent(&mut self, pn: u32) {
        self.next_pn = self.next_pn.max(pn.saturating_add(1));
    }

    /// Stop for good (loss, timeout, or slow start ended otherwise).
    pub fn finish(&mut self) {
        self.phase = Phase::Done;
    }

    /// RTT threshold for the delay increase: `clamp(last / 8, 4 ms, 16 ms)`.
    pub fn rtt_thresh(last_round_min: Duration) -> Duration {
        Duration::from_micros(last_round_min.total_micros() / MIN_RTT_DIVISOR)
            .clamp(MIN_RTT_THRESH, MAX_RTT_THRESH)
    }

    /// An acknowledgement was applied: `largest_acked` so far, and its RTT sample.
    pub fn on_ack(&mut self, largest_acked: u32, sample: Option<Duration>) -> Verdict {
        if self.phase == Phase::Done {
            return Verdict::Continue;
        }
        if self.window_end.is_none_or(|end| largest_acked >= end) {
            // A round ended (or the first one begins).
            if self.window_end.is_some() {
                if let Phase::Css { baseline, rounds } = self.phase {
                    let rounds = rounds + 1;
                    if rounds >= CSS_ROUNDS {
                        self.phase = Phase::Done;
                        return Verdict::EnterAvoidance;
                    }
                    self.phase = Phase::Css { baseline, rounds };
                }
            }
            self.last_round_min = self.current_round_min;
            self.current_round_min = None;
            self.samples = 0;
            self.window_end = Some(self.next_pn);
        }
        let Some(rtt) = sample else {
            return Verdict::Continue;
        };
        let current = self.current_round_min.map_or(rtt, |m| m.min(rtt));
        self.current_round_min = Some(current);
        self.samples = self.samples.saturating_add(1);
        if self.samples < N_RTT_SAMPLE {
            return Verdict::Continue;
        }
        match self.phase {
            Phase::SlowStart => {
                if let Some(last) = self.last_round_min {
                    if current >= last + Self::rtt_thresh(last) {
                        self.phase = Phase::Css {
                            baseline: current,
                            rounds: 0,
                        };
                    }
                }
            }
            Phase::Css { baseline, .. } => {
                if current < baseline {
                    // The RTT rise was spurious: resume slow start.
                    self.phase = Phase::SlowStart;
                }
            }
            Phase::Done => {}
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// One round: send `n` packets, then acknowledge them with RTT `rtt` each.
    fn round(h: &mut HyStart, pn: &mut u32, n: u32, rtt: Duration) -> Verdict {
        let first = *pn;
        for _ in 0..n {
            h.on_sent(*pn);
            *pn += 1;
        }
        let mut v = Verdict::Continue;
        for acked in first..*pn {
            v = h.on_ack(acked, Some(rtt));
            if v == Verdict::EnterAvoidance {
                break;
            }
        }
        v
    }

    #[test]
    fn threshold_is_an_eighth_clamped_to_4_and_16_ms() {
        assert_eq!(HyStart::rtt_thresh(ms(10)), ms(4));
        assert_eq!(HyStart::rtt_thresh(ms(80)), ms(10));
        assert_eq!(HyStart::rtt_thresh(ms(400)), ms(16));
    }

    #[test]
    fn delay_increase_enters_css_then_avoidance_after_five_rounds() {
        let mut h = HyStart::new();
        let mut pn = 0;
        h.on_sent(0);
        assert_eq!(h.on_ack(0, Some(ms(10))), Verdict::Continue);
        pn += 1;
        assert_eq!(round(&mut h, &mut pn, 16, ms(10)), Verdict::Continue);
        // +3.9 ms is below the 4 ms threshold: still slow start
        round(&mut h, &mut pn, 16, Duration::from_micros(13_900));
        assert_eq!(h.phase(), Phase::SlowStart);
        assert_eq!(h.growth_divisor(), 1);
        // +4 ms over the previous round's minimum: CSS
        round(&mut h, &mut pn, 16, Duration::from_micros(17_900));
        assert!(matches!(h.phase(), Phase::Css { .. }));
        assert_eq!(h.growth_divisor(), CSS_GROWTH_DIVISOR);
        // the round that entered CSS counts as the first CSS round once it ends
        let mut rounds = 0;
        loop {
            rounds += 1;
            if round(&mut h, &mut pn, 16, ms(18)) == Verdict::EnterAvoidance {
                break;
            }
            assert!(rounds < 10);
        }
        assert_eq!(rounds, CSS_ROUNDS as usize);
        assert_eq!(h.phase(), Phase::Done);
    }

    #[test]
    fn css_returns_to_slow_start_when_the_rtt_falls_back() {
        let mut h = HyStart::new();
        let mut pn = 0;
        round(&mut h, &mut pn, 16, ms(10));
        round(&mut h, &mut pn, 16, ms(10));
        round(&mut h, &mut pn, 16, ms(20));
        assert_eq!(
            h.phase(),
            Phase::Css {
                baseline: ms(20),
                rounds: 0
            }
        );
        round(&mut h, &mut pn, 16, ms(12));
        assert_eq!(h.phase(), Phase::SlowStart);
    }

    #[test]
    fn too_few_samples_never_end_slow_start() {
        let mut h = HyStart::new();
        let mut pn = 0;
        round(&mut h, &mut pn, N_RTT_SAMPLE - 1, ms(10));
        for _ in 0..5 {
            round(&mut h, &mut pn, N_RTT_SAMPLE - 1, ms(100));
        }
        assert_eq!(h.phase(), Phase::SlowStart);
        h.finish();
        assert_eq!(round(&mut h, &mut pn, 16, ms(500)), Verdict::Continue);
        assert_eq!(h.phase(), Phase::Done);
    }
}
