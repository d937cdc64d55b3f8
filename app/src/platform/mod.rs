//! The bare-metal platform of the image (x86_64, QEMU `-machine pc`, PVH boot):
//! one concern per file. Only built for `target_os = "none"`.
//!
//! Boot order: `boot` (32-bit PVH stub -> long mode) -> `start_info` (command line,
//! memory map) -> `serial`/`console` -> `heap` -> `clock` -> `rng` -> `pci` ->
//! `virtio_hal` + `nic` -> `idle` (`idt`, `lapic`, MSI-X in `pci`). Interrupts
//! stay disabled except while `idle::wait_until` halts the CPU.

pub mod boot;
pub mod clock;
pub mod console;
pub mod exit;
pub mod fw_cfg;
pub mod heap;
pub mod idle;
pub mod idt;
pub mod lapic;
pub mod nic;
pub mod panic;
pub mod pci;
pub mod port;
pub mod rng;
pub mod rtc;
pub mod serial;
pub mod start_info;
pub mod virtio_hal;
