//! Receive-side acknowledgement state and policy (RFC 9000 §13.2 style).
//!
//! What was received ([`AckState::ranges`], the header's largest + bitmap)
//! and when to say so:
//! - at once after [`Config::ack_eliciting_threshold`](super::Config) (2)
//!   ack-eliciting packets since the last ACK frame;
//! - at once when an ack-eliciting packet arrives out of order (it opens a
//!   gap or fills one), while the stream has a hole (bytes above missing ones
//!   wait: every packet then tells the sender, as TCP's duplicate ACKs do),
//!   or when it carries IMMEDIATE_ACK;
//! - otherwise when the delayed-ACK timer fires: at most `max_ack_delay`
//!   (25 ms) after the first unacknowledged ack-eliciting packet, and sooner
//!   when the flow paused: twice the smoothed gap between ack-eliciting
//!   arrivals (at least 1 ms). A steady flow is acknowledged every second
//!   packet; a sender that stopped (its window is full, or it has nothing
//!   more) is not held for the full `max_ack_delay`.
//!
//! Non-ack-eliciting packets are recorded but never acknowledged on their own.

use smoltcp::time::{Duration, Instant};

use super::frame::MAX_ACK_RANGES;
use super::range_set::RangeSet;
use super::recovery::GRANULARITY;

/// Receive-side acknowledgement state.
#[derive(Debug)]
pub struct AckState {
    /// Packet numbers received and not yet known to be acknowledged (≤ 16 ranges).
    received: RangeSet,
    /// Largest packet number received and when.
    largest: Option<(u32, Instant)>,
    /// Ack-eliciting packets arrived since the last ACK frame.
    pending: bool,
    eliciting_since_ack: u32,
    /// Arrival of the first ack-eliciting packet not yet acknowledged.
    first_pending: Option<Instant>,
    deadline: Option<Instant>,
    immediate: bool,
    last_arrival: Option<Instant>,
    /// Smoothed gap between ack-eliciting arrivals (µs, 1/8 gain).
    gap_us: Option<u64>,
}

impl Default for AckState {
    fn default() -> Self {
        Self::new()
    }
}

impl AckState {
    /// Nothing received.
    pub const fn new() -> Self {
        AckState {
            received: RangeSet::new(),
            largest: None,
            pending: false,
            eliciting_since_ack: 0,
            first_pending: None,
            deadline: None,
            immediate: false,
            last_arrival: None,
            gap_us: None,
        }
    }

    /// Largest packet number received, and when.
    pub fn largest(&self) -> Option<(u32, Instant)> {
        self.largest
    }

    /// Ranges to acknowledge as `(hi, lo)`, highest first.
    pub fn ranges(&self) -> impl Iterator<Item = (u32, u32)> + Clone + '_ {
        self.received
            .iter()
            .rev()
            .map(|r| (r.end.saturating_sub(1) as u32, r.start as u32))
    }

    /// The header bitmap: bit `i` set when `largest - 1 - i` was received.
    pub fn bits(&self, largest: u32) -> u32 {
        let top = u64::from(largest);
        let low = top.saturating_sub(32);
        let mut bits = 0u64;
        for r in self.received.iter().rev() {
            if r.end <= low {
                break;
            }
            // numbers max(r.start, low)..min(r.end, top) → bits top-1-pn
            let (s, e) = (r.start.max(low), r.end.min(top));
            if s < e {
                let n = e - s; // ≤ 32
                let run = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
                bits |= run << (top - e);
            }
        }
        bits as u32
    }

    /// True when ack-eliciting packets wait for an ACK frame.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// True when an ACK frame should go out now.
    pub fn is_due(&self, now: Instant) -> bool {
        self.pending && (self.immediate || self.deadline.is_some_and(|d| d <= now))
    }

    /// The delayed-ACK deadline, while one is armed and no ACK is due at once.
    pub fn timer(&self) -> Option<Instant> {
        if self.pending && !self.immediate {
            self.deadline
        } else {
            None
        }
    }

    /// Run the delayed-ACK timer.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|t| t <= now) {
            self.deadline = None;
            self.immediate = true;
        }
    }

    /// Acknowledge at once (IMMEDIATE_ACK, a hole in the stream, a peer that
    /// re-sent its last handshake message).
    pub fn request_immediate(&mut self) {
        self.immediate = true;
    }

    /// An authenticated packet `pn` arrived at `now`.
    pub fn on_packet(
        &mut self,
        now: Instant,
        pn: u32,
        eliciting: bool,
        threshold: u32,
        max_delay: Duration,
    ) {
        self.received.insert(u64::from(pn), u64::from(pn) + 1);
        while self.received.len() > MAX_ACK_RANGES {
            self.received.pop_lowest();
        }
        match self.largest {
            // Fills a gap: tell the sender at once.
            Some((l, _)) if pn < l => self.immediate |= eliciting,
            Some((l, _)) => {
                // A gap opened: the sender should learn of it quickly.
                self.immediate |= eliciting && pn != l.saturating_add(1);
                self.largest = Some((pn, now));
            }
            None => self.largest = Some((pn, now)),
        }
        if !eliciting {
            return;
        }
        if let Some(last) = self.last_arrival {
            let gap = crate::udpsec::since(now, last).total_micros();
            self.gap_us = Some(self.gap_us.map_or(gap, |g| (7 * g + gap) / 8));
        }
        self.last_arrival = Some(now);
        self.pending = true;
        self.eliciting_since_ack += 1;
        if self.eliciting_since_ack >= threshold {
            self.immediate = true;
        }
        // The timer runs from the first unacknowledged packet; a pause of
        // twice the usual gap after the latest one also ends the wait.
        let cap = *self.first_pending.get_or_insert(now) + max_delay;
        let paused = self
            .gap_us
            .map(|g| now + Duration::from_micros(2 * g).clamp(GRANULARITY, max_delay));
        self.deadline = Some(paused.map_or(cap, |p| p.min(cap)));
    }

    /// An ACK frame was sent.
    pub fn on_ack_sent(&mut self) {
        self.pending = false;
        self.eliciting_since_ack = 0;
        self.first_pending = None;
        self.deadline = None;
        self.immediate = false;
    }

    /// The peer saw our acknowledgement of everything up to `largest`: stop repeating it.
    pub fn on_ack_acked(&mut self, largest: u32) {
        self.received.remove_below(u64::from(largest) + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const MAX: Duration = Duration::from_millis(25);

    fn us(v: i64) -> Instant {
        Instant::from_micros(v)
    }

    #[test]
    fn every_second_eliciting_packet_at_once() {
        let mut a = AckState::new();
        a.on_packet(us(0), 0, true, 2, MAX);
        assert!(!a.is_due(us(0)));
        assert_eq!(a.timer(), Some(us(25_000)));
        a.on_packet(us(100), 1, true, 2, MAX);
        assert!(a.is_due(us(100)));
        a.on_ack_sent();
        assert!(!a.pending());
        // non-ack-eliciting packets are never acknowledged on their own
        a.on_packet(us(200), 2, false, 2, MAX);
        assert!(!a.pending() && a.timer().is_none());
    }

    #[test]
    fn gaps_and_reordering_are_acknowledged_at_once() {
        let mut a = AckState::new();
        a.on_packet(us(0), 0, true, 2, MAX);
        a.on_packet(us(1), 1, true, 2, MAX);
        a.on_ack_sent();
        a.on_packet(us(2), 3, true, 2, MAX); // 2 missing
        assert!(a.is_due(us(2)));
        a.on_ack_sent();
        a.on_packet(us(3), 2, true, 2, MAX); // fills the gap
        assert!(a.is_due(us(3)));
        assert_eq!(a.ranges().collect::<Vec<_>>(), [(3, 0)]);
        assert_eq!(a.bits(3), 0b111);
    }

    #[test]
    fn delayed_ack_waits_at_most_max_delay_or_two_arrival_gaps() {
        let mut a = AckState::new();
        // packets 1 ms apart: the smoothed gap is 1 ms
        for pn in 0..8u32 {
            a.on_packet(us(i64::from(pn) * 1000), pn, true, 2, MAX);
            if a.is_due(us(i64::from(pn) * 1000)) {
                a.on_ack_sent();
            }
        }
        a.on_packet(us(8000), 8, true, 2, MAX);
        // the flow pauses: acknowledged 2 ms (two gaps) later, not 25 ms
        assert_eq!(a.timer(), Some(us(10_000)));
        a.on_timeout(us(10_000));
        assert!(a.is_due(us(10_000)));
        // a first packet after a long silence waits for the full delay at most
        let mut b = AckState::new();
        b.on_packet(us(0), 0, true, 2, MAX);
        assert_eq!(b.timer(), Some(us(25_000)));
        b.on_ack_sent();
        b.on_packet(us(500_000), 1, true, 2, MAX);
        assert_eq!(b.timer(), Some(us(525_000)));
    }

    #[test]
    fn header_bitmap_matches_the_ranges() {
        let mut a = AckState::new();
        let received = [0u32, 1, 2, 5, 6, 9, 30, 31, 33, 34, 35, 36, 40, 41, 70, 71];
        for (i, &pn) in received.iter().enumerate() {
            a.on_packet(us(i as i64), pn, true, 2, MAX);
        }
        for largest in [0u32, 3, 6, 36, 40, 41, 71, 100] {
            let want = (0..32u32).fold(0u32, |b, i| match largest.checked_sub(i + 1) {
                Some(pn) if received.contains(&pn) => b | 1 << i,
                _ => b,
            });
            assert_eq!(a.bits(largest), want, "largest {largest}");
        }
    }

    #[test]
    fn remembers_at_most_16_ranges_and_forgets_acknowledged_ones() {
        let mut a = AckState::new();
        for i in 0..40u32 {
            a.on_packet(us(i64::from(i)), i * 2, true, 2, MAX);
        }
        assert_eq!(a.ranges().count(), MAX_ACK_RANGES);
        a.on_ack_acked(70);
        assert_eq!(
            a.ranges().collect::<Vec<_>>(),
            [(78, 78), (76, 76), (74, 74), (72, 72)]
        );
    }
}
