//! CUBIC (RFC 9438) in integer arithmetic: windows in bytes, time in µs.
//!
//! - Slow start as Reno, with HyStart++ (RFC 9406) in the first slow start.
//! - Congestion avoidance follows `W_cubic(t) = C·(t − K)³ + W_max` (C = 0.4,
//!   windows in segments, t in seconds since the avoidance stage began),
//!   `K = ∛((W_max − cwnd_epoch) / C)`: per acknowledged byte the window
//!   grows by `(target − cwnd) / cwnd` with `target = W_cubic(t + RTT)`
//!   clamped to `[cwnd, 1.5·cwnd]` (§4.2).
//! - Reno-friendly region (§4.3): `W_est` starts at `cwnd_epoch` and grows by
//!   α segments per smoothed RTT *of elapsed time* since the stage began
//!   (α = 3(1 − β)/(1 + β) = 9/17, then 1 once `W_est ≥ W_max`); while
//!   `W_cubic(t) < W_est`, `cwnd = W_est`. This is the one departure from
//!   RFC 9438, whose §4.3 grows `W_est` by `α·acked/cwnd` per ACK (exactly a
//!   Reno flow's pace). The rate here is RFC 8312's eq. 4 (`W_est(t)`,
//!   time-based; quinn-proto does the same): on a lossy path, where no
//!   growing ACK arrives for whole RTTs while losses are detected, it keeps
//!   growing and so ends up faster than a Reno flow there. Measured on the
//!   benchmark link (5 seeds, `BENCH_ONLY=udpsec_goodput`): per ACK 13.0 /
//!   4.5 / 2.5 Mbit/s, by time 14.4 / 5.9 / 3.8 at 1 / 5 / 10 % loss; the
//!   same at 0 %.
//!   Time while application-limited does not count.
//! - On a loss (at most once per recovery period, like [`Reno`](super::Reno)):
//!   `ssthresh = cwnd = max(β·cwnd, min_window)` with β = 0.7; `W_max = cwnd`
//!   before the reduction, or `cwnd·(1 + β)/2` when the window had not got back
//!   to the previous `W_max` (fast convergence, §4.7). The new stage's clock
//!   starts with the first acknowledgement after recovery.
//! - On a timeout (§4.8): `ssthresh = max(β·cwnd, min_window)` (first timeout
//!   only), `cwnd` = one segment, standard slow start; the next avoidance stage
//!   starts with `K = 0` and `W_max = W_est = cwnd` at its start.
//! - No growth while application-limited; cap `max_window`.

use smoltcp::time::{Duration, Instant};

use super::hystart::{HyStart, Verdict};
use super::Controller;

/// β_cubic = 7/10: the window kept on a loss.
pub const BETA_NUM: u64 = 7;
/// Denominator of β_cubic.
pub const BETA_DEN: u64 = 10;
/// C = 4/10 (segments per second³).
const C_NUM: u128 = 4;
const C_DEN: u128 = 10;
/// α_cubic = 3(1 − β)/(1 + β) = 9/17.
const ALPHA_NUM: u64 = 9;
const ALPHA_DEN: u64 = 17;
const US_PER_S: u128 = 1_000_000;
/// Largest |t − K| used in the cubic term (about 2.8 h), so it cannot overflow.
const MAX_OFFSET_US: u128 = 10_000_000_000;

/// Integer cube root (largest `y` with `y³ ≤ x`).
pub fn icbrt(mut x: u128) -> u128 {
    let mut y: u128 = 0;
    let mut s: i32 = 126;
    while s >= 0 {
        y <<= 1;
        let b = 3 * y * (y + 1) + 1;
        if (x >> s) >= b {
            x -= b << s;
            y += 1;
        }
        s -= 3;
    }
    y
}

/// One congestion-avoidance stage: the curve's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Epoch {
    /// When the stage began (the first growing acknowledgement); `None` until then.
    start: Option<Instant>,
    /// `K` in µs.
    k_us: u64,
    /// `W_max` in bytes.
    w_max: u64,
    /// `W_est` in bytes.
    w_est: u64,
    /// Up to when `W_est` has been advanced (from the stage's start).
    est_at: Instant,
}

/// CUBIC congestion controller.
#[derive(Debug, Clone)]
pub struct Cubic {
    mss: u64,
    window: u64,
    ssthresh: u64,
    min_window: u64,
    max_window: u64,
    /// Packets sent before this instant belong to the current recovery period.
    recovery_start: Option<Instant>,
    epoch: Option<Epoch>,
    /// Remainders of the fractional growth terms (bytes × cwnd).
    est_rem: u128,
    inc_rem: u128,
    ss_rem: u64,
    hystart: HyStart,
}

impl Cubic {
    /// A controller with `initial_window`, clamped to `[min_window, max_window]`.
    pub fn new(mss: u64, initial_window: u64, min_window: u64, max_window: u64) -> Self {
        let min_window = min_window.max(mss);
        let max_window = max_window.max(min_window);
        Cubic {
            mss,
            window: initial_window.clamp(min_window, max_window),
            ssthresh: u64::MAX,
            min_window,
            max_window,
            recovery_start: None,
            epoch: None,
            est_rem: 0,
            inc_rem: 0,
            ss_rem: 0,
            hystart: HyStart::new(),
        }
    }

    /// HyStart++ state (for tests and stats).
    pub fn hystart(&self) -> &HyStart {
        &self.hystart
    }

    fn in_recovery(&self, sent: Instant) -> bool {
        self.recovery_start.is_some_and(|r| sent <= r)
    }

    /// `K` in µs for a stage that starts at `cwnd_epoch` below `w_max` (bytes).
    pub fn k_us(mss: u64, w_max: u64, cwnd_epoch: u64) -> u64 {
        let diff = u128::from(w_max.saturating_sub(cwnd_epoch));
        // K³ [s³] = diff / (C · mss)  ⇒  K³ [µs³] = diff · 10¹⁸ · C_DEN / (C_NUM · mss)
        let k3 = diff * US_PER_S * US_PER_S * US_PER_S * C_DEN / (C_NUM * u128::from(mss.max(1)));
        u64::try_from(icbrt(k3)).unwrap_or(u64::MAX)
    }

    /// `W_cubic(t)` in bytes for `t_us` µs into the stage (saturating at 0 and u64::MAX).
    pub fn w_cubic(mss: u64, w_max: u64, k_us: u64, t_us: u64) -> u64 {
        let neg = t_us < k_us;
        let off = u128::from(t_us.abs_diff(k_us)).min(MAX_OFFSET_US);
        // C · mss · off³ / 10¹⁸, in bytes
        let delta =
            C_NUM * u128::from(mss) * off * off * off / (C_DEN * US_PER_S * US_PER_S * US_PER_S);
        let delta = u64::try_from(delta).unwrap_or(u64::MAX);
        if neg {
            w_max.saturating_sub(delta)
        } else {
            w_max.saturating_add(delta)
        }
    }

    fn avoidance(&mut self, now: Instant, bytes: u64, srtt: Duration) {
        let window = self.window;
        let e = self.epoch.get_or_insert(Epoch {
            start: None,
            k_us: 0,
            w_max: window,
            w_est: window,
            est_at: now,
        });
        let start = *e.start.get_or_insert(now);
        let t_us = crate::udpsec::since(now, start).total_micros();
        // Reno-friendly estimate, by elapsed time (RFC 8312 eq. 4's rate):
        // + α · mss per smoothed RTT since the stage began (α = 1 once
        // W_est ≥ W_max), advanced on every growing acknowledgement.
        let (an, ad) = if e.w_est >= e.w_max {
            (1, 1)
        } else {
            (ALPHA_NUM, ALPHA_DEN)
        };
        let dt = crate::udpsec::since(now, e.est_at).total_micros();
        e.est_at = now;
        let num = u128::from(an) * u128::from(self.mss) * u128::from(dt) + self.est_rem;
        let den = u128::from(ad) * u128::from(srtt.total_micros().max(1));
        e.w_est = e
            .w_est
            .saturating_add(u64::try_from(num / den).unwrap_or(u64::MAX));
        self.est_rem = num % den;
        let w_cubic_now = Self::w_cubic(self.mss, e.w_max, e.k_us, t_us);
        if w_cubic_now < e.w_est {
            // Reno-friendly region: at least as fast as Reno would be.
            self.window = self.window.max(e.w_est);
        } else {
            let target = Self::w_cubic(
                self.mss,
                e.w_max,
                e.k_us,
                t_us.saturating_add(srtt.total_micros()),
            )
            .clamp(window, window.saturating_add(window / 2));
            let num = u128::from(target - window) * u128::from(bytes) + self.inc_rem;
            let den = u128::from(window.max(1));
            self.window = self
                .window
                .saturating_add(u64::try_from(num / den).unwrap_or(u64::MAX));
            self.inc_rem = num % den;
        }
        self.window = self.window.min(self.max_window);
    }
}

impl Controller for Cubic {
    fn on_sent(&mut self, _now: Instant, pn: u32, _bytes: u64) {
        self.hystart.on_sent(pn);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        srtt: Duration,
    ) {
        if app_limited {
            // Idle time earns no Reno-friendly growth.
            if let Some(e) = self.epoch.as_mut() {
                e.est_at = now;
            }
            return;
        }
        if self.in_recovery(sent) {
            return;
        }
        if self.window < self.ssthresh {
            // Slow start (and HyStart++'s conservative slow start).
            let d = self.hystart.growth_divisor();
            let total = bytes.saturating_add(self.ss_rem);
            self.ss_rem = total % d;
            self.window = self.window.saturating_add(total / d).min(self.max_window);
            return;
        }
        self.avoidance(now, bytes, srtt);
    }

    fn on_ack_end(&mut self, _now: Instant, largest_acked: u32, rtt_sample: Option<Duration>) {
        if self.window >= self.ssthresh {
            self.hystart.finish();
            return;
        }
        if self.hystart.on_ack(largest_acked, rtt_sample) == Verdict::EnterAvoidance {
            self.ssthresh = self.window;
            self.epoch = None;
        }
    }

    fn on_congestion_event(&mut self, now: Instant, sent: Instant, _lost_bytes: u64) {
        if self.in_recovery(sent) {
            return;
        }
        self.recovery_start = Some(now);
        self.hystart.finish();
        let cwnd = self.window;
        // Fast convergence: give way when the window did not get back to W_max.
        let w_max = match self.epoch {
            Some(e) if cwnd < e.w_max => cwnd.saturating_mul(BETA_DEN + BETA_NUM) / (2 * BETA_DEN),
            _ => cwnd,
        };
        self.window =
            (cwnd.saturating_mul(BETA_NUM) / BETA_DEN).clamp(self.min_window, self.max_window);
        self.ssthresh = self.window;
        self.epoch = Some(Epoch {
            start: Some(now),
            k_us: Self::k_us(self.mss, w_max, self.window),
            w_max,
            w_est: self.window,
            est_at: now,
        });
        self.est_rem = 0;
        self.inc_rem = 0;
    }

    fn on_rto(&mut self, now: Instant) {
        // A repeated timeout (window already at one segment) keeps the threshold.
        if self.window > self.mss {
            self.ssthresh = (self.window.saturating_mul(BETA_NUM) / BETA_DEN).max(self.min_window);
        }
        self.hystart.finish();
        self.recovery_start = Some(now);
        self.window = self.mss;
        // The next avoidance stage starts afresh: K = 0, W_max = W_est = cwnd then.
        self.epoch = None;
        self.est_rem = 0;
        self.inc_rem = 0;
        self.ss_rem = 0;
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn ssthresh(&self) -> u64 {
        self.ssthresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u64 = 1200;

    fn t(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Acknowledge the whole window once, one MSS per ACK, spread evenly over
    /// one RTT starting at `now` (ms); returns the time after the round.
    fn ack_window(c: &mut Cubic, now: i64, rtt: Duration) -> i64 {
        let n = (c.window() / MSS) as i64;
        let rtt_us = rtt.total_micros() as i64;
        for i in 0..n {
            let at = Instant::from_micros(now * 1000 + i * rtt_us / n);
            c.on_ack(at, t(now - 1), MSS, false, rtt);
        }
        now + rtt_us / 1000
    }

    /// RFC 9438 Eq. 1 in floating point (segments, seconds).
    fn w_cubic_f(w_max: f64, k: f64, t: f64) -> f64 {
        0.4 * (t - k) * (t - k) * (t - k) + w_max
    }

    #[test]
    fn integer_cube_root() {
        for y in [0u128, 1, 2, 3, 10, 4_217_163, 1 << 40] {
            assert_eq!(icbrt(y * y * y), y);
            if y > 1 {
                assert_eq!(icbrt(y * y * y - 1), y - 1);
            }
        }
    }

    #[test]
    fn k_matches_eq_2() {
        // W_max = 100, cwnd_epoch = 70 segments: K = ∛(30 / 0.4) = ∛75 s.
        let k = Cubic::k_us(MSS, 100 * MSS, 70 * MSS);
        assert!((k as f64 - 75f64.cbrt() * 1e6).abs() <= 1.0, "K = {k} µs");
        assert_eq!(Cubic::k_us(MSS, 70 * MSS, 70 * MSS), 0);
    }

    #[test]
    fn w_cubic_matches_eq_1() {
        let k = Cubic::k_us(MSS, 100 * MSS, 70 * MSS);
        let kf = k as f64 / 1e6;
        for t_ms in [0u64, 500, 2000, 4217, 6000, 9000] {
            let got = Cubic::w_cubic(MSS, 100 * MSS, k, t_ms * 1000) as f64 / MSS as f64;
            let want = w_cubic_f(100.0, kf, t_ms as f64 / 1e3);
            assert!((got - want).abs() < 0.01, "t {t_ms} ms: {got} vs {want}");
        }
        // W_cubic(0) = cwnd_epoch, W_cubic(K) = W_max
        assert!(Cubic::w_cubic(MSS, 100 * MSS, k, 0).abs_diff(70 * MSS) <= 1);
        assert_eq!(Cubic::w_cubic(MSS, 100 * MSS, k, k), 100 * MSS);
    }

    #[test]
    fn loss_keeps_beta_and_sets_w_max_with_fast_convergence() {
        let mut c = Cubic::new(MSS, 100 * MSS, 2 * MSS, 1 << 30);
        c.on_congestion_event(t(10), t(5), MSS);
        assert_eq!(c.window(), 70 * MSS);
        assert_eq!(c.ssthresh(), 70 * MSS);
        let e = c.epoch.unwrap();
        assert_eq!(e.w_max, 100 * MSS);
        assert_eq!(e.w_est, 70 * MSS);
        assert_eq!(e.k_us, Cubic::k_us(MSS, 100 * MSS, 70 * MSS));
        // a second loss from the same flight changes nothing
        c.on_congestion_event(t(11), t(9), MSS);
        assert_eq!(c.window(), 70 * MSS);
        // a loss below W_max: W_max = cwnd · (1 + β) / 2
        c.on_congestion_event(t(30), t(20), MSS);
        assert_eq!(c.window(), 49 * MSS);
        assert_eq!(c.epoch.unwrap().w_max, 70 * MSS * 17 / 20);
    }

    #[test]
    fn avoidance_window_follows_w_cubic_of_t_plus_rtt() {
        let rtt = Duration::from_millis(100);
        let mut c = Cubic::new(MSS, 100 * MSS, 2 * MSS, 1 << 30);
        c.on_congestion_event(t(0), t(0), MSS);
        let k = c.epoch.unwrap().k_us as f64 / 1e6;
        // The stage starts with the first ACK after recovery, at 100 ms.
        let start = 100;
        let mut now = start;
        let mut reached_plateau = false;
        for _ in 0..80 {
            now = ack_window(&mut c, now, rtt);
            // After each round the window lies between the curve now and the
            // curve one RTT ahead (the per-ACK target), or on W_est once the
            // Reno-friendly estimate is ahead of the curve (here after ~6 s).
            let t_s = (now - start) as f64 / 1e3;
            let got = c.window() as f64 / MSS as f64;
            let w_est = c.epoch.unwrap().w_est as f64 / MSS as f64;
            let low = w_cubic_f(100.0, k, t_s);
            let high = w_cubic_f(100.0, k, t_s + 0.1).max(w_est);
            assert!(
                got <= high + 1.0,
                "t {t_s}: window {got} above W_cubic(t+RTT) {high}"
            );
            assert!(
                got >= low - 1.0,
                "t {t_s}: window {got} below W_cubic(t) {low}"
            );
            if (t_s - k).abs() < 0.2 {
                assert!((got - 100.0).abs() < 1.5, "plateau at W_max: {got}");
                reached_plateau = true;
            }
        }
        assert!(reached_plateau);
        // convex region after K: beyond W_max
        assert!(c.window() > 110 * MSS);
    }

    #[test]
    fn reno_friendly_region_grows_like_w_est() {
        // A short RTT: the cubic curve is slower than Reno, so cwnd = W_est,
        // which grows by α = 9/17 segments per RTT of time since the loss.
        let rtt = Duration::from_millis(1);
        let mut c = Cubic::new(MSS, 20 * MSS, 2 * MSS, 1 << 30);
        c.on_congestion_event(t(0), t(0), MSS);
        assert_eq!(c.window(), 14 * MSS);
        // recovery lasts one RTT; then ten rounds of a window each
        let mut now = 1;
        for _ in 0..10 {
            now = ack_window(&mut c, now, rtt);
        }
        let e = c.epoch.unwrap();
        let got = c.window() as f64 / MSS as f64;
        // the last ACK of the tenth round came at about 10.9 ms
        let want = 14.0 + 10.9 * 9.0 / 17.0;
        assert!((got - want).abs() < 0.6, "window {got}, W_est {want}");
        assert_eq!(c.window(), e.w_est);
        let t_us = now as u64 * 1000;
        assert!(Cubic::w_cubic(MSS, e.w_max, e.k_us, t_us) < e.w_est);
        // once W_est passed W_max, α = 1: one segment per RTT
        for _ in 0..10 {
            now = ack_window(&mut c, now, rtt);
        }
        let before = c.window();
        ack_window(&mut c, now, rtt);
        assert!(c.window().abs_diff(before + MSS) <= MSS / 4);
    }

    #[test]
    fn w_est_grows_with_time_not_with_acks_and_not_while_app_limited() {
        let rtt = Duration::from_millis(10);
        let mut c = Cubic::new(MSS, 20 * MSS, 2 * MSS, 1 << 30);
        c.on_congestion_event(t(0), t(0), MSS);
        // one ACK 50 ms (5 RTTs) after the loss: W_est = 14 + 5·9/17
        c.on_ack(t(50), t(40), MSS, false, rtt);
        let w = c.window();
        assert!(w.abs_diff(14 * MSS + 5 * MSS * 9 / 17) <= 1, "{w}");
        // 100 ms application-limited: no growth, then or after
        c.on_ack(t(150), t(140), MSS, true, rtt);
        assert_eq!(c.window(), w);
        c.on_ack(t(150), t(145), MSS, false, rtt);
        assert_eq!(c.window(), w);
        // many ACKs at one instant add nothing
        for _ in 0..100 {
            c.on_ack(t(150), t(145), MSS, false, rtt);
        }
        assert_eq!(c.window(), w);
    }

    #[test]
    fn timeout_restarts_from_one_segment_with_k_zero() {
        let rtt = Duration::from_millis(10);
        let mut c = Cubic::new(MSS, 40 * MSS, 2 * MSS, 1 << 30);
        c.on_rto(t(0));
        assert_eq!(c.window(), MSS);
        assert_eq!(c.ssthresh(), 28 * MSS);
        c.on_rto(t(100));
        assert_eq!(c.ssthresh(), 28 * MSS);
        // packets of the timed-out flight do not grow the window
        c.on_ack(t(110), t(50), MSS, false, rtt);
        assert_eq!(c.window(), MSS);
        // slow start up to ssthresh, then a stage with W_max = cwnd, K = 0
        let mut now = 200;
        while c.window() < c.ssthresh() {
            now = ack_window(&mut c, now, rtt);
            c.on_ack_end(t(now), 0, Some(rtt));
        }
        ack_window(&mut c, now, rtt);
        let e = c.epoch.unwrap();
        assert_eq!(e.k_us, 0);
        assert!(e.w_max >= 28 * MSS);
    }

    #[test]
    fn app_limited_and_slow_start() {
        let rtt = Duration::from_millis(10);
        let mut c = Cubic::new(MSS, 10 * MSS, 2 * MSS, 1 << 30);
        c.on_ack(t(10), t(1), 5 * MSS, true, rtt);
        assert_eq!(c.window(), 10 * MSS);
        c.on_ack(t(10), t(1), 5 * MSS, false, rtt);
        assert_eq!(c.window(), 15 * MSS);
        assert!(c.in_slow_start());
    }

    #[test]
    fn hystart_exit_ends_slow_start_below_the_queue() {
        // RTT 10 ms, then a queue builds: HyStart++ moves to CSS (growth / 4)
        // and after five CSS rounds to congestion avoidance, without a loss.
        let mut c = Cubic::new(MSS, 10 * MSS, 2 * MSS, 1 << 30);
        let mut pn = 0u32;
        let mut now = 0;
        let mut rtt_ms = 10;
        let mut window_at_css = None;
        for _round in 0..30 {
            let n = c.window() / MSS;
            let first = pn;
            for _ in 0..n {
                c.on_sent(t(now), pn, MSS);
                pn += 1;
            }
            now += rtt_ms;
            for acked in first..pn {
                let rtt = Duration::from_millis(rtt_ms as u64);
                c.on_ack(t(now), t(now - rtt_ms), MSS, false, rtt);
                c.on_ack_end(t(now), acked, Some(rtt));
            }
            if c.window() >= 80 * MSS {
                rtt_ms = 16; // queue: +6 ms
            }
            if window_at_css.is_none() && c.hystart().growth_divisor() > 1 {
                window_at_css = Some(c.window());
            }
            if !c.in_slow_start() {
                break;
            }
        }
        let css = window_at_css.expect("entered CSS");
        assert!(!c.in_slow_start(), "left slow start");
        assert!(c.ssthresh() >= css && c.ssthresh() < u64::MAX);
        // CSS grows by a quarter per round: far less than doubling five times
        assert!(c.ssthresh() < css * 4, "{} vs {}", c.ssthresh(), css);
    }
}
