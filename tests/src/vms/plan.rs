//! What each VM of a cross-VM run is: its device id, its keys (an identity
//! file handed over `fw_cfg`), whom it trusts, its command line, and the
//! console lines that prove it reached the run's goal.
//!
//! - **Identities.** The harness draws every VM's keys from the OS
//!   (`/dev/urandom`), writes them as `dsoftbus-identity-v1` files (mode
//!   0600, in the run's private temporary directory, removed at the end) and
//!   passes each to its VM with `-fw_cfg name=opt/dsoftbus/identity,file=..`.
//!   No key ever goes on a command line or into a log.
//! - **Trust.** Every honest VM pins the device keys of every other honest VM
//!   (`trust=node-j:<hex>,...`) and runs with `tofu=off`: only the run's own
//!   devices are admitted.
//! - **Goal (`mesh`).** Every honest VM prints, for every other honest VM
//!   `node-j`: `dsoftbusd: session up peer=node-j`, `dsoftbusd: ping ok
//!   peer=node-j` and, with `echo_bytes`, `dsoftbusd: echo ok peer=node-j
//!   bytes=<n>` (the bytes came back through node-j's echo with the hash of
//!   what was sent): N(N-1)/2 sessions, each authenticated and carrying data.
//! - **Workstation.** With a workstation (`make run VMS=N CMDLINE=mode=serve`,
//!   or `--workstation`), the harness also writes an identity for `dsb`
//!   (device id [`WORKSTATION_ID`]), and every honest VM pins it too; VM 1
//!   lets it use `blob` (`allow=ping:*,sd:*,blob:workstation`), the others
//!   keep the default (`blob` denied), so both answers can be tried.
//! - **`spoof`.** The last VM is an impostor: it claims `node-2` with keys of
//!   its own and dials everyone (`dial=everyone`, trust on first use). The
//!   honest VMs must still reach the mesh among themselves; node-1 must ignore
//!   the impostor's announces (`key-mismatch`: node-2 is pinned to other
//!   keys) and refuse its handshake, and the impostor must never get a session.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use dsb_noise::Identity;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// What the VMs of a run do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmScenario {
    /// Every VM honest; the full mesh.
    Mesh,
    /// The last VM impersonates node-2 (needs at least 3 VMs).
    Spoof,
}

impl VmScenario {
    pub fn parse(s: &str) -> Result<VmScenario, String> {
        match s {
            "normal" | "mesh" => Ok(VmScenario::Mesh),
            "spoof" => Ok(VmScenario::Spoof),
            _ => Err(format!("SCENARIO: expected normal|mesh|spoof, got {s:?}")),
        }
    }
}

/// One VM of the run.
#[derive(Debug)]
pub struct VmPlan {
    /// 1-based.
    pub k: usize,
    pub id: String,
    pub honest: bool,
    /// Options of this VM's command line (mode, id, trust, ...).
    pub options: String,
    /// QEMU arguments handing over the identity file.
    pub qemu_args: Vec<String>,
    /// Console lines (substrings) that must all appear.
    pub required: Vec<String>,
    /// Console lines (substrings) that must never appear.
    pub forbidden: Vec<String>,
}

/// The device id of the workstation identity (`dsb`).
pub const WORKSTATION_ID: &str = "workstation";

/// The identity the harness made for `dsb`.
#[derive(Debug)]
pub struct Workstation {
    pub id: String,
    pub identity_file: PathBuf,
}

/// The device id of VM `k` in an honest run.
pub fn vm_id(k: usize) -> String {
    format!("node-{k}")
}

/// 32 bytes from the OS's random source.
fn os_seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("cannot read /dev/urandom for VM keys: {e}"))?;
    Ok(seed)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `identity` to `path`, readable by this user only.
fn write_identity(path: &Path, identity: &Identity) -> Result<(), String> {
    let bytes = identity.to_file_bytes();
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Plans `vms` VMs: identities written under `dir`, command lines, goals;
/// with `workstation`, also an identity for `dsb` that every honest VM trusts.
pub fn make_plans(
    vms: usize,
    scenario: VmScenario,
    echo_bytes: u64,
    workstation: bool,
    dir: &Path,
) -> Result<(Vec<VmPlan>, Option<Workstation>), String> {
    if scenario == VmScenario::Spoof && vms < 3 {
        return Err("SCENARIO=spoof needs VMS=3 or more (two honest VMs and the impostor)".into());
    }
    let mut rng = ChaCha20Rng::from_seed(os_seed()?);
    let impostor = |k: usize| scenario == VmScenario::Spoof && k == vms;
    let mut identities = Vec::new();
    for k in 1..=vms {
        let id = if impostor(k) { vm_id(2) } else { vm_id(k) };
        let identity =
            Identity::generate(&id, &mut rng).map_err(|e| format!("keys for vm{k}: {e}"))?;
        identities.push((k, id, identity));
    }
    let ws = if workstation {
        let identity = Identity::generate(WORKSTATION_ID, &mut rng)
            .map_err(|e| format!("keys for the workstation: {e}"))?;
        let identity_file = dir.join("workstation.identity");
        write_identity(&identity_file, &identity)?;
        Some((
            Workstation {
                id: WORKSTATION_ID.to_string(),
                identity_file,
            },
            format!("{WORKSTATION_ID}:{}", hex(&identity.device_public_key())),
        ))
    } else {
        None
    };
    let honest: Vec<&(usize, String, Identity)> = identities
        .iter()
        .filter(|(k, _, _)| !impostor(*k))
        .collect();
    let mut plans = Vec::new();
    for (k, id, identity) in &identities {
        let k = *k;
        let path: PathBuf = dir.join(format!("vm{k}.identity"));
        write_identity(&path, identity)?;
        let qemu_args = vec![
            "-fw_cfg".to_string(),
            format!("name=opt/dsoftbus/identity,file={}", path.display()),
        ];
        let echo = if echo_bytes > 0 {
            format!(" echo_bytes={echo_bytes}")
        } else {
            String::new()
        };
        let (options, required, forbidden) = if impostor(k) {
            (
                format!("mode=serve id={id} dial=everyone tofu=on"),
                vec!["dsoftbusd: session refused peer=node-1".to_string()],
                vec!["dsoftbusd: session up".to_string()],
            )
        } else {
            let mut trust: Vec<String> = honest
                .iter()
                .filter(|(j, _, _)| *j != k)
                .map(|(_, pid, pi)| format!("{pid}:{}", hex(&pi.device_public_key())))
                .collect();
            let mut allow = String::new();
            if let Some((_, pin)) = &ws {
                trust.push(pin.clone());
                if k == 1 {
                    allow = format!(" allow=ping:*,sd:*,blob:{WORKSTATION_ID}");
                }
            }
            let mut required = Vec::new();
            for (_, peer, _) in honest.iter().filter(|(j, _, _)| *j != k) {
                required.push(format!("dsoftbusd: session up peer={peer} "));
                required.push(format!("dsoftbusd: ping ok peer={peer} "));
                if echo_bytes > 0 {
                    required.push(format!(
                        "dsoftbusd: echo ok peer={peer} bytes={echo_bytes} "
                    ));
                }
            }
            if scenario == VmScenario::Spoof && k == 1 {
                required.push("dsoftbusd: announce ignored (key-mismatch)".to_string());
            }
            (
                format!(
                    "mode=serve id={id} trust={} tofu=off{allow}{echo}",
                    trust.join(",")
                ),
                required,
                Vec::new(),
            )
        };
        plans.push(VmPlan {
            k,
            id: id.clone(),
            honest: !impostor(k),
            options,
            qemu_args,
            required,
            forbidden,
        });
    }
    Ok((plans, ws.map(|(w, _)| w)))
}

/// Lines no VM may print, whatever the scenario.
pub const ALWAYS_FORBIDDEN: [&str; 3] = ["SELFTEST: FAIL", "PANIC", "config: error:"];

/// Whether `line` matches the expected substring `want`. A `want` ending in
/// a space also matches `line` ending right before that space (the marker's
/// last field: `session up peer=node-1 transport=tcp` and `ping ok
/// peer=node-1 rtt_us=12` both match `peer=node-1 `, `peer=node-10` does not).
pub fn matches(line: &str, want: &str) -> bool {
    if line.contains(want) {
        return true;
    }
    match want.strip_suffix(' ') {
        Some(w) => line.ends_with(w),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dsb-plan-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_mesh_pins_every_other_vm_and_expects_every_pair() {
        let dir = tmp("mesh");
        let (plans, ws) = make_plans(3, VmScenario::Mesh, 1024, false, &dir).unwrap();
        assert!(ws.is_none());
        assert_eq!(plans.len(), 3);
        let p1 = &plans[0];
        assert!(p1.options.starts_with("mode=serve id=node-1 trust=node-2:"));
        assert!(p1.options.contains(",node-3:") && p1.options.contains("tofu=off"));
        assert!(
            !p1.options.contains("node-1:"),
            "pins itself: {}",
            p1.options
        );
        assert!(p1.options.ends_with(" echo_bytes=1024"));
        assert_eq!(p1.required.len(), 2 * 3);
        assert!(p1
            .required
            .contains(&"dsoftbusd: echo ok peer=node-3 bytes=1024 ".to_string()));
        // Keys differ per VM and never appear on a command line.
        let f1 = fs::read_to_string(dir.join("vm1.identity")).unwrap();
        let f2 = fs::read_to_string(dir.join("vm2.identity")).unwrap();
        assert_ne!(f1, f2);
        let secrets: Vec<&str> = f1
            .lines()
            .filter(|l| l.starts_with("device-key-seed=") || l.starts_with("noise-static-secret="))
            .map(|l| l.split('=').nth(1).unwrap())
            .collect();
        assert_eq!(secrets.len(), 2);
        for secret in secrets {
            assert!(plans.iter().all(|p| !p.options.contains(secret)));
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("vm1.identity"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_spoof_run_has_an_impostor_claiming_node_2() {
        let dir = tmp("spoof");
        let (plans, _) = make_plans(3, VmScenario::Spoof, 0, false, &dir).unwrap();
        let imp = &plans[2];
        assert!(!imp.honest);
        assert_eq!(imp.id, "node-2");
        assert!(imp.options.contains("dial=everyone"));
        assert_eq!(imp.forbidden, ["dsoftbusd: session up"]);
        // Honest VMs expect each other only, and pin node-2's real key.
        assert_eq!(plans[0].required.len(), 2 + 1);
        assert!(plans[0].options.contains("trust=node-2:"));
        assert!(!plans[0].options.contains("node-3"));
        assert!(make_plans(2, VmScenario::Spoof, 0, false, &dir).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_workstation_is_trusted_by_every_vm_and_may_use_vm1s_blob() {
        let dir = tmp("ws");
        let (plans, ws) = make_plans(2, VmScenario::Mesh, 0, true, &dir).unwrap();
        let ws = ws.unwrap();
        assert_eq!(ws.id, WORKSTATION_ID);
        assert!(ws.identity_file.exists());
        for p in &plans {
            assert!(p.options.contains(",workstation:") || p.options.contains("=workstation:"));
        }
        assert!(plans[0]
            .options
            .contains("allow=ping:*,sd:*,blob:workstation"));
        assert!(!plans[1].options.contains("allow="));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_trailing_space_anchors_the_last_field() {
        assert!(matches(
            "dsoftbusd: session up peer=node-1 transport=tcp",
            "peer=node-1 "
        ));
        assert!(matches(
            "dsoftbusd: ping ok peer=node-1 rtt_us=5",
            "peer=node-1 "
        ));
        assert!(matches("x peer=node-1", "peer=node-1 "));
        assert!(!matches("x peer=node-10", "peer=node-1 "));
        assert!(!matches(
            "dsoftbusd: session up peer=node-10 transport=tcp",
            "peer=node-1 "
        ));
    }
}
