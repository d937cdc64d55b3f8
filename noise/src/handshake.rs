//! The attested XK handshake: three Noise messages, device attestations in
//! messages 2 and 3, identity binding before any session exists.
//!
//! ```text
//! initiator (knows responder's Binding from its announce)      responder
//!   msg1  -> e, es            payload: empty
//!   msg2  <- e, ee            payload: responder attestation, signed over h1
//!   msg3  -> s, se            payload: initiator attestation, signed over h2
//! ```
//! `h1` = handshake hash after msg1, `h2` = handshake hash after msg2. The
//! initiator checks msg2 against the binding it expected; the responder
//! looks the initiator's claimed id up in a [`TrustStore`] and requires the
//! authenticated static key and the attesting device key to be the bound
//! ones. Any failure is final: the handshake goes to `Failed` and never
//! yields a [`Session`]. Sans-IO: bytes and `Instant`s in, bytes out.

use core::fmt;

use ed25519_dalek::SigningKey;
use rand_core::{CryptoRng, RngCore};
use smoltcp::time::{Duration, Instant};

use crate::attest::{Attestation, Role, MAX_ATTESTATION_LEN};
use crate::frame::write_frame_with;
use crate::resolver::SeededResolver;
use crate::xk::{RawHandshake, DH_LEN, HASH_LEN, PROLOGUE, TAG_LEN};
use crate::{Binding, DeviceId, Identity, NoiseError, Session, TrustStore};

/// Default time a handshake may take from creation to completion.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Length of message 1 (ephemeral key + tag of the empty payload).
pub const MSG1_LEN: usize = DH_LEN + TAG_LEN;
/// Largest message 2 (ephemeral key + attestation + tag).
pub const MAX_MSG2_LEN: usize = DH_LEN + MAX_ATTESTATION_LEN + TAG_LEN;
/// Largest message 3 (encrypted static key + attestation + tag).
pub const MAX_MSG3_LEN: usize = DH_LEN + TAG_LEN + MAX_ATTESTATION_LEN + TAG_LEN;
/// Largest handshake message either side accepts or writes (194 bytes).
pub const MAX_HANDSHAKE_MESSAGE_LEN: usize = MAX_MSG3_LEN;

/// Handshake settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Deadline measured from `new`; a later `read_message` fails with `handshake-timeout`.
    pub timeout: Duration,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig {
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Where a handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// `write_message` produces the next message.
    WantWrite,
    /// Waiting for the peer's next message (`read_message`).
    WantRead,
    /// Complete and bound; `into_session` succeeds.
    Finished,
    /// Rejected; drop it.
    Failed,
}

/// What a handshake keeps of the local identity.
struct LocalSigner {
    device_id: DeviceId,
    key: SigningKey,
    noise_static: [u8; 32],
}

impl LocalSigner {
    fn new(local: &Identity) -> Self {
        LocalSigner {
            device_id: *local.device_id(),
            key: local.device_signing_key().clone(),
            noise_static: local.noise_static_public(),
        }
    }

    fn attest(&self, role: Role, h: &[u8; HASH_LEN]) -> Attestation {
        Attestation::sign(role, &self.key, &self.device_id, h, &self.noise_static)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IStep {
    SendMsg1,
    AwaitMsg2,
    SendMsg3,
    Done,
    Failed,
}

/// The connecting side. Knows the responder's device id and [`Binding`]
/// (from its signed announce) before it starts.
pub struct Initiator {
    raw: RawHandshake,
    local: LocalSigner,
    peer: DeviceId,
    expected: Binding,
    h1: [u8; HASH_LEN],
    step: IStep,
    deadline: Instant,
}

impl Initiator {
    /// Start a handshake towards `peer`, whose announce bound it to `expected`.
    pub fn new<R: RngCore + CryptoRng + ?Sized>(
        local: &Identity,
        peer: &DeviceId,
        expected: Binding,
        rng: &mut R,
        now: Instant,
        config: &HandshakeConfig,
    ) -> Result<Self, NoiseError> {
        let resolver = SeededResolver::from_rng(rng)?;
        let secret = local.noise_static_secret();
        let raw =
            RawHandshake::initiator(&secret, &expected.noise_static, PROLOGUE, resolver, None)?;
        Ok(Initiator {
            raw,
            local: LocalSigner::new(local),
            peer: *peer,
            expected,
            h1: [0; HASH_LEN],
            step: IStep::SendMsg1,
            deadline: now + config.timeout,
        })
    }

    /// Where the handshake stands.
    pub fn status(&self) -> HandshakeStatus {
        match self.step {
            IStep::SendMsg1 | IStep::SendMsg3 => HandshakeStatus::WantWrite,
            IStep::AwaitMsg2 => HandshakeStatus::WantRead,
            IStep::Done => HandshakeStatus::Finished,
            IStep::Failed => HandshakeStatus::Failed,
        }
    }

    /// The device id this handshake expects to reach.
    pub fn peer_device_id(&self) -> &DeviceId {
        &self.peer
    }

    /// Deadline after which the handshake is abandoned.
    pub fn poll_at(&self) -> Instant {
        self.deadline
    }

    /// True once `now` reached the deadline (and the handshake is not finished).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.step != IStep::Done && now >= self.deadline
    }

    /// Write message 1 or 3 into `out` (at least [`MAX_HANDSHAKE_MESSAGE_LEN`]
    /// bytes is always enough); returns its length.
    pub fn write_message(&mut self, out: &mut [u8]) -> Result<usize, NoiseError> {
        match self.step {
            IStep::SendMsg1 => {
                let out = out.get_mut(..MSG1_LEN).ok_or(NoiseError::BufferTooSmall)?;
                let n = self.raw.write(&[], out).map_err(|e| self.fail(e))?;
                self.h1 = self.raw.handshake_hash();
                self.step = IStep::AwaitMsg2;
                Ok(n)
            }
            IStep::SendMsg3 => {
                let h2 = self.raw.handshake_hash();
                let att = self.local.attest(Role::Initiator, &h2);
                let mut payload = [0u8; MAX_ATTESTATION_LEN];
                let plen = att.encode(&mut payload)?;
                let needed = DH_LEN + TAG_LEN + plen + TAG_LEN;
                let out = out.get_mut(..needed).ok_or(NoiseError::BufferTooSmall)?;
                let body = payload.get(..plen).ok_or(NoiseError::BufferTooSmall)?;
                let n = self.raw.write(body, out).map_err(|e| self.fail(e))?;
                self.step = IStep::Done;
                Ok(n)
            }
            _ => Err(NoiseError::BadState),
        }
    }

    /// Write the next message as one frame (2-byte big-endian length + message).
    pub fn write_frame(&mut self, out: &mut [u8]) -> Result<usize, NoiseError> {
        write_frame_with(out, |body| self.write_message(body))
    }

    /// Read message 2 and check the responder's attestation against the
    /// expected binding. Any error fails the handshake for good.
    pub fn read_message(&mut self, now: Instant, msg: &[u8]) -> Result<(), NoiseError> {
        if self.step != IStep::AwaitMsg2 {
            return Err(NoiseError::BadState);
        }
        let r = self.read_msg2(now, msg);
        if let Err(e) = r {
            self.fail(e);
        }
        r
    }

    fn read_msg2(&mut self, now: Instant, msg: &[u8]) -> Result<(), NoiseError> {
        if now >= self.deadline {
            return Err(NoiseError::HandshakeTimeout);
        }
        if msg.len() > MAX_MSG2_LEN {
            return Err(NoiseError::Oversized);
        }
        let mut payload = [0u8; MAX_HANDSHAKE_MESSAGE_LEN];
        let n = self.raw.read(msg, &mut payload)?;
        let att = Attestation::decode(payload.get(..n).ok_or(NoiseError::Malformed)?)?;
        // The keys must be the ones the announce bound to this device id.
        let remote_static = self.raw.remote_static().ok_or(NoiseError::BadState)?;
        if att.device_id != self.peer
            || att.device_key != self.expected.device_key
            || remote_static != self.expected.noise_static
        {
            return Err(NoiseError::IdentityMismatch);
        }
        att.verify(Role::Responder, &self.h1, &remote_static)?;
        self.step = IStep::SendMsg3;
        Ok(())
    }

    /// The authenticated session, once message 3 was written.
    pub fn into_session(self) -> Result<Session, NoiseError> {
        if self.step != IStep::Done {
            return Err(NoiseError::BadState);
        }
        let remote_static = self.raw.remote_static().ok_or(NoiseError::BadState)?;
        let (transport, keys) = self.raw.into_parts()?;
        Ok(Session::new(transport, keys, self.peer, remote_static))
    }

    fn fail(&mut self, e: NoiseError) -> NoiseError {
        self.step = IStep::Failed;
        e
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("local", &self.local.device_id)
            .field("peer", &self.peer)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RStep {
    AwaitMsg1,
    SendMsg2,
    AwaitMsg3,
    Done,
    Failed,
}

/// The accepting side. Learns who connected from message 3 and checks it
/// against a [`TrustStore`].
pub struct Responder {
    raw: RawHandshake,
    local: LocalSigner,
    h2: [u8; HASH_LEN],
    claimed: Option<DeviceId>,
    step: RStep,
    deadline: Instant,
}

impl Responder {
    /// Wait for a handshake from anyone.
    pub fn new<R: RngCore + CryptoRng + ?Sized>(
        local: &Identity,
        rng: &mut R,
        now: Instant,
        config: &HandshakeConfig,
    ) -> Result<Self, NoiseError> {
        let resolver = SeededResolver::from_rng(rng)?;
        let secret = local.noise_static_secret();
        let raw = RawHandshake::responder(&secret, PROLOGUE, resolver, None)?;
        Ok(Responder {
            raw,
            local: LocalSigner::new(local),
            h2: [0; HASH_LEN],
            claimed: None,
            step: RStep::AwaitMsg1,
            deadline: now + config.timeout,
        })
    }

    /// Where the handshake stands.
    pub fn status(&self) -> HandshakeStatus {
        match self.step {
            RStep::SendMsg2 => HandshakeStatus::WantWrite,
            RStep::AwaitMsg1 | RStep::AwaitMsg3 => HandshakeStatus::WantRead,
            RStep::Done => HandshakeStatus::Finished,
            RStep::Failed => HandshakeStatus::Failed,
        }
    }

    /// The device id the initiator claimed in message 3 (set even when the
    /// binding check then failed; validated charset, safe to log).
    pub fn claimed_peer(&self) -> Option<&DeviceId> {
        self.claimed.as_ref()
    }

    /// Deadline after which the handshake is abandoned.
    pub fn poll_at(&self) -> Instant {
        self.deadline
    }

    /// True once `now` reached the deadline (and the handshake is not finished).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.step != RStep::Done && now >= self.deadline
    }

    /// Write message 2 into `out`; returns its length.
    pub fn write_message(&mut self, out: &mut [u8]) -> Result<usize, NoiseError> {
        if self.step != RStep::SendMsg2 {
            return Err(NoiseError::BadState);
        }
        let h1 = self.raw.handshake_hash();
        let att = self.local.attest(Role::Responder, &h1);
        let mut payload = [0u8; MAX_ATTESTATION_LEN];
        let plen = att.encode(&mut payload)?;
        let needed = DH_LEN + plen + TAG_LEN;
        let out = out.get_mut(..needed).ok_or(NoiseError::BufferTooSmall)?;
        let body = payload.get(..plen).ok_or(NoiseError::BufferTooSmall)?;
        let n = self.raw.write(body, out).map_err(|e| self.fail(e))?;
        self.h2 = self.raw.handshake_hash();
        self.step = RStep::AwaitMsg3;
        Ok(n)
    }

    /// Write the next message as one frame (2-byte big-endian length + message).
    pub fn write_frame(&mut self, out: &mut [u8]) -> Result<usize, NoiseError> {
        write_frame_with(out, |body| self.write_message(body))
    }

    /// Read message 1 or 3. On message 3 the initiator's attestation must
    /// verify, then `trust` must admit its (id, device key). Any error fails
    /// the handshake for good.
    pub fn read_message<T: TrustStore + ?Sized>(
        &mut self,
        now: Instant,
        msg: &[u8],
        trust: &mut T,
    ) -> Result<(), NoiseError> {
        let r = match self.step {
            RStep::AwaitMsg1 => self.read_msg1(now, msg),
            RStep::AwaitMsg3 => self.read_msg3(now, msg, trust),
            _ => return Err(NoiseError::BadState),
        };
        if let Err(e) = r {
            self.fail(e);
        }
        r
    }

    fn read_msg1(&mut self, now: Instant, msg: &[u8]) -> Result<(), NoiseError> {
        if now >= self.deadline {
            return Err(NoiseError::HandshakeTimeout);
        }
        if msg.len() > MSG1_LEN {
            return Err(NoiseError::Oversized);
        }
        let mut payload = [0u8; MSG1_LEN];
        let n = self.raw.read(msg, &mut payload)?;
        if n != 0 {
            return Err(NoiseError::Malformed);
        }
        self.step = RStep::SendMsg2;
        Ok(())
    }

    fn read_msg3<T: TrustStore + ?Sized>(
        &mut self,
        now: Instant,
        msg: &[u8],
        trust: &mut T,
    ) -> Result<(), NoiseError> {
        if now >= self.deadline {
            return Err(NoiseError::HandshakeTimeout);
        }
        if msg.len() > MAX_MSG3_LEN {
            return Err(NoiseError::Oversized);
        }
        let mut payload = [0u8; MAX_HANDSHAKE_MESSAGE_LEN];
        let n = self.raw.read(msg, &mut payload)?;
        let att = Attestation::decode(payload.get(..n).ok_or(NoiseError::Malformed)?)?;
        self.claimed = Some(att.device_id);
        let remote_static = self.raw.remote_static().ok_or(NoiseError::BadState)?;
        // The device key signed this handshake (h2) and the static key `se`
        // just authenticated: the key speaks for this handshake. Only then
        // ask whether it may speak for the id (which may create a TOFU binding).
        att.verify(Role::Initiator, &self.h2, &remote_static)?;
        trust.admit(&att.device_id, &att.device_key)?;
        self.step = RStep::Done;
        Ok(())
    }

    /// The authenticated session, once message 3 was read and bound.
    pub fn into_session(self) -> Result<Session, NoiseError> {
        if self.step != RStep::Done {
            return Err(NoiseError::BadState);
        }
        let peer = self.claimed.ok_or(NoiseError::BadState)?;
        let remote_static = self.raw.remote_static().ok_or(NoiseError::BadState)?;
        let (transport, keys) = self.raw.into_parts()?;
        Ok(Session::new(transport, keys, peer, remote_static))
    }

    fn fail(&mut self, e: NoiseError) -> NoiseError {
        self.step = RStep::Failed;
        e
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("local", &self.local.device_id)
            .field("claimed", &self.claimed)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// Either side, behind one interface (what a connection slot holds).
#[derive(Debug)]
pub enum Handshake {
    /// We connected.
    Initiator(Initiator),
    /// We accepted.
    Responder(Responder),
}

impl Handshake {
    /// Where the handshake stands.
    pub fn status(&self) -> HandshakeStatus {
        match self {
            Handshake::Initiator(h) => h.status(),
            Handshake::Responder(h) => h.status(),
        }
    }

    /// True when `write_message` should be called next.
    pub fn wants_write(&self) -> bool {
        self.status() == HandshakeStatus::WantWrite
    }

    /// True once bound and complete.
    pub fn is_finished(&self) -> bool {
        self.status() == HandshakeStatus::Finished
    }

    /// Deadline after which the handshake is abandoned.
    pub fn poll_at(&self) -> Instant {
        match self {
            Handshake::Initiator(h) => h.poll_at(),
            Handshake::Responder(h) => h.poll_at(),
        }
    }

    /// True once `now` reached the deadline (and the handshake is not finished).
    pub fn is_expired(&self, now: Instant) -> bool {
        match self {
            Handshake::Initiator(h) => h.is_expired(now),
            Handshake::Responder(h) => h.is_expired(now),
        }
    }

    /// The peer's device id: expected (initiator) or claimed in msg 3 (responder).
    pub fn peer_device_id(&self) -> Option<&DeviceId> {
        match self {
            Handshake::Initiator(h) => Some(h.peer_device_id()),
            Handshake::Responder(h) => h.claimed_peer(),
        }
    }

    /// Write the next handshake message; returns its length.
    pub fn write_message(&mut self, out: &mut [u8]) -> Result<usize, NoiseError> {
        match self {
            Handshake::Initiator(h) => h.write_message(out),
            Handshake::Responder(h) => h.write_message(out),
        }
    }

    /// Write the next handshake message as one frame.
    pub fn write_frame(&mut self, out: &mut [u8]) -> Result<usize, NoiseError> {
        write_frame_with(out, |body| self.write_message(body))
    }

    /// Read the peer's next handshake message (`trust` is used by the responder).
    pub fn read_message<T: TrustStore + ?Sized>(
        &mut self,
        now: Instant,
        msg: &[u8],
        trust: &mut T,
    ) -> Result<(), NoiseError> {
        match self {
            Handshake::Initiator(h) => h.read_message(now, msg),
            Handshake::Responder(h) => h.read_message(now, msg, trust),
        }
    }

    /// The authenticated session.
    pub fn into_session(self) -> Result<Session, NoiseError> {
        match self {
            Handshake::Initiator(h) => h.into_session(),
            Handshake::Responder(h) => h.into_session(),
        }
    }
}
