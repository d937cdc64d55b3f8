//! The local APIC: enabled in xAPIC (MMIO) mode with a spurious vector, used
//! for end-of-interrupt and its one-shot timer, which wakes a halted CPU at
//! the next deadline. The timer's rate is measured once against the
//! (already calibrated) TSC. The 8259 PICs are remapped away from the
//! exception vectors and fully masked: nothing else may interrupt.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use super::clock;
use super::idt::{self, SPURIOUS_VECTOR, TIMER_VECTOR};
use super::port::outb;

/// `IA32_APIC_BASE`.
const APIC_BASE_MSR: u32 = 0x1b;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
/// xAPIC MMIO offsets.
const REG_ID: usize = 0x20;
const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_INITIAL_COUNT: usize = 0x380;
const REG_CURRENT_COUNT: usize = 0x390;
const REG_DIVIDE: usize = 0x3e0;
/// Divide configuration 0b0011: the timer counts at bus clock / 16.
const DIVIDE_BY_16: u32 = 0b0011;
const LVT_MASKED: u32 = 1 << 16;
/// Length of the rate measurement.
const CALIBRATION_US: u64 = 2_000;
/// Plausible timer rates (QEMU: 1 GHz / 16 = 62.5 MHz).
const MIN_TIMER_HZ: u64 = 100_000;
const MAX_TIMER_HZ: u64 = 10_000_000_000;

static BASE: AtomicU64 = AtomicU64::new(0);
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// Why the LAPIC cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LapicError {
    /// CPUID says there is no APIC.
    Absent,
    /// The APIC base is above the 4 GiB identity map.
    BaseUnmapped,
    /// The timer did not count at a plausible rate.
    TimerRate,
}

impl LapicError {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            LapicError::Absent => "no-apic",
            LapicError::BaseUnmapped => "apic-base-unmapped",
            LapicError::TimerRate => "timer-rate",
        }
    }
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads a model-specific register that exists on every x86_64 with an APIC.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: writes IA32_APIC_BASE with its own value plus the enable bit.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nomem, nostack, preserves_flags))
    };
}

fn reg(offset: usize) -> *mut u32 {
    (BASE.load(Ordering::Relaxed) as usize + offset) as *mut u32
}

fn read(offset: usize) -> u32 {
    // SAFETY: the LAPIC page is identity-mapped and `offset` is a register.
    unsafe { core::ptr::read_volatile(reg(offset)) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile(reg(offset), value) }
}

fn has_apic() -> bool {
    let edx: u32;
    // SAFETY: CPUID leaf 1 is always available on x86_64; rbx is saved by hand
    // because LLVM reserves it.
    unsafe {
        asm!("mov {tmp:r}, rbx", "cpuid", "mov rbx, {tmp:r}",
             tmp = out(reg) _, inout("eax") 1u32 => _, out("ecx") _, out("edx") edx,
             options(nomem, nostack, preserves_flags))
    };
    edx & (1 << 9) != 0
}

/// Remaps the two 8259 PICs to vectors 0x20..0x2f and masks every line.
fn mask_pics() {
    // SAFETY: the standard 8259 initialisation sequence on ports 0x20/0x21 and
    // 0xa0/0xa1; afterwards every legacy IRQ is masked.
    unsafe {
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, 0x20);
        outb(0xa1, 0x28);
        outb(0x21, 0x04);
        outb(0xa1, 0x02);
        outb(0x21, 0x01);
        outb(0xa1, 0x01);
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}

/// Enables the LAPIC and measures its timer. Interrupts stay disabled.
pub fn init() -> Result<(), LapicError> {
    if !has_apic() {
        return Err(LapicError::Absent);
    }
    mask_pics();
    let msr = rdmsr(APIC_BASE_MSR);
    let base = msr & 0x000f_ffff_f000;
    if base == 0 || base >= 1 << 32 {
        return Err(LapicError::BaseUnmapped);
    }
    if msr & APIC_GLOBAL_ENABLE == 0 {
        wrmsr(APIC_BASE_MSR, msr | APIC_GLOBAL_ENABLE);
    }
    BASE.store(base, Ordering::Relaxed);
    idt::DSB_LAPIC_EOI.store(base + REG_EOI as u64, Ordering::Relaxed);
    write(REG_TPR, 0);
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_DIVIDE, DIVIDE_BY_16);
    // Measure: count down from the top, masked, over a TSC-timed span.
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    let start_us = clock::micros_since_boot();
    write(REG_INITIAL_COUNT, u32::MAX);
    let mut end_us = start_us;
    while end_us.saturating_sub(start_us) < CALIBRATION_US {
        core::hint::spin_loop();
        end_us = clock::micros_since_boot();
    }
    let left = read(REG_CURRENT_COUNT);
    write(REG_INITIAL_COUNT, 0);
    let ticks = u64::from(u32::MAX - left);
    let span = end_us.saturating_sub(start_us).max(1);
    let hz = ticks.saturating_mul(1_000_000) / span;
    if !(MIN_TIMER_HZ..=MAX_TIMER_HZ).contains(&hz) {
        return Err(LapicError::TimerRate);
    }
    TIMER_HZ.store(hz, Ordering::Relaxed);
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot, unmasked
    Ok(())
}

/// The measured timer rate (ticks per second).
pub fn timer_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

/// This CPU's APIC id (for MSI destinations).
pub fn id() -> u8 {
    (read(REG_ID) >> 24) as u8
}

/// Arms the one-shot timer to fire in `us` microseconds (at least one tick,
/// at most the 32-bit counter's range).
pub fn arm_us(us: u64) {
    let ticks = u128::from(us) * u128::from(timer_hz()) / 1_000_000;
    let ticks = u32::try_from(ticks).unwrap_or(u32::MAX).max(1);
    write(REG_INITIAL_COUNT, ticks);
}

/// Stops the timer.
pub fn disarm() {
    write(REG_INITIAL_COUNT, 0);
}
