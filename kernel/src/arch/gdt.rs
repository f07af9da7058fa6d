//! GDT, TSS (kernel stack for ring-3 traps, IST stack for double faults, and
//! the I/O permission bitmap that grants PDs their `<ioport>` ranges) and IDT.

use core::ptr::addr_of_mut;

/// Kernel code selector.
pub const KERNEL_CS: u64 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u64 = 0x10;
/// User data selector (RPL 3).
pub const USER_DS: u64 = 0x18 | 3;
/// User code selector (RPL 3).
pub const USER_CS: u64 = 0x20 | 3;
const TSS_SEL: u16 = 0x28;

#[repr(C, packed)]
struct Tss {
    _r0: u32,
    rsp: [u64; 3],
    _r1: u64,
    ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    iomap_base: u16,
    /// One bit per port, set = denied; the extra byte must be all ones.
    iomap: [u8; 8193],
}

static mut TSS: Tss = Tss {
    _r0: 0,
    rsp: [0; 3],
    _r1: 0,
    ist: [0; 7],
    _r2: 0,
    _r3: 0,
    iomap_base: 104,
    iomap: [0xff; 8193],
};

static mut GDT: [u64; 7] = [
    0,
    0x0020_9a00_0000_0000,
    0x0000_9200_0000_0000,
    0x0000_f200_0000_0000,
    0x0020_fa00_0000_0000,
    0,
    0,
];

#[repr(C, align(16))]
struct Idt([u64; 512]);

static mut IDT: Idt = Idt([0; 512]);

#[repr(C, align(16))]
struct IstStack([u8; 16384]);
static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; 16384]);

#[repr(C, packed)]
struct DescriptorPtr {
    limit: u16,
    base: u64,
}

unsafe extern "C" {
    static vector_table: [u64; 256];
    static kernel_stack_top: u8;
}

/// Installs GDT, TSS and IDT. Called once, early, with interrupts off.
pub fn init() {
    // SAFETY: single CPU, interrupts off, called once before anything else
    // reads these tables; the addresses taken stay valid (statics).
    unsafe {
        let tss = addr_of_mut!(TSS);
        (*tss).rsp[0] = core::ptr::addr_of!(kernel_stack_top) as u64;
        (*tss).ist[0] = addr_of_mut!(DOUBLE_FAULT_STACK) as u64 + 16384;
        let base = tss as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let gdt = addr_of_mut!(GDT);
        (*gdt)[5] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        (*gdt)[6] = base >> 32;
        let ptr = DescriptorPtr {
            limit: (7 * 8 - 1) as u16,
            base: gdt as u64,
        };
        core::arch::asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ss, {ds:e}",
            "mov ds, {ds:e}",
            "mov es, {ds:e}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) KERNEL_CS,
            ds = in(reg) KERNEL_DS,
            tss = in(reg) TSS_SEL,
            tmp = out(reg) _,
        );

        let idt = addr_of_mut!(IDT);
        for (v, &handler) in vector_table.iter().enumerate() {
            let dpl: u64 = if v == bulkhead_abi::SYSCALL_VECTOR as usize {
                3
            } else {
                0
            };
            let ist: u64 = if v == 8 { 1 } else { 0 };
            (*idt).0[v * 2] = (handler & 0xffff)
                | (KERNEL_CS << 16)
                | (ist << 32)
                | ((0x8e | (dpl << 5)) << 40)
                | (((handler >> 16) & 0xffff) << 48);
            (*idt).0[v * 2 + 1] = handler >> 32;
        }
        let ptr = DescriptorPtr {
            limit: (256 * 16 - 1) as u16,
            base: idt as u64,
        };
        core::arch::asm!("lidt [{}]", in(reg) &ptr);
    }
}

/// Grants (`allow`) or revokes ports `base..base+size` in the I/O bitmap.
/// The kernel grants the running PD's ranges on switch-in and revokes them on
/// switch-out, so exactly the running PD's grants are open.
pub fn set_io_ports(base: u16, size: u32, allow: bool) {
    let end = (base as u32 + size).min(0x1_0000);
    for port in base as u32..end {
        let (byte, bit) = ((port / 8) as usize, port % 8);
        // SAFETY: single CPU, interrupts off in the kernel; `byte` < 8192.
        unsafe {
            let map = &mut (*addr_of_mut!(TSS)).iomap;
            if allow {
                map[byte] &= !(1 << bit);
            } else {
                map[byte] |= 1 << bit;
            }
        }
    }
}

/// Restores what a VMX exit truncates: the GDTR and IDTR limits (set to
/// 0xffff) and the TR limit (set to 0x67, which would cut off the I/O
/// permission bitmap and make every granted port fault).
pub fn reload_after_vm_exit() {
    // SAFETY: the same tables `init` installed are reloaded with their real
    // limits; the TSS descriptor's busy bit is cleared first so LTR accepts
    // it again (it is the only TSS, and this CPU's current one).
    unsafe {
        let gdt = addr_of_mut!(GDT);
        let ptr = DescriptorPtr {
            limit: (7 * 8 - 1) as u16,
            base: gdt as u64,
        };
        core::arch::asm!("lgdt [{}]", in(reg) &ptr, options(nostack));
        (*gdt)[5] &= !(1 << 41);
        core::arch::asm!("ltr {:x}", in(reg) TSS_SEL, options(nostack));
        let idt = addr_of_mut!(IDT);
        let ptr = DescriptorPtr {
            limit: (256 * 16 - 1) as u16,
            base: idt as u64,
        };
        core::arch::asm!("lidt [{}]", in(reg) &ptr, options(nostack));
    }
}
