//! The guest's MSR policy: classify an intercepted `rdmsr` or `wrmsr` into
//! an action the VMM carries out — forward to a vCPU register, answer a
//! fixed or computed value, drop the write, or refuse (the VMM injects
//! #GP(0), as hardware does for an MSR that does not exist).
//!
//! Design rules:
//! - an allow-list: every MSR not named here is refused, as KVM does with
//!   `ignore_msrs` off — a guest that probes with `rdmsr_safe` gets its
//!   #GP and moves on, and nothing the VMM does not understand is ever
//!   written to the vCPU;
//! - the list matches the CPUID policy ([`crate::cpuid`]): a feature whose
//!   MSRs are refused is hidden there, so Linux does not touch them;
//! - register-backed MSRs are checked as the CPU checks them (canonical
//!   addresses, reserved bits, valid PAT memory types) before the VMM
//!   writes the vCPU, so a bad guest value is the guest's #GP, never a
//!   failed VM entry;
//! - EFER: the guest may set SCE, LME and NXE; LMA is kept as the CPU
//!   has it (writes to it are ignored, as KVM does); LME cannot change
//!   while long mode is active; SVME is the VMM's: always set on AMD-V
//!   (VMRUN requires it), never visible to the guest on read.

use bulkhead_abi::vcpu::{Msr, Register, Segment, SegmentField, Vendor};

/// Architectural MSR numbers the policy names.
pub mod nr {
    /// Time-stamp counter.
    pub const TSC: u32 = 0x10;
    /// Platform id (microcode selection).
    pub const PLATFORM_ID: u32 = 0x17;
    /// Local APIC base.
    pub const APIC_BASE: u32 = 0x1b;
    /// Feature control (VMX/SMX enable, lock).
    pub const FEATURE_CONTROL: u32 = 0x3a;
    /// Microcode revision (Intel BIOS_SIGN_ID, AMD PATCH_LEVEL).
    pub const UCODE_REV: u32 = 0x8b;
    /// Platform information (max non-turbo ratio).
    pub const PLATFORM_INFO: u32 = 0xce;
    /// SYSENTER CS.
    pub const SYSENTER_CS: u32 = 0x174;
    /// SYSENTER ESP.
    pub const SYSENTER_ESP: u32 = 0x175;
    /// SYSENTER EIP.
    pub const SYSENTER_EIP: u32 = 0x176;
    /// Miscellaneous enables.
    pub const MISC_ENABLE: u32 = 0x1a0;
    /// Debug control.
    pub const DEBUGCTL: u32 = 0x1d9;
    /// Page attribute table.
    pub const PAT: u32 = 0x277;
    /// The x2APIC register range.
    pub const X2APIC_FIRST: u32 = 0x800;
    /// Last x2APIC register.
    pub const X2APIC_LAST: u32 = 0x8ff;
    /// Extended feature enable.
    pub const EFER: u32 = 0xc000_0080;
    /// SYSCALL segments.
    pub const STAR: u32 = 0xc000_0081;
    /// SYSCALL target, 64-bit.
    pub const LSTAR: u32 = 0xc000_0082;
    /// SYSCALL target, compatibility mode.
    pub const CSTAR: u32 = 0xc000_0083;
    /// SYSCALL RFLAGS mask.
    pub const SFMASK: u32 = 0xc000_0084;
    /// FS base.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// GS base.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// SWAPGS's other GS base.
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// AMD hardware configuration.
    pub const HWCR: u32 = 0xc001_0015;
    /// AMD interrupt-pending message (C1E state, read for erratum 400).
    pub const INT_PENDING_MSG: u32 = 0xc001_0055;
    /// AMD decode configuration (LFENCE serialising).
    pub const DE_CFG: u32 = 0xc001_1029;
}

/// EFER bits.
pub mod efer {
    /// SYSCALL enable.
    pub const SCE: u64 = 1 << 0;
    /// Long mode enable.
    pub const LME: u64 = 1 << 8;
    /// Long mode active (the CPU's, read-only).
    pub const LMA: u64 = 1 << 10;
    /// No-execute enable.
    pub const NXE: u64 = 1 << 11;
    /// SVM enable (the VMM's on AMD-V).
    pub const SVME: u64 = 1 << 12;
    /// What a guest may write.
    pub const GUEST_WRITABLE: u64 = SCE | LME | LMA | NXE;
}

/// IA32_MISC_ENABLE as the guest reads it: fast strings (0), branch trace
/// unavailable (11), PEBS unavailable (12).
pub const MISC_ENABLE_VALUE: u64 = 1 | (1 << 11) | (1 << 12);
/// IA32_FEATURE_CONTROL: locked, VMX and SMX off (as a BIOS leaves it).
pub const FEATURE_CONTROL_VALUE: u64 = 1;
/// The microcode revision the guest reads (revision in the high half, as
/// Intel reports it; no update is ever loaded).
pub const UCODE_REV_VALUE: u64 = 0x1_0000_0000;
/// HWCR as the guest reads it: TscFreqSel (24), the TSC counts at P0.
pub const HWCR_VALUE: u64 = 1 << 24;
/// DE_CFG as the guest reads it: LFENCE is serialising (bit 1).
pub const DE_CFG_VALUE: u64 = 1 << 1;

/// What the VMM knows at the exit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MsrContext {
    /// The virtualization vendor.
    pub vendor: Vendor,
    /// The guest's TSC now (what `rdmsr 0x10` returns).
    pub tsc: u64,
    /// The guest's TSC frequency in kHz (for PLATFORM_INFO), 0 if unknown.
    pub tsc_khz: u32,
    /// The vCPU's current EFER (only EFER writes use it).
    pub efer: u64,
}

/// Why an access is refused (the VMM injects #GP(0) in every case; the
/// reason is for its log).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusal {
    /// Not an MSR the guest may use.
    Unknown,
    /// The local APIC (xAPIC base or x2APIC range): the VMM emulates none.
    NoApic,
    /// The MSR is read-only (or locked).
    ReadOnly,
    /// The value sets bits the MSR does not allow.
    ReservedBits {
        /// The offending bits.
        mask: u64,
    },
    /// An address MSR written with a non-canonical address.
    NonCanonical,
    /// EFER.LME changed while long mode is active.
    LongModeActive,
}

/// What to do with an `rdmsr`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReadAction {
    /// Answer the vCPU register's value with the `hide` bits cleared.
    Register {
        /// The register.
        reg: Register,
        /// Bits to clear in the answer.
        hide: u64,
    },
    /// Answer this value.
    Value(u64),
    /// Inject #GP(0).
    Refuse(Refusal),
}

/// What to do with a `wrmsr`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteAction {
    /// Write `value` (already checked and fixed up) to the vCPU register.
    Register {
        /// The register.
        reg: Register,
        /// The value to write.
        value: u64,
    },
    /// Accept the write and drop it.
    Ignore,
    /// Inject #GP(0).
    Refuse(Refusal),
}

/// The vCPU register behind an MSR, if it has one.
pub fn register_of(msr: u32) -> Option<Register> {
    Some(match msr {
        nr::EFER => Register::Efer,
        nr::STAR => Register::Msr(Msr::Star),
        nr::LSTAR => Register::Msr(Msr::Lstar),
        nr::CSTAR => Register::Msr(Msr::Cstar),
        nr::SFMASK => Register::Msr(Msr::Sfmask),
        nr::KERNEL_GS_BASE => Register::Msr(Msr::KernelGsBase),
        nr::SYSENTER_CS => Register::Msr(Msr::SysenterCs),
        nr::SYSENTER_ESP => Register::Msr(Msr::SysenterEsp),
        nr::SYSENTER_EIP => Register::Msr(Msr::SysenterEip),
        nr::PAT => Register::Msr(Msr::Pat),
        nr::FS_BASE => Register::Segment(Segment::Fs, SegmentField::Base),
        nr::GS_BASE => Register::Segment(Segment::Gs, SegmentField::Base),
        _ => return None,
    })
}

/// Whether `v` is canonical for 48-bit linear addresses (5-level paging
/// is hidden from the guest).
pub const fn is_canonical(v: u64) -> bool {
    let top = v >> 47;
    top == 0 || top == 0x1_ffff
}

/// The classification of `rdmsr msr`.
pub fn read(msr: u32, ctx: &MsrContext) -> ReadAction {
    use ReadAction::{Refuse, Value};
    if let Some(reg) = register_of(msr) {
        let hide = if msr == nr::EFER { efer::SVME } else { 0 };
        return ReadAction::Register { reg, hide };
    }
    match msr {
        nr::TSC => Value(ctx.tsc),
        nr::PLATFORM_ID => Value(0),
        nr::FEATURE_CONTROL => Value(FEATURE_CONTROL_VALUE),
        nr::UCODE_REV => Value(UCODE_REV_VALUE),
        // Max non-turbo ratio (bits 8..16) at a 100 MHz bus clock.
        nr::PLATFORM_INFO => Value(((ctx.tsc_khz as u64 / 100_000) & 0xff) << 8),
        nr::MISC_ENABLE => Value(MISC_ENABLE_VALUE),
        nr::DEBUGCTL => Value(0),
        nr::HWCR => Value(HWCR_VALUE),
        nr::INT_PENDING_MSG => Value(0),
        nr::DE_CFG => Value(DE_CFG_VALUE),
        nr::APIC_BASE | nr::X2APIC_FIRST..=nr::X2APIC_LAST => Refuse(Refusal::NoApic),
        _ => Refuse(Refusal::Unknown),
    }
}

/// The classification of `wrmsr msr, value`.
pub fn write(msr: u32, value: u64, ctx: &MsrContext) -> WriteAction {
    use WriteAction::{Ignore, Refuse};
    let to = |reg: Register, value: u64| WriteAction::Register { reg, value };
    let canonical = |m: u32| match register_of(m) {
        Some(reg) if is_canonical(value) => to(reg, value),
        Some(_) => Refuse(Refusal::NonCanonical),
        None => Refuse(Refusal::Unknown),
    };
    match msr {
        nr::EFER => write_efer(value, ctx),
        nr::STAR => to(Register::Msr(Msr::Star), value),
        // A selector in a 32-bit MSR (the VMCS field is 32 bits wide).
        nr::SYSENTER_CS if value >> 32 != 0 => Refuse(Refusal::ReservedBits {
            mask: value & !0xffff_ffff,
        }),
        nr::SYSENTER_CS => to(Register::Msr(Msr::SysenterCs), value),
        nr::LSTAR
        | nr::CSTAR
        | nr::KERNEL_GS_BASE
        | nr::FS_BASE
        | nr::GS_BASE
        | nr::SYSENTER_ESP
        | nr::SYSENTER_EIP => canonical(msr),
        nr::SFMASK if value >> 32 != 0 => Refuse(Refusal::ReservedBits {
            mask: value & !0xffff_ffff,
        }),
        nr::SFMASK => to(Register::Msr(Msr::Sfmask), value),
        nr::PAT => match pat_reserved(value) {
            0 => to(Register::Msr(Msr::Pat), value),
            mask => Refuse(Refusal::ReservedBits { mask }),
        },
        // TSC writes would move the guest's clock; Linux does not write it
        // on one CPU, and the VMM keeps the host's (documented).
        nr::TSC => Ignore,
        // Intel's protocol writes 0 before CPUID to latch the revision.
        nr::UCODE_REV => Ignore,
        nr::MISC_ENABLE | nr::HWCR | nr::DE_CFG | nr::INT_PENDING_MSG => Ignore,
        nr::DEBUGCTL if value == 0 => Ignore,
        nr::DEBUGCTL => Refuse(Refusal::ReservedBits { mask: value }),
        nr::PLATFORM_ID | nr::PLATFORM_INFO | nr::FEATURE_CONTROL => Refuse(Refusal::ReadOnly),
        nr::APIC_BASE | nr::X2APIC_FIRST..=nr::X2APIC_LAST => Refuse(Refusal::NoApic),
        _ => Refuse(Refusal::Unknown),
    }
}

/// Bits of `pat` in entries that hold no valid memory type (2, 3 and
/// anything above 7 are reserved), as a mask of the offending bytes.
pub fn pat_reserved(pat: u64) -> u64 {
    let mut mask = 0;
    for i in 0..8 {
        let t = (pat >> (i * 8)) & 0xff;
        if !matches!(t, 0 | 1 | 4 | 5 | 6 | 7) {
            mask |= 0xff << (i * 8);
        }
    }
    mask & pat
}

fn write_efer(value: u64, ctx: &MsrContext) -> WriteAction {
    let reserved = value & !efer::GUEST_WRITABLE;
    if reserved != 0 {
        return WriteAction::Refuse(Refusal::ReservedBits { mask: reserved });
    }
    if ctx.efer & efer::LMA != 0 && (ctx.efer ^ value) & efer::LME != 0 {
        return WriteAction::Refuse(Refusal::LongModeActive);
    }
    let vendor_bits = match ctx.vendor {
        Vendor::Svm => efer::SVME,
        Vendor::Vmx => 0,
    };
    WriteAction::Register {
        reg: Register::Efer,
        value: (value & !efer::LMA) | (ctx.efer & efer::LMA) | vendor_bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(vendor: Vendor) -> MsrContext {
        MsrContext {
            vendor,
            tsc: 0x1234_5678_9abc,
            tsc_khz: 2_400_000,
            efer: efer::LME | efer::LMA | efer::SVME,
        }
    }

    const BOTH: [Vendor; 2] = [Vendor::Svm, Vendor::Vmx];

    #[test]
    fn register_backed_msrs_forward() {
        let c = ctx(Vendor::Svm);
        let table = [
            (0xc000_0081, Register::Msr(Msr::Star)),
            (0xc000_0082, Register::Msr(Msr::Lstar)),
            (0xc000_0083, Register::Msr(Msr::Cstar)),
            (0xc000_0084, Register::Msr(Msr::Sfmask)),
            (0xc000_0102, Register::Msr(Msr::KernelGsBase)),
            (0x174, Register::Msr(Msr::SysenterCs)),
            (0x175, Register::Msr(Msr::SysenterEsp)),
            (0x176, Register::Msr(Msr::SysenterEip)),
            (0x277, Register::Msr(Msr::Pat)),
            (
                0xc000_0100,
                Register::Segment(Segment::Fs, SegmentField::Base),
            ),
            (
                0xc000_0101,
                Register::Segment(Segment::Gs, SegmentField::Base),
            ),
        ];
        for (msr, reg) in table {
            assert_eq!(
                read(msr, &c),
                ReadAction::Register { reg, hide: 0 },
                "{msr:#x}"
            );
            // A value valid for every one of them.
            let v = 0x0007_0406_0007_0406;
            assert_eq!(
                write(msr, v & 0xffff_ffff, &c),
                WriteAction::Register {
                    reg,
                    value: v & 0xffff_ffff
                },
                "{msr:#x}"
            );
        }
        // The ABI's numbers agree with ours.
        for m in [
            Msr::Star,
            Msr::Lstar,
            Msr::Cstar,
            Msr::Sfmask,
            Msr::KernelGsBase,
            Msr::SysenterCs,
            Msr::SysenterEsp,
            Msr::SysenterEip,
            Msr::Pat,
        ] {
            assert_eq!(register_of(m.number()), Some(Register::Msr(m)));
        }
        // Linux's kernel addresses are canonical and accepted.
        let lstar = 0xffff_ffff_8160_0000;
        assert_eq!(
            write(nr::LSTAR, lstar, &c),
            WriteAction::Register {
                reg: Register::Msr(Msr::Lstar),
                value: lstar
            }
        );
        assert_eq!(
            write(nr::GS_BASE, 0xffff_8880_0fc0_0000, &c),
            WriteAction::Register {
                reg: Register::Segment(Segment::Gs, SegmentField::Base),
                value: 0xffff_8880_0fc0_0000
            }
        );
    }

    #[test]
    fn non_canonical_addresses_and_reserved_bits_are_refused() {
        let c = ctx(Vendor::Vmx);
        for msr in [
            nr::LSTAR,
            nr::CSTAR,
            nr::KERNEL_GS_BASE,
            nr::FS_BASE,
            nr::GS_BASE,
            nr::SYSENTER_ESP,
            nr::SYSENTER_EIP,
        ] {
            for bad in [0x0000_8000_0000_0000, 0xffff_7fff_ffff_ffff, 1 << 63] {
                assert_eq!(
                    write(msr, bad, &c),
                    WriteAction::Refuse(Refusal::NonCanonical),
                    "{msr:#x} {bad:#x}"
                );
            }
            assert!(matches!(
                write(msr, 0x0000_7fff_ffff_ffff, &c),
                WriteAction::Register { .. }
            ));
        }
        assert_eq!(
            write(nr::SFMASK, 0x1_0000_0700, &c),
            WriteAction::Refuse(Refusal::ReservedBits {
                mask: 0x1_0000_0000
            })
        );
        // PAT: types 2, 3 and 8+ are reserved, per byte.
        let linux_pat = 0x0007_0406_0007_0406; // WB, WC, UC-, UC twice
        assert_eq!(pat_reserved(linux_pat), 0);
        assert!(matches!(
            write(nr::PAT, linux_pat, &c),
            WriteAction::Register { .. }
        ));
        assert_eq!(
            write(nr::PAT, linux_pat | 0x02 << 24, &c),
            WriteAction::Refuse(Refusal::ReservedBits { mask: 0x02 << 24 })
        );
        assert_eq!(
            write(nr::PAT, 0x08 << 56, &c),
            WriteAction::Refuse(Refusal::ReservedBits { mask: 0x08 << 56 })
        );
        // STAR takes any value, SYSENTER_CS any 32-bit one.
        assert!(matches!(
            write(nr::STAR, u64::MAX, &c),
            WriteAction::Register { .. }
        ));
        assert!(matches!(
            write(nr::SYSENTER_CS, 0xffff_ffff, &c),
            WriteAction::Register { .. }
        ));
        assert_eq!(
            write(nr::SYSENTER_CS, 0x2_0000_0010, &c),
            WriteAction::Refuse(Refusal::ReservedBits {
                mask: 0x2_0000_0000
            })
        );
    }

    #[test]
    fn efer_fixup_per_vendor() {
        // Linux's startup_64: set SCE and NXE on top of LME|LMA.
        let want = efer::LME | efer::LMA | efer::SCE | efer::NXE;
        let guest = efer::LME | efer::LMA | efer::SCE | efer::NXE;
        let svm = ctx(Vendor::Svm);
        assert_eq!(
            write(nr::EFER, guest, &svm),
            WriteAction::Register {
                reg: Register::Efer,
                value: want | efer::SVME
            }
        );
        let vmx = MsrContext {
            efer: efer::LME | efer::LMA,
            ..ctx(Vendor::Vmx)
        };
        assert_eq!(
            write(nr::EFER, guest, &vmx),
            WriteAction::Register {
                reg: Register::Efer,
                value: want
            }
        );
        // A read hides SVME on both.
        for v in BOTH {
            assert_eq!(
                read(nr::EFER, &ctx(v)),
                ReadAction::Register {
                    reg: Register::Efer,
                    hide: efer::SVME
                }
            );
        }
        // The guest setting SVME itself, LMSLE, FFXSR, TCE or any other
        // bit: refused with that bit.
        for bit in [12, 13, 14, 15, 1, 9, 21, 63] {
            for v in BOTH {
                assert_eq!(
                    write(nr::EFER, guest | 1 << bit, &ctx(v)),
                    WriteAction::Refuse(Refusal::ReservedBits { mask: 1 << bit }),
                    "bit {bit}"
                );
            }
        }
        // LMA is the CPU's: a write without it keeps it, a write with it
        // outside long mode does not set it.
        assert_eq!(
            write(nr::EFER, efer::LME | efer::SCE, &svm),
            WriteAction::Register {
                reg: Register::Efer,
                value: efer::LME | efer::LMA | efer::SCE | efer::SVME
            }
        );
        let off = MsrContext {
            efer: efer::SVME,
            ..svm
        };
        assert_eq!(
            write(nr::EFER, efer::LME | efer::LMA, &off),
            WriteAction::Register {
                reg: Register::Efer,
                value: efer::LME | efer::SVME
            }
        );
        // Clearing LME in long mode: #GP.
        assert_eq!(
            write(nr::EFER, efer::SCE, &svm),
            WriteAction::Refuse(Refusal::LongModeActive)
        );
    }

    #[test]
    fn emulated_msrs() {
        for v in BOTH {
            let c = ctx(v);
            assert_eq!(read(nr::TSC, &c), ReadAction::Value(0x1234_5678_9abc));
            assert_eq!(write(nr::TSC, 5, &c), WriteAction::Ignore);
            assert_eq!(read(nr::MISC_ENABLE, &c), ReadAction::Value(0x1801));
            assert_eq!(write(nr::MISC_ENABLE, 0x1801, &c), WriteAction::Ignore);
            assert_eq!(read(nr::PLATFORM_INFO, &c), ReadAction::Value(24 << 8));
            assert_eq!(
                write(nr::PLATFORM_INFO, 0, &c),
                WriteAction::Refuse(Refusal::ReadOnly)
            );
            assert_eq!(read(nr::FEATURE_CONTROL, &c), ReadAction::Value(1));
            assert_eq!(
                write(nr::FEATURE_CONTROL, 5, &c),
                WriteAction::Refuse(Refusal::ReadOnly)
            );
            assert_eq!(read(nr::UCODE_REV, &c), ReadAction::Value(0x1_0000_0000));
            assert_eq!(write(nr::UCODE_REV, 0, &c), WriteAction::Ignore);
            assert_eq!(read(nr::PLATFORM_ID, &c), ReadAction::Value(0));
            assert_eq!(read(nr::HWCR, &c), ReadAction::Value(1 << 24));
            assert_eq!(read(nr::DE_CFG, &c), ReadAction::Value(2));
            assert_eq!(write(nr::DE_CFG, 2, &c), WriteAction::Ignore);
            assert_eq!(read(nr::INT_PENDING_MSG, &c), ReadAction::Value(0));
            assert_eq!(read(nr::DEBUGCTL, &c), ReadAction::Value(0));
            assert_eq!(write(nr::DEBUGCTL, 0, &c), WriteAction::Ignore);
            assert_eq!(
                write(nr::DEBUGCTL, 3, &c),
                WriteAction::Refuse(Refusal::ReservedBits { mask: 3 })
            );
        }
        // An unknown TSC frequency reads as ratio 0.
        let c = MsrContext {
            tsc_khz: 0,
            ..ctx(Vendor::Vmx)
        };
        assert_eq!(read(nr::PLATFORM_INFO, &c), ReadAction::Value(0));
    }

    #[test]
    fn apic_and_unknown_msrs_are_refused() {
        let c = ctx(Vendor::Svm);
        for msr in [0x1b, 0x800, 0x802, 0x80b, 0x830, 0x8ff] {
            assert_eq!(
                read(msr, &c),
                ReadAction::Refuse(Refusal::NoApic),
                "{msr:#x}"
            );
            assert_eq!(
                write(msr, 0xfee0_0900, &c),
                WriteAction::Refuse(Refusal::NoApic)
            );
        }
        // MTRRs, machine check, perf counters, speculation control, TSC_AUX,
        // TSC deadline, SVM's own, x2APIC neighbours, and nonsense.
        for msr in [
            0xfe,
            0x2ff,
            0x200,
            0x179,
            0x17a,
            0x400,
            0xc1,
            0x186,
            0x38f,
            0x48,
            0x49,
            0x10a,
            0xc000_0103,
            0x6e0,
            0xc001_0114,
            0xc001_0117,
            0xc001_0000,
            0xc001_0004,
            0x3b,
            0x7ff,
            0x900,
            0x4b56_4d00,
            0xffff_ffff,
            0,
        ] {
            assert_eq!(
                read(msr, &c),
                ReadAction::Refuse(Refusal::Unknown),
                "{msr:#x}"
            );
            assert_eq!(
                write(msr, 0, &c),
                WriteAction::Refuse(Refusal::Unknown),
                "{msr:#x}"
            );
        }
    }

    #[test]
    fn classification_is_total_and_consistent() {
        // Every MSR in the architectural ranges: a read is refused exactly
        // when a write of its read value would be refused as unknown.
        let c = ctx(Vendor::Svm);
        for base in [0u32, 0xc000_0000, 0xc001_0000] {
            for msr in base..base + 0x2000 {
                let r = read(msr, &c);
                let w = write(msr, 0, &c);
                let unknown_r = r == ReadAction::Refuse(Refusal::Unknown);
                let unknown_w = w == WriteAction::Refuse(Refusal::Unknown);
                assert_eq!(unknown_r, unknown_w, "{msr:#x}");
                if let ReadAction::Register { reg, .. } = r {
                    assert!(
                        matches!(w, WriteAction::Register { reg: wr, .. } if wr == reg)
                            || msr == nr::EFER
                    );
                }
            }
        }
    }
}
