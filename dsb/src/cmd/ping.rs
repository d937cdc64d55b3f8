//! `dsb ping <id> [-c N]`: round trips through the peer's `ping` echo over
//! an authenticated session.

use std::time::Duration;

use dsb_app::bus::ApiError;
use dsb_app::node::NodeEvent;
use dsb_transports::mux::{ChannelError, RefuseReason};
use serde::Serialize;

use crate::error::{Failure, Result};
use crate::host::{device_id, Host, Link};

#[derive(Serialize)]
struct Report {
    peer: String,
    transport: String,
    rtts_ms: Vec<f64>,
    min_ms: f64,
    avg_ms: f64,
    max_ms: f64,
}

/// What a refused channel means for the user.
pub fn refusal(peer: &str, service: &str, reason: RefuseReason) -> Failure {
    match reason {
        RefuseReason::AccessDenied => Failure::denied(format!(
            "{peer} denies us its {service} service (access-denied)"
        )),
        RefuseReason::UnknownService => {
            Failure::error(format!("{peer} does not publish {service}"))
        }
        RefuseReason::TooManyChannels => Failure::error(format!(
            "{peer} has no free channel for {service}; try again"
        )),
    }
}

pub fn run<N: Link>(
    host: &mut Host<N>,
    peer: &str,
    count: u32,
    interval: Duration,
    timeout: Duration,
    json: bool,
) -> Result<()> {
    let id = device_id(peer)?;
    let kind = host.session(&id, timeout)?;
    let ch = host
        .node
        .open(&id, "ping")
        .map_err(|e| Failure::error(format!("cannot open ping to {peer}: {}", e.label())))?;
    let mut rtts = Vec::new();
    for seq in 0..count {
        if seq > 0 {
            let next = std::time::Instant::now() + interval;
            while std::time::Instant::now() < next {
                host.step();
                while host.next_event().is_some() {}
            }
        }
        let mut probe = [0u8; 16];
        probe[..4].copy_from_slice(&seq.to_be_bytes());
        probe[4..12].copy_from_slice(&host.now().total_micros().to_be_bytes());
        probe[12..].copy_from_slice(&0x6473_6221u32.to_be_bytes());
        let sent_at = std::time::Instant::now();
        let mut sent = 0;
        let mut got = Vec::new();
        let secs = timeout.as_secs_f64();
        host.run(
            timeout,
            || format!("no echo from {peer} within {secs:.0} s (seq {seq})"),
            |node, ev| {
                if let Some(NodeEvent::ChannelRefused { ch: c, reason, .. }) = ev {
                    if *c == ch {
                        return Some(Err(refusal(peer, "ping", *reason)));
                    }
                }
                if let Some(NodeEvent::SessionDown {
                    peer: p, reason, ..
                }) = ev
                {
                    if *p == id {
                        return Some(Err(Failure::unreachable(format!(
                            "session with {peer} ended ({reason})"
                        ))));
                    }
                }
                if sent < probe.len() {
                    match node.write(ch, &probe[sent..]) {
                        Ok(n) => sent += n,
                        Err(ApiError::Channel(ChannelError::WouldBlock)) => {}
                        Err(e) => return Some(Err(Failure::error(format!("ping: {}", e.label())))),
                    }
                }
                let mut buf = [0u8; 16];
                match node.read(ch, &mut buf[..16 - got.len()]) {
                    Ok(0) => return Some(Err(Failure::error(format!("{peer} closed the echo")))),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(ApiError::Channel(ChannelError::WouldBlock)) => {}
                    Err(e) => return Some(Err(Failure::error(format!("ping: {}", e.label())))),
                }
                (got.len() == probe.len()).then(|| {
                    if got == probe {
                        Ok(())
                    } else {
                        Err(Failure::error(format!("{peer} echoed other bytes")))
                    }
                })
            },
        )?;
        let rtt = sent_at.elapsed().as_secs_f64() * 1e3;
        if !json {
            println!("16 bytes from {peer} ({kind}): seq={seq} rtt={rtt:.2} ms");
        }
        rtts.push(rtt);
    }
    let _ = host.node.finish(ch);
    let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rtts.iter().copied().fold(0.0, f64::max);
    let avg = rtts.iter().sum::<f64>() / rtts.len().max(1) as f64;
    if json {
        let r = Report {
            peer: peer.to_string(),
            transport: kind.to_string(),
            rtts_ms: rtts,
            min_ms: min,
            avg_ms: avg,
            max_ms: max,
        };
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        println!("{count} replies from {peer}: rtt min/avg/max = {min:.2}/{avg:.2}/{max:.2} ms");
    }
    Ok(())
}
