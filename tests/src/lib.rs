//! Host-side test support for DSoftBus-lite: the QEMU launcher shared by
//! `make run`, the scenario tests and the boot benchmarks; serial-marker
//! matching; the scenario table; and the segment switch of `make run VMS=N`.

/// The README's code (the "Embedding the bus" program) runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod cli;
pub mod cputime;
pub mod link;
pub mod markers;
pub mod nodesim;
pub mod qemu;
pub mod scenarios;
pub mod simwire;
pub mod slirp;
pub mod switch;
pub mod vms;
