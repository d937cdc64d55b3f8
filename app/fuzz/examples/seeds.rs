//! Writes the seed corpus of `config_parse` into `seeds/config_parse/`: the
//! command lines the Makefile, the scenarios and the docs use, and one of
//! each documented error.
//! Run: `cargo +nightly run --release --example seeds` in `app/fuzz`.

use std::fs;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/config_parse");
    fs::create_dir_all(&dir).expect("mkdir");
    let lines: [(&str, &str); 14] = [
        ("empty", ""),
        ("make_run", "nodes=1 transport=auto scenario=normal "),
        (
            "two_nodes_udpsec",
            "nodes=2 transport=udp-sec scenario=normal log=info",
        ),
        (
            "spoof",
            "nodes=3 transport=tcp scenario=spoof udpsec=off pcap=1",
        ),
        (
            "timeouts",
            "dhcp_timeout_ms=100 ping_timeout_ms=60000 run_timeout_ms=600000 log=trace",
        ),
        ("unknown", "colour=blue"),
        ("bad_value", "nodes=4"),
        ("duplicate", "nodes=1 nodes=2"),
        ("empty_value", "nodes="),
        ("empty_key", "=1"),
        ("no_equals", "nodes"),
        (
            "long_value",
            "log=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        ("tabs", "nodes=2\ttransport=tcp\n log=debug"),
        ("non_printable", "nodes=1\u{7f}"),
    ];
    for (name, line) in lines {
        fs::write(dir.join(name), line).expect("write");
    }
    println!("seeds written to {}", dir.display());
}
