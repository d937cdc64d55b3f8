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

/// Every scenario, in the order `make test` runs them.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();

    let mut single = platform(None);
    single.push(Marker::exact(None, "SELFTEST: all ok"));
    v.push(Scenario {
        name: "single",
        about: "one node: virtio-net, DHCP, ICMP ping of the gateway",
        nodes: 1,
        append: "nodes=1".into(),
        expect_pass: true,
        required: single,
        forbidden: vec![Marker::prefix(None, "SELFTEST: FAIL")],
        timeout: Duration::from_secs(60),
    });

    let mut dual = platform(Some("node-a"));
    dual.extend(platform(Some("node-b")));
    dual.push(Marker::exact(None, "SELFTEST: all ok"));
    v.push(Scenario {
        name: "dual-platform",
        about: "two NICs, two smoltcp stacks: each takes its own DHCP lease and pings the gateway",
        nodes: 2,
        append: "nodes=2".into(),
        expect_pass: true,
        required: dual,
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
        forbidden: vec![
            Marker::prefix(None, "net: "),
            Marker::exact(None, "SELFTEST: all ok"),
        ],
        timeout: Duration::from_secs(30),
    });

    v
}
