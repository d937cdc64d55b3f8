//! The adapter from `dsb-noise` to udp-sec's [`Handshake`] trait, so udp-sec
//! sessions run exactly the attested Noise XK + identity binding of the TCP
//! path: the initiator checks message 2 against the binding the peer's
//! announce gave; the responder checks message 3 against the trust store.
//!
//! After the keys were taken the adapter keeps only who the peer is; after a
//! failure it keeps the Noise error and the id the peer claimed, so the
//! transport can report `identity mismatch` with the right id.

use alloc::boxed::Box;

use dsb_noise::{
    Binding, DeviceId, HandshakeConfig, HandshakeStatus, Identity, Initiator, NoiseError,
    Responder, TrustStore,
};
use rand_core::CryptoRngCore;
use smoltcp::time::Instant;

use super::handshake::{Handshake, HsError, SessionKeys};

enum Stage {
    Running(Box<dsb_noise::Handshake>),
    /// Keys taken; the session keys live in the connection now.
    Done,
    Failed,
}

/// A `dsb-noise` handshake driven by udp-sec.
pub struct NoiseHandshake {
    stage: Stage,
    /// Expected (initiator) or claimed in message 3 (responder).
    peer: Option<DeviceId>,
    /// Authenticated and bound (after the keys were taken).
    bound: bool,
    error: Option<NoiseError>,
}

impl core::fmt::Debug for NoiseHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NoiseHandshake")
            .field("peer", &self.peer)
            .field("bound", &self.bound)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl NoiseHandshake {
    fn new(hs: dsb_noise::Handshake, peer: Option<DeviceId>) -> Self {
        NoiseHandshake {
            stage: Stage::Running(Box::new(hs)),
            peer,
            bound: false,
            error: None,
        }
    }

    /// Initiator towards `peer`, whose verified announce bound it to `expected`.
    pub fn initiator(
        local: &Identity,
        peer: &DeviceId,
        expected: Binding,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        config: &HandshakeConfig,
    ) -> Result<Self, NoiseError> {
        let hs = Initiator::new(local, peer, expected, rng, now, config)?;
        Ok(Self::new(dsb_noise::Handshake::Initiator(hs), Some(*peer)))
    }

    /// Responder waiting for message 1 from anyone.
    pub fn responder(
        local: &Identity,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        config: &HandshakeConfig,
    ) -> Result<Self, NoiseError> {
        let hs = Responder::new(local, rng, now, config)?;
        Ok(Self::new(dsb_noise::Handshake::Responder(hs), None))
    }

    /// The authenticated peer, once the handshake finished and was bound.
    pub fn authenticated_peer(&self) -> Option<&DeviceId> {
        self.peer.as_ref().filter(|_| self.bound)
    }

    /// The id the peer claimed (responder) or we expected (initiator), bound or not.
    pub fn claimed_peer(&self) -> Option<&DeviceId> {
        self.peer.as_ref()
    }

    /// Why the handshake failed, if it did.
    pub fn error(&self) -> Option<NoiseError> {
        self.error
    }

    fn fail(&mut self, e: NoiseError) -> HsError {
        self.error = Some(e);
        self.stage = Stage::Failed;
        HsError::new(e.label())
    }
}

impl Handshake for NoiseHandshake {
    fn write_message(&mut self, out: &mut [u8]) -> Result<usize, HsError> {
        let Stage::Running(hs) = &mut self.stage else {
            return Err(HsError::OUT_OF_TURN);
        };
        match hs.write_message(out) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn read_message(
        &mut self,
        now: Instant,
        msg: &[u8],
        trust: &mut dyn TrustStore,
    ) -> Result<(), HsError> {
        let Stage::Running(hs) = &mut self.stage else {
            return Err(HsError::OUT_OF_TURN);
        };
        let r = hs.read_message(now, msg, trust);
        if self.peer.is_none() {
            self.peer = hs.peer_device_id().copied();
        }
        r.map_err(|e| self.fail(e))
    }

    fn is_finished(&self) -> bool {
        match &self.stage {
            Stage::Running(hs) => hs.status() == HandshakeStatus::Finished,
            Stage::Done => true,
            Stage::Failed => false,
        }
    }

    fn is_my_turn(&self) -> bool {
        matches!(&self.stage, Stage::Running(hs) if hs.wants_write())
    }

    fn take_keys(&mut self) -> Result<SessionKeys, HsError> {
        let hs = match core::mem::replace(&mut self.stage, Stage::Failed) {
            Stage::Running(hs) => hs,
            other => {
                self.stage = other;
                return Err(HsError::OUT_OF_TURN);
            }
        };
        let mut session = match hs.into_session() {
            Ok(s) => s,
            Err(e) => return Err(self.fail(e)),
        };
        let Some(keys) = session.take_keys() else {
            return Err(self.fail(NoiseError::BadState));
        };
        self.peer = Some(*session.peer_device_id());
        self.bound = true;
        self.stage = Stage::Done;
        Ok(SessionKeys {
            initiator_to_responder: *keys.initiator_to_responder(),
            responder_to_initiator: *keys.responder_to_initiator(),
            handshake_hash: *keys.handshake_hash(),
        })
    }
}
