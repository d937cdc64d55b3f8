//! Serial-marker matching: the lines a scenario requires, per node and in
//! order, and the lines it forbids.
//!
//! With more than one node every line of a node starts with `[<device_id>] `;
//! lines without a prefix belong to the image as a whole.

use crate::qemu::Line;

/// How one expected line is matched (after the node prefix is removed).
#[derive(Clone, Debug)]
pub enum Pattern {
    /// The whole line, exactly.
    Exact(String),
    /// A line starting with this text (for lines carrying values: MAC, IP).
    Prefix(String),
}

impl Pattern {
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Exact(s) => line == s,
            Pattern::Prefix(s) => line.starts_with(s.as_str()),
        }
    }
}

/// One expected (or forbidden) marker of one node.
#[derive(Clone, Debug)]
pub struct Marker {
    /// `None` for unprefixed lines.
    pub node: Option<String>,
    /// Matches lines of every node and unprefixed lines (`node` is ignored).
    pub any_node: bool,
    pub pattern: Pattern,
}

impl Marker {
    pub fn exact(node: Option<&str>, text: &str) -> Self {
        Marker {
            node: node.map(str::to_string),
            any_node: false,
            pattern: Pattern::Exact(text.to_string()),
        }
    }
    pub fn prefix(node: Option<&str>, text: &str) -> Self {
        Marker {
            node: node.map(str::to_string),
            any_node: false,
            pattern: Pattern::Prefix(text.to_string()),
        }
    }
    /// A line starting with `text` from any node or from the image itself
    /// (for forbidden markers such as `SELFTEST: FAIL`).
    pub fn prefix_anywhere(text: &str) -> Self {
        Marker {
            node: None,
            any_node: true,
            pattern: Pattern::Prefix(text.to_string()),
        }
    }

    /// Whether `line` (a whole console line) is this marker.
    pub fn matches(&self, line: &str) -> bool {
        let (node, text) = split_node(line);
        (self.any_node || node == self.node.as_deref()) && self.pattern.matches(text)
    }
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.any_node {
            write!(f, "[*] ")?;
        } else if let Some(n) = &self.node {
            write!(f, "[{n}] ")?;
        }
        match &self.pattern {
            Pattern::Exact(s) => write!(f, "{s}"),
            Pattern::Prefix(s) => write!(f, "{s}..."),
        }
    }
}

/// Splits `[node] rest` into `(Some(node), rest)`; other lines are `(None, line)`.
pub fn split_node(line: &str) -> (Option<&str>, &str) {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some(end) = rest.find("] ") {
            let id = &rest[..end];
            let valid = !id.is_empty()
                && id.len() <= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if valid {
                return (Some(id), &rest[end + 2..]);
            }
        }
    }
    (None, line)
}

/// Checks that every required marker appears, each node's in order.
/// Returns the first missing marker and, for context, the last one matched
/// for that node; on success, the index of the last line matched.
pub fn check_required(lines: &[Line], required: &[Marker]) -> Result<usize, String> {
    // Per node, the index of the next line to search from.
    let mut cursors: Vec<(Option<String>, usize, Option<String>)> = Vec::new();
    let mut last_line = 0;
    for m in required {
        let slot = match cursors.iter().position(|(n, _, _)| *n == m.node) {
            Some(i) => i,
            None => {
                cursors.push((m.node.clone(), 0, None));
                cursors.len() - 1
            }
        };
        let (_, from, last) = &mut cursors[slot];
        let found = lines
            .iter()
            .enumerate()
            .skip(*from)
            .find(|(_, l)| m.matches(&l.text));
        match found {
            Some((i, _)) => {
                *from = i + 1;
                *last = Some(m.to_string());
                last_line = last_line.max(i);
            }
            None => {
                let after = match last {
                    Some(prev) => format!(" (after `{prev}`)"),
                    None => String::new(),
                };
                return Err(format!("missing marker `{m}`{after}"));
            }
        }
    }
    Ok(last_line)
}

/// Checks that `verdict` (e.g. the unprefixed `SELFTEST: all ok`) comes
/// after every required marker of every node: a run may only pass once all
/// it claims has been shown.
pub fn check_verdict_last(
    lines: &[Line],
    required: &[Marker],
    verdict: &Marker,
) -> Result<(), String> {
    let last = check_required(lines, required)?;
    match lines.iter().position(|l| verdict.matches(&l.text)) {
        Some(i) if i > last => Ok(()),
        Some(_) => Err(format!(
            "`{verdict}` printed before the last required marker ({:?})",
            lines.get(last).map(|l| l.text.as_str()).unwrap_or("")
        )),
        None => Err(format!("missing marker `{verdict}`")),
    }
}

/// Checks that no forbidden marker appears anywhere.
pub fn check_forbidden(lines: &[Line], forbidden: &[Marker]) -> Result<(), String> {
    for m in forbidden {
        if let Some(l) = lines.iter().find(|l| m.matches(&l.text)) {
            return Err(format!("forbidden marker `{m}` appeared: {:?}", l.text));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lines(v: &[&str]) -> Vec<Line> {
        v.iter()
            .map(|t| Line {
                at: Duration::ZERO,
                text: t.to_string(),
            })
            .collect()
    }

    #[test]
    fn order_is_per_node() {
        let l = lines(&[
            "[node-b] net: smoltcp iface up",
            "[node-a] net: smoltcp iface up",
            "[node-a] SELFTEST: icmp ping ok",
            "[node-b] SELFTEST: icmp ping ok",
            "SELFTEST: all ok",
        ]);
        let req = vec![
            Marker::exact(Some("node-a"), "net: smoltcp iface up"),
            Marker::exact(Some("node-a"), "SELFTEST: icmp ping ok"),
            Marker::exact(Some("node-b"), "net: smoltcp iface up"),
            Marker::exact(Some("node-b"), "SELFTEST: icmp ping ok"),
            Marker::exact(None, "SELFTEST: all ok"),
        ];
        check_required(&l, &req).unwrap();
    }

    #[test]
    fn out_of_order_names_first_missing() {
        let l = lines(&[
            "SELFTEST: icmp ping ok",
            "net: dhcp bound 10.0.2.15/24 gw=10.0.2.2",
        ]);
        let req = vec![
            Marker::prefix(None, "net: dhcp bound "),
            Marker::exact(None, "SELFTEST: icmp ping ok"),
        ];
        let err = check_required(&l, &req).unwrap_err();
        assert!(err.contains("SELFTEST: icmp ping ok"), "{err}");
        assert!(err.contains("after `net: dhcp bound ...`"), "{err}");
    }

    #[test]
    fn forbidden_anywhere_catches_prefixed_failures() {
        let l = lines(&["[node-b] SELFTEST: FAIL bulk mismatch", "PANIC: boom"]);
        let fail = Marker::prefix_anywhere("SELFTEST: FAIL");
        assert!(check_forbidden(&l, std::slice::from_ref(&fail)).is_err());
        assert!(check_forbidden(&l[1..], std::slice::from_ref(&fail)).is_ok());
        assert!(check_forbidden(&l[1..], &[Marker::prefix_anywhere("PANIC")]).is_err());
    }

    #[test]
    fn the_verdict_must_follow_every_nodes_last_marker() {
        let req = vec![
            Marker::exact(Some("node-a"), "dsoftbusd: auth ok"),
            Marker::exact(Some("node-b"), "dsoftbusd: auth ok"),
        ];
        let all_ok = Marker::exact(None, "SELFTEST: all ok");
        let good = lines(&[
            "[node-a] dsoftbusd: auth ok",
            "[node-b] dsoftbusd: auth ok",
            "SELFTEST: all ok",
        ]);
        check_verdict_last(&good, &req, &all_ok).unwrap();
        let early = lines(&[
            "[node-a] dsoftbusd: auth ok",
            "SELFTEST: all ok",
            "[node-b] dsoftbusd: auth ok",
        ]);
        let err = check_verdict_last(&early, &req, &all_ok).unwrap_err();
        assert!(err.contains("before the last required marker"), "{err}");
    }

    #[test]
    fn prefix_of_other_node_does_not_count() {
        let l = lines(&["[node-b] SELFTEST: icmp ping ok"]);
        let req = vec![Marker::exact(Some("node-a"), "SELFTEST: icmp ping ok")];
        assert!(check_required(&l, &req).is_err());
        assert!(check_forbidden(&l, &[Marker::prefix(Some("node-b"), "SELFTEST")]).is_err());
        assert!(check_forbidden(&l, &[Marker::prefix(None, "SELFTEST")]).is_ok());
    }
}
