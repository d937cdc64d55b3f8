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
    pub pattern: Pattern,
}

impl Marker {
    pub fn exact(node: Option<&str>, text: &str) -> Self {
        Marker {
            node: node.map(str::to_string),
            pattern: Pattern::Exact(text.to_string()),
        }
    }
    pub fn prefix(node: Option<&str>, text: &str) -> Self {
        Marker {
            node: node.map(str::to_string),
            pattern: Pattern::Prefix(text.to_string()),
        }
    }
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = &self.node {
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
/// for that node.
pub fn check_required(lines: &[Line], required: &[Marker]) -> Result<(), String> {
    // Per node, the index of the next line to search from.
    let mut cursors: Vec<(Option<String>, usize, Option<String>)> = Vec::new();
    for m in required {
        let slot = match cursors.iter().position(|(n, _, _)| *n == m.node) {
            Some(i) => i,
            None => {
                cursors.push((m.node.clone(), 0, None));
                cursors.len() - 1
            }
        };
        let (_, from, last) = &mut cursors[slot];
        let found = lines.iter().enumerate().skip(*from).find(|(_, l)| {
            let (node, text) = split_node(&l.text);
            node == m.node.as_deref() && m.pattern.matches(text)
        });
        match found {
            Some((i, _)) => {
                *from = i + 1;
                *last = Some(m.to_string());
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
    Ok(())
}

/// Checks that no forbidden marker appears anywhere.
pub fn check_forbidden(lines: &[Line], forbidden: &[Marker]) -> Result<(), String> {
    for m in forbidden {
        if let Some(l) = lines.iter().find(|l| {
            let (node, text) = split_node(&l.text);
            node == m.node.as_deref() && m.pattern.matches(text)
        }) {
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
    fn prefix_of_other_node_does_not_count() {
        let l = lines(&["[node-b] SELFTEST: icmp ping ok"]);
        let req = vec![Marker::exact(Some("node-a"), "SELFTEST: icmp ping ok")];
        assert!(check_required(&l, &req).is_err());
        assert!(check_forbidden(&l, &[Marker::prefix(Some("node-b"), "SELFTEST")]).is_err());
        assert!(check_forbidden(&l, &[Marker::prefix(None, "SELFTEST")]).is_ok());
    }
}
