//! `dsb put <id> <file>` / `dsb get <id> <name> [-o file]`: blob transfer
//! with a progress bar on a terminal and the BLAKE2s hash checked end to
//! end (the peer checks an upload before storing it; we check a download
//! before writing it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dsb_app::bus::blob::{blob_hash, valid_name, BlobCode, BlobError};
use dsb_app::node::{NodeEvent, TransferId, Transferred};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::{Failure, Result};
use crate::host::{device_id, Host, Link};

/// Largest file `put` reads (and `get` accepts by default): bounded memory.
pub const MAX_BLOB: u64 = 64 << 20;

#[derive(Serialize)]
struct Report<'a> {
    op: &'a str,
    peer: &'a str,
    name: &'a str,
    bytes: u64,
    blake2s: String,
    seconds: f64,
    resumed_from: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn blob_failure(peer: &str, name: &str, e: &BlobError) -> Failure {
    match e {
        BlobError::Denied => {
            Failure::denied(format!("{peer} denies us its blob store (access-denied)"))
        }
        BlobError::UnknownService => Failure::error(format!("{peer} does not publish blob")),
        BlobError::Remote {
            code: BlobCode::TooLarge,
            ..
        } => Failure::error(format!(
            "{peer} refused {name}: too-large (over its per-blob cap)"
        )),
        BlobError::Remote {
            code: BlobCode::StoreFull,
            ..
        } => Failure::error(format!("{peer} refused {name}: store-full")),
        BlobError::Remote {
            code: BlobCode::NotFound,
            ..
        } => Failure::error(format!("{peer} has no blob named {name}")),
        BlobError::TooLarge => {
            Failure::error(format!("{name} on {peer} is larger than --max allows"))
        }
        BlobError::ChannelClosed | BlobError::Timeout => Failure::unreachable(format!(
            "transfer of {name} with {peer} stopped ({})",
            e.label()
        )),
        other => Failure::error(format!("transfer of {name} with {peer} failed: {other}")),
    }
}

/// Drives transfer `t` to its end, with a progress bar on a terminal.
fn finish<N: Link>(
    host: &mut Host<N>,
    t: TransferId,
    total: Option<u64>,
    label: String,
    timeout: Duration,
) -> Result<std::result::Result<Transferred, BlobError>> {
    let bar = ProgressBar::new(total.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(label);
    // No progress for `timeout` ends it; the node itself retries a lost session.
    let mut last = (0u64, std::time::Instant::now());
    let r = host.run(
        Duration::from_secs(24 * 3600),
        || "transfer did not finish".into(),
        |node, ev| {
            if let Some(NodeEvent::TransferDone(d)) = ev {
                if *d == t {
                    return node.take_transfer(t).map(Ok);
                }
            }
            if let Some(p) = node.transfer_progress(t) {
                if let Some(total) = p.total {
                    bar.set_length(total);
                }
                bar.set_position(p.done);
                if p.done != last.0 {
                    last = (p.done, std::time::Instant::now());
                }
            }
            (last.1.elapsed() > timeout).then(|| {
                Err(Failure::unreachable(format!(
                    "no progress for {:.0} s",
                    timeout.as_secs_f64()
                )))
            })
        },
    );
    bar.finish_and_clear();
    r
}

pub fn put<N: Link>(
    host: &mut Host<N>,
    peer: &str,
    file: &Path,
    name: Option<&str>,
    timeout: Duration,
    json: bool,
) -> Result<()> {
    let id = device_id(peer)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if !valid_name(&name) {
        return Err(Failure::usage(format!(
            "blob name {name:?}: 1..=64 bytes of [A-Za-z0-9._-] (pass --name)"
        )));
    }
    let mut data = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_BLOB + 1).read_to_end(&mut data))
        .map_err(|e| Failure::error(format!("cannot read {}: {e}", file.display())))?;
    if data.len() as u64 > MAX_BLOB {
        return Err(Failure::error(format!(
            "{} is larger than {} MiB, the most dsb sends",
            file.display(),
            MAX_BLOB >> 20
        )));
    }
    let hash = blob_hash(&data);
    let size = data.len() as u64;
    host.session(&id, timeout)?;
    let start = std::time::Instant::now();
    let t = host
        .node
        .blob_put(&id, &name, data)
        .map_err(|e| Failure::error(format!("cannot start the upload: {}", e.label())))?;
    let done = finish(host, t, Some(size), format!("put {name}"), timeout)?;
    let secs = start.elapsed().as_secs_f64();
    let p = match done {
        Ok(Transferred::Put(p)) => p,
        Ok(_) => return Err(Failure::error("internal: a put ended as a get")),
        Err(e) => return Err(blob_failure(peer, &name, &e)),
    };
    if p.hash != hash || p.size != size {
        return Err(Failure::error(format!(
            "{peer} stored another blob than we sent (hash or size differs)"
        )));
    }
    report("put", peer, &name, size, &hash, secs, p.resumed_from, json);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    op: &str,
    peer: &str,
    name: &str,
    bytes: u64,
    hash: &[u8; 32],
    secs: f64,
    resumed: u64,
    json: bool,
) {
    if json {
        let r = Report {
            op,
            peer,
            name,
            bytes,
            blake2s: hex(hash),
            seconds: secs,
            resumed_from: resumed,
        };
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        let mbps = bytes as f64 * 8.0 / secs.max(1e-6) / 1e6;
        println!(
            "{op} {name} {} {peer}: {bytes} bytes in {secs:.2} s ({mbps:.1} Mbit/s), blake2s {} verified",
            if op == "put" { "to" } else { "from" },
            hex(hash)
        );
    }
}

#[allow(clippy::too_many_arguments)]
pub fn get<N: Link>(
    host: &mut Host<N>,
    peer: &str,
    name: &str,
    output: Option<&Path>,
    max: u64,
    force: bool,
    timeout: Duration,
    json: bool,
) -> Result<()> {
    let id = device_id(peer)?;
    if !valid_name(name) {
        return Err(Failure::usage(format!(
            "blob name {name:?}: 1..=64 bytes of [A-Za-z0-9._-]"
        )));
    }
    let out: PathBuf = output.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if out.exists() && !force && out != Path::new("-") {
        return Err(Failure::error(format!(
            "{} exists (pass --force to replace it)",
            out.display()
        )));
    }
    host.session(&id, timeout)?;
    let start = std::time::Instant::now();
    let cap = usize::try_from(max.min(MAX_BLOB)).unwrap_or(usize::MAX);
    let t = host
        .node
        .blob_get(&id, name, cap)
        .map_err(|e| Failure::error(format!("cannot start the download: {}", e.label())))?;
    let done = finish(host, t, None, format!("get {name}"), timeout)?;
    let g = match done {
        Ok(Transferred::Get(g)) => g,
        Ok(_) => return Err(Failure::error("internal: a get ended as a put")),
        Err(e) => return Err(blob_failure(peer, name, &e)),
    };
    // BlobGet already compared the bytes with the announced hash; check
    // again what we are about to write.
    if blob_hash(&g.data) != g.hash {
        return Err(Failure::error(format!("{name} from {peer}: hash mismatch")));
    }
    if out == Path::new("-") {
        use std::io::Write;
        std::io::stdout()
            .write_all(&g.data)
            .map_err(|e| Failure::error(format!("stdout: {e}")))?;
    } else {
        let tmp = out.with_extension("dsb-part");
        std::fs::write(&tmp, &g.data)
            .and_then(|()| std::fs::rename(&tmp, &out))
            .map_err(|e| Failure::error(format!("cannot write {}: {e}", out.display())))?;
    }
    let secs = start.elapsed().as_secs_f64();
    if out != Path::new("-") {
        report(
            "get",
            peer,
            name,
            g.data.len() as u64,
            &g.hash,
            secs,
            g.resumed_from,
            json,
        );
    }
    Ok(())
}
