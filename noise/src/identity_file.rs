//! The identity file: a device's id and its two secret keys, so that a
//! device keeps its identity across reboots. The same bytes are what
//! `dsb keygen` writes (mode 0600) and what a VM receives through QEMU's
//! `fw_cfg` (`opt/dsoftbus/identity`).
//!
//! ```text
//! # comment lines start with '#'; blank lines are ignored
//! dsoftbus-identity-v1
//! id=node-1
//! device-key-seed=<64 hex digits: the Ed25519 secret seed>
//! noise-static-secret=<64 hex digits: the X25519 secret>
//! ```
//!
//! ASCII only, at most [`MAX_IDENTITY_FILE_LEN`] bytes, `\n` or `\r\n` line
//! ends; the header line comes first; each key exactly once; nothing else.
//! Errors never echo a secret.

use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

use crate::{DeviceId, Identity, NoiseError};

/// Largest identity file accepted.
pub const MAX_IDENTITY_FILE_LEN: usize = 1024;
/// The first line of an identity file.
pub const IDENTITY_FILE_HEADER: &str = "dsoftbus-identity-v1";

/// Why an identity file was rejected (stable labels; never contains a secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityFileError {
    TooLong,
    NotAscii,
    NoHeader,
    UnknownKey,
    Duplicate(&'static str),
    Missing(&'static str),
    BadHex(&'static str),
    BadId,
}

impl IdentityFileError {
    /// Stable label.
    pub fn label(&self) -> &'static str {
        match self {
            IdentityFileError::TooLong => "too-long",
            IdentityFileError::NotAscii => "not-ascii",
            IdentityFileError::NoHeader => "no-header",
            IdentityFileError::UnknownKey => "unknown-key",
            IdentityFileError::Duplicate(_) => "duplicate-key",
            IdentityFileError::Missing(_) => "missing-key",
            IdentityFileError::BadHex(_) => "bad-hex",
            IdentityFileError::BadId => "bad-id",
        }
    }
}

impl fmt::Display for IdentityFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityFileError::TooLong => {
                write!(f, "larger than {MAX_IDENTITY_FILE_LEN} bytes")
            }
            IdentityFileError::NotAscii => f.write_str("not ASCII text"),
            IdentityFileError::NoHeader => {
                write!(f, "does not start with {IDENTITY_FILE_HEADER}")
            }
            IdentityFileError::UnknownKey => f.write_str("unknown line (expected key=value)"),
            IdentityFileError::Duplicate(k) => write!(f, "{k} given twice"),
            IdentityFileError::Missing(k) => write!(f, "{k} missing"),
            IdentityFileError::BadHex(k) => write!(f, "{k} is not 64 hex digits"),
            IdentityFileError::BadId => {
                f.write_str("id is not 1..=32 characters of [A-Za-z0-9._-]")
            }
        }
    }
}

const ID: &str = "id";
const SEED: &str = "device-key-seed";
const STATIC: &str = "noise-static-secret";

fn hex32(v: &str, key: &'static str) -> Result<Zeroizing<[u8; 32]>, IdentityFileError> {
    let b = v.as_bytes();
    if b.len() != 64 {
        return Err(IdentityFileError::BadHex(key));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16);
        let lo = (pair[1] as char).to_digit(16);
        let (Some(hi), Some(lo), Some(slot)) = (hi, lo, out.get_mut(i)) else {
            return Err(IdentityFileError::BadHex(key));
        };
        *slot = (hi * 16 + lo) as u8;
    }
    Ok(out)
}

/// Reads an identity file.
pub fn parse_identity_file(bytes: &[u8]) -> Result<Identity, IdentityFileError> {
    if bytes.len() > MAX_IDENTITY_FILE_LEN {
        return Err(IdentityFileError::TooLong);
    }
    let text = core::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or(IdentityFileError::NotAscii)?;
    let mut header = false;
    let (mut id, mut seed, mut stat) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !header {
            if line != IDENTITY_FILE_HEADER {
                return Err(IdentityFileError::NoHeader);
            }
            header = true;
            continue;
        }
        let (k, v) = line.split_once('=').ok_or(IdentityFileError::UnknownKey)?;
        match k.trim() {
            ID if id.is_some() => return Err(IdentityFileError::Duplicate(ID)),
            ID => id = Some(DeviceId::new(v.trim()).map_err(|_| IdentityFileError::BadId)?),
            SEED if seed.is_some() => return Err(IdentityFileError::Duplicate(SEED)),
            SEED => seed = Some(hex32(v.trim(), SEED)?),
            STATIC if stat.is_some() => return Err(IdentityFileError::Duplicate(STATIC)),
            STATIC => stat = Some(hex32(v.trim(), STATIC)?),
            _ => return Err(IdentityFileError::UnknownKey),
        }
    }
    if !header {
        return Err(IdentityFileError::NoHeader);
    }
    let id = id.ok_or(IdentityFileError::Missing(ID))?;
    let seed = seed.ok_or(IdentityFileError::Missing(SEED))?;
    let stat = stat.ok_or(IdentityFileError::Missing(STATIC))?;
    Identity::from_secret_bytes(id.as_str(), &seed, &stat).map_err(|_| IdentityFileError::BadId)
}

impl Identity {
    /// This identity as an identity file (the secrets in it: write it with
    /// mode 0600, never print it). Zeroized when dropped.
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = Zeroizing::new(Vec::with_capacity(256));
        let mut put = |s: &[u8]| out.extend_from_slice(s);
        put(b"# DSoftBus-lite identity: SECRET keys, keep this file private (mode 0600)\n");
        put(IDENTITY_FILE_HEADER.as_bytes());
        put(b"\nid=");
        put(self.device_id().as_bytes());
        let seed = Zeroizing::new(self.device_signing_key().to_bytes());
        let stat = self.noise_static_secret();
        for (key, secret) in [(SEED, &*seed), (STATIC, &*stat)] {
            put(b"\n");
            put(key.as_bytes());
            put(b"=");
            for b in secret.iter() {
                put(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
        put(b"\n");
        out
    }
}

impl From<IdentityFileError> for NoiseError {
    fn from(_: IdentityFileError) -> Self {
        NoiseError::Malformed
    }
}

impl core::error::Error for IdentityFileError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Identity {
        Identity::from_secret_bytes("node-1", &[7; 32], &[9; 32]).unwrap()
    }

    #[test]
    fn a_file_round_trips_and_keeps_the_keys() {
        let id = sample();
        let bytes = id.to_file_bytes();
        let back = parse_identity_file(&bytes).unwrap();
        assert_eq!(back.device_id().as_str(), "node-1");
        assert_eq!(back.device_public_key(), id.device_public_key());
        assert_eq!(back.noise_static_public(), id.noise_static_public());
        let text = core::str::from_utf8(&bytes).unwrap();
        assert!(text.contains("device-key-seed=0707"));
        // CRLF line ends and blank lines are fine.
        let crlf = alloc::string::String::from(text).replace('\n', "\r\n\r\n");
        assert!(parse_identity_file(crlf.as_bytes()).is_ok());
    }

    #[test]
    fn every_defect_is_named_without_the_secret() {
        let good = sample().to_file_bytes();
        let text = core::str::from_utf8(&good).unwrap();
        let cases: [(alloc::string::String, IdentityFileError); 8] = [
            (
                text.replace(IDENTITY_FILE_HEADER, "v0"),
                IdentityFileError::NoHeader,
            ),
            (
                text.replace("id=node-1", "id=no de"),
                IdentityFileError::BadId,
            ),
            (
                text.replace("id=node-1\n", ""),
                IdentityFileError::Missing(ID),
            ),
            (
                text.replace("device-key-seed=07", "device-key-seed=zz"),
                IdentityFileError::BadHex(SEED),
            ),
            (
                alloc::format!("{text}noise-static-secret={}\n", "00".repeat(32)),
                IdentityFileError::Duplicate(STATIC),
            ),
            (
                alloc::format!("{text}colour=blue\n"),
                IdentityFileError::UnknownKey,
            ),
            ("é".into(), IdentityFileError::NotAscii),
            ("#".repeat(2000), IdentityFileError::TooLong),
        ];
        for (input, want) in cases {
            let err = parse_identity_file(input.as_bytes()).unwrap_err();
            assert_eq!(err, want);
            let shown = alloc::format!("{err}");
            assert!(!shown.contains("0707"), "{shown}");
        }
        assert_eq!(
            parse_identity_file(b"").err(),
            Some(IdentityFileError::NoHeader)
        );
    }
}
