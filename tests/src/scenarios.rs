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
fn session(node: &str, peer: &str, connects: bool) -> Vec<Marker> {
    let n = Some(node);
    let mut v = vec![
        Marker::prefix(n, "dsoftbusd: discovery up (udp "),
        Marker::exact(n, &format!("dsoftbusd: discovery peer found device={peer}")),
        Marker::exact(n, "dsoftbusd: transport selected tcp"),
    ];
    if connects {
        v.push(Marker::exact(
            n,
            &format!("dsoftbusd: session connect peer={peer}"),
        ));
    }
    v.extend([
        Marker::exact(n, &format!("dsoftbusd: identity bound peer={peer}")),
        Marker::exact(n, "dsoftbusd: auth ok"),
        Marker::exact(n, "SELFTEST: dsoftbus ping ok"),
        Marker::exact(n, "dsoftbus:mux data ok (tcp)"),
        Marker::exact(n, "dsoftbusd: dual-node session ok"),
    ]);
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
