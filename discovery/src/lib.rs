//! Discovery: signed announce v1, bounded peer table, rate limiting (sans-IO, no_std + alloc).
#![no_std]

extern crate alloc;
