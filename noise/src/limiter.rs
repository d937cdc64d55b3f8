//! A cap on concurrent half-open handshakes.
//!
//! Each accepted or started handshake takes a [`HandshakeTicket`]; the node
//! gives it back when the handshake finishes, fails or expires. When all
//! tickets are out, new handshakes are refused (`handshake-limit`) instead of
//! growing state without bound.

/// Default number of concurrent half-open handshakes.
pub const DEFAULT_MAX_HALF_OPEN: usize = 8;
/// Upper bound any limiter is clamped to.
pub const MAX_HALF_OPEN_CAP: usize = 64;

use crate::NoiseError;

/// Proof that a half-open slot is held. Not `Clone`: one release per ticket.
#[derive(Debug)]
#[must_use = "a ticket must be released, or its slot stays taken"]
pub struct HandshakeTicket {
    _private: (),
}

/// Counts half-open handshakes against a fixed cap.
#[derive(Debug, Clone)]
pub struct HandshakeLimiter {
    max: usize,
    in_flight: usize,
}

impl Default for HandshakeLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HALF_OPEN)
    }
}

impl HandshakeLimiter {
    /// A limiter for `max` handshakes (clamped to 1..=`MAX_HALF_OPEN_CAP`).
    pub fn new(max: usize) -> Self {
        HandshakeLimiter {
            max: max.clamp(1, MAX_HALF_OPEN_CAP),
            in_flight: 0,
        }
    }

    /// Take a slot, or `HandshakeLimit` when all are taken.
    pub fn try_acquire(&mut self) -> Result<HandshakeTicket, NoiseError> {
        if self.in_flight >= self.max {
            return Err(NoiseError::HandshakeLimit);
        }
        self.in_flight += 1;
        Ok(HandshakeTicket { _private: () })
    }

    /// Give a slot back.
    pub fn release(&mut self, ticket: HandshakeTicket) {
        let HandshakeTicket { _private: () } = ticket;
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Slots in use.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The cap.
    pub fn capacity(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_beyond_the_cap_and_recovers_on_release() {
        let mut l = HandshakeLimiter::new(2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert_eq!(l.try_acquire().unwrap_err(), NoiseError::HandshakeLimit);
        l.release(a);
        assert_eq!(l.in_flight(), 1);
        assert!(l.try_acquire().is_ok());
    }

    #[test]
    fn cap_is_clamped() {
        assert_eq!(HandshakeLimiter::new(0).capacity(), 1);
        assert_eq!(HandshakeLimiter::new(10_000).capacity(), MAX_HALF_OPEN_CAP);
    }
}
