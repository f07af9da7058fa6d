//! Intel VT-x: detection of the features the design needs, VMXON, the VMX
//! instructions (VMCLEAR, VMPTRLD, VMREAD, VMWRITE, INVEPT, INVVPID) and
//! the VMLAUNCH/VMRESUME path with the host state it needs.
//!
//! Design rules: this module only moves state between the CPU and frames
//! the kernel owns (VMCS regions, EPT tables, bitmaps); what goes into the
//! VMCS and what an exit means is decided above it (`kernel_core::vmcs`,
//! `kernel_core::vmexit`, the VM backend). Nothing here can fault on a
//! value a VMM chose: every VMX instruction's failure is read from its
//! flags (CF/ZF) and returned, never an exception; every MSR read is
//! guarded by the CPUID bit or control that defines it. The guest runs
//! with host interrupts masked (IF clear): external-interrupt exiting ends
//! the guest and the interrupt is taken once the kernel returns to ring 3.

use core::arch::asm;

use super::cpu;

use kernel_core::vmcs::field;

const FEATURE_CONTROL: u32 = 0x3a;
const VMX_BASIC: u32 = 0x480;
const VMX_PINBASED: u32 = 0x481;
const VMX_PROCBASED: u32 = 0x482;
const VMX_CR0_FIXED0: u32 = 0x486;
const VMX_CR0_FIXED1: u32 = 0x487;
const VMX_CR4_FIXED0: u32 = 0x488;
const VMX_CR4_FIXED1: u32 = 0x489;
const VMX_PROCBASED2: u32 = 0x48b;
const VMX_EPT_VPID_CAP: u32 = 0x48c;
const VMX_VMFUNC: u32 = 0x491;

/// What this CPU's VT-x offers, of what the design uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// VMCS revision identifier.
    pub revision: u32,
    /// EPT with a 4-level walk and write-back paging structures.
    pub ept: bool,
    /// 2 MiB EPT pages.
    pub ept_2m: bool,
    /// VPID.
    pub vpid: bool,
    /// Unrestricted guest.
    pub unrestricted: bool,
    /// VMFUNC with EPTP switching.
    pub eptp_switching: bool,
    /// EPT-violation #VE.
    pub ve: bool,
    /// VMX preemption timer.
    pub preemption_timer: bool,
}

/// VT-x features, if the CPU has VMX and the firmware allows it outside SMX.
pub fn detect() -> Option<Features> {
    let (_, _, ecx, _) = cpu::cpuid(1, 0);
    if ecx & (1 << 5) == 0 {
        return None;
    }
    // SAFETY: the VMX MSRs exist when CPUID.1:ECX.VMX is set; the
    // secondary-control and VMFUNC MSRs are read only when the controls
    // that define them are allowed.
    unsafe {
        let fc = cpu::rdmsr(FEATURE_CONTROL);
        if fc & 1 != 0 && fc & (1 << 2) == 0 {
            return None; // locked with VMX off
        }
        let basic = cpu::rdmsr(VMX_BASIC);
        let mut f = Features {
            revision: (basic & 0x7fff_ffff) as u32,
            preemption_timer: cpu::rdmsr(VMX_PINBASED) >> 32 & (1 << 6) != 0,
            ..Features::default()
        };
        if cpu::rdmsr(VMX_PROCBASED) >> 32 & (1 << 31) != 0 {
            let p2 = cpu::rdmsr(VMX_PROCBASED2) >> 32;
            let ept = p2 & (1 << 1) != 0;
            if ept || p2 & (1 << 5) != 0 {
                let cap = cpu::rdmsr(VMX_EPT_VPID_CAP);
                f.ept = ept && cap & (1 << 6) != 0 && cap & (1 << 14) != 0;
                f.ept_2m = f.ept && cap & (1 << 16) != 0;
            }
            f.vpid = p2 & (1 << 5) != 0;
            f.unrestricted = p2 & (1 << 7) != 0;
            f.ve = p2 & (1 << 18) != 0;
            if p2 & (1 << 13) != 0 {
                f.eptp_switching = cpu::rdmsr(VMX_VMFUNC) & 1 != 0;
            }
        }
        Some(f)
    }
}

/// Enters VMX root operation with `region` (a zeroed, kernel-owned frame)
/// as the VMXON region. False if the CPU refused.
pub fn enable(f: &Features, region: u64) -> bool {
    super::paging::copy_to_phys(region, &f.revision.to_le_bytes());
    let ok: u8;
    // SAFETY: CPUID reported VMX and FEATURE_CONTROL allows it (locking it
    // on if the firmware left it unlocked). CR0/CR4 get the bits VMX
    // requires (NE, VMXE), within what the fixed-bit MSRs allow; these do
    // not change paging or protection. VMXON's failure is in CF/ZF, read
    // with `setna`, and the region is a frame the kernel owns for good.
    unsafe {
        // The kernel never uses SYSCALL; with SCE clear a PD's SYSCALL
        // faults instead of entering ring 0 at a guest-chosen LSTAR (VMX
        // leaves the guest's syscall MSRs loaded, see `load_soft_msrs`).
        cpu::wrmsr(0xc000_0080, cpu::rdmsr(0xc000_0080) & !1);
        let fc = cpu::rdmsr(FEATURE_CONTROL);
        if fc & 1 == 0 {
            cpu::wrmsr(FEATURE_CONTROL, fc | 1 | (1 << 2));
        }
        let mut cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
        cr0 = (cr0 | cpu::rdmsr(VMX_CR0_FIXED0)) & cpu::rdmsr(VMX_CR0_FIXED1);
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        let cr4 =
            (cpu::cr4() | (1 << 13) | cpu::rdmsr(VMX_CR4_FIXED0)) & cpu::rdmsr(VMX_CR4_FIXED1);
        asm!("mov cr4, {}", in(reg) cr4, options(nostack, preserves_flags));
        let operand = region;
        asm!(
            "vmxon [{}]",
            "setna {}",
            in(reg) &operand,
            out(reg_byte) ok,
            options(nostack),
        );
    }
    ok == 0
}

/// Reads a capability MSR.
pub fn cap(msr: u32) -> u64 {
    // SAFETY: only called after `detect` found VMX; the VMX capability MSRs
    // the callers name (0x480..0x491) exist then — the ones that depend on
    // a control (PROCBASED2, EPT_VPID_CAP, VMFUNC, TRUE_*) are read only
    // when `detect`/IA32_VMX_BASIC said the control exists.
    unsafe { cpu::rdmsr(msr) }
}

/// Makes `vmcs` (a zeroed, kernel-owned frame) a clear VMCS of this CPU's
/// revision and the current one. False if the CPU refused.
pub fn init_vmcs(f: &Features, vmcs: u64) -> bool {
    super::paging::copy_to_phys(vmcs, &f.revision.to_le_bytes());
    clear(vmcs) && load(vmcs)
}

/// VMCLEAR: writes `vmcs`'s state back to memory and marks it clear (the
/// next entry on it must be VMLAUNCH).
pub fn clear(vmcs: u64) -> bool {
    let bad: u8;
    // SAFETY: the operand is a kernel-owned, 4 KiB-aligned VMCS frame; a
    // failure is reported in the flags.
    unsafe {
        asm!("vmclear [{}]", "setna {}", in(reg) &vmcs, out(reg_byte) bad, options(nostack));
    }
    bad == 0
}

/// VMPTRLD: makes `vmcs` the current VMCS.
pub fn load(vmcs: u64) -> bool {
    let bad: u8;
    // SAFETY: as in `clear`.
    unsafe {
        asm!("vmptrld [{}]", "setna {}", in(reg) &vmcs, out(reg_byte) bad, options(nostack));
    }
    bad == 0
}

/// VMREAD of the current VMCS; `None` if the field does not exist.
pub fn read(encoding: u32) -> Option<u64> {
    let v: u64;
    let bad: u8;
    // SAFETY: VMREAD only reads the current VMCS into a register; an
    // unsupported encoding or no current VMCS fails with flags set.
    unsafe {
        asm!(
            "vmread {v}, {f}",
            "setna {bad}",
            v = out(reg) v,
            f = in(reg) encoding as u64,
            bad = out(reg_byte) bad,
            options(nostack),
        );
    }
    (bad == 0).then_some(v)
}

/// VMWRITE to the current VMCS; false if refused (unknown or read-only
/// field).
pub fn write(encoding: u32, value: u64) -> bool {
    let bad: u8;
    // SAFETY: VMWRITE changes only the current VMCS, which the kernel owns;
    // what a bad value does is checked at VM entry (an entry failure).
    unsafe {
        asm!(
            "vmwrite {f}, {v}",
            "setna {bad}",
            v = in(reg) value,
            f = in(reg) encoding as u64,
            bad = out(reg_byte) bad,
            options(nostack),
        );
    }
    bad == 0
}

/// INVEPT single-context: drops the cached translations derived from `eptp`.
pub fn invept(eptp: u64) {
    let desc = [eptp, 0u64];
    // SAFETY: the descriptor is a local 128-bit value; type 1 is checked
    // against the CPU's support by `detect` (EPT implies INVEPT). Failure
    // only sets flags.
    unsafe {
        asm!("invept {}, [{}]", in(reg) 1u64, in(reg) desc.as_ptr(), options(nostack));
    }
}

/// INVEPT all-context: drops every EPT-derived translation (every view of
/// every VM; used when a leaf changed in a view the guest may have
/// switched to itself with VMFUNC).
pub fn invept_all() {
    let desc = [0u64, 0u64];
    // SAFETY: as in `invept`; the caller checked the CPU supports type 2.
    unsafe {
        asm!("invept {}, [{}]", in(reg) 2u64, in(reg) desc.as_ptr(), options(nostack));
    }
}

/// INVVPID single-context: drops `vpid`'s cached linear translations.
pub fn invvpid(vpid: u16) {
    let desc = [vpid as u64, 0u64];
    // SAFETY: as in `invept`; an unsupported type only sets flags.
    unsafe {
        asm!("invvpid {}, [{}]", in(reg) 1u64, in(reg) desc.as_ptr(), options(nostack));
    }
}

/// The host-state fields that do not change between entries on this CPU
/// (selectors, control registers, descriptor-table bases, SYSENTER, PAT,
/// EFER). FS/GS bases and CR3 are written by [`run`] every time (they
/// follow the running PD).
pub fn write_host_state() {
    let mut gdtr = [0u8; 10];
    let mut idtr = [0u8; 10];
    let (cr0, cr4): (u64, u64);
    let tr: u16;
    // SAFETY: SGDT/SIDT/STR and moves from CR0/CR4 only read CPU state into
    // locals.
    unsafe {
        asm!("sgdt [{}]", in(reg) gdtr.as_mut_ptr(), options(nostack));
        asm!("sidt [{}]", in(reg) idtr.as_mut_ptr(), options(nostack));
        asm!("str {:x}", out(reg) tr, options(nomem, nostack));
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack));
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
    }
    let gdt_base = u64::from_le_bytes(gdtr[2..10].try_into().unwrap_or([0; 8]));
    let idt_base = u64::from_le_bytes(idtr[2..10].try_into().unwrap_or([0; 8]));
    // The TSS base from its 16-byte GDT descriptor.
    let desc = |i: u64| {
        // SAFETY: the GDT is the kernel's own static, TR indexes inside it.
        unsafe { ((gdt_base + i * 8) as *const u64).read_volatile() }
    };
    let lo = desc(tr as u64 / 8);
    let hi = desc(tr as u64 / 8 + 1);
    let tr_base = ((lo >> 16) & 0xff_ffff) | ((lo >> 56) << 24) | (hi << 32);
    let (cs, ds) = (super::gdt::KERNEL_CS, super::gdt::KERNEL_DS);
    write(field::HOST_CR0, cr0);
    write(field::HOST_CR4, cr4);
    write(field::HOST_CS_SELECTOR, cs);
    for f in [
        field::HOST_ES_SELECTOR,
        field::HOST_SS_SELECTOR,
        field::HOST_DS_SELECTOR,
    ] {
        write(f, ds);
    }
    write(field::HOST_FS_SELECTOR, 0);
    write(field::HOST_GS_SELECTOR, 0);
    write(field::HOST_TR_SELECTOR, tr as u64);
    write(field::HOST_TR_BASE, tr_base);
    write(field::HOST_GDTR_BASE, gdt_base);
    write(field::HOST_IDTR_BASE, idt_base);
    // SAFETY: SYSENTER, PAT and EFER exist on every CPU with VMX.
    unsafe {
        write(field::HOST_SYSENTER_CS, cpu::rdmsr(0x174));
        write(field::HOST_SYSENTER_ESP, cpu::rdmsr(0x175));
        write(field::HOST_SYSENTER_EIP, cpu::rdmsr(0x176));
        write(field::HOST_PAT, cpu::rdmsr(0x277));
        write(field::HOST_EFER, cpu::rdmsr(0xc000_0080));
    }
}

/// What one entry needs beside the VMCS: the guest GPRs VMX does not
/// switch (indexed as `bulkhead_abi::vcpu::Gpr`; the RSP slot is unused,
/// RSP is in the VMCS), the guest's CR2, and whether the VMCS was launched.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RunState {
    /// Guest GPRs by architectural index.
    pub gprs: [u64; 16],
    /// Guest CR2 (VMX does not switch it).
    pub cr2: u64,
    /// VMLAUNCH done on this VMCS since its last VMCLEAR (then VMRESUME).
    pub launched: u64,
}

/// Enters the guest of the current VMCS until its next exit. `Ok` after a
/// VM exit (the reason is in the VMCS, which may also be an entry failure
/// on invalid guest state); `Err` with the VM-instruction error when
/// VMLAUNCH/VMRESUME itself failed (bad controls or host state: the guest
/// never ran).
///
/// Host interrupts must be masked by the caller (they are: the kernel runs
/// with IF clear), so nothing lands between the state switch and the entry.
pub fn run(state: &mut RunState) -> Result<(), u32> {
    // SAFETY: reading FS/GS base and CR3 only reads CPU state.
    let (fs, gs, cr3) = unsafe { (cpu::rdmsr(0xc000_0100), cpu::rdmsr(0xc000_0101), cpu::cr3()) };
    write(field::HOST_FS_BASE, fs);
    write(field::HOST_GS_BASE, gs);
    write(field::HOST_CR3, cr3);
    let was_launched = state.launched;
    let p: *mut RunState = state;
    let failed: u64;
    // SAFETY: the current VMCS is one the kernel built: EPT over frames the
    // VM was granted, every sensitive instruction and all host interrupts
    // exiting, host state of this CPU with HOST_RIP at the exit label below
    // and HOST_RSP at this frame's stack. rbx and rbp, which inline asm may
    // not name, are pushed and popped; every other GPR is declared
    // clobbered. The guest's CR2 is loaded and saved (the kernel does not
    // keep CR2 across this call: page faults read it at once).
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "push rdi",
            "mov rdx, 0x6c14",
            "vmwrite rdx, rsp",
            "lea rax, [rip + 2f]",
            "mov rdx, 0x6c16",
            "vmwrite rdx, rax",
            "mov rax, [rdi + 8*16]",
            "mov cr2, rax",
            "cmp qword ptr [rdi + 8*17], 0",
            "mov rax, [rdi]",
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
            "jne 5f",
            "vmlaunch",
            "jmp 3f",
            "5:",
            "vmresume",
            "3:",
            // The entry failed: still the host, guest values in the GPRs.
            "pop rdi",
            "mov eax, 1",
            "jmp 4f",
            "2:",
            // VM exit: RSP is HOST_RSP, the state pointer on top.
            "push rdi",
            "mov rdi, [rsp + 8]",
            "mov [rdi], rax",
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
            "mov rax, cr2",
            "mov [rdi + 8*16], rax",
            "mov qword ptr [rdi + 8*17], 1",
            "pop rdi",
            "xor eax, eax",
            "4:",
            "pop rbp",
            "pop rbx",
            inout("rdi") p => _,
            out("rax") failed, out("rcx") _, out("rdx") _, out("rsi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
    // A VM exit loads the GDTR/IDTR limits as 0xffff and the TR limit as
    // 0x67, which would cut off the TSS's I/O permission bitmap: reload them.
    super::gdt::reload_after_vm_exit();
    if failed != 0 {
        return Err(read(field::VM_INSTRUCTION_ERROR).unwrap_or(0) as u32);
    }
    // A failed entry (invalid guest state) leaves the launch state as it
    // was: VMLAUNCH again if it had never succeeded, else VMRESUME.
    if read(field::EXIT_REASON).unwrap_or(0) & (1 << 31) != 0 {
        state.launched = was_launched;
    }
    Ok(())
}

/// Loads a vCPU's syscall MSRs (STAR, LSTAR, CSTAR, SFMASK, KernelGSBase,
/// in `kernel_core::vmcs::SOFT_MSRS` order), which VMX does not switch.
/// The kernel itself uses none of them (its entry is `int 0x80`, host
/// EFER.SCE is clear, it never executes SWAPGS), so they stay loaded
/// until another vCPU runs.
pub fn load_soft_msrs(values: &[u64; 5]) {
    for (&m, &v) in kernel_core::vmcs::SOFT_MSRS.iter().zip(values) {
        // SAFETY: these MSRs exist on every 64-bit CPU; any value is
        // accepted except non-canonical addresses, which the VMM cannot
        // produce here unchecked: LSTAR/CSTAR/KernelGSBase are masked
        // canonical below.
        unsafe { cpu::wrmsr(m, canonical(m, v)) }
    }
}

fn canonical(m: u32, v: u64) -> u64 {
    match m {
        // STAR and SFMASK take any value (SFMASK's upper half is reserved).
        0xc000_0081 => v,
        0xc000_0084 => v & 0xffff_ffff,
        // Addresses: sign-extend from bit 47 so WRMSR never faults.
        _ => ((v << 16) as i64 >> 16) as u64,
    }
}

/// Turns on CR4.OSXSAVE if the CPU has XSAVE, so the kernel can load a
/// guest's XCR0 (XSETBV always exits in VMX non-root operation and the
/// kernel emulates it); returns the XCR0 bits the CPU supports, or 0
/// without XSAVE. The kernel and the PDs use no XSAVE state themselves.
pub fn enable_xsave() -> u64 {
    let (_, _, ecx, _) = cpu::cpuid(1, 0);
    if ecx & (1 << 26) == 0 {
        return 0;
    }
    // SAFETY: CPUID reported XSAVE, so CR4.OSXSAVE may be set; it only
    // makes XGETBV/XSETBV/XSAVE legal and does not change paging.
    unsafe { cpu::set_cr4(cpu::cr4() | (1 << 18)) };
    let (eax, _, _, edx) = cpu::cpuid(0xd, 0);
    eax as u64 | (edx as u64) << 32
}

/// Loads XCR0 (a value `kernel_core::vmcs::xsetbv_ok` accepted against
/// the mask `enable_xsave` returned).
pub fn xsetbv(value: u64) {
    // SAFETY: CR4.OSXSAVE is set (`enable_xsave`) and the caller checked
    // the value against the supported bits, so XSETBV cannot fault.
    unsafe {
        asm!("xsetbv", in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack));
    }
}

/// Reads one of the syscall MSRs a guest may write directly (to keep the
/// kernel's per-vCPU copy current).
pub fn read_msr(m: u32) -> u64 {
    // SAFETY: callers pass only `kernel_core::vmcs::SOFT_MSRS`, which exist
    // on every 64-bit CPU.
    unsafe { cpu::rdmsr(m) }
}
