//! What `dsb` tells the shell: one clear line on stderr and a documented
//! exit code. Nothing panics on bad input.

use std::fmt;
use std::process::ExitCode;

/// Exit codes (documented in `dsb --help` and the README).
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_DENIED: u8 = 3;
pub const EXIT_UNREACHABLE: u8 = 4;

/// The help text's table of exit codes.
pub const EXIT_CODES: &str = "Exit codes: 0 ok, 1 error, 2 usage, 3 denied (a peer's policy \
refused the session or the service), 4 unreachable or timeout.";

/// Why a command failed, and so its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything else (bad file, remote error, refused blob, ...): 1.
    Error,
    /// Bad arguments or addresses: 2.
    Usage,
    /// A peer's policy refused us: 3.
    Denied,
    /// The peer is not on the bus, or did not answer in time: 4.
    Unreachable,
}

/// A failed command: its kind and the one line to print.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Error, message)
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Usage, message)
    }

    pub fn denied(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Denied, message)
    }

    pub fn unreachable(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Unreachable, message)
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self.kind {
            Kind::Error => EXIT_ERROR,
            Kind::Usage => EXIT_USAGE,
            Kind::Denied => EXIT_DENIED,
            Kind::Unreachable => EXIT_UNREACHABLE,
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;
