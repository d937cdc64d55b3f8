//! Service names: what a channel is opened for (1..=32 bytes of `[A-Za-z0-9._-]`).

use core::fmt;

/// A validated service name, stored inline (no allocation, `Copy`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceName {
    len: u8,
    bytes: [u8; ServiceName::MAX_LEN],
}

impl ServiceName {
    /// Longest allowed name in bytes.
    pub const MAX_LEN: usize = 32;

    /// Validates `bytes` as a service name (1..=32 bytes, `[A-Za-z0-9._-]`).
    pub fn new(bytes: &[u8]) -> Option<ServiceName> {
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
            return None;
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return None;
        }
        let mut out = [0u8; Self::MAX_LEN];
        out.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(ServiceName {
            len: u8::try_from(bytes.len()).ok()?,
            bytes: out,
        })
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The name as text (always ASCII).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceName({:?})", self.as_str())
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceName;

    #[test]
    fn accepts_the_allowed_alphabet_only() {
        assert_eq!(
            ServiceName::new(b"echo.v1_x-2").unwrap().as_str(),
            "echo.v1_x-2"
        );
        assert!(ServiceName::new(b"").is_none());
        assert!(ServiceName::new(&[b'a'; 33]).is_none());
        assert!(ServiceName::new(&[b'a'; 32]).is_some());
        assert!(ServiceName::new(b"sp ace").is_none());
        assert!(ServiceName::new(b"slash/").is_none());
        assert!(ServiceName::new(&[0xc3, 0xa9]).is_none());
    }
}
