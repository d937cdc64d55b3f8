//! Transports behind one trait (tcp, udp-sec, auto) and the stream multiplexer (sans-IO, no_std + alloc).
#![no_std]

extern crate alloc;

pub mod mux;
pub mod sockets;
pub mod tcp;
pub mod transport;
pub mod udpsec;
