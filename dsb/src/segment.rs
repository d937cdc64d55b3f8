//! Where `dsb` attaches: `--segment auto` reads the descriptor a running
//! `make run VMS=N` writes (`docs/protocol.md`, "Segment descriptor"),
//! `--segment unix:<path>` names a switch port directly.

use std::path::{Path, PathBuf};

use crate::error::{Failure, Result};

/// Longest descriptor read.
const MAX_DESCRIPTOR: u64 = 4096;

/// A segment to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Switch ports (unix datagram sockets) we may use; one station per
    /// port, so `dsb` takes the first it can lock.
    pub ports: Vec<PathBuf>,
    /// The identity the harness made for the workstation, if any.
    pub identity: Option<PathBuf>,
    /// Whether a DHCP server is on the segment.
    pub dhcp: bool,
}

/// `$DSOFTBUS_SEGMENT` if set, else `$XDG_RUNTIME_DIR/dsoftbus/segment`,
/// else `/tmp/dsoftbus-<uid>/segment`.
pub fn descriptor_path() -> PathBuf {
    if let Some(p) = std::env::var_os("DSOFTBUS_SEGMENT").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("dsoftbus"),
        // SAFETY: getuid has no preconditions.
        _ => std::env::temp_dir().join(format!("dsoftbus-{}", unsafe { libc::getuid() })),
    };
    dir.join("segment")
}

/// Parses `--segment`.
pub fn resolve(spec: &str) -> Result<Segment> {
    if spec == "auto" {
        let path = descriptor_path();
        return read_descriptor(&path).map_err(|e| {
            Failure::unreachable(format!(
                "no running segment ({e}); start `make run VMS=2 CMDLINE=mode=serve` \
                 or pass --segment unix:<switch port>"
            ))
        });
    }
    match spec.strip_prefix("unix:") {
        Some(p) if !p.is_empty() => Ok(Segment {
            ports: vec![PathBuf::from(p)],
            identity: None,
            dhcp: false,
        }),
        _ => Err(Failure::usage(format!(
            "bad segment address {spec:?}: expected auto or unix:<path of a switch port>"
        ))),
    }
}

fn read_descriptor(path: &Path) -> std::result::Result<Segment, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DESCRIPTOR).read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse_descriptor(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `key=value` lines; `#` comments; `port=unix:<path>` required.
pub fn parse_descriptor(text: &str) -> std::result::Result<Segment, String> {
    let (mut ports, mut identity, mut dhcp) = (Vec::new(), None, false);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("not key=value: {line:?}"));
        };
        match k {
            "port" => {
                let p = v
                    .strip_prefix("unix:")
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| format!("port: expected unix:<path>, got {v:?}"))?;
                if ports.len() < 16 {
                    ports.push(PathBuf::from(p));
                }
            }
            "identity" => identity = Some(PathBuf::from(v)),
            "dhcp" => dhcp = v == "slirp",
            _ => {} // newer keys: ignored
        }
    }
    if ports.is_empty() {
        return Err("no port= line".into());
    }
    Ok(Segment {
        ports,
        identity,
        dhcp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_and_addresses_parse_or_fail_clearly() {
        let s = parse_descriptor(
            "# c\nport=unix:/tmp/x/spare1\nport=unix:/tmp/x/spare2\nidentity=/tmp/x/ws.identity\nid=workstation\ndhcp=none\n",
        )
        .unwrap();
        assert_eq!(
            s.ports,
            [
                PathBuf::from("/tmp/x/spare1"),
                PathBuf::from("/tmp/x/spare2")
            ]
        );
        assert_eq!(s.identity, Some(PathBuf::from("/tmp/x/ws.identity")));
        assert!(!s.dhcp);
        assert!(parse_descriptor("identity=/a\n").is_err());
        assert!(parse_descriptor("port=udp:1.2.3.4:5\n").is_err());
        assert!(parse_descriptor("garbage\n").is_err());
        assert_eq!(resolve("unix:/a/b").unwrap().ports, [PathBuf::from("/a/b")]);
        for bad in ["unix:", "udp:127.0.0.1:9", "/tmp/x", ""] {
            assert_eq!(
                resolve(bad).unwrap_err().kind,
                crate::error::Kind::Usage,
                "{bad}"
            );
        }
    }
}
