//! Rejected command lines: which option, why, and a safe echo of it.

use core::fmt;

/// Why an option was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The key is not one of the known options.
    UnknownOption,
    /// The value is not one of the accepted ones.
    BadValue {
        /// What would have been accepted, e.g. `1|2|3`.
        expected: &'static str,
    },
    /// `key=` with nothing after `=`.
    EmptyValue,
    /// `=value` with nothing before `=`.
    EmptyKey,
    /// A token without `=`.
    NotKeyValue,
    /// The same key given twice.
    Duplicate,
    /// The whole line, a key or a value is over its limit.
    TooLong {
        /// The limit that was exceeded, in bytes.
        max: usize,
    },
    /// A byte that is neither printable ASCII nor whitespace.
    NonPrintable,
    /// The option cannot be combined with the rest of the line.
    Conflict {
        /// What it needs, e.g. `nodes=1`.
        with: &'static str,
    },
}

impl Why {
    /// Stable label of this rejection.
    pub fn label(&self) -> &'static str {
        match self {
            Why::UnknownOption => "unknown-option",
            Why::BadValue { .. } => "bad-value",
            Why::EmptyValue => "empty-value",
            Why::EmptyKey => "empty-key",
            Why::NotKeyValue => "not-key-value",
            Why::Duplicate => "duplicate",
            Why::TooLong { .. } => "too-long",
            Why::NonPrintable => "non-printable",
            Why::Conflict { .. } => "conflict",
        }
    }
}

/// A rejected command line: which option, and why.
///
/// `Display` gives `<option>: <why>`; the image prefixes `config: error: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    option: OptionName,
    value: OptionName,
    why: Why,
}

impl ConfigError {
    pub(crate) fn new(option: &[u8], why: Why) -> Self {
        ConfigError {
            option: OptionName::from_bytes(option),
            value: OptionName::empty(),
            why,
        }
    }

    pub(crate) fn bad_value(option: &[u8], value: &[u8], expected: &'static str) -> Self {
        ConfigError {
            option: OptionName::from_bytes(option),
            value: OptionName::from_bytes(value),
            why: Why::BadValue { expected },
        }
    }

    /// The option the error is about (`cmdline` for the line as a whole).
    pub fn option(&self) -> &str {
        self.option.as_str()
    }

    /// Why it was rejected.
    pub fn why(&self) -> Why {
        self.why
    }

    /// Stable label of the rejection.
    pub fn label(&self) -> &'static str {
        self.why.label()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.option.as_str())?;
        match self.why {
            Why::UnknownOption => f.write_str("unknown option"),
            Why::BadValue { expected } => write!(
                f,
                "bad value \"{}\" (expected {})",
                self.value.as_str(),
                expected
            ),
            Why::EmptyValue => f.write_str("empty value"),
            Why::EmptyKey => f.write_str("empty option name"),
            Why::NotKeyValue => f.write_str("expected key=value"),
            Why::Duplicate => f.write_str("duplicate option"),
            Why::TooLong { max } => write!(f, "too long (max {max} bytes)"),
            Why::NonPrintable => f.write_str("non-printable byte"),
            Why::Conflict { with } => write!(f, "needs {with}"),
        }
    }
}

/// A short, printable copy of (part of) an option name or value, for messages.
///
/// Holds at most `NAME_CAP` bytes of printable ASCII; longer input is cut and
/// ends in `...`, anything else becomes `?`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct OptionName {
    buf: [u8; NAME_CAP],
    len: u8,
}

pub(crate) const NAME_CAP: usize = 40;

impl OptionName {
    const fn empty() -> Self {
        OptionName {
            buf: [0; NAME_CAP],
            len: 0,
        }
    }

    fn from_bytes(src: &[u8]) -> Self {
        let mut name = Self::empty();
        let keep = if src.len() > NAME_CAP {
            NAME_CAP - 3
        } else {
            src.len()
        };
        for (dst, &b) in name.buf.iter_mut().zip(src.iter().take(keep)) {
            *dst = if b.is_ascii_graphic() { b } else { b'?' };
        }
        let mut len = keep;
        if src.len() > NAME_CAP {
            for dst in name.buf.iter_mut().skip(keep) {
                *dst = b'.';
            }
            len = NAME_CAP;
        }
        name.len = len as u8;
        name
    }

    fn as_str(&self) -> &str {
        let bytes = self.buf.get(..usize::from(self.len)).unwrap_or(&[]);
        // Only printable ASCII is ever stored.
        core::str::from_utf8(bytes).unwrap_or("?")
    }
}

impl fmt::Debug for OptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl core::error::Error for ConfigError {}
