//! The interrupt descriptor table: what the CPU runs for an exception or an
//! interrupt. The image keeps interrupts disabled except inside
//! [`super::idle::wait_until`]'s `sti; hlt`, so an interrupt only ever
//! interrupts `hlt`.
//!
//! - Exceptions (vectors 0..31) print `PANIC: cpu exception <n> ...` with the
//!   error code and faulting RIP, and exit with failure (before this table a
//!   fault was a silent triple fault).
//! - [`TIMER_VECTOR`] (LAPIC timer) and [`NIC_VECTOR`] (virtio-net MSI-X) count
//!   themselves and signal end-of-interrupt; that is all: waking from `hlt` is
//!   their whole purpose. Every other vector does the same under its own counter.
//! - [`SPURIOUS_VECTOR`] returns without an EOI (the LAPIC rule).
//!
//! The handlers are a few instructions of assembly touching only `rax` and
//! memory (the target is soft-float: no SSE state to save; the red zone is off,
//! so the interrupt frame pushed on the current stack clobbers nothing).

use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use super::console::SerialWriter;
use super::exit::exit_failure;

/// LAPIC timer interrupt.
pub const TIMER_VECTOR: u8 = 0x40;
/// virtio-net used-buffer interrupt (MSI-X, every NIC).
pub const NIC_VECTOR: u8 = 0x41;
/// LAPIC spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Kernel code selector of the boot GDT.
const CODE_SELECTOR: u16 = 0x08;
/// Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
const INTERRUPT_GATE: u8 = 0x8e;

/// Address of the LAPIC EOI register (set by `lapic::init` before any interrupt).
#[unsafe(no_mangle)]
pub static DSB_LAPIC_EOI: AtomicU64 = AtomicU64::new(0);
/// Interrupts taken, per kind.
#[unsafe(no_mangle)]
pub static DSB_IRQ_TIMER: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
pub static DSB_IRQ_NIC: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
pub static DSB_IRQ_OTHER: AtomicU64 = AtomicU64::new(0);

global_asm!(
    r#"
    .section .text.dsb_isr, "ax"
    .balign 16
    .global dsb_isr_timer
dsb_isr_timer:
    push rax
    lock inc qword ptr [rip + DSB_IRQ_TIMER]
    mov rax, qword ptr [rip + DSB_LAPIC_EOI]
    mov dword ptr [rax], 0
    pop rax
    iretq

    .balign 16
    .global dsb_isr_nic
dsb_isr_nic:
    push rax
    lock inc qword ptr [rip + DSB_IRQ_NIC]
    mov rax, qword ptr [rip + DSB_LAPIC_EOI]
    mov dword ptr [rax], 0
    pop rax
    iretq

    .balign 16
    .global dsb_isr_other
dsb_isr_other:
    push rax
    lock inc qword ptr [rip + DSB_IRQ_OTHER]
    mov rax, qword ptr [rip + DSB_LAPIC_EOI]
    test rax, rax
    jz 1f
    mov dword ptr [rax], 0
1:
    pop rax
    iretq

    .balign 16
    .global dsb_isr_spurious
dsb_isr_spurious:
    iretq

    /* 32 exception stubs, 16 bytes apart: push the vector, join the common path. */
    .balign 16
    .global dsb_exception_stubs
dsb_exception_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    .byte 0x6a, vec             /* push imm8 (sign-extended; vec < 128) */
    jmp dsb_exception_common
    .set vec, vec + 1
    .endr

dsb_exception_common:
    mov rdi, rsp                /* frame: [vector, (error,) rip, cs, rflags, ...] */
    and rsp, -16
    call dsb_exception
2:
    cli
    hlt
    jmp 2b
    .text
    "#
);

unsafe extern "C" {
    fn dsb_isr_timer();
    fn dsb_isr_nic();
    fn dsb_isr_other();
    fn dsb_isr_spurious();
    fn dsb_exception_stubs();
}

/// Vectors that push an error code.
fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Common exception path: report and exit (never returns).
#[unsafe(no_mangle)]
extern "C" fn dsb_exception(frame: *const u64) -> ! {
    // SAFETY: `frame` points at the stub's pushed vector followed by the
    // CPU's interrupt frame, all on the current stack.
    let (vector, error, rip) = unsafe {
        let vector = *frame;
        if has_error_code(vector) {
            (vector, Some(*frame.add(1)), *frame.add(2))
        } else {
            (vector, None, *frame.add(1))
        }
    };
    writeln!(SerialWriter).ok();
    match error {
        Some(e) => writeln!(
            SerialWriter,
            "PANIC: cpu exception {vector} (error {e:#x}) at rip {rip:#x}"
        ),
        None => writeln!(
            SerialWriter,
            "PANIC: cpu exception {vector} at rip {rip:#x}"
        ),
    }
    .ok();
    exit_failure()
}

#[repr(C, align(16))]
struct Idt([u64; 512]);

static mut IDT: Idt = Idt([0; 512]);

fn gate(handler: usize) -> (u64, u64) {
    let h = handler as u64;
    let low = (h & 0xffff)
        | (u64::from(CODE_SELECTOR) << 16)
        | (u64::from(INTERRUPT_GATE) << 40)
        | ((h >> 16) & 0xffff) << 48;
    (low, h >> 32)
}

/// Fills and loads the IDT. Call once, with interrupts disabled.
pub fn init() {
    let stubs = dsb_exception_stubs as *const () as usize;
    // SAFETY: single CPU, interrupts disabled, called once before any
    // interrupt can be taken; nothing else references IDT.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for v in 0..256usize {
            let handler = match v {
                0..=31 => stubs + 16 * v,
                _ if v == usize::from(TIMER_VECTOR) => dsb_isr_timer as *const () as usize,
                _ if v == usize::from(NIC_VECTOR) => dsb_isr_nic as *const () as usize,
                _ if v == usize::from(SPURIOUS_VECTOR) => dsb_isr_spurious as *const () as usize,
                _ => dsb_isr_other as *const () as usize,
            };
            let (low, high) = gate(handler);
            if let Some(e) = idt.0.get_mut(2 * v) {
                *e = low;
            }
            if let Some(e) = idt.0.get_mut(2 * v + 1) {
                *e = high;
            }
        }
        let pointer = IdtPointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: idt.0.as_ptr() as u64,
        };
        asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags));
    }
}

#[repr(C, packed)]
struct IdtPointer {
    limit: u16,
    base: u64,
}

/// Interrupts taken so far: (timer, nic, other).
pub fn counts() -> (u64, u64, u64) {
    (
        DSB_IRQ_TIMER.load(Ordering::Relaxed),
        DSB_IRQ_NIC.load(Ordering::Relaxed),
        DSB_IRQ_OTHER.load(Ordering::Relaxed),
    )
}
