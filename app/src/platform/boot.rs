//! PVH entry: QEMU (`-kernel`, ELF with a Xen `PHYS32_ENTRY` note) starts the CPU in
//! 32-bit protected mode, paging off, interrupts off, `ebx` = physical address of
//! `hvm_start_info`. The stub below zeroes `.bss`, identity-maps the first 4 GiB with
//! 2 MiB pages, loads a GDT, enables PAE + EFER.LME + PG, switches to 64-bit code,
//! sets up the boot stack and calls [`pvh_rust_entry`].
//!
//! Memory used (all in `.bss`): PML4, PDPT and four page directories (24 KiB), and
//! the boot stack ([`BOOT_STACK_SIZE`]). There is no guard page under the stack.

use core::arch::global_asm;

/// Size of the boot (and only) stack.
pub const BOOT_STACK_SIZE: usize = 256 * 1024;

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                     /* namesz: "Xen\0" */
    .long 8                     /* descsz: entry padded to 8 bytes (QEMU 7.2 reads 8) */
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .long 0
    .balign 4

    .section .text.pvh_boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi              /* hvm_start_info; rep stos below keeps esi */

    /* zero .bss (the loader may not have) */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD0..PD3 */
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $0x3, %eax
    mov %eax, boot_pdpt
    add $0x1000, %eax
    mov %eax, boot_pdpt + 8
    add $0x1000, %eax
    mov %eax, boot_pdpt + 16
    add $0x1000, %eax
    mov %eax, boot_pdpt + 24

    /* 2048 PD entries: identity map 0..4 GiB, 2 MiB pages, present + writable + PS */
    mov $boot_pd, %edi
    mov $0x83, %eax
    mov $2048, %ecx
1:
    mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    dec %ecx
    jnz 1b

    mov $boot_pml4, %eax
    mov %eax, %cr3

    mov %cr4, %eax
    or $0x20, %eax              /* CR4.PAE */
    mov %eax, %cr4

    mov $0xC0000080, %ecx       /* IA32_EFER */
    rdmsr
    or $0x100, %eax             /* EFER.LME */
    wrmsr

    lgdt boot_gdt_ptr

    mov %cr0, %eax
    or $0x80000001, %eax        /* CR0.PG | CR0.PE */
    mov %eax, %cr0

    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    xor %ebp, %ebp
    mov %esi, %edi              /* arg 0: hvm_start_info physical address */
    call pvh_rust_entry
2:
    cli
    hlt
    jmp 2b

    .section .rodata.pvh_gdt, "a"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code, ring 0 */
    .quad 0x00cf92000000ffff    /* 0x10: data, ring 0 */
boot_gdt_end:
    .balign 4
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss.pvh_boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    .balign 16
boot_stack_bottom:
    .skip {stack_size}
boot_stack_top:

    .text
    "#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

/// First Rust code: called by the stub in 64-bit mode with the `hvm_start_info` address.
#[unsafe(no_mangle)]
extern "C" fn pvh_rust_entry(start_info_paddr: u32) -> ! {
    super::clock::mark_boot();
    crate::kmain(start_info_paddr)
}
