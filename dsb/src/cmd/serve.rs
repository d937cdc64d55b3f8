//! `dsb serve`: the workstation as a serving node. It publishes `ping`
//! (byte echo), `sd` (directory) and `blob` (a store in memory) with the
//! access `--allow` gives, plus the services named by `--publish`, which it
//! serves as RPC echoes (every request answered with its own body, so `dsb
//! call` can try them). It prints the same console lines as an image's
//! serving node until Ctrl-C.

use std::sync::atomic::Ordering;

use dsb_app::bus::rpc::{RpcConfig, RpcResult, RpcServer, ServerStatus};
use dsb_app::bus::ChannelRef;
use dsb_app::config::{AllowEntry, Who};
use dsb_app::marker::Marker;
use dsb_app::node::NodeEvent;
use dsb_app::serve::{ServeApp, ServeEvent};
use dsb_transports::mux::ServiceName;

use crate::error::{Failure, Result};
use crate::host::{device_id, Host, Link, STOP};

/// Most application channels served at once.
const MAX_ECHOES: usize = 16;

/// Parses `--allow <svc>=<id>|*`.
pub fn parse_allow(s: &str) -> Result<AllowEntry> {
    let (svc, who) = s
        .split_once('=')
        .ok_or_else(|| Failure::usage(format!("--allow {s:?}: expected <service>=<id>|*")))?;
    let service = ServiceName::new(svc.as_bytes())
        .ok_or_else(|| Failure::usage(format!("--allow: bad service name {svc:?}")))?;
    let who = if who == "*" {
        Who::Any
    } else {
        Who::Id(device_id(who)?)
    };
    Ok(AllowEntry { service, who })
}

fn line(json: bool, kind: &str, text: &str) {
    if json {
        println!("{}", serde_json::json!({ "event": kind, "line": text }));
    } else {
        println!("{text}");
    }
}

pub fn run<N: Link>(
    host: &mut Host<N>,
    publish: &[String],
    allow: &[String],
    json: bool,
) -> Result<()> {
    let mut entries: Vec<AllowEntry> = allow
        .iter()
        .map(|a| parse_allow(a))
        .collect::<Result<_>>()?;
    if entries.len() > dsb_app::config::MAX_ALLOW {
        return Err(Failure::usage(format!(
            "at most {} --allow entries",
            dsb_app::config::MAX_ALLOW
        )));
    }
    // Defaults as a serving image: ping and sd to any authenticated peer.
    if entries.is_empty() {
        for s in ["ping", "sd"] {
            if let Some(service) = ServiceName::new(s.as_bytes()) {
                entries.push(AllowEntry {
                    service,
                    who: Who::Any,
                });
            }
        }
    }
    dsb_app::serve::publish(&mut host.node, Some(&entries))
        .map_err(|e| Failure::usage(format!("cannot publish: {}", e.label())))?;
    for svc in publish {
        if host.node.published().get(svc.as_bytes()).is_none() {
            host.node
                .publish(svc, dsb_app::bus::Access::Deny)
                .map_err(|e| Failure::usage(format!("--publish {svc}: {}", e.label())))?;
            eprintln!("dsb: {svc} is published but no --allow names it: every peer is denied");
        }
    }
    let listed: Vec<String> = host
        .node
        .published()
        .iter()
        .map(|p| format!("{}={}", p.name.as_str(), access_text(&p.access)))
        .collect();
    line(
        json,
        "serving",
        &format!(
            "dsb: serving as {} ({}); Ctrl-C stops",
            host.node.device_id().as_str(),
            listed.join(" ")
        ),
    );
    let mut app = ServeApp::new(0);
    let mut echoes: Vec<(ChannelRef, RpcServer)> = Vec::new();
    while !STOP.load(Ordering::Relaxed) {
        host.step();
        while let Some(ev) = host.next_event() {
            if let Some(m) = Marker::for_node_event(&ev) {
                line(json, "node", &m.to_string());
            }
            app.on_event(&ev);
            match ev {
                NodeEvent::ChannelAccepted { ch, .. } => {
                    if echoes.len() < MAX_ECHOES {
                        echoes.push((ch, RpcServer::new(RpcConfig::default())));
                    } else {
                        let _ = host.node.reset(ch, 1);
                    }
                }
                NodeEvent::ChannelReset { ch, .. } => echoes.retain(|(c, _)| *c != ch),
                NodeEvent::SessionDown { peer, .. } => echoes.retain(|(c, _)| c.peer != peer),
                _ => {}
            }
        }
        let now = host.now();
        app.poll(now, &mut host.node);
        while let Some(e) = app.next_event() {
            match e {
                ServeEvent::PingOk { peer, rtt } => line(
                    json,
                    "ping",
                    &Marker::PingOk {
                        peer,
                        rtt_us: rtt.total_micros(),
                    }
                    .to_string(),
                ),
                ServeEvent::EchoOk { .. } => {}
                ServeEvent::PingFailed { peer, what } => line(
                    json,
                    "ping-failed",
                    &format!("dsb: health check of {} failed ({what})", peer.as_str()),
                ),
            }
        }
        echoes.retain_mut(|(ch, server)| rpc_echo(host, *ch, server));
    }
    Ok(())
}

fn access_text(a: &dsb_app::bus::Access) -> String {
    match a {
        dsb_app::bus::Access::Deny => "nobody".into(),
        dsb_app::bus::Access::AnyAuthenticated => "*".into(),
        dsb_app::bus::Access::Only(ids) => {
            ids.iter().map(|i| i.as_str()).collect::<Vec<_>>().join("+")
        }
    }
}

/// Answers every request on `ch` with its body; false once it is over.
fn rpc_echo<N: Link>(host: &mut Host<N>, ch: ChannelRef, server: &mut RpcServer) -> bool {
    let Ok(mut io) = host.node.channel(ch) else {
        return false;
    };
    while let Some(req) = server.poll(&mut io) {
        let _ = server.respond(req.id, RpcResult::Ok(req.body));
    }
    // Sends the answers just queued.
    let _ = server.poll(&mut io);
    server.status() == ServerStatus::Open
}
