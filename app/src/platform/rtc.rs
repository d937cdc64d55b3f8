//! The CMOS real-time clock, read once at boot for the announce sequence
//! epoch: announces carry `epoch << 32 | counter`, and peers reject any
//! sequence not newer than the last one they accepted, so a node that reboots
//! must start from a larger epoch. Seconds since 2000-01-01 fit in `u32`
//! until 2136.

use super::port::{inb, outb};

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;
/// Bit 7 of the index port disables NMIs while we read.
const NMI_OFF: u8 = 0x80;
/// Reads until two consecutive reads agree, at most this many times.
const MAX_TRIES: usize = 8;

fn read(reg: u8) -> u8 {
    // SAFETY: ports 0x70/0x71 are the CMOS index/data pair on `-machine pc`;
    // reading a CMOS register has no side effect beyond selecting it.
    unsafe {
        outb(INDEX, NMI_OFF | reg);
        inb(DATA)
    }
}

fn updating() -> bool {
    read(0x0A) & 0x80 != 0
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Raw([u8; 6]);

fn raw() -> Raw {
    let mut spins = 0u32;
    while updating() && spins < 100_000 {
        spins += 1;
    }
    Raw([
        read(0x00),
        read(0x02),
        read(0x04),
        read(0x07),
        read(0x08),
        read(0x09),
    ])
}

fn bcd(v: u8) -> u32 {
    u32::from(v & 0x0f) + u32::from(v >> 4) * 10
}

/// Seconds since 2000-01-01 00:00 UTC by the CMOS clock, or `None` when it
/// reads as nonsense.
pub fn seconds_since_2000() -> Option<u32> {
    let mut last = raw();
    let mut stable = false;
    for _ in 0..MAX_TRIES {
        let now = raw();
        if now == last {
            stable = true;
            break;
        }
        last = now;
    }
    if !stable {
        return None;
    }
    let status_b = read(0x0B);
    let binary = status_b & 0x04 != 0;
    let h24 = status_b & 0x02 != 0;
    let conv = |v: u8| if binary { u32::from(v) } else { bcd(v) };
    let [s, m, h, d, mo, y] = last.0;
    let (sec, min, day, month, year) = (conv(s), conv(m), conv(d), conv(mo), conv(y));
    let pm = h & 0x80 != 0;
    let mut hour = conv(h & 0x7f);
    if !h24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    if sec > 59
        || min > 59
        || hour > 23
        || !(1..=31).contains(&day)
        || !(1..=12).contains(&month)
        || year > 99
    {
        return None;
    }
    let year = 2000 + year;
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut days: u32 = (2000..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    days += CUM[(month - 1) as usize] + day - 1;
    if month > 2 && leap(year) {
        days += 1;
    }
    Some(days * 86_400 + hour * 3600 + min * 60 + sec)
}
