//! Keepalive timers: the idle deadline and when the next PING is due.
//!
//! Anything received restarts the idle deadline. When nothing arrived for
//! `keepalive_interval` (and we have not pinged within that interval), a PING
//! is due; the peer's PONG (or any other traffic) keeps the session alive.
//! If nothing at all arrives for `idle_timeout`, the session fails.

use smoltcp::time::{Duration, Instant};

/// Idle deadline and PING bookkeeping.
#[derive(Debug)]
pub(crate) struct Keepalive {
    idle_timeout: Duration,
    interval: Duration,
    last_rx: Instant,
    last_ping: Option<Instant>,
    /// Opaque value and send time of the PING whose PONG we wait for.
    outstanding: Option<(u64, Instant)>,
    next_opaque: u64,
}

impl Keepalive {
    pub fn new(idle_timeout: Duration, interval: Duration, now: Instant) -> Keepalive {
        Keepalive {
            idle_timeout,
            interval,
            last_rx: now,
            last_ping: None,
            outstanding: None,
            next_opaque: 1,
        }
    }

    /// Something arrived from the peer.
    pub fn on_receive(&mut self, now: Instant) {
        if now > self.last_rx {
            self.last_rx = now;
        }
    }

    /// Restarts the idle clock (when the session becomes authenticated).
    pub fn restart(&mut self, now: Instant) {
        self.last_rx = now;
        self.last_ping = None;
    }

    /// The session fails at this instant unless something arrives before.
    pub fn idle_deadline(&self) -> Instant {
        self.last_rx + self.idle_timeout
    }

    /// When an automatic PING is due.
    pub fn next_ping_at(&self) -> Instant {
        let base = match self.last_ping {
            Some(p) if p > self.last_rx => p,
            _ => self.last_rx,
        };
        base + self.interval
    }

    /// Starts a PING now; returns the opaque value to send. A newer PING replaces
    /// an older outstanding one (its PONG will then be ignored).
    pub fn start_ping(&mut self, now: Instant) -> u64 {
        let opaque = self.next_opaque;
        self.next_opaque = self.next_opaque.wrapping_add(1);
        self.outstanding = Some((opaque, now));
        self.last_ping = Some(now);
        opaque
    }

    /// A PONG arrived: the round-trip time if it answers the outstanding PING.
    pub fn on_pong(&mut self, opaque: u64, now: Instant) -> Option<Duration> {
        match self.outstanding {
            Some((expected, sent)) if expected == opaque => {
                self.outstanding = None;
                Some(if now >= sent {
                    now - sent
                } else {
                    Duration::ZERO
                })
            }
            _ => None,
        }
    }
}
