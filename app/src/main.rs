//! The image entry point. Only meaningful for `x86_64-unknown-none`; on the host
//! this is a stub so that `cargo test -p dsb-app` builds.
//!
//! Run order: boot line -> config (errors exit before networking) -> heap ->
//! logger -> clock -> RNG -> keys -> PCI/virtio-net (one per node) -> one
//! `Node` (stack + bus) per NIC, polled round-robin until every node reached
//! its self-test goal, a node failed, or the run deadline passed.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod platform;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dsoftbus: this binary is the x86_64-unknown-none image; build it with `make image`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod image;

#[cfg(target_os = "none")]
use image::kmain;
