//! A tiny `--flag value` parser shared by the launcher binaries: explicit
//! errors, no unknown flags accepted.

use crate::qemu::{Accel, Firmware, QemuConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Options common to every binary that boots the image.
#[derive(Debug)]
pub struct BootOpts {
    pub kernel: Option<PathBuf>,
    pub accel: Accel,
    pub firmware: Firmware,
    pub pcap_dir: Option<PathBuf>,
    pub timeout: Option<Duration>,
}

impl Default for BootOpts {
    fn default() -> Self {
        BootOpts {
            kernel: None,
            accel: Accel::Tcg,
            firmware: Firmware::Auto,
            pcap_dir: None,
            timeout: None,
        }
    }
}

impl BootOpts {
    /// Consumes `flag` (and its value) if it is a boot option.
    /// Returns `Ok(false)` when the flag is not one of ours.
    pub fn take(
        &mut self,
        flag: &str,
        value: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<bool, String> {
        match flag {
            "--kernel" => self.kernel = Some(PathBuf::from(value()?)),
            "--accel" => self.accel = Accel::parse(&value()?)?,
            "--firmware" => self.firmware = Firmware::parse(&value()?)?,
            "--pcap" => self.pcap_dir = Some(PathBuf::from(value()?)),
            "--timeout" => {
                let v = value()?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or_else(|| format!("--timeout: expected seconds in 1..=3600, got {v:?}"))?;
                self.timeout = Some(Duration::from_secs(secs));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Applies these options to a launcher configuration.
    pub fn apply(&self, cfg: &mut QemuConfig) {
        if let Some(k) = &self.kernel {
            cfg.kernel = k.clone();
        }
        cfg.accel = self.accel;
        cfg.firmware = self.firmware;
        cfg.pcap_dir = self.pcap_dir.clone();
        if let Some(t) = self.timeout {
            cfg.timeout = t;
        }
    }
}

/// Walks `args` as `--flag value` pairs, calling `handle(flag, value_getter)`.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    mut handle: impl FnMut(&str, &mut dyn FnMut() -> Result<String, String>) -> Result<bool, String>,
) -> Result<(), String> {
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag}: missing value"));
        if !handle(&flag, &mut value)? {
            return Err(format!("unknown option {flag:?}"));
        }
    }
    Ok(())
}
