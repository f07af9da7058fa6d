//! Multiboot2 header and the 32-bit entry trampoline into long mode.
//!
//! GRUB enters `_start32` in 32-bit protected mode, paging off, with the
//! Multiboot2 magic in `eax` and the physical address of the boot
//! information in `ebx` (under UEFI it may leave EFER.NXE set, which we set
//! anyway). The trampoline builds the boot page tables — the low 4 GiB
//! mapped with 2 MiB pages three times: identity (only until we run high),
//! the direct map at [`DIRECT_MAP`](super::paging::DIRECT_MAP), and the
//! kernel image window at `KERNEL_BASE` — enables PAE, long mode, NX and
//! write protection, and jumps to `kmain(magic, info_phys)` on the kernel
//! stack. The 32-bit code touches only the `.boot*` sections, which are
//! linked at their physical addresses.

core::arch::global_asm!(
    r#"
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xe85250d6
    .long 0
    .long mb2_header_end - mb2_header
    .long -(0xe85250d6 + (mb2_header_end - mb2_header))
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .section .boot.bss, "aw", @nobits
    .balign 4096
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4096 * 4

    .section .bss.kernel_stack, "aw", @nobits
    .balign 4096
    .global kernel_stack_bottom
kernel_stack_bottom:
    /* Generous: decoding the boot plan (fixed-capacity, ~30 KiB) by value
       costs several copies of it on the stack at boot. */
    .skip 0x80000
    .global kernel_stack_top
kernel_stack_top:

    .section .boot.data, "aw"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00209a0000000000
    .quad 0x0000920000000000
boot_gdt_end:
    .balign 4
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    mov %eax, %esi
    mov %ebx, %ebp

    /* Zero the 7 table pages: GRUB need not clear NOLOAD space. */
    mov $boot_pml4, %edi
    xor %eax, %eax
    mov $(4096 * 7 / 4), %ecx
    rep stosl

    /* PML4: [0] identity, [256] direct map -> low PDPT; [511] -> high PDPT. */
    mov $boot_pdpt_low, %eax
    or $3, %eax
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + 256 * 8
    mov $boot_pdpt_high, %eax
    or $3, %eax
    mov %eax, boot_pml4 + 511 * 8

    /* Low PDPT: 4 page directories covering 0..4 GiB. */
    mov $boot_pd, %eax
    or $3, %eax
    mov $boot_pdpt_low, %edi
    mov $4, %ecx
1:  mov %eax, (%edi)
    add $4096, %eax
    add $8, %edi
    loop 1b

    /* High PDPT: [510] -> 0..1 GiB, [511] -> 1..2 GiB (kernel at -2 GiB). */
    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, boot_pdpt_high + 510 * 8
    add $4096, %eax
    mov %eax, boot_pdpt_high + 511 * 8

    /* 2048 entries of 2 MiB pages: present, writable, large (no user bit). */
    mov $boot_pd, %edi
    mov $0x83, %eax
    xor %edx, %edx
    mov $2048, %ecx
2:  mov %eax, (%edi)
    mov %edx, 4(%edi)
    add $0x200000, %eax
    adc $0, %edx
    add $8, %edi
    loop 2b

    /* CR4.PAE (bit 5) | PGE (bit 7). */
    mov %cr4, %eax
    or $0xa0, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    /* EFER: LME (bit 8) | NXE (bit 11). */
    mov $0xc0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    /* CR0: PG | WP | PE. */
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode_low

    .code64
long_mode_low:
    movabs $long_mode_high, %rax
    jmp *%rax

    .section .text.boot64, "ax"
long_mode_high:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $kernel_stack_top, %rsp
    /* kmain(magic, info_phys): zero-extend, the upper halves are undefined
       after the mode switch. */
    mov %esi, %edi
    mov %ebp, %esi
    xor %ebp, %ebp
    push $0
    jmp {kmain}
"#,
    kmain = sym crate::kmain,
    options(att_syntax)
);
