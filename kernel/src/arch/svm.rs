//! AMD-V: detection, enabling (EFER.SVME, VM_HSAVE_PA), VMCB word access
//! and the VMRUN path.
//!
//! Design rules: this module only moves state between the CPU and frames
//! the kernel owns (a VMCB, the host save areas, nested page tables); what
//! goes into the VMCB and what an exit means is decided above it
//! (`kernel_core::vmcb`, `kernel_core::vmexit`, `crate::vm`). VMRUN runs
//! with CLGI/host IF clear: a host interrupt becomes an `INTR` exit and is
//! taken after STGI once the kernel returns to ring 3.

use core::arch::asm;

use super::cpu;
use super::paging::{phys_to_virt, DIRECT_MAP_LIMIT};

const EFER: u32 = 0xc000_0080;
const EFER_SVME: u64 = 1 << 12;
const VM_CR: u32 = 0xc001_0114;
const VM_CR_SVMDIS: u64 = 1 << 4;
const VM_HSAVE_PA: u32 = 0xc001_0117;

/// What the CPU offers.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// Nested paging.
    pub npt: bool,
    /// Next-RIP save.
    pub nrips: bool,
    /// Number of ASIDs.
    pub asids: u32,
}

/// AMD-V if the CPU has it and the firmware did not lock it off.
pub fn detect() -> Option<Features> {
    let (max_ext, ..) = cpu::cpuid(0x8000_0000, 0);
    if max_ext < 0x8000_000a {
        return None;
    }
    let (_, _, ecx, _) = cpu::cpuid(0x8000_0001, 0);
    if ecx & (1 << 2) == 0 {
        return None;
    }
    // SAFETY: VM_CR exists on every CPU that reports SVM.
    if unsafe { cpu::rdmsr(VM_CR) } & VM_CR_SVMDIS != 0 {
        return None;
    }
    let (_, asids, _, edx) = cpu::cpuid(0x8000_000a, 0);
    Some(Features {
        npt: edx & 1 != 0,
        nrips: edx & (1 << 3) != 0,
        asids,
    })
}

/// Turns SVM on with `hsave` (a zeroed frame the kernel never frees) as
/// the host save area.
pub fn enable(hsave: u64) {
    // SAFETY: `detect` found SVM usable; setting EFER.SVME only makes the
    // SVM instructions legal, and the host save area is a frame the kernel
    // owns for good.
    unsafe {
        cpu::wrmsr(EFER, cpu::rdmsr(EFER) | EFER_SVME);
        cpu::wrmsr(VM_HSAVE_PA, hsave);
    }
}

/// A page the kernel owns (VMCB, permission maps), as 4096 bytes through
/// the direct map. Offsets are checked: an out-of-range access is ignored
/// (write) or reads 0, never touches other memory.
#[derive(Clone, Copy, Debug)]
pub struct Page(pub u64);

impl Page {
    fn ptr(self, off: usize, width: usize) -> Option<*mut u8> {
        if off + width > 4096 || !off.is_multiple_of(width) || self.0 + 4096 > DIRECT_MAP_LIMIT {
            return None;
        }
        Some(phys_to_virt(self.0).wrapping_add(off))
    }

    /// Reads `width` (1, 2, 4, 8) bytes at `off`, zero-extended.
    pub fn read(self, off: usize, width: u8) -> u64 {
        let Some(p) = self.ptr(off, width as usize) else {
            return 0;
        };
        // SAFETY: `p` is inside this kernel-owned page and aligned to `width`.
        unsafe {
            match width {
                1 => p.read_volatile() as u64,
                2 => (p as *const u16).read_volatile() as u64,
                4 => (p as *const u32).read_volatile() as u64,
                8 => (p as *const u64).read_volatile(),
                _ => 0,
            }
        }
    }

    /// Writes the low `width` bytes of `v` at `off`.
    pub fn write(self, off: usize, width: u8, v: u64) {
        let Some(p) = self.ptr(off, width as usize) else {
            return;
        };
        // SAFETY: as in `read`.
        unsafe {
            match width {
                1 => p.write_volatile(v as u8),
                2 => (p as *mut u16).write_volatile(v as u16),
                4 => (p as *mut u32).write_volatile(v as u32),
                8 => (p as *mut u64).write_volatile(v),
                _ => {}
            }
        }
    }
}

/// What one VMRUN needs: the guest GPRs VMRUN does not switch (indexed as
/// `bulkhead_abi::vcpu::Gpr`; RAX and RSP live in the VMCB and their slots
/// here are unused), the VMCB and a host area for VMSAVE/VMLOAD.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RunState {
    /// Guest GPRs by architectural index.
    pub gprs: [u64; 16],
    /// Physical address of the VMCB.
    pub vmcb: u64,
    /// Physical address of the host's VMSAVE area.
    pub host_save: u64,
}

/// Enters the guest until its next exit. The exit code and information
/// are in the VMCB afterwards.
///
/// The host's FS/GS/TR/LDTR hidden state and syscall MSRs are saved with
/// VMSAVE and restored with VMLOAD around the guest's own (which VMRUN does
/// not switch), so the guest can neither see nor keep them.
pub fn run(state: &mut RunState) {
    let p: *mut RunState = state;
    // SAFETY: `state.vmcb` is a VMCB the kernel built (intercepting the SVM
    // instructions, INTR, NMI and shutdown, with nested paging over frames
    // the VM was granted) and `host_save` a kernel frame; SVM is enabled.
    // rbx and rbp, which inline asm may not name, are pushed and popped;
    // every other GPR is declared clobbered. Host RSP and RAX come back from
    // the host save area at #VMEXIT; GIF is cleared around the switch so no
    // interrupt lands between the halves, and the kernel's IF=0 is restored
    // before GIF is set again.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "push rdi",
            "clgi",
            // With V_INTR_MASKING the host's IF at VMRUN decides whether a
            // physical interrupt ends the guest: set it (GIF=0 still holds
            // every interrupt off until the guest runs).
            "sti",
            "mov rax, [rdi + 8*17]",
            "vmsave rax",
            "mov rax, [rdi + 8*16]",
            "vmload rax",
            "mov rcx, [rdi + 8*1]",
            "mov rdx, [rdi + 8*2]",
            "mov rbx, [rdi + 8*3]",
            "mov rbp, [rdi + 8*5]",
            "mov rsi, [rdi + 8*6]",
            "mov r8,  [rdi + 8*8]",
            "mov r9,  [rdi + 8*9]",
            "mov r10, [rdi + 8*10]",
            "mov r11, [rdi + 8*11]",
            "mov r12, [rdi + 8*12]",
            "mov r13, [rdi + 8*13]",
            "mov r14, [rdi + 8*14]",
            "mov r15, [rdi + 8*15]",
            "mov rdi, [rdi + 8*7]",
            "vmrun rax",
            "push rdi",
            "mov rdi, [rsp + 8]",
            "mov [rdi + 8*1], rcx",
            "mov [rdi + 8*2], rdx",
            "mov [rdi + 8*3], rbx",
            "mov [rdi + 8*5], rbp",
            "mov [rdi + 8*6], rsi",
            "mov [rdi + 8*8], r8",
            "mov [rdi + 8*9], r9",
            "mov [rdi + 8*10], r10",
            "mov [rdi + 8*11], r11",
            "mov [rdi + 8*12], r12",
            "mov [rdi + 8*13], r13",
            "mov [rdi + 8*14], r14",
            "mov [rdi + 8*15], r15",
            "pop rax",
            "mov [rdi + 8*7], rax",
            "mov rax, [rdi + 8*16]",
            "vmsave rax",
            "mov rax, [rdi + 8*17]",
            "vmload rax",
            // IF off again before GIF opens: the interrupt that ended the
            // guest waits for the kernel's scheduler loop to take it.
            "cli",
            "stgi",
            "pop rdi",
            "pop rbp",
            "pop rbx",
            inout("rdi") p => _,
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
}
