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

/// Cursor over the fuzz input; running out of bytes ends the run.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes(2)?.try_into().ok()?))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }
    /// `[len u16 LE][bytes]`, the length cut to what is left.
    pub fn blob(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?).min(self.0.len());
        self.bytes(n)
    }
}

/// Appends `[len u16 LE][bytes]`.
pub fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}
