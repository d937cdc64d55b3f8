//! Fuzz the kernel command-line parser (`Config::parse`): never panics; a
//! parsed config is within every documented limit and round-trips through
//! its canonical command line; an error names a short printable option with
//! a stable label; white space (kind and amount) never changes the verdict.
#![no_main]

use dsb_app::config::{Config, MAX_CMDLINE_LEN, MAX_NODES};
use libfuzzer_sys::fuzz_target;

/// The canonical command line of a config (every option, in table order).
fn render(c: &Config) -> String {
    format!(
        "nodes={} transport={} udpsec={} scenario={} log={} pcap={} dhcp_timeout_ms={} \
         ping_timeout_ms={} run_timeout_ms={}",
        c.nodes,
        c.transport.label(),
        if c.udpsec { "on" } else { "off" },
        c.scenario.label(),
        format!("{:?}", c.log).to_ascii_lowercase(),
        u8::from(c.pcap),
        c.dhcp_timeout_ms,
        c.ping_timeout_ms,
        c.run_timeout_ms,
    )
}

fuzz_target!(|data: &[u8]| {
    let verdict = Config::parse(data);
    match &verdict {
        Ok(c) => {
            assert!(data.len() <= MAX_CMDLINE_LEN);
            assert!((1..=MAX_NODES).contains(&c.nodes));
            assert!((100..=60_000).contains(&c.dhcp_timeout_ms));
            assert!((100..=60_000).contains(&c.ping_timeout_ms));
            assert!((1000..=600_000).contains(&c.run_timeout_ms));
            let line = render(c);
            assert_eq!(Config::parse(line.as_bytes()).as_ref(), Ok(c), "{line}");
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
    // Re-spacing the tokens with single spaces gives the same verdict.
    if data.len() <= MAX_CMDLINE_LEN
        && data
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        let tokens: Vec<&[u8]> = data
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        let respaced = tokens.join(&b' ');
        let again = Config::parse(&respaced);
        match (&verdict, &again) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.label(), b.label(), "{a} / {b}"),
            _ => panic!("white space changed the verdict: {verdict:?} / {again:?}"),
        }
    }
});
