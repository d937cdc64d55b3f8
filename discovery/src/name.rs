//! Bounded ASCII names: device ids and service names.
//!
//! Both are 1..=32 bytes from `[A-Za-z0-9._-]`, stored inline (no heap), so
//! they are safe to print in log lines and serial markers.

use core::fmt;

/// Longest device id or service name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Why a byte string is not a valid name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Zero bytes long.
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    TooLong,
    /// A byte outside `[A-Za-z0-9._-]`.
    BadChar,
}

impl NameError {
    /// Stable label of this error.
    pub fn label(&self) -> &'static str {
        match self {
            NameError::Empty => "empty",
            NameError::TooLong => "too-long",
            NameError::BadChar => "bad-char",
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// True for the bytes allowed in names: `[A-Za-z0-9._-]`.
pub const fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
}

/// Checks the shared name rule without copying.
pub fn check_name(bytes: &[u8]) -> Result<(), NameError> {
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if !bytes.iter().all(|&b| is_name_byte(b)) {
        return Err(NameError::BadChar);
    }
    Ok(())
}

macro_rules! bounded_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            len: u8,
            bytes: [u8; MAX_NAME_LEN],
        }

        impl $name {
            /// Validates and copies `bytes` (1..=32 bytes of `[A-Za-z0-9._-]`).
            pub fn new(bytes: &[u8]) -> Result<Self, NameError> {
                check_name(bytes)?;
                let mut out = [0u8; MAX_NAME_LEN];
                out[..bytes.len()].copy_from_slice(bytes);
                Ok(Self { len: bytes.len() as u8, bytes: out })
            }

            /// The name as bytes.
            pub fn as_bytes(&self) -> &[u8] {
                // `len <= MAX_NAME_LEN` is an invariant of every constructor.
                self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
            }

            /// The name as a string (always ASCII).
            pub fn as_str(&self) -> &str {
                core::str::from_utf8(self.as_bytes()).unwrap_or("")
            }

            /// Length in bytes (1..=32).
            #[allow(clippy::len_without_is_empty)]
            pub fn len(&self) -> usize {
                usize::from(self.len)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s.as_bytes())
            }
        }

        impl core::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }
    };
}

bounded_name!(
    /// A device id: 1..=32 bytes of `[A-Za-z0-9._-]` (the shared rule of every crate).
    DeviceId
);

bounded_name!(
    /// A published service name: 1..=32 bytes of `[A-Za-z0-9._-]`.
    ServiceName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_charset_and_rejects_everything_else() {
        assert!(DeviceId::new(b"node-a.local_1").is_ok());
        assert_eq!(DeviceId::new(b""), Err(NameError::Empty));
        assert_eq!(DeviceId::new(&[b'a'; 33]), Err(NameError::TooLong));
        assert!(DeviceId::new(&[b'a'; 32]).is_ok());
        for bad in [b' ', b'/', b':', b'\n', 0u8, 0xff, b'[', b'='] {
            assert_eq!(ServiceName::new(&[b'a', bad]), Err(NameError::BadChar));
        }
    }

    #[test]
    fn round_trips_as_str() {
        let id: DeviceId = "node-b".parse().unwrap();
        assert_eq!(id.as_str(), "node-b");
        assert_eq!(id.len(), 6);
        assert_eq!(alloc::format!("{id}"), "node-b");
    }
}
