//! Reading the PVH `hvm_start_info` QEMU hands over in `ebx`: the kernel command
//! line (`-append`) and the E820-style memory map. Both are copied out at once, into
//! bounded buffers, before anything (the heap) could overwrite them.
//!
//! Layout (Xen `start_info.h`, all little endian):
//! `magic u32 @0` (0x336ec578), `version u32 @4`, `flags u32 @8`, `nr_modules u32 @12`,
//! `modlist_paddr u64 @16`, `cmdline_paddr u64 @24`, `rsdp_paddr u64 @32`,
//! version >= 1: `memmap_paddr u64 @40`, `memmap_entries u32 @48`.
//! A memory map entry is `addr u64, size u64, type u32, reserved u32` (24 bytes); type 1 is RAM.

use dsb_app::config::MAX_CMDLINE_LEN;

/// `hvm_start_info.magic`.
pub const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Memory map entries kept (more are ignored).
pub const MAX_MEMMAP_ENTRIES: usize = 32;
/// Memory map type of usable RAM.
pub const MEMMAP_TYPE_RAM: u32 = 1;

/// One usable-RAM range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RamRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// What the image keeps from `hvm_start_info`.
pub struct StartInfo {
    /// Whether the magic matched (otherwise everything below is empty).
    pub valid: bool,
    cmdline: [u8; MAX_CMDLINE_LEN + 1],
    cmdline_len: usize,
    ram: [RamRange; MAX_MEMMAP_ENTRIES],
    ram_len: usize,
}

impl StartInfo {
    /// The command line; at most `MAX_CMDLINE_LEN + 1` bytes, so the parser can
    /// see that a longer one was cut.
    pub fn cmdline(&self) -> &[u8] {
        self.cmdline.get(..self.cmdline_len).unwrap_or(&[])
    }

    /// Usable RAM ranges from the memory map.
    pub fn ram(&self) -> &[RamRange] {
        self.ram.get(..self.ram_len).unwrap_or(&[])
    }
}

/// Copies the command line and RAM ranges out of the `hvm_start_info` at `paddr`.
///
/// # Safety
/// `paddr` must be the value QEMU passed in `ebx` (or 0), with the identity map active.
pub unsafe fn read(paddr: u32) -> StartInfo {
    let mut info = StartInfo {
        valid: false,
        cmdline: [0; MAX_CMDLINE_LEN + 1],
        cmdline_len: 0,
        ram: [RamRange::default(); MAX_MEMMAP_ENTRIES],
        ram_len: 0,
    };
    if paddr == 0 {
        return info;
    }
    let base = paddr as usize as *const u8;
    // SAFETY: the loader placed a start_info structure at `paddr` (identity mapped).
    let magic = unsafe { read_u32(base, 0) };
    if magic != HVM_START_MAGIC {
        return info;
    }
    info.valid = true;
    // SAFETY: as above; fields at these offsets exist in every version.
    let (version, cmdline_paddr) = unsafe { (read_u32(base, 4), read_u64(base, 24)) };

    if cmdline_paddr != 0 && cmdline_paddr < u64::from(u32::MAX) {
        let src = cmdline_paddr as usize as *const u8;
        let mut len = 0;
        for (i, dst) in info.cmdline.iter_mut().enumerate() {
            // SAFETY: the command line is a NUL-terminated string at `cmdline_paddr`;
            // reading stops at the NUL or after MAX_CMDLINE_LEN + 1 bytes.
            let b = unsafe { src.add(i).read_volatile() };
            if b == 0 {
                break;
            }
            *dst = b;
            len = i + 1;
        }
        info.cmdline_len = len;
    }

    if version >= 1 {
        // SAFETY: version >= 1 structures carry the memory map fields.
        let (map, entries) = unsafe { (read_u64(base, 40), read_u32(base, 48)) };
        if map != 0 && map < u64::from(u32::MAX) {
            let map = map as usize as *const u8;
            let entries = (entries as usize).min(MAX_MEMMAP_ENTRIES);
            for i in 0..entries {
                // SAFETY: `entries` (capped) entries of 24 bytes follow `memmap_paddr`.
                let (addr, size, kind) = unsafe {
                    let e = map.add(i * 24);
                    (read_u64(e, 0), read_u64(e, 8), read_u32(e, 16))
                };
                if kind == MEMMAP_TYPE_RAM && size > 0 {
                    if let Some(slot) = info.ram.get_mut(info.ram_len) {
                        *slot = RamRange {
                            start: addr,
                            end: addr.saturating_add(size),
                        };
                        info.ram_len += 1;
                    }
                }
            }
        }
    }
    info
}

/// # Safety
/// `base + offset` must be readable for 4 bytes.
unsafe fn read_u32(base: *const u8, offset: usize) -> u32 {
    // SAFETY: guaranteed by the caller; unaligned reads are fine on x86.
    unsafe { base.add(offset).cast::<u32>().read_unaligned() }
}

/// # Safety
/// `base + offset` must be readable for 8 bytes.
unsafe fn read_u64(base: *const u8, offset: usize) -> u64 {
    // SAFETY: guaranteed by the caller; unaligned reads are fine on x86.
    unsafe { base.add(offset).cast::<u64>().read_unaligned() }
}
