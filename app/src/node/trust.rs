//! The peer table as the handshake's trust store: a device id's binding is
//! the Ed25519 device key it is bound to and the Noise static key that key
//! signed in the newest verified announce.

use dsb_discovery::{DeviceId, Discovery};
use dsb_noise::{Binding, TrustStore};

/// Answers "which keys belong to this id" from verified announces only.
pub struct PeerTrust<'a>(pub &'a Discovery);

impl TrustStore for PeerTrust<'_> {
    fn binding(&self, device_id: &str) -> Option<Binding> {
        let id = DeviceId::new(device_id.as_bytes()).ok()?;
        let peer = self.0.peer(&id)?;
        // The table only holds peers whose announce verified under the bound
        // key; check the binding store agrees, so a stale entry never widens trust.
        let bound = self.0.binding(&id)?;
        let device_key = peer.device_key.to_bytes();
        if bound.device_key != device_key {
            return None;
        }
        Some(Binding {
            device_key,
            noise_static: peer.noise_static,
        })
    }
}
