//! Host-testable parts of the image: typed configuration, console markers, the
//! RNG wrapper, the network stack driver and the self-test bookkeeping, all free
//! of hardware access (the platform lives in the binary, `src/platform/`).
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod bus;
pub mod config;
pub mod marker;
pub mod net;
pub mod node;
pub mod rng;
pub mod selftest;
pub mod serve;
