//! Waiting for work without spinning. When no deadline is due and no frame
//! is waiting, [`wait_until`] arms the LAPIC one-shot timer for the next
//! deadline and halts the CPU; the timer or a NIC's MSI-X interrupt (a used
//! receive buffer) wakes it.
//!
//! The race between "nothing to do" and `hlt` is closed by keeping interrupts
//! disabled everywhere else: the caller checks for frames with interrupts
//! off, and `sti; hlt` enables them for exactly the `hlt` (the `sti` shadow).
//! An interrupt that became pending after the check (a frame that arrived in
//! between) is delivered right there and `hlt` returns at once.
//!
//! Set-up is lazy and all-or-nothing: [`attach_nic`] enables the IDT and the
//! LAPIC on first use and routes the NIC's queues to [`NIC_VECTOR`]. If any
//! step fails (or `idle=poll`), [`wait_until`] returns at once and the loop
//! busy-polls as before.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use smoltcp::time::Instant;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};

use super::idt::{self, NIC_VECTOR};
use super::nic::VirtioNic;
use super::pci::{self, PortCam};
use super::{clock, lapic};

/// Longest single halt; the loop re-checks its deadlines at least this often.
pub const MAX_HALT_US: u64 = 1_000_000;
/// virtio-net queues routed (receive, transmit).
const NIC_QUEUES: u16 = 2;

/// 0 = not tried, 1 = LAPIC + IDT ready, 2 = unusable.
static STATE: AtomicU64 = AtomicU64::new(0);
/// Every NIC got its interrupt route (halting is safe).
static NICS_OK: AtomicBool = AtomicBool::new(true);
static ANY_NIC: AtomicBool = AtomicBool::new(false);
/// Halts taken and their total length, for the log.
static HALTS: AtomicU64 = AtomicU64::new(0);
static HALTED_US: AtomicU64 = AtomicU64::new(0);

fn ensure_init() -> bool {
    match STATE.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    idt::init();
    match lapic::init() {
        Ok(()) => {
            log::info!(
                "idle: lapic timer {} kHz, halting when idle",
                lapic::timer_hz() / 1000
            );
            STATE.store(1, Ordering::Relaxed);
            true
        }
        Err(e) => {
            log::warn!("idle: lapic unusable ({}); busy-polling", e.label());
            STATE.store(2, Ordering::Relaxed);
            false
        }
    }
}

/// Routes the NIC at `df` (already initialised) to [`NIC_VECTOR`] and turns
/// its used-buffer notifications on. With `halt == false` (`idle=poll`) it
/// only records that this NIC is polled, which disables halting.
pub fn attach_nic(
    root: &mut PciRoot<PortCam>,
    df: DeviceFunction,
    nic: &mut VirtioNic,
    halt: bool,
) {
    ANY_NIC.store(true, Ordering::Relaxed);
    if !halt || !ensure_init() {
        NICS_OK.store(false, Ordering::Relaxed);
        return;
    }
    match pci::enable_msix(root, df, NIC_VECTOR, lapic::id(), NIC_QUEUES) {
        Ok(()) => {
            nic.enable_interrupts();
            log::info!("idle: {df} interrupts via MSI-X vector {NIC_VECTOR:#x}");
        }
        Err(e) => {
            log::warn!("idle: {df}: no interrupts ({}); busy-polling", e.label());
            NICS_OK.store(false, Ordering::Relaxed);
        }
    }
}

/// Whether [`wait_until`] halts (every NIC interrupts, the timer works).
pub fn enabled() -> bool {
    STATE.load(Ordering::Relaxed) == 1
        && ANY_NIC.load(Ordering::Relaxed)
        && NICS_OK.load(Ordering::Relaxed)
}

/// Halts until `deadline` or an interrupt, whichever comes first (returns at
/// once when `deadline` has passed or halting is not enabled). Call with
/// interrupts disabled, right after checking that no frame is waiting.
pub fn wait_until(deadline: Instant) {
    if !enabled() {
        core::hint::spin_loop();
        return;
    }
    let now = clock::now();
    if deadline <= now {
        return;
    }
    let us = (deadline - now).total_micros().min(MAX_HALT_US);
    lapic::arm_us(us);
    // SAFETY: enables interrupts for exactly the `hlt` (sti's one-instruction
    // shadow), then disables them again; the handlers only count and EOI.
    unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
    lapic::disarm();
    HALTS.fetch_add(1, Ordering::Relaxed);
    let slept = clock::now() - now;
    HALTED_US.fetch_add(slept.total_micros(), Ordering::Relaxed);
}

/// (halts, total halted microseconds, timer interrupts, NIC interrupts, other interrupts).
pub fn stats() -> (u64, u64, u64, u64, u64) {
    let (timer, nic, other) = idt::counts();
    (
        HALTS.load(Ordering::Relaxed),
        HALTED_US.load(Ordering::Relaxed),
        timer,
        nic,
        other,
    )
}
