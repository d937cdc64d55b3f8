//! The bus as a library: what applications use on top of the node's
//! authenticated sessions. Sans-IO, `no_std` + `alloc`, every buffer bounded.
//!
//! - [`access`]: deny-by-default access policies of published services;
//! - [`api`]: channel handles, errors, the published-service table;
//! - [`channel`]: the byte-stream view services are written against.

pub mod access;
pub mod api;
pub mod channel;

pub use access::{Access, MAX_ALLOWED};
pub use api::{ApiError, ChannelRef, Handler, Published, ServiceList, Services, MAX_PUBLISHED};
