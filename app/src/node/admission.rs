//! Who may open a session to us: the responder's [`TrustStore`].
//!
//! Asked once per inbound handshake, at message 3, after the initiator's
//! attestation verified (its device key signed this handshake as the id it
//! claims). Two questions:
//!
//! 1. **Identity**: may that key speak for that id? The discovery binding
//!    store answers: a pinned binding, an earlier trust-on-first-use binding,
//!    or (TOFU on, id unbound) a binding created now, exactly as a first
//!    verified announce would. The initiator's own announce is not needed, so
//!    session setup never depends on which announce arrived first.
//! 2. **One session per pair**: if we are dialling the same peer ourselves
//!    (or hold a session we opened) and our device id is the lower one
//!    (byte-wise), ours wins and this one is declined (`session-exists`).
//!    Otherwise the inbound session is admitted and replaces ours once it is
//!    authenticated. Both nodes apply the same order, so exactly one of two
//!    simultaneous sessions survives, the same one on both sides.

use dsb_discovery::{AnnounceError, Discovery};
use dsb_noise::{DeviceId, NoiseError, TrustStore};
use smoltcp::time::Instant;

use super::dialer::Dialer;
use super::sessions::Sessions;

/// The responder's decision for one poll of the transports.
pub(crate) struct Admission<'a> {
    pub now: Instant,
    pub local: DeviceId,
    pub discovery: &'a mut Discovery,
    pub dialer: &'a Dialer,
    pub sessions: &'a Sessions,
}

/// Whether `a`'s device id orders before `b`'s (byte-wise, shorter prefix first).
pub fn lower(a: &DeviceId, b: &DeviceId) -> bool {
    a.as_bytes() < b.as_bytes()
}

impl TrustStore for Admission<'_> {
    fn admit(&mut self, device_id: &DeviceId, device_key: &[u8; 32]) -> Result<(), NoiseError> {
        let id = dsb_discovery::DeviceId::new(device_id.as_bytes())
            .map_err(|_| NoiseError::Malformed)?;
        self.discovery
            .admit(self.now, &id, device_key)
            .map_err(|e| match e {
                AnnounceError::KeyMismatch => NoiseError::IdentityMismatch,
                _ => NoiseError::UnknownPeer,
            })?;
        let ours = self.dialer.is_dialing(device_id) || self.sessions.initiated_to(device_id);
        if ours && lower(&self.local, device_id) {
            return Err(NoiseError::SessionExists);
        }
        Ok(())
    }
}
