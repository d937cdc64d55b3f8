//! Device ids: 1..=32 bytes of `[A-Za-z0-9._-]`, safe in log lines and markers.

use core::fmt;

use crate::NoiseError;

/// Longest device id in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 32;

/// A validated device id (fixed storage, no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId {
    len: u8,
    bytes: [u8; MAX_DEVICE_ID_LEN],
}

impl DeviceId {
    /// Validate `s` as a device id.
    pub fn new(s: &str) -> Result<Self, NoiseError> {
        Self::from_bytes(s.as_bytes())
    }

    /// Validate raw bytes (e.g. from the wire) as a device id.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, NoiseError> {
        if raw.is_empty() || raw.len() > MAX_DEVICE_ID_LEN {
            return Err(NoiseError::Malformed);
        }
        if !raw.iter().all(|&b| is_id_byte(b)) {
            return Err(NoiseError::Malformed);
        }
        let mut bytes = [0u8; MAX_DEVICE_ID_LEN];
        let dst = bytes.get_mut(..raw.len()).ok_or(NoiseError::Malformed)?;
        dst.copy_from_slice(raw);
        Ok(DeviceId {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The id as bytes (1..=32).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The id as text (always ASCII).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// Length in bytes (1..=32).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

/// True for the bytes allowed in a device id.
fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.as_str())
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert_eq!(DeviceId::new("node-a.B_9").unwrap().as_str(), "node-a.B_9");
        assert!(DeviceId::new(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_foreign_bytes() {
        assert_eq!(DeviceId::new(""), Err(NoiseError::Malformed));
        assert_eq!(DeviceId::new(&"x".repeat(33)), Err(NoiseError::Malformed));
        for bad in ["a b", "a\n", "a/b", "ä", "a:b", "a\0"] {
            assert_eq!(DeviceId::new(bad), Err(NoiseError::Malformed), "{bad:?}");
        }
    }
}
