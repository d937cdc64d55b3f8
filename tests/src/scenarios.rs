//! The QEMU scenarios `make test` boots: how each is configured, which markers
//! it must print (per node, in order), which it must never print, and whether
//! the guest must report success or failure.

use crate::markers::Marker;
use std::time::Duration;

/// One bootable scenario and what it must show.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// NIC topology (`qemu-conf/net-<nodes>.args`).
    pub nodes: u8,
    /// Kernel command line.
    pub append: String,
    /// `true`: the guest must report success; `false`: it must report failure.
    pub expect_pass: bool,
    pub required: Vec<Marker>,
    /// Markers that must appear somewhere, in no particular order relative to the others.
    pub anywhere: Vec<Marker>,
    pub forbidden: Vec<Marker>,
    pub timeout: Duration,
}

/// Platform markers one node prints, in order.
fn platform(node: Option<&str>) -> Vec<Marker> {
    vec![
        Marker::prefix(node, "net: virtio-net up mac="),
        Marker::exact(node, "net: smoltcp iface up"),
        Marker::prefix(node, "net: dhcp bound 10.0.2."),
        Marker::exact(node, "SELFTEST: icmp ping ok"),
    ]
}

/// The session markers of `node` with `peer`, in order (issue contract);
/// `connects` = this node is the one that connects (lower device id).
/// With `udpsec = Some(port)` the session runs over udp-sec, which adds its
/// listener, session and self-test markers; otherwise over TCP.
///
/// The connecting node has found its peer before it connects; the
/// accepting node needs nothing of the peer in advance, so its `peer found`
/// may come before or after the session: see [`found`].
fn session_over(node: &str, peer: &str, connects: bool, udpsec: Option<u16>) -> Vec<Marker> {
    let n = Some(node);
    let kind = if udpsec.is_some() { "udp-sec" } else { "tcp" };
    let mut v = vec![Marker::prefix(n, "dsoftbusd: discovery up (udp ")];
    if let Some(port) = udpsec {
        v.push(Marker::exact(
            n,
            &format!("dsoftbus: udp-sec os listener up {port}"),
        ));
    }
    if connects {
        v.push(found(node, peer));
    }
    v.push(Marker::exact(
        n,
        &format!("dsoftbusd: transport selected {kind}"),
    ));
    if connects {
        v.push(Marker::exact(
            n,
            &format!("dsoftbusd: session connect peer={peer}"),
        ));
    }
    v.extend([
        Marker::exact(n, &format!("dsoftbusd: identity bound peer={peer}")),
        Marker::exact(n, "dsoftbusd: auth ok"),
    ]);
    if udpsec.is_some() {
        v.push(Marker::exact(n, "dsoftbus: udp-sec os session ok"));
    }
    v.push(Marker::exact(n, "SELFTEST: dsoftbus ping ok"));
    if udpsec.is_some() {
        v.push(Marker::exact(n, "SELFTEST: udp-sec control ok"));
    }
    v.push(Marker::exact(n, &format!("dsoftbus:mux data ok ({kind})")));
    if udpsec.is_some() {
        v.extend([
            Marker::exact(n, "SELFTEST: udp-sec bulk ok"),
            Marker::exact(n, "SELFTEST: udp-sec backpressure ok"),
        ]);
    }
    v.push(Marker::exact(n, "dsoftbusd: dual-node session ok"));
    v
}

/// `node` found `peer` through discovery.
fn found(node: &str, peer: &str) -> Marker {
    Marker::exact(
        Some(node),
        &format!("dsoftbusd: discovery peer found device={peer}"),
    )
}

/// The session markers over TCP.
fn session(node: &str, peer: &str, connects: bool) -> Vec<Marker> {
    session_over(node, peer, connects, None)
}

/// The session markers over udp-sec; the node binds udp-sec port `port`.
fn udpsec_session(node: &str, peer: &str, connects: bool, port: u16) -> Vec<Marker> {
    session_over(node, peer, connects, Some(port))
}

/// The markers of `node` when udp-sec is off and TCP carries the session.
fn fallback_session(node: &str, peer: &str, connects: bool) -> Vec<Marker> {
    let n = Some(node);
    let mut v = session(node, peer, connects);
    // Right after discovery up: the node knows at start that udp-sec is off.
    v.insert(
        1,
        Marker::exact(n, "dsoftbus: udp-sec os disabled (fallback tcp)"),
    );
    v.push(Marker::exact(
        n,
        "SELFTEST: udp-sec fallback ok (udp-sec off)",
    ));
    v
}

/// Success markers an impostor must never print.
fn no_success(node: &str) -> Vec<Marker> {
    let n = Some(node);
    [
        "dsoftbusd: identity bound",
        "dsoftbusd: auth ok",
        "dsoftbus: udp-sec os session ok",
        "SELFTEST: dsoftbus ping ok",
        "dsoftbus:mux data ok",
        "dsoftbusd: dual-node session ok",
    ]
    .iter()
    .map(|t| Marker::prefix(n, t))
    .collect()
}

/// Forbidden in every scenario that must pass: a failure or a panic on any node.
fn no_failure() -> Vec<Marker> {
    vec![
        Marker::prefix_anywhere("SELFTEST: FAIL"),
        Marker::prefix_anywhere("PANIC"),
    ]
}

/// Every line that would say udp-sec did not carry a session of `nodes`.
fn no_tcp_no_fallback(nodes: &[&str]) -> Vec<Marker> {
    let mut v = no_failure();
    for n in nodes {
        v.extend([
            Marker::exact(Some(n), "dsoftbusd: transport selected tcp"),
            Marker::exact(Some(n), "dsoftbus:mux data ok (tcp)"),
            Marker::prefix(Some(n), "dsoftbus: udp-sec os disabled"),
            Marker::prefix(Some(n), "dsoftbus: udp-sec os unavailable"),
            Marker::prefix(Some(n), "SELFTEST: udp-sec fallback ok"),
            Marker::prefix(Some(n), "dsoftbusd: identity mismatch"),
        ]);
    }
    v
}

/// Every scenario, in the order `make test` runs them.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();

    let mut single = platform(None);
    single.extend([
        Marker::exact(
            None,
            "dsoftbusd: discovery up (udp multicast 239.42.0.1:37020)",
        ),
        Marker::exact(None, "dsoftbusd: discovery announce sent"),
    ]);
    v.push(Scenario {
        name: "single",
        about: "one node: virtio-net, DHCP, ICMP ping of the gateway, discovery up",
        nodes: 1,
        append: "nodes=1".into(),
        expect_pass: true,
        required: single,
        anywhere: vec![],
        forbidden: no_failure(),
        timeout: Duration::from_secs(60),
    });

    // The README's headline run: `make run NODES=2`, default `auto`.
    let mut headline = platform(Some("node-a"));
    headline.extend(udpsec_session("node-a", "node-b", true, 37031));
    headline.extend(platform(Some("node-b")));
    headline.extend(udpsec_session("node-b", "node-a", false, 37032));
    v.push(Scenario {
        name: "headline",
        about: "NODES=2, default transport auto: udp-sec carries the session, no fallback",
        nodes: 2,
        append: "nodes=2".into(),
        expect_pass: true,
        required: headline,
        anywhere: vec![found("node-b", "node-a")],
        forbidden: no_tcp_no_fallback(&["node-a", "node-b"]),
        timeout: Duration::from_secs(90),
    });

    let mut dual = platform(Some("node-a"));
    dual.extend(session("node-a", "node-b", true));
    dual.extend(platform(Some("node-b")));
    dual.extend(session("node-b", "node-a", false));
    let mut forbidden = no_failure();
    forbidden.extend([
        Marker::prefix(Some("node-a"), "dsoftbusd: identity mismatch"),
        Marker::prefix(Some("node-b"), "dsoftbusd: identity mismatch"),
    ]);
    v.push(Scenario {
        name: "dual",
        about: "NODES=2 transport=tcp: two stacks find each other, authenticate, bind identities, exchange data",
        nodes: 2,
        append: "nodes=2 transport=tcp".into(),
        expect_pass: true,
        required: dual,
        anywhere: vec![found("node-b", "node-a")],
        forbidden,
        timeout: Duration::from_secs(90),
    });

    let mut spoof = session("node-a", "node-b", true);
    spoof.extend(session("node-b", "node-a", false));
    let mut forbidden = no_failure();
    forbidden.extend(no_success("node-c"));
    v.push(Scenario {
        name: "spoof",
        about: "NODES=3 SCENARIO=spoof: a third stack claims node-b's id with its own keys and is rejected",
        nodes: 3,
        append: "nodes=3 transport=tcp scenario=spoof".into(),
        expect_pass: true,
        required: spoof,
        anywhere: vec![
            Marker::exact(Some("node-a"), "dsoftbusd: identity mismatch peer=node-b"),
            Marker::exact(Some("node-a"), "dsoftbusd: announce ignored (key-mismatch)"),
            Marker::exact(Some("node-b"), "dsoftbusd: announce ignored (self)"),
            Marker::exact(
                Some("node-c"),
                "dsoftbusd: session refused peer=node-a reason=refused",
            ),
        ],
        forbidden,
        timeout: Duration::from_secs(90),
    });

    let mut udpsec = platform(Some("node-a"));
    udpsec.extend(udpsec_session("node-a", "node-b", true, 37031));
    udpsec.extend(platform(Some("node-b")));
    udpsec.extend(udpsec_session("node-b", "node-a", false, 37032));
    v.push(Scenario {
        name: "udp-sec",
        about: "NODES=2 transport=udp-sec: the session, 1 MiB bulk echo and the slow sink over udp-sec",
        nodes: 2,
        append: "nodes=2 transport=udp-sec".into(),
        expect_pass: true,
        required: udpsec,
        anywhere: vec![found("node-b", "node-a")],
        forbidden: no_tcp_no_fallback(&["node-a", "node-b"]),
        timeout: Duration::from_secs(90),
    });

    let mut fallback = platform(Some("node-a"));
    fallback.extend(fallback_session("node-a", "node-b", true));
    fallback.extend(platform(Some("node-b")));
    fallback.extend(fallback_session("node-b", "node-a", false));
    let mut no_udpsec = no_failure();
    for n in ["node-a", "node-b"] {
        no_udpsec.extend([
            Marker::prefix(Some(n), "dsoftbus: udp-sec os listener up"),
            Marker::exact(Some(n), "dsoftbusd: transport selected udp-sec"),
            Marker::exact(Some(n), "dsoftbus: udp-sec os session ok"),
            Marker::prefix(Some(n), "dsoftbus: udp-sec os unavailable"),
        ]);
    }
    v.push(Scenario {
        name: "udp-sec-fallback",
        about: "NODES=2 transport=auto udpsec=off: udp-sec disabled, the session falls back to TCP",
        nodes: 2,
        append: "nodes=2 transport=auto udpsec=off".into(),
        expect_pass: true,
        required: fallback,
        anywhere: vec![found("node-b", "node-a")],
        forbidden: no_udpsec,
        timeout: Duration::from_secs(90),
    });

    // A runtime fallback: udp-sec is on but every udp-sec datagram is
    // dropped at the link, so node-a's handshake gets no answer at all.
    let mut unreachable = platform(Some("node-a"));
    unreachable.extend([
        Marker::prefix(Some("node-a"), "dsoftbusd: discovery up (udp "),
        Marker::exact(Some("node-a"), "dsoftbus: udp-sec os listener up 37031"),
        found("node-a", "node-b"),
        Marker::exact(Some("node-a"), "dsoftbusd: transport selected udp-sec"),
        Marker::exact(Some("node-a"), "dsoftbusd: session connect peer=node-b"),
        Marker::exact(
            Some("node-a"),
            "dsoftbus: udp-sec os unavailable peer=node-b reason=unreachable (fallback tcp)",
        ),
        Marker::exact(Some("node-a"), "dsoftbusd: transport selected tcp"),
        Marker::exact(Some("node-a"), "dsoftbusd: session connect peer=node-b"),
        Marker::exact(Some("node-a"), "dsoftbusd: identity bound peer=node-b"),
        Marker::exact(Some("node-a"), "dsoftbusd: auth ok"),
        Marker::exact(Some("node-a"), "dsoftbus:mux data ok (tcp)"),
        Marker::exact(Some("node-a"), "dsoftbusd: dual-node session ok"),
        Marker::exact(
            Some("node-a"),
            "SELFTEST: udp-sec fallback ok (peer=node-b unreachable)",
        ),
    ]);
    unreachable.extend(platform(Some("node-b")));
    unreachable.extend([
        Marker::exact(Some("node-b"), "dsoftbus: udp-sec os listener up 37032"),
        Marker::exact(Some("node-b"), "dsoftbusd: transport selected tcp"),
        Marker::exact(
            Some("node-b"),
            "dsoftbus: udp-sec os unavailable peer=node-a reason=peer-chose-tcp (fallback tcp)",
        ),
        Marker::exact(Some("node-b"), "dsoftbusd: auth ok"),
        Marker::exact(Some("node-b"), "dsoftbusd: dual-node session ok"),
        Marker::exact(
            Some("node-b"),
            "SELFTEST: udp-sec fallback ok (peer=node-a peer-chose-tcp)",
        ),
    ]);
    let mut forbidden = no_failure();
    for n in ["node-a", "node-b"] {
        forbidden.extend([
            Marker::exact(Some(n), "dsoftbus: udp-sec os session ok"),
            Marker::prefix(Some(n), "dsoftbus: udp-sec os disabled"),
        ]);
    }
    v.push(Scenario {
        name: "udp-sec-unreachable",
        about: "NODES=2 auto, udp-sec on but dropped at the link: a runtime fallback to TCP",
        nodes: 2,
        append: "nodes=2 transport=auto udpsec_drop=on".into(),
        expect_pass: true,
        required: unreachable,
        anywhere: vec![],
        forbidden,
        timeout: Duration::from_secs(90),
    });

    let mut spoof_udpsec = udpsec_session("node-a", "node-b", true, 37031);
    spoof_udpsec.extend(udpsec_session("node-b", "node-a", false, 37032));
    let mut forbidden = no_failure();
    forbidden.extend(no_success("node-c"));
    v.push(Scenario {
        name: "spoof-udp-sec",
        about: "NODES=3 SCENARIO=spoof transport=udp-sec: the impostor's udp-sec handshake is refused at message 3",
        nodes: 3,
        append: "nodes=3 transport=udp-sec scenario=spoof".into(),
        expect_pass: true,
        required: spoof_udpsec,
        anywhere: vec![
            Marker::exact(Some("node-a"), "dsoftbusd: identity mismatch peer=node-b"),
            Marker::exact(Some("node-a"), "dsoftbusd: announce ignored (key-mismatch)"),
            Marker::exact(Some("node-b"), "dsoftbusd: announce ignored (self)"),
            Marker::exact(
                Some("node-c"),
                "dsoftbusd: session refused peer=node-a reason=refused-identity-mismatch",
            ),
        ],
        forbidden,
        timeout: Duration::from_secs(90),
    });

    // Published services over the default transport: node-a serves `blob`
    // to node-b only; node-b puts 1 MiB and gets it back; node-c is refused
    // before a byte moves; every node asks the other two's `sd` directory.
    let mut services = Vec::new();
    for node in ["node-a", "node-b", "node-c"] {
        services.extend(platform(Some(node)));
    }
    let mut anywhere = Vec::new();
    for (node, peers) in [
        ("node-a", ["node-b", "node-c"]),
        ("node-b", ["node-a", "node-c"]),
        ("node-c", ["node-a", "node-b"]),
    ] {
        for peer in peers {
            anywhere.push(Marker::prefix(
                Some(node),
                &format!("dsoftbusd: session up peer={peer} transport="),
            ));
        }
        anywhere.push(Marker::exact(Some(node), "SELFTEST: rpc ok"));
    }
    anywhere.extend([
        Marker::prefix(
            Some("node-b"),
            "dsoftbusd: peer online device=node-a services=",
        ),
        Marker::exact(Some("node-b"), "SELFTEST: blob ok"),
        Marker::exact(
            Some("node-a"),
            "dsoftbusd: channel denied peer=node-c service=blob",
        ),
        Marker::exact(Some("node-c"), "SELFTEST: access denied ok"),
    ]);
    let mut forbidden = no_failure();
    forbidden.push(Marker::prefix(
        Some("node-a"),
        "dsoftbusd: channel denied peer=node-b",
    ));
    v.push(Scenario {
        name: "services",
        about: "NODES=3 SCENARIO=services: sd calls between every pair, a 1 MiB blob round trip, a blob channel denied by policy",
        nodes: 3,
        append: "nodes=3 scenario=services".into(),
        expect_pass: true,
        required: services,
        anywhere,
        forbidden,
        timeout: Duration::from_secs(90),
    });

    v.push(Scenario {
        name: "config-error",
        about: "an unknown kernel command-line option stops the image before networking",
        nodes: 1,
        append: "nodes=1 frobnicate=1".into(),
        expect_pass: false,
        required: vec![Marker::prefix(None, "config: error: frobnicate: ")],
        anywhere: vec![],
        forbidden: vec![
            Marker::prefix_anywhere("net: "),
            Marker::exact(None, "SELFTEST: all ok"),
            Marker::prefix_anywhere("PANIC"),
        ],
        timeout: Duration::from_secs(30),
    });

    v
}

/// The verdict every passing scenario ends with, after all its markers.
pub fn all_ok() -> Marker {
    Marker::exact(None, "SELFTEST: all ok")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_passing_scenario_forbids_failures_on_every_node() {
        for sc in all().iter().filter(|s| s.expect_pass) {
            for text in ["SELFTEST: FAIL", "PANIC"] {
                assert!(
                    sc.forbidden
                        .iter()
                        .any(|m| m.any_node && m.matches(&format!("[node-b] {text} x"))),
                    "{}: does not forbid {text} on every node",
                    sc.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let all = all();
        let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
