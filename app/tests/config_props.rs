//! Property tests of the command-line parser: any byte string is either a
//! config within every documented limit or a labelled error whose message names
//! a short, printable option; it never panics.

use dsb_app::config::{Config, MAX_CMDLINE_LEN, MAX_NODES};
use proptest::prelude::*;

fn check(line: &[u8]) {
    match Config::parse(line) {
        Ok(c) => {
            assert!((1..=MAX_NODES).contains(&c.nodes));
            assert!((100..=60_000).contains(&c.dhcp_timeout_ms));
            assert!((100..=60_000).contains(&c.ping_timeout_ms));
            assert!((1000..=600_000).contains(&c.run_timeout_ms));
            assert!(line.len() <= MAX_CMDLINE_LEN);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!e.label().is_empty());
            assert!(e.option().len() <= 40, "{text}");
            assert!(
                text.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                "{text:?}"
            );
            assert!(text.len() < 200, "{text}");
        }
    }
}

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
    fn in_range_timeouts_round_trip(ms in 100u32..=60_000) {
        let c = Config::parse(format!("dhcp_timeout_ms={ms} ping_timeout_ms={ms}").as_bytes()).unwrap();
        prop_assert_eq!(c.dhcp_timeout_ms, ms);
        prop_assert_eq!(c.ping_timeout_ms, ms);
    }
}
