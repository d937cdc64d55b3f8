//! Shared code of the transports fuzz targets: input cursor, encoders for the
//! seed generator (`examples/seeds.rs`) and the harnesses, so the seeds are
//! written in exactly the format the targets read.
//!
//! Adding a target for a new message type (e.g. the RPC and blob service
//! messages) follows the same pattern: a decoder target asserts
//! `emit(parse(b)) == b` for whatever parses; a stateful target reads ops
//! from [`Input`], drives the state machine, and asserts the documented caps
//! after every op; the seeds are written by `examples/seeds.rs` with the same
//! encoder the harness decodes. See the README's fuzzing section.

mod mux;
mod udpsec;
mod udpsec_noise;

pub use mux::{run_mux_frame, run_mux_session, MuxOp};
pub use udpsec::{run_udpsec_endpoint, run_udpsec_packet, UdpOp, SIDS};
pub use udpsec_noise::{run_udpsec_noise, NoiseOp};

#[path = "../../../tests/support/fuzz_input.rs"]
mod input;
pub use input::{put_blob, Input};
