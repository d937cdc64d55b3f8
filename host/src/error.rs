//! Errors of the OS mode, with stable labels.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// No `--bind` address was given and the host has no IPv4 default route.
    NoDefaultRoute,
    /// The address to bind is on no interface of this host.
    AddressNotLocal(Ipv4Addr),
    /// The kernel's random number generator failed.
    Random,
    /// A system call failed.
    Os(io::ErrorKind),
}

impl HostError {
    pub fn label(&self) -> &'static str {
        match self {
            HostError::NoDefaultRoute => "no-default-route",
            HostError::AddressNotLocal(_) => "address-not-local",
            HostError::Random => "random",
            HostError::Os(_) => "os",
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::NoDefaultRoute => {
                f.write_str("no IPv4 default route (give an address to bind)")
            }
            HostError::AddressNotLocal(a) => write!(f, "{a} is not an address of this host"),
            HostError::Random => f.write_str("the kernel's random number generator failed"),
            HostError::Os(k) => write!(f, "system call failed: {k}"),
        }
    }
}

impl std::error::Error for HostError {}
