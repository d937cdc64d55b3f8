//! One module per command.

pub mod blob;
pub mod call;
pub mod keygen;
pub mod peers;
pub mod ping;
pub mod serve;
