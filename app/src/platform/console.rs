//! Console lines on the serial port: markers (exact text, see
//! `dsb_app::marker`) and log lines from the `log` crate.
//!
//! Line formats (`<p>` is `[<device_id>] ` while a node is active, else empty):
//! - marker: `<p><marker text>`
//! - log:    `<p>  [<level>] <message>` (lower-case level; non-image targets such
//!   as `smoltcp::iface` are named before the message)

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use dsb_app::marker::{Marker, NodePrefix, NODE_IDS};

use super::serial;

/// Node whose prefix log lines get: 0 = none, i + 1 = `NODE_IDS[i]`.
static LOG_NODE: AtomicUsize = AtomicUsize::new(0);

/// Writer straight to COM1.
pub struct SerialWriter;

impl Write for SerialWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        serial::write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Prints one marker line with the given node prefix.
pub fn marker(prefix: NodePrefix, marker: &Marker<'_>) {
    // Writing to the serial port cannot fail.
    writeln!(SerialWriter, "{prefix}{marker}").ok();
}

/// Prefix subsequent log lines with this node's id (or nothing).
pub fn set_log_prefix(prefix: NodePrefix) {
    let index = prefix
        .0
        .and_then(|id| NODE_IDS.iter().position(|n| *n == id))
        .map_or(0, |i| i + 1);
    LOG_NODE.store(index, Ordering::Relaxed);
}

fn log_prefix() -> NodePrefix {
    match LOG_NODE.load(Ordering::Relaxed) {
        0 => NodePrefix(None),
        i => NodePrefix(NODE_IDS.get(i - 1).copied()),
    }
}

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let target = record.target();
        let ours = target.starts_with("dsoftbus") || target.starts_with("dsb_");
        let prefix = log_prefix();
        // Writing to the serial port cannot fail.
        if ours {
            writeln!(SerialWriter, "{prefix}  [{level}] {}", record.args()).ok();
        } else {
            writeln!(
                SerialWriter,
                "{prefix}  [{level}] {target}: {}",
                record.args()
            )
            .ok();
        }
    }

    fn flush(&self) {}
}

/// Installs the console logger with the given maximum level.
pub fn init_logger(level: log::LevelFilter) {
    // Fails only if a logger is already set, which leaves logging working.
    log::set_logger(&LOGGER).ok();
    log::set_max_level(level);
}
