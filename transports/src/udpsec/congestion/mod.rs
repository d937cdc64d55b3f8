//! Congestion control behind a small [`Controller`] trait (quinn-proto's
//! shape): the connection reports acknowledged bytes, loss events and
//! retransmission timeouts, and asks for the window.

use smoltcp::time::Instant;

mod reno;

pub use reno::Reno;

/// A congestion controller.
pub trait Controller {
    /// `bytes` of a packet sent at `sent` were acknowledged. `app_limited`:
    /// the sender was not using the whole window, so it should not grow.
    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool);
    /// Packets were declared lost; `sent` is when the newest lost packet was sent.
    fn on_congestion_event(&mut self, now: Instant, sent: Instant, lost_bytes: u64);
    /// The retransmission timer fired.
    fn on_rto(&mut self, now: Instant);
    /// Bytes that may be in flight.
    fn window(&self) -> u64;
    /// Slow-start threshold (for stats and pacing).
    fn ssthresh(&self) -> u64;
    /// True while in slow start.
    fn in_slow_start(&self) -> bool {
        self.window() < self.ssthresh()
    }
}
