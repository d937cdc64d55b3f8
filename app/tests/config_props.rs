//! Property tests of the command-line parser: any byte string is either a
//! config within every documented limit or a labelled error whose message names
//! a short, printable option; it never panics. A config's canonical line
//! (`Display`) parses back to it and is never longer than the line it came from.

use dsb_app::config::Config;
use proptest::prelude::*;

// The `config_parse` fuzz target's property, shared: limits, canonical
// round trip, labelled short errors, white space never changes the verdict.
#[allow(dead_code, unused_imports)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

fn check(line: &[u8]) {
    harness::run_config_parse(line);
}

const KEY: &str = "node-b:abababababababababababababababababababababababababababababababab";

/// Every option with some of its valid values.
const OPTIONS: [(&str, &[&str]); 22] = [
    ("nodes", &["1", "2", "3"]),
    ("transport", &["auto", "tcp", "udp-sec"]),
    ("udpsec", &["on", "off"]),
    ("scenario", &["normal", "spoof", "services"]),
    ("log", &["error", "warn", "info", "debug", "trace"]),
    ("pcap", &["0", "1"]),
    ("dhcp_timeout_ms", &["100", "5000", "0777", "60000"]),
    ("ping_timeout_ms", &["100", "3000", "60000"]),
    ("run_timeout_ms", &["1000", "30000", "600000"]),
    ("udpsec_drop", &["on", "off"]),
    ("ip", &["auto", "dhcp", "10.0.2.77/24", "192.168.1.2/30"]),
    ("gateway", &["required", "optional"]),
    ("idle", &["halt", "poll"]),
    ("idle_test_ms", &["0", "250", "600000"]),
    ("mode", &["selftest", "serve"]),
    ("id", &["node-1", "A.b_c-9"]),
    ("trust", &[KEY, "x:0000000000000000000000000000000000000000000000000000000000000001,y:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"]),
    ("tofu", &["on", "off"]),
    ("allow", &["blob:node-b", "blob:node-b,sd:*", "ping:*"]),
    ("udpsec_cc", &["cubic", "reno"]),
    ("echo_bytes", &["0", "1048576", "16777216"]),
    ("dial", &["lower-id", "everyone"]),
];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..1200)) {
        check(&line);
    }

    #[test]
    fn plausible_lines_never_panic(
        parts in proptest::collection::vec(
            (
                prop_oneof![
                    Just("nodes"), Just("transport"), Just("udpsec"), Just("scenario"),
                    Just("log"), Just("pcap"), Just("dhcp_timeout_ms"), Just("ping_timeout_ms"),
                    Just("run_timeout_ms"), Just("bogus"), Just(""),
                ],
                "[ -~]{0,12}",
            ),
            0..8,
        )
    ) {
        let line: Vec<String> = parts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        check(line.join(" ").as_bytes());
    }

    #[test]
    fn valid_lines_round_trip_through_their_canonical_form(
        parts in proptest::sample::subsequence(OPTIONS.to_vec(), 0..OPTIONS.len()),
        picks in proptest::collection::vec(any::<usize>(), OPTIONS.len()),
        spaces in proptest::collection::vec("[ \t]{1,3}", OPTIONS.len()),
    ) {
        let mut line = String::new();
        for (i, (key, values)) in parts.iter().enumerate() {
            line.push_str(&spaces[i]);
            line.push_str(&format!("{key}={}", values[picks[i] % values.len()]));
        }
        let c = Config::parse(line.as_bytes());
        // Only the documented combination rules may refuse a line of valid values.
        if let Err(e) = &c {
            prop_assert_eq!(e.label(), "conflict", "{} ({})", e, line);
        }
        check(line.as_bytes());
    }

    #[test]
    fn in_range_timeouts_round_trip(ms in 100u32..=60_000) {
        let c = Config::parse(format!("dhcp_timeout_ms={ms} ping_timeout_ms={ms}").as_bytes()).unwrap();
        prop_assert_eq!(c.dhcp_timeout_ms, ms);
        prop_assert_eq!(c.ping_timeout_ms, ms);
    }
}
