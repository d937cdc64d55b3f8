//! COM1 (16550 UART at 0x3f8), output only, polled. The FIFO is enabled and the
//! transmitter is checked once per 16 bytes (THR empty means the whole FIFO is
//! free), which keeps port accesses (VM exits under KVM) low.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::port::{inb, outb};

/// Base I/O port of COM1.
pub const COM1: u16 = 0x3f8;
/// Bytes the transmit FIFO takes once THR-empty is seen.
const FIFO_DEPTH: usize = 16;
/// Polls of the line status register before a byte is dropped (never hang on a dead UART).
const LSR_POLL_LIMIT: u32 = 100_000;

const REG_DATA: u16 = 0;
const REG_IER: u16 = 1;
const REG_FCR: u16 = 2;
const REG_LCR: u16 = 3;
const REG_MCR: u16 = 4;
const REG_LSR: u16 = 5;
const LSR_THR_EMPTY: u8 = 0x20;

/// Bytes that may still be written before LSR must be checked again.
static CREDIT: AtomicUsize = AtomicUsize::new(0);

/// Sets 115200 8N1, FIFO on, interrupts off.
pub fn init() {
    // SAFETY: COM1's registers; this sequence only configures the UART.
    unsafe {
        outb(COM1 + REG_IER, 0x00); // no interrupts
        outb(COM1 + REG_LCR, 0x80); // DLAB on
        outb(COM1 + REG_DATA, 0x01); // divisor 1 = 115200 baud
        outb(COM1 + REG_IER, 0x00);
        outb(COM1 + REG_LCR, 0x03); // 8N1, DLAB off
        outb(COM1 + REG_FCR, 0xC7); // FIFO on, clear both, 14-byte trigger
        outb(COM1 + REG_MCR, 0x03); // DTR + RTS, no OUT2 (no IRQ)
    }
    CREDIT.store(0, Ordering::Relaxed);
}

/// Writes bytes, waiting (boundedly) for FIFO space.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if CREDIT.load(Ordering::Relaxed) == 0 {
            wait_fifo_empty();
            CREDIT.store(FIFO_DEPTH, Ordering::Relaxed);
        }
        // SAFETY: writing COM1's data register transmits one byte.
        unsafe { outb(COM1 + REG_DATA, b) };
        CREDIT.fetch_sub(1, Ordering::Relaxed);
    }
}

fn wait_fifo_empty() {
    for _ in 0..LSR_POLL_LIMIT {
        // SAFETY: reading the line status register has no side effect on output.
        if unsafe { inb(COM1 + REG_LSR) } & LSR_THR_EMPTY != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}
