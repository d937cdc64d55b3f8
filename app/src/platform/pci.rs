//! PCI on `-machine pc`: configuration space through ports 0xCF8/0xCFC (as a
//! virtio-drivers `ConfigurationAccess`), discovery of virtio-net functions on bus 0,
//! and memory-BAR assignment for firmware that leaves BARs unassigned (qboot).
//!
//! A device we use gets every memory BAR that is 0 (or lies above the 4 GiB identity
//! map) placed in the PCI hole `[max(0xE000_0000, top of low RAM), 0xFEC0_0000)`,
//! aligned to its size and clear of every BAR the firmware already assigned; then
//! memory decoding and bus mastering are enabled. SeaBIOS-assigned BARs are kept.

use alloc::vec::Vec;

use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, MemoryBarType, PciRoot,
};
use virtio_drivers::transport::pci::virtio_device_type;
use virtio_drivers::transport::DeviceType;

use super::port::{inl, outl};
use super::start_info::RamRange;

/// Most virtio-net devices the image drives.
pub const MAX_NICS: usize = 3;
/// Most firmware-assigned memory BARs remembered for overlap checks.
pub const MAX_ASSIGNED_BARS: usize = 64;
/// Lowest address the image assigns BARs at.
pub const PCI_HOLE_START: u64 = 0xE000_0000;
/// One past the highest address (the IOAPIC sits at 0xFEC0_0000).
pub const PCI_HOLE_END: u64 = 0xFEC0_0000;
const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;
const FOUR_GIB: u64 = 1 << 32;
const BAR0_OFFSET: u8 = 0x10;

/// Configuration mechanism #1 over I/O ports.
#[derive(Debug)]
pub struct PortCam(());

impl PortCam {
    /// # Safety
    /// Only one `PortCam` may be used for writes at a time (ports 0xCF8/0xCFC are
    /// a single address/data pair).
    pub unsafe fn new() -> PortCam {
        PortCam(())
    }

    fn address(df: DeviceFunction, offset: u8) -> u32 {
        0x8000_0000
            | (u32::from(df.bus) << 16)
            | (u32::from(df.device & 0x1f) << 11)
            | (u32::from(df.function & 0x07) << 8)
            | u32::from(offset & 0xfc)
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        // SAFETY: address then data port of configuration mechanism #1; single CPU,
        // no interrupts, so the pair is not interleaved.
        unsafe {
            outl(
                CONFIG_ADDRESS,
                Self::address(device_function, register_offset),
            );
            inl(CONFIG_DATA)
        }
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        // SAFETY: as in `read_word`; the caller of the PCI API chose the register.
        unsafe {
            outl(
                CONFIG_ADDRESS,
                Self::address(device_function, register_offset),
            );
            outl(CONFIG_DATA, data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam(())
    }
}

/// Why a device could not be prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciSetupError {
    /// Reading a BAR failed (invalid BAR type).
    BadBar,
    /// A BAR must live below 1 MiB, which the image does not support.
    Below1MiB,
    /// A 32-bit BAR that needs an address but the hole has no room.
    NoSpace,
}

impl PciSetupError {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            PciSetupError::BadBar => "bad-bar",
            PciSetupError::Below1MiB => "bar-below-1mib",
            PciSetupError::NoSpace => "no-bar-space",
        }
    }
}

/// Hands out BAR addresses in the PCI hole, avoiding firmware-assigned BARs.
///
/// The firmware's BARs are collected on the first allocation only (SeaBIOS assigns
/// everything, so with it this never runs): sizing a BAR of a decoding device makes
/// QEMU rebuild its memory map twice, which costs about a millisecond each time.
#[derive(Debug)]
pub struct BarAllocator {
    next: u64,
    end: u64,
    taken: Option<Vec<(u64, u64)>>,
}

impl BarAllocator {
    /// A window in the PCI hole above low RAM.
    pub fn new(ram: &[RamRange]) -> BarAllocator {
        let low_ram_top = ram
            .iter()
            .filter(|r| r.start < FOUR_GIB)
            .map(|r| r.end.min(FOUR_GIB))
            .max()
            .unwrap_or(0);
        BarAllocator {
            next: PCI_HOLE_START.max(align_up(low_ram_top, 1 << 20)),
            end: PCI_HOLE_END,
            taken: None,
        }
    }

    /// Memory BARs of bus 0 that are decoded now (assigned by the firmware).
    fn collect_taken(root: &mut PciRoot<PortCam>) -> Vec<(u64, u64)> {
        let mut taken = Vec::new();
        let functions: Vec<DeviceFunction> = root.enumerate_bus(0).map(|(df, _)| df).collect();
        for df in functions {
            let (_, command) = root.get_status_command(df);
            if !command.contains(Command::MEMORY_SPACE) {
                continue;
            }
            let Ok(bars) = root.bars(df) else { continue };
            for bar in bars.iter().flatten() {
                if let Some((address, size)) = bar.memory_address_size() {
                    if address != 0 && size != 0 && taken.len() < MAX_ASSIGNED_BARS {
                        taken.push((address, address.saturating_add(size)));
                    }
                }
            }
        }
        taken
    }

    /// A free, size-aligned address for a BAR of `size` bytes.
    fn allocate(&mut self, root: &mut PciRoot<PortCam>, size: u64) -> Option<u64> {
        let size = size.max(16);
        if !size.is_power_of_two() {
            return None;
        }
        let taken = self.taken.get_or_insert_with(|| Self::collect_taken(root));
        let mut candidate = align_up(self.next, size);
        // Each step moves past one taken range, so this ends after at most `taken.len()` steps.
        for _ in 0..=taken.len() {
            let end = candidate.checked_add(size)?;
            match taken.iter().find(|(s, e)| candidate < *e && *s < end) {
                Some(&(_, taken_end)) => candidate = align_up(taken_end, size),
                None => {
                    if end > self.end {
                        return None;
                    }
                    self.next = end;
                    taken.push((candidate, end));
                    return Some(candidate);
                }
            }
        }
        None
    }
}

fn align_up(value: u64, align: u64) -> u64 {
    if align == 0 {
        return value;
    }
    value.div_ceil(align).saturating_mul(align)
}

/// Virtio-net functions on bus 0, in slot order, at most [`MAX_NICS`].
pub fn find_virtio_nets(root: &PciRoot<PortCam>) -> Vec<DeviceFunction> {
    root.enumerate_bus(0)
        .filter(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))
        .map(|(df, _)| df)
        .take(MAX_NICS)
        .collect()
}

/// Whether every memory BAR register of `df` holds an address below 4 GiB (or is
/// unused), judged from the raw registers without sizing.
fn firmware_bars_usable(cam: &PortCam, df: DeviceFunction) -> bool {
    let mut index = 0u8;
    while index < 6 {
        let raw = cam.read_word(df, BAR0_OFFSET + 4 * index);
        if raw & 1 == 1 {
            index += 1; // I/O BAR: not used by the image
            continue;
        }
        if raw & 0b110 == 0b100 {
            // 64-bit BAR: the upper half must be 0.
            let high = if index < 5 {
                cam.read_word(df, BAR0_OFFSET + 4 * (index + 1))
            } else {
                0
            };
            if high != 0 {
                return false;
            }
            index += 2;
        } else {
            index += 1;
        }
    }
    true
}

/// Makes every memory BAR of `df` usable and leaves decoding **off**: call
/// `PciTransport::new` next (with decoding off it sizes BARs without making QEMU
/// remap memory), then [`enable_device`].
///
/// A device the firmware already enabled, with all BARs below 4 GiB, is trusted as
/// is (SeaBIOS); otherwise every memory BAR that is 0 or above 4 GiB gets an address.
pub fn prepare_device(
    root: &mut PciRoot<PortCam>,
    df: DeviceFunction,
    bars_alloc: &mut BarAllocator,
) -> Result<(), PciSetupError> {
    let (_, command) = root.get_status_command(df);
    let decoding = command.contains(Command::MEMORY_SPACE);
    // SAFETY: used for reads only, while `root` is not writing.
    let cam = unsafe { PortCam::new() };
    let trusted = decoding && firmware_bars_usable(&cam, df);
    let off = command & !(Command::MEMORY_SPACE | Command::IO_SPACE);
    if off != command {
        root.set_command(df, off);
    }
    if trusted {
        return Ok(());
    }
    let bars = root.bars(df).map_err(|_| PciSetupError::BadBar)?;
    for (index, bar) in bars.iter().enumerate() {
        let Some(BarInfo::Memory {
            address_type,
            address,
            size,
            ..
        }) = bar
        else {
            continue;
        };
        let (address, size) = (*address, *size);
        if size == 0 || (address != 0 && address.saturating_add(size) <= FOUR_GIB) {
            continue;
        }
        let index = index as u8;
        let new = bars_alloc
            .allocate(root, size)
            .ok_or(PciSetupError::NoSpace)?;
        match address_type {
            MemoryBarType::Width32 => {
                let new32 = u32::try_from(new).map_err(|_| PciSetupError::NoSpace)?;
                root.set_bar_32(df, index, new32);
            }
            MemoryBarType::Width64 => root.set_bar_64(df, index, new),
            MemoryBarType::Below1MiB => return Err(PciSetupError::Below1MiB),
        }
        log::info!("pci: {df} BAR{index} assigned {new:#x} ({size} bytes)");
    }
    Ok(())
}

/// Turns on memory decoding and bus mastering (I/O decoding stays off).
pub fn enable_device(root: &mut PciRoot<PortCam>, df: DeviceFunction) {
    let (_, command) = root.get_status_command(df);
    root.set_command(
        df,
        (command | Command::MEMORY_SPACE | Command::BUS_MASTER) & !Command::IO_SPACE,
    );
}

/// Why a NIC's interrupts could not be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixError {
    /// The function has no MSI-X capability.
    NoMsix,
    /// No virtio common-configuration capability.
    NoCommonCfg,
    /// A BAR the capability points at is not a usable memory BAR.
    BadBar,
    /// The device did not accept the vector for a queue.
    VectorRefused,
}

impl MsixError {
    /// Stable label.
    pub fn label(self) -> &'static str {
        match self {
            MsixError::NoMsix => "no-msix",
            MsixError::NoCommonCfg => "no-virtio-common-cfg",
            MsixError::BadBar => "bad-bar",
            MsixError::VectorRefused => "vector-refused",
        }
    }
}

const CAP_ID_MSIX: u8 = 0x11;
const CAP_ID_VENDOR: u8 = 0x09;
const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
/// virtio common configuration offsets (virtio 1.x, 4.1.4.3).
const COMMON_MSIX_CONFIG: u64 = 0x10;
const COMMON_QUEUE_SELECT: u64 = 0x16;
const COMMON_QUEUE_MSIX_VECTOR: u64 = 0x1a;
const VIRTIO_MSI_NO_VECTOR: u16 = 0xffff;
/// MSI message address: the LAPIC window, destination in bits 12..19.
const MSI_ADDRESS_BASE: u32 = 0xfee0_0000;
/// PCI command register bit: INTx disabled.
const COMMAND_INTX_DISABLE: u32 = 1 << 10;

fn read_u8(cam: &PortCam, df: DeviceFunction, offset: u8) -> u8 {
    (cam.read_word(df, offset & 0xfc) >> (8 * (offset & 3))) as u8
}

/// Offsets of the capabilities of `df` with id `id`, in list order (at most 48).
fn capabilities(cam: &PortCam, df: DeviceFunction, id: u8) -> heapless::Vec<u8, 48> {
    let mut found = heapless::Vec::new();
    let status = cam.read_word(df, 0x04) >> 16;
    if status & (1 << 4) == 0 {
        return found;
    }
    let mut ptr = read_u8(cam, df, 0x34) & 0xfc;
    // A capability list has at most 48 entries in 256 bytes; cap the walk.
    for _ in 0..48 {
        if ptr < 0x40 {
            break;
        }
        if read_u8(cam, df, ptr) == id && found.push(ptr).is_err() {
            break;
        }
        ptr = read_u8(cam, df, ptr + 1) & 0xfc;
    }
    found
}

/// The memory address of BAR `index` from its raw registers (no sizing).
fn bar_address(cam: &PortCam, df: DeviceFunction, index: u8) -> Option<u64> {
    if index > 5 {
        return None;
    }
    let raw = cam.read_word(df, BAR0_OFFSET + 4 * index);
    if raw & 1 == 1 {
        return None;
    }
    let high = if raw & 0b110 == 0b100 && index < 5 {
        u64::from(cam.read_word(df, BAR0_OFFSET + 4 * (index + 1)))
    } else {
        0
    };
    let address = (high << 32) | u64::from(raw & !0xf);
    (address != 0 && address < FOUR_GIB).then_some(address)
}

fn mmio_write32(address: u64, value: u32) {
    // SAFETY: `address` lies in a BAR of a device we own, identity-mapped below 4 GiB.
    unsafe { core::ptr::write_volatile(address as usize as *mut u32, value) }
}

fn mmio_write16(address: u64, value: u16) {
    // SAFETY: as in `mmio_write32`.
    unsafe { core::ptr::write_volatile(address as usize as *mut u16, value) }
}

fn mmio_read16(address: u64) -> u16 {
    // SAFETY: as in `mmio_write32`.
    unsafe { core::ptr::read_volatile(address as usize as *const u16) }
}

/// Routes every virtqueue of the virtio device `df` to `vector` on the CPU
/// with APIC id `apic_id` through MSI-X table entry 0, and turns MSI-X on
/// (INTx off). Call after the driver initialised the device (a reset clears
/// the queue vectors).
pub fn enable_msix(
    root: &mut PciRoot<PortCam>,
    df: DeviceFunction,
    vector: u8,
    apic_id: u8,
    queues: u16,
) -> Result<(), MsixError> {
    // SAFETY: used between `root`'s own accesses; single CPU, no interrupts.
    let mut cam = unsafe { PortCam::new() };
    let msix = *capabilities(&cam, df, CAP_ID_MSIX)
        .first()
        .ok_or(MsixError::NoMsix)?;
    let common = capabilities(&cam, df, CAP_ID_VENDOR)
        .into_iter()
        .find(|&c| read_u8(&cam, df, c + 3) == VIRTIO_PCI_CAP_COMMON_CFG)
        .ok_or(MsixError::NoCommonCfg)?;
    let common_bar = read_u8(&cam, df, common + 4);
    let common_offset = u64::from(cam.read_word(df, common + 8));
    let common_base = bar_address(&cam, df, common_bar).ok_or(MsixError::BadBar)? + common_offset;
    let table = cam.read_word(df, msix + 4);
    let table_base = bar_address(&cam, df, (table & 0x7) as u8).ok_or(MsixError::BadBar)?
        + u64::from(table & !0x7);

    // Table entry 0: address, data (fixed delivery, edge), unmasked.
    mmio_write32(table_base, MSI_ADDRESS_BASE | (u32::from(apic_id) << 12));
    mmio_write32(table_base + 4, 0);
    mmio_write32(table_base + 8, u32::from(vector));
    mmio_write32(table_base + 12, 0);
    // Every queue -> entry 0; no configuration-change interrupts.
    mmio_write16(common_base + COMMON_MSIX_CONFIG, VIRTIO_MSI_NO_VECTOR);
    for q in 0..queues {
        mmio_write16(common_base + COMMON_QUEUE_SELECT, q);
        mmio_write16(common_base + COMMON_QUEUE_MSIX_VECTOR, 0);
        if mmio_read16(common_base + COMMON_QUEUE_MSIX_VECTOR) != 0 {
            return Err(MsixError::VectorRefused);
        }
    }
    // MSI-X enable (bit 15 of Message Control), function mask (bit 14) off.
    let control = cam.read_word(df, msix);
    cam.write_word(df, msix, (control | (1 << 31)) & !(1 << 30));
    let command = cam.read_word(df, 0x04);
    cam.write_word(df, 0x04, (command & 0xffff) | COMMAND_INTX_DISABLE);
    let _ = root;
    Ok(())
}
