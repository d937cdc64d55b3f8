//! Host-testable parts of the image: typed configuration, the network stack driver
//! and the node runtime, all generic over smoltcp `phy::Device`.
#![no_std]

extern crate alloc;
