//! ICMP echo to one target, sans-IO: decides when to send the next echo request,
//! matches replies, and says when the deadline passed.
//!
//! The pinger never touches a socket: the stack asks [`Pinger::poll_transmit`]
//! for the next request to emit and hands every received ICMP message to
//! [`Pinger::on_icmp`].

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, Ipv4Address};

/// Payload of every echo request; a reply must carry it back unchanged.
pub const PING_PAYLOAD: &[u8; 16] = b"dsoftbus-selftst";
/// How many sent requests are remembered for matching replies (a visible cap).
pub const PING_SENT_CAP: usize = 8;

/// Result of feeding one ICMP message to the pinger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingInput {
    /// An echo reply to one of our requests: round-trip time of that request.
    Reply {
        /// Sequence number of the answered request.
        seq: u16,
        /// Time since that request was sent.
        rtt: Duration,
    },
    /// Not for us, or not a valid answer (label says why).
    Ignored(&'static str),
}

/// ICMP echo state for one target.
#[derive(Debug)]
pub struct Pinger {
    ident: u16,
    target: Ipv4Address,
    interval: Duration,
    deadline: Instant,
    next_seq: u16,
    next_send_at: Instant,
    sent: [Option<(u16, Instant)>; PING_SENT_CAP],
    answered: bool,
}

impl Pinger {
    /// Starts pinging `target` at `now`; gives up at `now + timeout`, re-sends every `interval`.
    pub fn new(
        ident: u16,
        target: Ipv4Address,
        now: Instant,
        timeout: Duration,
        interval: Duration,
    ) -> Pinger {
        Pinger {
            ident,
            target,
            interval,
            deadline: now + timeout,
            next_seq: 0,
            next_send_at: now,
            sent: [None; PING_SENT_CAP],
            answered: false,
        }
    }

    /// The address being pinged.
    pub fn target(&self) -> Ipv4Address {
        self.target
    }

    /// When the pinger gives up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether a reply arrived.
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Whether the deadline passed without a reply.
    pub fn timed_out(&self, now: Instant) -> bool {
        !self.answered && now >= self.deadline
    }

    /// The next moment the pinger wants to be polled (send or deadline).
    pub fn poll_at(&self) -> Option<Instant> {
        if self.answered {
            None
        } else {
            Some(core::cmp::min(self.next_send_at, self.deadline))
        }
    }

    /// If a request is due at `now`, records it and returns the echo request to emit.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Icmpv4Repr<'static>> {
        if self.answered || now >= self.deadline || now < self.next_send_at {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_send_at = now + self.interval;
        let slot = usize::from(seq) % PING_SENT_CAP;
        if let Some(entry) = self.sent.get_mut(slot) {
            *entry = Some((seq, now));
        }
        Some(Icmpv4Repr::EchoRequest {
            ident: self.ident,
            seq_no: seq,
            data: PING_PAYLOAD,
        })
    }

    /// Undoes the last [`Pinger::poll_transmit`] when the request could not be queued,
    /// so it is retried on the next poll.
    pub fn transmit_failed(&mut self, now: Instant) {
        self.next_send_at = now;
    }

    /// Feeds one received ICMP message (the ICMP bytes, no IP header) from `from`.
    pub fn on_icmp(&mut self, now: Instant, from: Ipv4Address, icmp: &[u8]) -> PingInput {
        if from != self.target {
            return PingInput::Ignored("other-source");
        }
        let Ok(packet) = Icmpv4Packet::new_checked(icmp) else {
            return PingInput::Ignored("malformed");
        };
        let Ok(repr) = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default()) else {
            return PingInput::Ignored("malformed");
        };
        let Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        } = repr
        else {
            return PingInput::Ignored("not-echo-reply");
        };
        if ident != self.ident {
            return PingInput::Ignored("other-ident");
        }
        if data != PING_PAYLOAD {
            return PingInput::Ignored("bad-payload");
        }
        let slot = usize::from(seq_no) % PING_SENT_CAP;
        let Some(Some((seq, sent_at))) = self.sent.get(slot).copied() else {
            return PingInput::Ignored("unknown-seq");
        };
        if seq != seq_no {
            return PingInput::Ignored("unknown-seq");
        }
        self.answered = true;
        PingInput::Reply {
            seq,
            rtt: now - sent_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const GW: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

    fn reply(ident: u16, seq_no: u16, data: &[u8]) -> alloc::vec::Vec<u8> {
        let repr = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCapabilities::default(),
        );
        buf
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n as i64)
    }

    #[test]
    fn sends_at_once_then_every_interval_until_deadline() {
        let mut p = Pinger::new(
            7,
            GW,
            ms(0),
            Duration::from_millis(1000),
            Duration::from_millis(300),
        );
        assert!(matches!(
            p.poll_transmit(ms(0)),
            Some(Icmpv4Repr::EchoRequest { seq_no: 0, .. })
        ));
        assert_eq!(p.poll_transmit(ms(100)), None);
        assert!(matches!(
            p.poll_transmit(ms(300)),
            Some(Icmpv4Repr::EchoRequest { seq_no: 1, .. })
        ));
        assert!(!p.timed_out(ms(999)));
        assert!(p.timed_out(ms(1000)));
        assert_eq!(p.poll_transmit(ms(1000)), None);
    }

    #[test]
    fn matching_reply_reports_rtt_and_stops_sending() {
        let mut p = Pinger::new(
            7,
            GW,
            ms(0),
            Duration::from_millis(1000),
            Duration::from_millis(300),
        );
        p.poll_transmit(ms(10));
        let got = p.on_icmp(ms(25), GW, &reply(7, 0, PING_PAYLOAD));
        assert_eq!(
            got,
            PingInput::Reply {
                seq: 0,
                rtt: Duration::from_millis(15)
            }
        );
        assert!(p.answered());
        assert!(!p.timed_out(ms(5000)));
        assert_eq!(p.poll_transmit(ms(5000)), None);
        assert_eq!(p.poll_at(), None);
    }

    #[test]
    fn foreign_or_forged_replies_are_ignored() {
        let mut p = Pinger::new(
            7,
            GW,
            ms(0),
            Duration::from_millis(1000),
            Duration::from_millis(300),
        );
        p.poll_transmit(ms(0));
        let other = Ipv4Address::new(10, 0, 2, 3);
        assert_eq!(
            p.on_icmp(ms(1), other, &reply(7, 0, PING_PAYLOAD)),
            PingInput::Ignored("other-source")
        );
        assert_eq!(
            p.on_icmp(ms(1), GW, &reply(8, 0, PING_PAYLOAD)),
            PingInput::Ignored("other-ident")
        );
        assert_eq!(
            p.on_icmp(ms(1), GW, &reply(7, 5, PING_PAYLOAD)),
            PingInput::Ignored("unknown-seq")
        );
        assert_eq!(
            p.on_icmp(ms(1), GW, &reply(7, 0, b"something else!!")),
            PingInput::Ignored("bad-payload")
        );
        assert_eq!(
            p.on_icmp(ms(1), GW, &[0u8; 3]),
            PingInput::Ignored("malformed")
        );
        let mut corrupt = reply(7, 0, PING_PAYLOAD);
        corrupt[9] ^= 0xff;
        assert_eq!(
            p.on_icmp(ms(1), GW, &corrupt),
            PingInput::Ignored("malformed")
        );
        assert!(!p.answered());
    }
}
