//! Device attestations carried in handshake messages 2 and 3.
//!
//! An attestation says "device `id`, holder of Ed25519 key `K`, takes part in
//! *this* handshake with Noise static key `S`": an Ed25519 signature by `K`
//! over a role-specific context, the handshake hash `h` at the moment of
//! writing (channel binding), `S` and the id. A captured attestation does not
//! verify in any other handshake because `h` covers both fresh ephemerals'
//! history.
//!
//! Wire layout (fixed, bounded; all lengths in bytes):
//!
//! | offset   | len | field                                   |
//! |----------|-----|-----------------------------------------|
//! | 0        | 1   | version = `ATTESTATION_VERSION` (1)     |
//! | 1        | 1   | `L` = device id length, 1..=32          |
//! | 2        | L   | device id, `[A-Za-z0-9._-]`             |
//! | 2+L      | 32  | Ed25519 device public key               |
//! | 34+L     | 64  | Ed25519 signature                       |
//!
//! Total `98 + L` bytes (99..=130); anything shorter, longer or different is
//! `malformed`.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::device_id::MAX_DEVICE_ID_LEN;
use crate::xk::HASH_LEN;
use crate::{DeviceId, NoiseError};

/// Attestation format version (byte 0).
pub const ATTESTATION_VERSION: u8 = 1;
/// Smallest encoded attestation (1-byte device id).
pub const MIN_ATTESTATION_LEN: usize = FIXED_LEN + 1;
/// Largest encoded attestation (32-byte device id).
pub const MAX_ATTESTATION_LEN: usize = FIXED_LEN + MAX_DEVICE_ID_LEN;
/// Signature context of the initiator's attestation (message 3).
pub const INITIATOR_CONTEXT: &[u8; 36] = b"dsoftbus-lite/xk/v1/attest/initiator";
/// Signature context of the responder's attestation (message 2).
pub const RESPONDER_CONTEXT: &[u8; 36] = b"dsoftbus-lite/xk/v1/attest/responder";

/// Bytes of an attestation besides the device id.
const FIXED_LEN: usize = 2 + 32 + 64;
/// Largest signed message: context, h, static key, id length, id.
const MAX_SIGNED_LEN: usize = 36 + HASH_LEN + 32 + 1 + MAX_DEVICE_ID_LEN;

/// Which side signs (selects the context string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Initiator,
    Responder,
}

/// A decoded attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attestation {
    pub device_id: DeviceId,
    pub device_key: [u8; 32],
    pub signature: [u8; 64],
}

impl Attestation {
    /// Sign for `role` over handshake hash `h` and the signer's static key.
    pub fn sign(
        role: Role,
        key: &SigningKey,
        device_id: &DeviceId,
        h: &[u8; HASH_LEN],
        noise_static: &[u8; 32],
    ) -> Self {
        let (msg, len) = signed_message(role, h, noise_static, device_id);
        let signature = key.sign(msg.get(..len).unwrap_or(&[])).to_bytes();
        Attestation {
            device_id: *device_id,
            device_key: key.verifying_key().to_bytes(),
            signature,
        }
    }

    /// Check the signature for `role`, `h` and the signer's static key.
    pub fn verify(
        &self,
        role: Role,
        h: &[u8; HASH_LEN],
        noise_static: &[u8; 32],
    ) -> Result<(), NoiseError> {
        let key =
            VerifyingKey::from_bytes(&self.device_key).map_err(|_| NoiseError::BadSignature)?;
        let (msg, len) = signed_message(role, h, noise_static, &self.device_id);
        let msg = msg.get(..len).ok_or(NoiseError::BadSignature)?;
        key.verify_strict(msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| NoiseError::BadSignature)
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.device_id.len()
    }

    /// Encode into `out`; returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, NoiseError> {
        let id = self.device_id.as_bytes();
        let len = self.encoded_len();
        let out = out.get_mut(..len).ok_or(NoiseError::BufferTooSmall)?;
        let short = NoiseError::BufferTooSmall;
        let (head, rest) = out.split_at_mut_checked(2).ok_or(short)?;
        head.copy_from_slice(&[ATTESTATION_VERSION, id.len() as u8]);
        let (id_dst, rest) = rest.split_at_mut_checked(id.len()).ok_or(short)?;
        id_dst.copy_from_slice(id);
        let (key_dst, sig_dst) = rest.split_at_mut_checked(32).ok_or(short)?;
        key_dst.copy_from_slice(&self.device_key);
        sig_dst.copy_from_slice(&self.signature);
        Ok(len)
    }

    /// Decode exactly one attestation from `buf`.
    pub fn decode(buf: &[u8]) -> Result<Self, NoiseError> {
        let (&version, rest) = buf.split_first().ok_or(NoiseError::Malformed)?;
        if version != ATTESTATION_VERSION {
            return Err(NoiseError::Malformed);
        }
        let (&id_len, rest) = rest.split_first().ok_or(NoiseError::Malformed)?;
        let id_len = usize::from(id_len);
        if rest.len() != id_len + 32 + 64 {
            return Err(NoiseError::Malformed);
        }
        let (id, rest) = rest.split_at_checked(id_len).ok_or(NoiseError::Malformed)?;
        let device_id = DeviceId::from_bytes(id)?;
        let (key, sig) = rest.split_at_checked(32).ok_or(NoiseError::Malformed)?;
        Ok(Attestation {
            device_id,
            device_key: key.try_into().map_err(|_| NoiseError::Malformed)?,
            signature: sig.try_into().map_err(|_| NoiseError::Malformed)?,
        })
    }
}

/// context || h || noise_static || len(id) || id, in a fixed buffer.
fn signed_message(
    role: Role,
    h: &[u8; HASH_LEN],
    noise_static: &[u8; 32],
    device_id: &DeviceId,
) -> ([u8; MAX_SIGNED_LEN], usize) {
    let context: &[u8] = match role {
        Role::Initiator => INITIATOR_CONTEXT,
        Role::Responder => RESPONDER_CONTEXT,
    };
    let id = device_id.as_bytes();
    let mut buf = [0u8; MAX_SIGNED_LEN];
    let mut len = 0;
    for part in [
        context,
        &h[..],
        &noise_static[..],
        &[id.len() as u8][..],
        id,
    ] {
        if let Some(dst) = buf.get_mut(len..len + part.len()) {
            dst.copy_from_slice(part);
            len += part.len();
        }
    }
    (buf, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Attestation {
        let key = SigningKey::from_bytes(&[7; 32]);
        Attestation::sign(
            Role::Initiator,
            &key,
            &DeviceId::new("node-a").unwrap(),
            &[1; 32],
            &[2; 32],
        )
    }

    #[test]
    fn encode_decode_round_trip() {
        let a = sample();
        let mut buf = [0u8; MAX_ATTESTATION_LEN];
        let n = a.encode(&mut buf).unwrap();
        assert_eq!(n, 98 + 6);
        assert_eq!(Attestation::decode(&buf[..n]).unwrap(), a);
    }

    #[test]
    fn decode_rejects_every_wrong_length_and_version() {
        let a = sample();
        let mut buf = [0u8; MAX_ATTESTATION_LEN + 1];
        let n = a.encode(&mut buf).unwrap();
        for len in 0..=buf.len() {
            if len != n {
                assert_eq!(
                    Attestation::decode(&buf[..len]),
                    Err(NoiseError::Malformed),
                    "{len}"
                );
            }
        }
        let mut bad = buf;
        bad[0] = 2;
        assert_eq!(Attestation::decode(&bad[..n]), Err(NoiseError::Malformed));
        let mut bad = buf;
        bad[1] = 0;
        assert_eq!(Attestation::decode(&bad[..n]), Err(NoiseError::Malformed));
        let mut bad = buf;
        bad[2] = b' ';
        assert_eq!(Attestation::decode(&bad[..n]), Err(NoiseError::Malformed));
    }

    #[test]
    fn signature_binds_role_hash_and_static_key() {
        let a = sample();
        assert_eq!(a.verify(Role::Initiator, &[1; 32], &[2; 32]), Ok(()));
        assert_eq!(
            a.verify(Role::Responder, &[1; 32], &[2; 32]),
            Err(NoiseError::BadSignature)
        );
        assert_eq!(
            a.verify(Role::Initiator, &[9; 32], &[2; 32]),
            Err(NoiseError::BadSignature)
        );
        assert_eq!(
            a.verify(Role::Initiator, &[1; 32], &[9; 32]),
            Err(NoiseError::BadSignature)
        );
        let mut other_id = a.clone();
        other_id.device_id = DeviceId::new("node-b").unwrap();
        assert_eq!(
            other_id.verify(Role::Initiator, &[1; 32], &[2; 32]),
            Err(NoiseError::BadSignature)
        );
    }
}
