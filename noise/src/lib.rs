//! Noise XK sessions with device attestation and identity binding (sans-IO, no_std + alloc).
#![no_std]

extern crate alloc;
