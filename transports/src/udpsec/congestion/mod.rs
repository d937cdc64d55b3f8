//! Congestion control behind a small [`Controller`] trait (quinn-proto's
//! shape): the connection reports sent packets, acknowledged bytes, loss
//! events and retransmission timeouts, and asks for the window.
//!
//! Two controllers: [`Cubic`] (RFC 9438, with HyStart++ from RFC 9406 for the
//! first slow start) and [`Reno`] (RFC 5681 with byte counting). Which one a
//! connection runs is [`Config::congestion`](super::Config::congestion).

use alloc::boxed::Box;
use smoltcp::time::{Duration, Instant};

mod cubic;
mod hystart;
mod reno;

pub use cubic::Cubic;
pub use hystart::HyStart;
pub use reno::Reno;

/// A congestion controller.
pub trait Controller {
    /// An ack-eliciting packet `pn` of `bytes` went out (counted in flight).
    fn on_sent(&mut self, _now: Instant, _pn: u32, _bytes: u64) {}
    /// `bytes` of a packet sent at `sent` were acknowledged. `app_limited`:
    /// the sender was not using the whole window, so it should not grow.
    /// `srtt`: the smoothed RTT before this acknowledgement.
    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        srtt: Duration,
    );
    /// One acknowledgement was fully applied: `largest_acked` is the largest
    /// packet number acknowledged so far, `rtt_sample` the RTT sample it gave.
    fn on_ack_end(&mut self, _now: Instant, _largest_acked: u32, _rtt_sample: Option<Duration>) {}
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

/// Which congestion controller a connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionControl {
    /// CUBIC (RFC 9438) with HyStart++ (RFC 9406).
    #[default]
    Cubic,
    /// Reno (RFC 5681, byte counting).
    Reno,
}

impl CongestionControl {
    /// Stable label (`cubic`, `reno`), as on the kernel command line.
    pub fn label(self) -> &'static str {
        match self {
            CongestionControl::Cubic => "cubic",
            CongestionControl::Reno => "reno",
        }
    }

    /// The controller, with windows in bytes (`initial` clamped to `[min, max]`).
    pub fn build(self, mss: u64, initial: u64, min: u64, max: u64) -> Box<dyn Controller> {
        match self {
            CongestionControl::Cubic => Box::new(Cubic::new(mss, initial, min, max)),
            CongestionControl::Reno => Box::new(Reno::new(mss, initial, min, max)),
        }
    }
}
