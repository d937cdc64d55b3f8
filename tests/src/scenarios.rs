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
    v.extend([
        Marker::exact(n, &format!("dsoftbusd: discovery peer found device={peer}")),
        Marker::exact(n, &format!("dsoftbusd: transport selected {kind}")),
    ]);
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
    v.push(Marker::exact(n, "SELFTEST: udp-sec fallback ok"));
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
        Marker::exact(None, "SELFTEST: all ok"),
    ]);
    v.push(Scenario {
        name: "single",
        about: "one node: virtio-net, DHCP, ICMP ping of the gateway, discovery up",
        nodes: 1,
        append: "nodes=1".into(),
        expect_pass: true,
        required: single,
        anywhere: vec![],
        forbidden: vec![Marker::prefix(None, "SELFTEST: FAIL")],
        timeout: Duration::from_secs(60),
    });

    let mut dual = platform(Some("node-a"));
    dual.extend(session("node-a", "node-b", true));
    dual.extend(platform(Some("node-b")));
    dual.extend(session("node-b", "node-a", false));
    dual.push(Marker::exact(None, "SELFTEST: all ok"));
    v.push(Scenario {
        name: "dual",
        about: "NODES=2: two stacks find each other, authenticate, bind identities, exchange data",
        nodes: 2,
        append: "nodes=2 transport=tcp".into(),
        expect_pass: true,
        required: dual,
        anywhere: vec![],
        forbidden: vec![
            Marker::prefix(None, "SELFTEST: FAIL"),
            Marker::prefix(Some("node-a"), "dsoftbusd: identity mismatch"),
            Marker::prefix(Some("node-b"), "dsoftbusd: identity mismatch"),
        ],
        timeout: Duration::from_secs(90),
    });

    let mut spoof = session("node-a", "node-b", true);
    spoof.extend(session("node-b", "node-a", false));
    spoof.push(Marker::exact(None, "SELFTEST: all ok"));
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
        ],
        forbidden: vec![Marker::prefix(None, "SELFTEST: FAIL")],
        timeout: Duration::from_secs(90),
    });

    let mut udpsec = platform(Some("node-a"));
    udpsec.extend(udpsec_session("node-a", "node-b", true, 37031));
    udpsec.extend(platform(Some("node-b")));
    udpsec.extend(udpsec_session("node-b", "node-a", false, 37032));
    udpsec.push(Marker::exact(None, "SELFTEST: all ok"));
    let mut no_tcp_no_fallback = vec![Marker::prefix(None, "SELFTEST: FAIL")];
    for n in ["node-a", "node-b"] {
        no_tcp_no_fallback.extend([
            Marker::exact(Some(n), "dsoftbusd: transport selected tcp"),
            Marker::exact(Some(n), "dsoftbus:mux data ok (tcp)"),
            Marker::prefix(Some(n), "dsoftbus: udp-sec os disabled"),
            Marker::prefix(Some(n), "dsoftbusd: identity mismatch"),
        ]);
    }
    v.push(Scenario {
        name: "udp-sec",
        about: "NODES=2 transport=udp-sec: the session, 1 MiB bulk echo and the slow sink over udp-sec",
        nodes: 2,
        append: "nodes=2 transport=udp-sec".into(),
        expect_pass: true,
        required: udpsec,
        anywhere: vec![],
        forbidden: no_tcp_no_fallback,
        timeout: Duration::from_secs(90),
    });

    let mut fallback = platform(Some("node-a"));
    fallback.extend(fallback_session("node-a", "node-b", true));
    fallback.extend(platform(Some("node-b")));
    fallback.extend(fallback_session("node-b", "node-a", false));
    fallback.push(Marker::exact(None, "SELFTEST: all ok"));
    let mut no_udpsec = vec![Marker::prefix(None, "SELFTEST: FAIL")];
    for n in ["node-a", "node-b"] {
        no_udpsec.extend([
            Marker::prefix(Some(n), "dsoftbus: udp-sec os listener up"),
            Marker::exact(Some(n), "dsoftbusd: transport selected udp-sec"),
            Marker::exact(Some(n), "dsoftbus: udp-sec os session ok"),
        ]);
    }
    v.push(Scenario {
        name: "udp-sec-fallback",
        about: "NODES=2 transport=auto udpsec=off: udp-sec disabled, the session falls back to TCP",
        nodes: 2,
        append: "nodes=2 transport=auto udpsec=off".into(),
        expect_pass: true,
        required: fallback,
        anywhere: vec![],
        forbidden: no_udpsec,
        timeout: Duration::from_secs(90),
    });

    let mut spoof_udpsec = udpsec_session("node-a", "node-b", true, 37031);
    spoof_udpsec.extend(udpsec_session("node-b", "node-a", false, 37032));
    spoof_udpsec.push(Marker::exact(None, "SELFTEST: all ok"));
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
        ],
        forbidden: vec![Marker::prefix(None, "SELFTEST: FAIL")],
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
            Marker::prefix(None, "net: "),
            Marker::exact(None, "SELFTEST: all ok"),
        ],
        timeout: Duration::from_secs(30),
    });

    v
}
