//! x86 port I/O (`in`/`out`), the only way to reach the UART, PIT, PCI
//! configuration space and QEMU's debug-exit device on `-machine pc`.

use core::arch::asm;

/// Writes one byte to an I/O port.
///
/// # Safety
/// The caller must know what the device at `port` does with the write.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: port I/O touches no memory; the caller vouches for the device effect.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads one byte from an I/O port.
///
/// # Safety
/// The caller must know that reading `port` has no unwanted side effect.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: port I/O touches no memory; the caller vouches for the device effect.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Writes a 32-bit value to an I/O port.
///
/// # Safety
/// The caller must know what the device at `port` does with the write.
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: port I/O touches no memory; the caller vouches for the device effect.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a 32-bit value from an I/O port.
///
/// # Safety
/// The caller must know that reading `port` has no unwanted side effect.
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: port I/O touches no memory; the caller vouches for the device effect.
    unsafe {
        asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Writes a 16-bit value to an I/O port.
///
/// # Safety
/// The caller must know what the device at `port` does with the write.
#[inline]
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: port I/O touches no memory; the caller vouches for the device effect.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    }
}
