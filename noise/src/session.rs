//! An authenticated transport session: the result of a handshake that passed
//! identity binding.
//!
//! Messages use Noise's implicit nonces (one counter per direction), which is
//! right for a reliable, ordered byte stream: a lost, reordered, replayed or
//! altered message fails authentication, and the first failure ends the
//! session for good (`Dead`).

use core::fmt;

use snow::TransportState;
use zeroize::Zeroizing;

use crate::xk::{HASH_LEN, MAX_MESSAGE_LEN, MAX_PLAINTEXT_LEN, TAG_LEN};
use crate::{DeviceId, NoiseError};

/// The raw output of the handshake for transports that run their own AEAD
/// (udp-sec): both 32-byte ChaCha20-Poly1305 keys from Noise `Split()` and
/// the final handshake hash. Keys are zeroized on drop; `Debug` is redacted.
pub struct SessionKeys {
    initiator_to_responder: Zeroizing<[u8; 32]>,
    responder_to_initiator: Zeroizing<[u8; 32]>,
    handshake_hash: [u8; HASH_LEN],
    is_initiator: bool,
}

impl SessionKeys {
    pub(crate) fn new(
        k1: Zeroizing<[u8; 32]>,
        k2: Zeroizing<[u8; 32]>,
        handshake_hash: [u8; HASH_LEN],
        is_initiator: bool,
    ) -> Self {
        SessionKeys {
            initiator_to_responder: k1,
            responder_to_initiator: k2,
            handshake_hash,
            is_initiator,
        }
    }

    /// Key for messages this side sends.
    pub fn send_key(&self) -> &[u8; 32] {
        if self.is_initiator {
            &self.initiator_to_responder
        } else {
            &self.responder_to_initiator
        }
    }

    /// Key for messages this side receives.
    pub fn recv_key(&self) -> &[u8; 32] {
        if self.is_initiator {
            &self.responder_to_initiator
        } else {
            &self.initiator_to_responder
        }
    }

    /// First `Split()` key: initiator -> responder.
    pub fn initiator_to_responder(&self) -> &[u8; 32] {
        &self.initiator_to_responder
    }

    /// Second `Split()` key: responder -> initiator.
    pub fn responder_to_initiator(&self) -> &[u8; 32] {
        &self.responder_to_initiator
    }

    /// Final handshake hash (unique per handshake; usable for channel binding).
    pub fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.handshake_hash
    }

    /// True when these keys belong to the initiator side.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("keys", &"<redacted>")
            .field("is_initiator", &self.is_initiator)
            .finish()
    }
}

/// Session liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Messages can be sent and received.
    Open,
    /// A failure ended the session; every call returns `SessionDead`.
    Dead,
}

/// An authenticated, encrypted session with a peer whose identity was bound.
pub struct Session {
    transport: TransportState,
    state: SessionState,
    peer: DeviceId,
    remote_static: [u8; 32],
    handshake_hash: [u8; HASH_LEN],
    is_initiator: bool,
    keys: Option<SessionKeys>,
}

impl Session {
    pub(crate) fn new(
        transport: TransportState,
        keys: SessionKeys,
        peer: DeviceId,
        remote_static: [u8; 32],
    ) -> Self {
        Session {
            transport,
            state: SessionState::Open,
            peer,
            remote_static,
            handshake_hash: *keys.handshake_hash(),
            is_initiator: keys.is_initiator(),
            keys: Some(keys),
        }
    }

    /// The authenticated peer's device id.
    pub fn peer_device_id(&self) -> &DeviceId {
        &self.peer
    }

    /// The peer's authenticated Noise static key.
    pub fn remote_static(&self) -> &[u8; 32] {
        &self.remote_static
    }

    /// Final handshake hash of this session.
    pub fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.handshake_hash
    }

    /// True on the side that started the handshake.
    pub fn is_initiator(&self) -> bool {
        self.is_initiator
    }

    /// Current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// True once the session has ended.
    pub fn is_dead(&self) -> bool {
        self.state == SessionState::Dead
    }

    /// End the session (e.g. after a framing error); no further calls succeed.
    pub fn kill(&mut self) {
        self.state = SessionState::Dead;
        self.keys = None;
    }

    /// Take the raw split keys once (for udp-sec); `None` afterwards.
    pub fn take_keys(&mut self) -> Option<SessionKeys> {
        self.keys.take()
    }

    /// Encrypt one message (`plain.len() <= MAX_PLAINTEXT_LEN`) into `out`
    /// (`plain.len() + TAG_LEN` bytes); returns the ciphertext length.
    pub fn encrypt(&mut self, plain: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        if self.is_dead() {
            return Err(NoiseError::SessionDead);
        }
        if plain.len() > MAX_PLAINTEXT_LEN {
            return Err(NoiseError::Oversized);
        }
        let needed = plain.len() + TAG_LEN;
        let out = out.get_mut(..needed).ok_or(NoiseError::BufferTooSmall)?;
        match self.transport.write_message(plain, out) {
            Ok(n) => Ok(n),
            Err(_) => {
                // Only nonce exhaustion can get here; never reuse a nonce.
                self.kill();
                Err(NoiseError::Crypto)
            }
        }
    }

    /// Decrypt one message into `out` (at least `cipher.len() - TAG_LEN`
    /// bytes); returns the plaintext length. Any authentication failure ends
    /// the session.
    pub fn decrypt(&mut self, cipher: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        if self.is_dead() {
            return Err(NoiseError::SessionDead);
        }
        if cipher.len() > MAX_MESSAGE_LEN {
            self.kill();
            return Err(NoiseError::Oversized);
        }
        let Some(plain_len) = cipher.len().checked_sub(TAG_LEN) else {
            self.kill();
            return Err(NoiseError::DecryptFailed);
        };
        let out = out.get_mut(..plain_len).ok_or(NoiseError::BufferTooSmall)?;
        match self.transport.read_message(cipher, out) {
            Ok(n) => Ok(n),
            Err(_) => {
                out.fill(0);
                self.kill();
                Err(NoiseError::DecryptFailed)
            }
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("is_initiator", &self.is_initiator)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
