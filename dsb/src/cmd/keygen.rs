//! `dsb keygen -o <file>`: a new identity (device id, Ed25519 device key,
//! X25519 Noise key) from the OS's randomness, written as an identity file
//! with mode 0600. The same file works as a VM's `fw_cfg` identity. The
//! secret is never printed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use dsb_noise::Identity;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::error::{Failure, Result};
use crate::host::{device_id, os_seed};

pub fn run(out: &Path, id: &str, force: bool) -> Result<()> {
    let id = device_id(id)?;
    let mut rng = ChaCha20Rng::from_seed(os_seed()?);
    let identity = Identity::generate(id.as_str(), &mut rng)
        .map_err(|e| Failure::error(format!("cannot make keys: {e}")))?;
    let bytes = identity.to_file_bytes();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::error(format!(
                "{} exists (pass --force to replace it)",
                out.display()
            ))
        } else {
            Failure::error(format!("cannot create {}: {e}", out.display()))
        }
    })?;
    f.write_all(&bytes)
        .map_err(|e| Failure::error(format!("cannot write {}: {e}", out.display())))?;
    let key: String = identity
        .device_public_key()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "wrote the identity of {} to {} (mode 0600); device key {key}",
        id.as_str(),
        out.display()
    );
    println!("to trust it, give a node: trust={}:{key}", id.as_str());
    Ok(())
}
