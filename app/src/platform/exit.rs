//! Leaving the machine: QEMU's `isa-debug-exit` device at port 0xf4
//! (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`). Writing `v` makes QEMU exit
//! with status `(v << 1) | 1`: 0x10 -> 33 (success), 0x11 -> 35 (failure).
//! Without the device the CPU halts for good.

use super::port::outl;

/// I/O port of `isa-debug-exit`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Value meaning success: QEMU exits with status 33.
pub const EXIT_SUCCESS: u32 = 0x10;
/// Value meaning failure: QEMU exits with status 35.
pub const EXIT_FAILURE: u32 = 0x11;

/// Ends the run successfully (QEMU status 33).
pub fn exit_success() -> ! {
    exit_with(EXIT_SUCCESS)
}

/// Ends the run with a failure (QEMU status 35).
pub fn exit_failure() -> ! {
    exit_with(EXIT_FAILURE)
}

fn exit_with(code: u32) -> ! {
    // SAFETY: port 0xf4 is the debug-exit device (or nothing); writing it ends the VM.
    unsafe { outl(DEBUG_EXIT_PORT, code) };
    halt_forever()
}

/// Stops the CPU (interrupts are disabled, so `hlt` never returns).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops this (single) CPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
