//! The handshake seam and its datagram carriage.
//!
//! udp-sec runs the same Noise XK + attestation + identity binding as the TCP
//! path. The core drives any [`Handshake`] and needs nothing of the Noise
//! crate but its [`TrustStore`] trait (handed to `read_message`, where the
//! responder checks message 3): [`NoiseHandshake`](super::noise::NoiseHandshake)
//! wraps `dsb-noise`; tests wrap bare `snow`. XK has three messages
//! (i→r, r→i, i→r), each carried in one handshake datagram.
//!
//! [`HsDriver`] owns the loss handling: the last message written is stored
//! and re-sent byte for byte on timeout (never a new Noise write), and a
//! duplicate of the peer's last message triggers a re-send of our answer.

use alloc::vec::Vec;
use dsb_noise::TrustStore;
use smoltcp::time::{Duration, Instant};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::packet::{PacketType, MAX_PAYLOAD_LEN};
use super::stats::DropReason;

/// Largest handshake message that fits one datagram.
pub const MAX_HANDSHAKE_MSG: usize = MAX_PAYLOAD_LEN;

/// A handshake failure; its label ends the connection (e.g. `"identity-mismatch"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HsError {
    label: &'static str,
}

impl HsError {
    /// An error with a stable label.
    pub const fn new(label: &'static str) -> Self {
        HsError { label }
    }
    /// The stable label.
    pub fn label(&self) -> &'static str {
        self.label
    }
    /// The handshake produced a message larger than one datagram.
    pub const TOO_LARGE: HsError = HsError::new("handshake-too-large");
    /// A handshake operation was called out of turn.
    pub const OUT_OF_TURN: HsError = HsError::new("handshake-out-of-turn");
}

impl core::fmt::Display for HsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.label)
    }
}

/// Keys from the Noise split plus the handshake hash (channel binding).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Key for packets sent by the initiator.
    pub initiator_to_responder: [u8; 32],
    /// Key for packets sent by the responder.
    pub responder_to_initiator: [u8; 32],
    /// Noise handshake hash.
    pub handshake_hash: [u8; 32],
}

impl core::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

/// A three-message handshake (Noise XK) as udp-sec drives it.
pub trait Handshake {
    /// Write our next message into `out`; returns its length.
    fn write_message(&mut self, out: &mut [u8]) -> Result<usize, HsError>;
    /// Process the peer's next message at `now` (including identity checks:
    /// the responder looks the initiator's claimed id up in `trust`).
    fn read_message(
        &mut self,
        now: Instant,
        msg: &[u8],
        trust: &mut dyn TrustStore,
    ) -> Result<(), HsError>;
    /// True after the last message was written or read.
    fn is_finished(&self) -> bool;
    /// True when we must write the next message.
    fn is_my_turn(&self) -> bool;
    /// The split keys of a finished handshake (called once). The handshake
    /// stays with its connection afterwards, e.g. to say who the peer is.
    fn take_keys(&mut self) -> Result<SessionKeys, HsError>;
}

/// Which side of the handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends message 1 and 3.
    Initiator,
    /// Sends message 2.
    Responder,
}

/// What processing a handshake datagram produced.
#[derive(Debug)]
pub(crate) enum HsOutcome {
    /// Nothing new (a stored message may have been queued for re-send).
    Progress,
    /// The handshake finished on our side.
    Finished(SessionKeys),
}

/// Drives a [`Handshake`] over lossy datagrams.
pub(crate) struct HsDriver<H: Handshake> {
    role: Role,
    /// The handshake while it runs (`None` once finished).
    hs: Option<H>,
    /// The handshake after it yielded its keys (kept for inspection).
    done: Option<H>,
    /// Our last message, re-sent verbatim.
    out: Vec<u8>,
    out_typ: Option<PacketType>,
    /// Times `out` was sent.
    out_sends: u32,
    out_first_sent: Option<Instant>,
    /// The peer's last message we accepted (to recognise duplicates).
    last_in: Vec<u8>,
    /// `out` must be (re)sent at the next transmit opportunity.
    pub send_pending: bool,
    /// Re-send deadline for `out`.
    pub retransmit_at: Option<Instant>,
    backoff: u32,
    /// RTT measured over an exchange whose request was sent once (Karn).
    pub rtt_sample: Option<Duration>,
}

impl<H: Handshake> HsDriver<H> {
    pub(crate) fn new(role: Role, hs: H) -> Self {
        HsDriver {
            role,
            hs: Some(hs),
            done: None,
            out: Vec::new(),
            out_typ: None,
            out_sends: 0,
            out_first_sent: None,
            last_in: Vec::new(),
            send_pending: false,
            retransmit_at: None,
            backoff: 0,
            rtt_sample: None,
        }
    }

    /// Initiator: write message 1.
    pub(crate) fn start(&mut self) -> Result<(), HsError> {
        self.write(PacketType::HsInit)?;
        Ok(())
    }

    fn write(&mut self, typ: PacketType) -> Result<(), HsError> {
        let hs = self.hs.as_mut().ok_or(HsError::OUT_OF_TURN)?;
        if !hs.is_my_turn() {
            return Err(HsError::OUT_OF_TURN);
        }
        let mut buf = [0u8; MAX_HANDSHAKE_MSG];
        let n = hs.write_message(&mut buf)?;
        let msg = buf.get(..n).ok_or(HsError::TOO_LARGE)?;
        self.out.clear();
        self.out.extend_from_slice(msg);
        self.out_typ = Some(typ);
        self.out_sends = 0;
        self.out_first_sent = None;
        self.send_pending = true;
        self.backoff = 0;
        Ok(())
    }

    fn finish(&mut self) -> Result<HsOutcome, HsError> {
        match self.hs.take() {
            Some(mut hs) if hs.is_finished() => {
                let keys = hs.take_keys();
                self.done = Some(hs);
                Ok(HsOutcome::Finished(keys?))
            }
            Some(hs) => {
                self.hs = Some(hs);
                Ok(HsOutcome::Progress)
            }
            None => Ok(HsOutcome::Progress),
        }
    }

    /// The handshake, running or finished (after a failure: as it failed).
    pub(crate) fn handshake(&self) -> Option<&H> {
        self.hs.as_ref().or(self.done.as_ref())
    }

    /// The stored message to send and its packet type.
    pub(crate) fn outgoing(&self) -> Option<(PacketType, &[u8])> {
        let typ = self.out_typ?;
        if self.out.is_empty() {
            return None;
        }
        Some((typ, &self.out))
    }

    /// Record that the stored message was sent at `now`; arms the re-send timer.
    pub(crate) fn on_sent(&mut self, now: Instant, rto: Duration, max_rto: Duration) -> bool {
        let resend = self.out_sends > 0;
        self.out_sends = self.out_sends.saturating_add(1);
        if self.out_first_sent.is_none() {
            self.out_first_sent = Some(now);
        }
        self.send_pending = false;
        let wait = backoff(rto, self.backoff, max_rto);
        self.retransmit_at = Some(now + wait);
        resend
    }

    /// The re-send timer fired.
    pub(crate) fn on_timeout(&mut self) {
        if self.outgoing().is_some() {
            self.backoff = self.backoff.saturating_add(1);
            self.send_pending = true;
        }
        self.retransmit_at = None;
    }

    /// Stop re-sending (the peer proved it has our last message).
    pub(crate) fn confirm(&mut self) {
        self.out.clear();
        self.out_typ = None;
        self.send_pending = false;
        self.retransmit_at = None;
        self.last_in.clear();
    }

    /// True while a stored message is kept for re-sending.
    pub(crate) fn has_outgoing(&self) -> bool {
        self.outgoing().is_some()
    }

    /// Process a handshake datagram of type `typ` carrying `msg`.
    pub(crate) fn on_message(
        &mut self,
        now: Instant,
        typ: PacketType,
        msg: &[u8],
        trust: &mut dyn TrustStore,
    ) -> Result<HsOutcome, HandshakeReject> {
        let expected = match (self.role, self.out_typ) {
            (Role::Responder, None) => PacketType::HsInit,
            (Role::Initiator, Some(PacketType::HsInit)) => PacketType::HsResp,
            (Role::Responder, Some(PacketType::HsResp)) => PacketType::HsFinish,
            _ => {
                // Our side is done; a duplicate of the peer's last message
                // means our answer was lost: re-send it.
                return self.duplicate(typ, msg);
            }
        };
        if typ != expected {
            return self.duplicate(typ, msg);
        }
        let hs = self
            .hs
            .as_mut()
            .ok_or(HandshakeReject::Drop(DropReason::UnexpectedHandshake))?;
        if hs.is_my_turn() {
            return Err(HandshakeReject::Drop(DropReason::UnexpectedHandshake));
        }
        hs.read_message(now, msg, trust)
            .map_err(HandshakeReject::Fatal)?;
        if self.out_sends == 1 {
            if let Some(t) = self.out_first_sent {
                self.rtt_sample = Some(super::since(now, t));
            }
        }
        self.last_in.clear();
        self.last_in.extend_from_slice(msg);
        let hs_done = self.hs.as_ref().is_some_and(|h| h.is_finished());
        if !hs_done {
            let next = match self.role {
                Role::Initiator => PacketType::HsFinish,
                Role::Responder => PacketType::HsResp,
            };
            self.write(next).map_err(HandshakeReject::Fatal)?;
        } else {
            // Responder read message 3: nothing more to send.
            self.out.clear();
            self.out_typ = None;
            self.send_pending = false;
            self.retransmit_at = None;
        }
        self.finish().map_err(HandshakeReject::Fatal)
    }

    fn duplicate(&mut self, typ: PacketType, msg: &[u8]) -> Result<HsOutcome, HandshakeReject> {
        let peer_last = match self.role {
            Role::Responder => PacketType::HsInit,
            Role::Initiator => PacketType::HsResp,
        };
        if typ == peer_last
            && !self.last_in.is_empty()
            && self.last_in == msg
            && self.has_outgoing()
        {
            self.send_pending = true;
            return Ok(HsOutcome::Progress);
        }
        Err(HandshakeReject::Drop(DropReason::UnexpectedHandshake))
    }
}

/// Why a handshake datagram was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeReject {
    /// Drop and count; the connection continues.
    Drop(DropReason),
    /// The handshake failed; the connection ends.
    Fatal(HsError),
}

/// `base × 2^n`, capped at `max`.
pub(crate) fn backoff(base: Duration, n: u32, max: Duration) -> Duration {
    let mult = 1u64.checked_shl(n.min(32)).unwrap_or(u64::MAX);
    let us = base.total_micros().saturating_mul(mult);
    Duration::from_micros(us.min(max.total_micros()))
}
