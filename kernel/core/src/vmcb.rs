//! The AMD-V VMCB layout the kernel uses: offsets of the control fields
//! and of every register the vCPU interface names, the intercept bits, and
//! the segment-attribute conversion between the interface's (VMX-style)
//! layout and the VMCB's packed one.
//!
//! Design rules: the arch layer reads and writes VMCB words only at the
//! offsets given here (AMD APM vol. 2, appendix B); VMM writes reach only
//! the state-save area, never the control area, so a VMM can make VMRUN
//! fail its consistency checks (an entry failure it is told about) but
//! cannot change what the kernel intercepts.

use bulkhead_abi::vcpu::{Gpr, Msr, Register, Segment, SegmentField};

/// Control area: CR read (bits 0..16) / write (16..32) intercepts.
pub const INTERCEPT_CR: usize = 0x000;
/// Exception intercepts (bit n = vector n).
pub const INTERCEPT_EXCEPTIONS: usize = 0x008;
/// Miscellaneous intercepts, word 3.
pub const INTERCEPT_MISC1: usize = 0x00c;
/// Miscellaneous intercepts, word 4.
pub const INTERCEPT_MISC2: usize = 0x010;
/// I/O permission map physical address.
pub const IOPM_BASE: usize = 0x040;
/// MSR permission map physical address.
pub const MSRPM_BASE: usize = 0x048;
/// Guest ASID (u32).
pub const ASID: usize = 0x058;
/// TLB control (u8): 1 = flush everything on this VMRUN.
pub const TLB_CONTROL: usize = 0x05c;
/// Virtual interrupt control (V_IRQ bit 8, V_INTR_MASKING bit 24).
pub const V_INTR: usize = 0x060;
/// Exit code.
pub const EXITCODE: usize = 0x070;
/// Exit information 1.
pub const EXITINFO1: usize = 0x078;
/// Exit information 2.
pub const EXITINFO2: usize = 0x080;
/// An event whose delivery the exit interrupted (EVENTINJ layout).
pub const EXITINTINFO: usize = 0x088;
/// Nested paging enable (bit 0).
pub const NP_ENABLE: usize = 0x090;
/// Event injection.
pub const EVENTINJ: usize = 0x0a8;
/// Nested page-table root.
pub const N_CR3: usize = 0x0b0;
/// VMCB clean bits (0: the processor reloads everything).
pub const CLEAN: usize = 0x0c0;
/// Next RIP (NRIP save).
pub const NRIP: usize = 0x0c8;

/// Word 3 bits.
pub mod misc1 {
    /// Physical interrupts.
    pub const INTR: u32 = 1 << 0;
    /// NMIs.
    pub const NMI: u32 = 1 << 1;
    /// Virtual interrupt window.
    pub const VINTR: u32 = 1 << 4;
    /// CPUID.
    pub const CPUID: u32 = 1 << 18;
    /// HLT.
    pub const HLT: u32 = 1 << 24;
    /// IN/OUT through the I/O permission map.
    pub const IOIO: u32 = 1 << 27;
    /// RDMSR/WRMSR through the MSR permission map.
    pub const MSR: u32 = 1 << 28;
    /// Shutdown (triple fault).
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Word 4 bits: the virtualization instructions, all intercepted (VMRUN
/// must be, or VMRUN itself fails).
pub mod misc2 {
    /// VMRUN, VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT.
    pub const SVM_INSNS: u32 = 0x7f;
}

/// Where a register lives in the VMCB and how wide it is (bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    /// In the VMCB at this offset, this many bytes.
    Vmcb(usize, u8),
    /// Kept by the kernel beside the VMCB (VMRUN does not load it): GPR
    /// index into the saved-register array.
    Saved(usize),
}

const SEGMENT_BASE: usize = 0x400;

/// The VMCB slot of a register.
pub fn slot(r: Register) -> Slot {
    match r {
        Register::Gpr(Gpr::Rax) => Slot::Vmcb(0x5f8, 8),
        Register::Gpr(Gpr::Rsp) => Slot::Vmcb(0x5d8, 8),
        Register::Gpr(g) => Slot::Saved(g as usize),
        Register::Rip => Slot::Vmcb(0x578, 8),
        Register::Rflags => Slot::Vmcb(0x570, 8),
        Register::Cr0 => Slot::Vmcb(0x558, 8),
        Register::Cr2 => Slot::Vmcb(0x640, 8),
        Register::Cr3 => Slot::Vmcb(0x550, 8),
        Register::Cr4 => Slot::Vmcb(0x548, 8),
        Register::Efer => Slot::Vmcb(0x4d0, 8),
        Register::Dr7 => Slot::Vmcb(0x560, 8),
        Register::Segment(s, f) => {
            // VMCB order: ES CS SS DS FS GS GDTR LDTR IDTR TR, 16 bytes each.
            let index = match s {
                Segment::Es => 0,
                Segment::Cs => 1,
                Segment::Ss => 2,
                Segment::Ds => 3,
                Segment::Fs => 4,
                Segment::Gs => 5,
                Segment::Ldtr => 7,
                Segment::Tr => 9,
            };
            let at = SEGMENT_BASE + index * 16;
            match f {
                SegmentField::Selector => Slot::Vmcb(at, 2),
                SegmentField::Attributes => Slot::Vmcb(at + 2, 2),
                SegmentField::Limit => Slot::Vmcb(at + 4, 4),
                SegmentField::Base => Slot::Vmcb(at + 8, 8),
            }
        }
        Register::Gdtr(limit) => {
            if limit {
                Slot::Vmcb(SEGMENT_BASE + 6 * 16 + 4, 4)
            } else {
                Slot::Vmcb(SEGMENT_BASE + 6 * 16 + 8, 8)
            }
        }
        Register::Idtr(limit) => {
            if limit {
                Slot::Vmcb(SEGMENT_BASE + 8 * 16 + 4, 4)
            } else {
                Slot::Vmcb(SEGMENT_BASE + 8 * 16 + 8, 8)
            }
        }
        Register::Msr(m) => Slot::Vmcb(
            match m {
                Msr::Star => 0x600,
                Msr::Lstar => 0x608,
                Msr::Cstar => 0x610,
                Msr::Sfmask => 0x618,
                Msr::KernelGsBase => 0x620,
                Msr::SysenterCs => 0x628,
                Msr::SysenterEsp => 0x630,
                Msr::SysenterEip => 0x638,
                Msr::Pat => 0x668,
            },
            8,
        ),
    }
}

/// Interface (VMX access-rights) attributes to the VMCB's packed form:
/// bits 0..8 stay, AVL/L/DB/G move from 12..16 to 8..12; "unusable"
/// (bit 16) has no VMCB bit and becomes not-present.
pub const fn attrs_to_vmcb(vmx: u64) -> u16 {
    let packed = (vmx & 0xff) | ((vmx >> 4) & 0xf00);
    if vmx & (1 << 16) != 0 {
        (packed & !0x80) as u16
    } else {
        packed as u16
    }
}

/// The VMCB's packed attributes to the interface layout (not present →
/// unusable, as VMX reports it).
pub const fn attrs_from_vmcb(svm: u16) -> u64 {
    let svm = svm as u64;
    let vmx = (svm & 0xff) | ((svm & 0xf00) << 4);
    if svm & 0x80 == 0 {
        vmx | (1 << 16)
    } else {
        vmx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_and_inside_the_save_area() {
        let mut seen: heapless::Vec<(usize, u8), 128> = heapless::Vec::new();
        for raw in 0..0x400u64 {
            let Some(r) = Register::from_raw(raw) else {
                continue;
            };
            match slot(r) {
                Slot::Vmcb(off, w) => {
                    assert!((0x400..0x1000).contains(&off), "{r:?} at {off:#x}");
                    assert_eq!(off % w as usize, 0, "{r:?} misaligned");
                    for &(o, ow) in &seen {
                        assert!(
                            off + w as usize <= o || o + ow as usize <= off,
                            "{r:?} overlaps {o:#x}"
                        );
                    }
                    seen.push((off, w)).unwrap();
                }
                Slot::Saved(i) => assert!(i < 16 && i != 0 && i != 4),
            }
        }
        assert_eq!(slot(Register::Rip), Slot::Vmcb(0x578, 8));
        assert_eq!(
            slot(Register::Segment(Segment::Cs, SegmentField::Attributes)),
            Slot::Vmcb(0x412, 2)
        );
        assert_eq!(
            slot(Register::Segment(Segment::Tr, SegmentField::Base)),
            Slot::Vmcb(0x498, 8)
        );
        assert_eq!(slot(Register::Gdtr(true)), Slot::Vmcb(0x464, 4));
    }

    #[test]
    fn attributes_convert_both_ways() {
        // 64-bit code: type 0xb, S, P, L, G.
        let vmx = 0xb | 1 << 4 | 1 << 7 | 1 << 13 | 1 << 15;
        assert_eq!(attrs_to_vmcb(vmx), 0xa9b);
        assert_eq!(attrs_from_vmcb(0xa9b), vmx);
        assert_eq!(attrs_from_vmcb(0), 1 << 16);
        assert_eq!(attrs_to_vmcb(1 << 16 | 0x93), 0x13);
        for a in 0..=0xfffu16 {
            if a & 0x80 != 0 {
                assert_eq!(attrs_to_vmcb(attrs_from_vmcb(a)), a);
            }
        }
    }
}
