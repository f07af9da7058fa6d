//! Intel VT-x: detection of the features the design needs and VMXON.
//!
//! Design rules: only the first step of the VT-x path exists — the kernel
//! reads the capability MSRs, and if VMX is usable enters VMX root operation
//! so the boot log says exactly what this CPU offers. VMCS, EPT, VMLAUNCH
//! and exits are not implemented (docs/virtualization.md); nothing here
//! can fault: every MSR read is guarded by the CPUID bit that defines it,
//! and VMXON failure is reported by its flags, not an exception.

use core::arch::asm;

use super::cpu;

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
