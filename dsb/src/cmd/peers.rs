//! `dsb peers [--watch]`: who is on the bus.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::host::{Host, Link, STOP};
use std::sync::atomic::Ordering;

/// One row of the table (and of `--json`).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub address: String,
    pub transports: Vec<&'static str>,
    pub services: Vec<String>,
    /// The first 8 bytes of the Ed25519 device key, hex (the image prints
    /// the whole key in its `identity` line).
    pub key: String,
    /// Seconds since its newest accepted announce.
    pub last_seen_s: f64,
    /// Its key is pinned by our configuration (else trusted on first use).
    pub pinned: bool,
}

fn rows<N: Link>(host: &Host<N>) -> Vec<Row> {
    let now = host.now();
    let mut v: Vec<Row> = host
        .node
        .peers()
        .map(|p| {
            let mut transports = Vec::new();
            if p.tcp_port.is_some() {
                transports.push("tcp");
            }
            if p.udp_sec_port.is_some() {
                transports.push("udp-sec");
            }
            let key = p.device_key.to_bytes();
            Row {
                id: p.device_id.as_str().to_string(),
                address: p.addr.to_string(),
                transports,
                services: p
                    .services
                    .iter()
                    .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                    .collect(),
                key: key.iter().take(8).map(|b| format!("{b:02x}")).collect(),
                last_seen_s: (now - now.min(p.last_seen)).total_millis() as f64 / 1e3,
                pinned: p.pinned,
            }
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<16} {:<15} {:<12} {:<28} {:<16} {:>9}",
        "ID", "ADDRESS", "TRANSPORTS", "SERVICES", "KEY", "LAST SEEN"
    );
    for r in rows {
        println!(
            "{:<16} {:<15} {:<12} {:<28} {:<16} {:>8.1}s",
            r.id,
            r.address,
            r.transports.join(","),
            r.services.join(","),
            r.key,
            r.last_seen_s
        );
    }
}

/// Listens for `wait`, then prints the peers; with `watch`, reprints every
/// second until Ctrl-C.
pub fn run<N: Link>(host: &mut Host<N>, wait: Duration, watch: bool, json: bool) -> Result<()> {
    let end = std::time::Instant::now() + wait;
    while std::time::Instant::now() < end && !STOP.load(Ordering::Relaxed) {
        host.step();
        while host.next_event().is_some() {}
    }
    loop {
        let r = rows(host);
        if json {
            println!(
                "{}",
                serde_json::to_string(&r).unwrap_or_else(|_| "[]".into())
            );
        } else {
            if watch {
                println!();
            }
            print_table(&r);
        }
        if !watch {
            return Ok(());
        }
        let next = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < next {
            if STOP.load(Ordering::Relaxed) {
                return Ok(());
            }
            host.step();
            while host.next_event().is_some() {}
        }
    }
}
