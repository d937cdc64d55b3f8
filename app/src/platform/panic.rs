//! Panic handler: prints `PANIC: <message>` (unprefixed), then the location as a
//! log-style line, and exits with failure. A panic while panicking exits at once.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use super::console::SerialWriter;
use super::exit::exit_failure;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        exit_failure();
    }
    // Start on a fresh line in case the panic interrupted one; writing cannot fail.
    writeln!(SerialWriter).ok();
    writeln!(SerialWriter, "PANIC: {}", info.message()).ok();
    if let Some(loc) = info.location() {
        writeln!(
            SerialWriter,
            "  [error] panic at {}:{}",
            loc.file(),
            loc.line()
        )
        .ok();
    }
    exit_failure()
}
