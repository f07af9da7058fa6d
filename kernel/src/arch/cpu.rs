//! Thin wrappers over single privileged instructions. Each is `unsafe` where
//! misuse can break memory safety or the machine state the kernel relies on.

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device the kernel drives, and the write must
/// not break an invariant of that device's driver.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees the port write is sound.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// As [`outb`]: reads may have device side effects.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller guarantees the port read is sound.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU (else #GP in ring 0).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    lo as u64 | ((hi as u64) << 32)
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must keep the kernel's invariants.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is sound.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    }
}

/// CPUID leaf/subleaf: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads a counter (unsafe in older toolchains' view).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// CR2: the faulting address of the last page fault.
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// CR3.
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Loads CR3.
///
/// # Safety
/// `v` must be the physical address of a PML4 that maps the kernel exactly
/// as the current one does.
pub unsafe fn set_cr3(v: u64) {
    // SAFETY: the caller guarantees the new tables map the kernel.
    unsafe { asm!("mov cr3, {}", in(reg) v, options(nostack, preserves_flags)) }
}

/// CR4.
pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Loads CR4.
///
/// # Safety
/// Only bits the CPU supports, and none that break running kernel code.
pub unsafe fn set_cr4(v: u64) {
    // SAFETY: the caller guarantees the bits are supported and safe.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) }
}

/// Halts until the next interrupt, with interrupts enabled for that wait
/// only (`sti; hlt` is atomic with respect to the interrupt window).
pub fn wait_for_interrupt() {
    // SAFETY: the kernel's interrupt handlers are installed before the first
    // call; interrupts are disabled again before returning.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) }
}

/// Takes the interrupts that are pending (e.g. the one that ended a
/// guest's turn), with interrupts enabled for one instruction only: `sti`
/// opens the window after the `nop`, `cli` closes it.
pub fn take_interrupts() {
    // SAFETY: as in `wait_for_interrupt`; the handlers run on this stack
    // and may change kernel state, so no `nomem`: the compiler reloads what
    // it cached.
    unsafe { asm!("sti", "nop", "cli", options(nostack)) }
}

/// Stops the CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts disabled this only stops the CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
