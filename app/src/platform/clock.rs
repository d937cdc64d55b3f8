//! Monotonic clock: the TSC, calibrated once against PIT channel 2 and counted
//! from a reading taken at the first instruction of Rust code (the raw TSC does not
//! start near zero under KVM). Time is `smoltcp::time::Instant` since boot.
//!
//! Calibration reads PIT channel 2's counter (free-running one-shot from 0xFFFF,
//! gated through port 0x61) together with the TSC. Each reading is bracketed by two
//! TSC reads; a wide bracket (the vCPU was descheduled, a slow VM exit) is rejected,
//! so host load does not skew the result. Sampling stops once at least
//! [`CALIBRATION_MIN_TICKS`] PIT ticks (~2 ms) passed and the brackets add up to less
//! than 1/[`CALIBRATION_PRECISION`] of the measured span, or after
//! [`CALIBRATION_MAX_TICKS`] (~20 ms). If the PIT does not count (no port 0x61, e.g.
//! `-machine microvm`) or the result is implausible, [`FALLBACK_TSC_HZ`] is used.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use smoltcp::time::Instant;

use super::port::{inb, outb};

/// PIT input clock.
pub const PIT_HZ: u64 = 1_193_182;
/// Shortest calibration span in PIT ticks (~2 ms).
pub const CALIBRATION_MIN_TICKS: u16 = 2386;
/// Longest calibration span in PIT ticks (~20 ms).
pub const CALIBRATION_MAX_TICKS: u16 = 23864;
/// Required precision: bracket widths below 1/this of the span.
pub const CALIBRATION_PRECISION: u64 = 500;
/// Frequency assumed when calibration fails.
pub const FALLBACK_TSC_HZ: u64 = 2_000_000_000;
/// Plausible TSC range.
const MIN_TSC_HZ: u64 = 100_000_000;
const MAX_TSC_HZ: u64 = 20_000_000_000;
/// Give up on the PIT after this many counter reads...
const PIT_SAMPLE_LIMIT: u32 = 100_000;
/// ...or once this many TSC cycles passed (the PIT is not counting).
const CALIBRATION_GIVE_UP_CYCLES: u64 = 1_000_000_000;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(FALLBACK_TSC_HZ);

/// How the TSC frequency was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calibration {
    /// Measured against the PIT.
    Pit,
    /// PIT unusable: fallback frequency.
    Fallback,
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: `rdtsc` only reads the counter into edx:eax.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Records the boot-time TSC reading (called first thing in Rust code).
pub fn mark_boot() {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
}

/// Measures the TSC frequency; returns it and how it was obtained.
pub fn calibrate() -> (u64, Calibration) {
    let (hz, how) = match measure_with_pit() {
        Some(hz) if (MIN_TSC_HZ..=MAX_TSC_HZ).contains(&hz) => (hz, Calibration::Pit),
        _ => (FALLBACK_TSC_HZ, Calibration::Fallback),
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    (hz, how)
}

/// One PIT counter reading with the TSC around it.
#[derive(Clone, Copy)]
struct Sample {
    /// TSC at the middle of the bracket.
    tsc: u64,
    /// Channel 2 count (counts down).
    count: u16,
    /// TSC cycles the reading took.
    width: u64,
}

fn sample() -> Sample {
    let before = rdtsc();
    // SAFETY: latch-and-read of PIT channel 2 (port 0x43 command, 0x42 data); only
    // channel 2, which nothing else uses, is touched.
    let (lo, hi) = unsafe {
        outb(0x43, 0b1000_0000); // latch channel 2
        (inb(0x42), inb(0x42))
    };
    let after = rdtsc();
    let width = after.wrapping_sub(before);
    Sample {
        tsc: before.wrapping_add(width / 2),
        count: u16::from_le_bytes([lo, hi]),
        width,
    }
}

fn measure_with_pit() -> Option<u64> {
    // SAFETY: ports 0x61 (gate/speaker), 0x43 (PIT mode) and 0x42 (channel 2) only
    // drive PIT channel 2; the gate byte is restored below.
    let saved = unsafe {
        let saved = inb(0x61);
        outb(0x61, (saved & !0x02) | 0x01); // gate on, speaker off
        outb(0x43, 0b1011_0000); // channel 2, lo/hi byte, mode 0, binary
        outb(0x42, 0xff);
        outb(0x42, 0xff);
        saved
    };
    let result = measure_samples();
    // SAFETY: restores the gate/speaker byte read above.
    unsafe { outb(0x61, saved) };
    result
}

fn measure_samples() -> Option<u64> {
    // The narrowest of a few readings starts the span.
    let mut first = sample();
    for _ in 0..3 {
        let s = sample();
        if s.width < first.width {
            first = s;
        }
    }
    let mut best: Option<(Sample, u16)> = None;
    for _ in 0..PIT_SAMPLE_LIMIT {
        let s = sample();
        let span = s.tsc.checked_sub(first.tsc)?;
        if span > CALIBRATION_GIVE_UP_CYCLES {
            break;
        }
        let ticks = first.count.checked_sub(s.count)?;
        if ticks < CALIBRATION_MIN_TICKS {
            continue;
        }
        if (first.width + s.width).saturating_mul(CALIBRATION_PRECISION) <= span {
            return tsc_hz(first, s, ticks);
        }
        if best.is_none_or(|(b, _)| s.width < b.width) {
            best = Some((s, ticks));
        }
        if ticks >= CALIBRATION_MAX_TICKS {
            break;
        }
    }
    let (end, ticks) = best?;
    tsc_hz(first, end, ticks)
}

fn tsc_hz(first: Sample, end: Sample, ticks: u16) -> Option<u64> {
    let cycles = end.tsc.checked_sub(first.tsc)?;
    let hz = u128::from(cycles) * u128::from(PIT_HZ) / u128::from(ticks);
    u64::try_from(hz).ok()
}

/// Microseconds since boot.
pub fn micros_since_boot() -> u64 {
    let cycles = rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    let hz = TSC_HZ.load(Ordering::Relaxed).max(1);
    let us = u128::from(cycles) * 1_000_000 / u128::from(hz);
    u64::try_from(us).unwrap_or(u64::MAX)
}

/// Now, as a smoltcp instant since boot.
pub fn now() -> Instant {
    Instant::from_micros(i64::try_from(micros_since_boot()).unwrap_or(i64::MAX))
}
