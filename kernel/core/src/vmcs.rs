//! The Intel VT-x VMCS as the kernel uses it: field encodings (SDM vol. 3,
//! appendix B), control values computed from the capability MSRs, the
//! CR0/CR4 fixed bits (relaxed for unrestricted guests), the field of every
//! register the vCPU interface names, segment access-rights conversion, the
//! EPTP / EPTP-list values and the #VE information area layout.
//!
//! Design rules: the arch layer VMREADs and VMWRITEs only the encodings
//! named here; which fields a VMM may touch through raw access is decided
//! here ([`vmm_may_write`]) so that the kernel's own state (host state,
//! controls, EPTP, VPID, bitmaps) can never be handed to a VMM. Nothing
//! panics: a control the CPU cannot provide is an error the kernel prints.

use bulkhead_abi::vcpu::{Gpr, Msr, Register, Segment, SegmentField};

/// VMCS field encodings.
pub mod field {
    /// 16-bit control: virtual-processor identifier.
    pub const VPID: u32 = 0x0000;
    /// 16-bit control: EPTP index (#VE, VMFUNC).
    pub const EPTP_INDEX: u32 = 0x0004;
    /// 16-bit guest selectors: ES, then CS, SS, DS, FS, GS, LDTR, TR (+2 each).
    pub const GUEST_ES_SELECTOR: u32 = 0x0800;
    /// 16-bit host selectors: ES, CS, SS, DS, FS, GS, TR (+2 each).
    pub const HOST_ES_SELECTOR: u32 = 0x0c00;
    /// Host CS selector.
    pub const HOST_CS_SELECTOR: u32 = 0x0c02;
    /// Host SS selector.
    pub const HOST_SS_SELECTOR: u32 = 0x0c04;
    /// Host DS selector.
    pub const HOST_DS_SELECTOR: u32 = 0x0c06;
    /// Host FS selector.
    pub const HOST_FS_SELECTOR: u32 = 0x0c08;
    /// Host GS selector.
    pub const HOST_GS_SELECTOR: u32 = 0x0c0a;
    /// Host TR selector.
    pub const HOST_TR_SELECTOR: u32 = 0x0c0c;
    /// I/O bitmap A (ports 0..0x8000).
    pub const IO_BITMAP_A: u32 = 0x2000;
    /// I/O bitmap B (ports 0x8000..0x10000).
    pub const IO_BITMAP_B: u32 = 0x2002;
    /// MSR bitmaps.
    pub const MSR_BITMAP: u32 = 0x2004;
    /// VM-function controls.
    pub const VMFUNC_CONTROLS: u32 = 0x2018;
    /// EPT pointer.
    pub const EPTP: u32 = 0x201a;
    /// EPTP-list address.
    pub const EPTP_LIST: u32 = 0x2024;
    /// Virtualization-exception information address.
    pub const VE_INFO: u32 = 0x202a;
    /// XSS-exiting bitmap (0: XSAVES/XRSTORS never exit).
    pub const XSS_EXITING_BITMAP: u32 = 0x202c;
    /// Guest-physical address (EPT violations), read-only.
    pub const GUEST_PHYSICAL_ADDRESS: u32 = 0x2400;
    /// VMCS link pointer (all ones: none).
    pub const VMCS_LINK_POINTER: u32 = 0x2800;
    /// Guest IA32_DEBUGCTL.
    pub const GUEST_DEBUGCTL: u32 = 0x2802;
    /// Guest IA32_PAT.
    pub const GUEST_PAT: u32 = 0x2804;
    /// Guest IA32_EFER.
    pub const GUEST_EFER: u32 = 0x2806;
    /// Host IA32_PAT.
    pub const HOST_PAT: u32 = 0x2c00;
    /// Host IA32_EFER.
    pub const HOST_EFER: u32 = 0x2c02;
    /// Pin-based execution controls.
    pub const PIN_CONTROLS: u32 = 0x4000;
    /// Primary processor-based execution controls.
    pub const PROC_CONTROLS: u32 = 0x4002;
    /// Exception bitmap.
    pub const EXCEPTION_BITMAP: u32 = 0x4004;
    /// CR3-target count.
    pub const CR3_TARGET_COUNT: u32 = 0x400a;
    /// VM-exit controls.
    pub const EXIT_CONTROLS: u32 = 0x400c;
    /// VM-exit MSR-store count.
    pub const EXIT_MSR_STORE_COUNT: u32 = 0x400e;
    /// VM-exit MSR-load count.
    pub const EXIT_MSR_LOAD_COUNT: u32 = 0x4010;
    /// VM-entry controls.
    pub const ENTRY_CONTROLS: u32 = 0x4012;
    /// VM-entry MSR-load count.
    pub const ENTRY_MSR_LOAD_COUNT: u32 = 0x4014;
    /// VM-entry interruption information.
    pub const ENTRY_INTR_INFO: u32 = 0x4016;
    /// VM-entry exception error code.
    pub const ENTRY_EXCEPTION_ERROR: u32 = 0x4018;
    /// VM-entry instruction length.
    pub const ENTRY_INSN_LEN: u32 = 0x401a;
    /// Secondary processor-based execution controls.
    pub const PROC2_CONTROLS: u32 = 0x401e;
    /// VM-instruction error, read-only.
    pub const VM_INSTRUCTION_ERROR: u32 = 0x4400;
    /// Exit reason, read-only.
    pub const EXIT_REASON: u32 = 0x4402;
    /// VM-exit interruption information, read-only.
    pub const EXIT_INTR_INFO: u32 = 0x4404;
    /// VM-exit interruption error code, read-only.
    pub const EXIT_INTR_ERROR: u32 = 0x4406;
    /// IDT-vectoring information, read-only.
    pub const IDT_VECTORING_INFO: u32 = 0x4408;
    /// IDT-vectoring error code, read-only.
    pub const IDT_VECTORING_ERROR: u32 = 0x440a;
    /// VM-exit instruction length, read-only.
    pub const EXIT_INSN_LEN: u32 = 0x440c;
    /// Guest segment limits: ES, CS, SS, DS, FS, GS, LDTR, TR (+2 each).
    pub const GUEST_ES_LIMIT: u32 = 0x4800;
    /// Guest GDTR limit.
    pub const GUEST_GDTR_LIMIT: u32 = 0x4810;
    /// Guest IDTR limit.
    pub const GUEST_IDTR_LIMIT: u32 = 0x4812;
    /// Guest access rights: ES, CS, SS, DS, FS, GS, LDTR, TR (+2 each).
    pub const GUEST_ES_AR: u32 = 0x4814;
    /// Guest interruptibility state.
    pub const GUEST_INTERRUPTIBILITY: u32 = 0x4824;
    /// Guest activity state.
    pub const GUEST_ACTIVITY: u32 = 0x4826;
    /// Guest IA32_SYSENTER_CS.
    pub const GUEST_SYSENTER_CS: u32 = 0x482a;
    /// VMX-preemption timer value.
    pub const PREEMPTION_TIMER: u32 = 0x482e;
    /// Host IA32_SYSENTER_CS.
    pub const HOST_SYSENTER_CS: u32 = 0x4c00;
    /// CR0 guest/host mask.
    pub const CR0_MASK: u32 = 0x6000;
    /// CR4 guest/host mask.
    pub const CR4_MASK: u32 = 0x6002;
    /// CR0 read shadow.
    pub const CR0_SHADOW: u32 = 0x6004;
    /// CR4 read shadow.
    pub const CR4_SHADOW: u32 = 0x6006;
    /// Exit qualification, read-only.
    pub const EXIT_QUALIFICATION: u32 = 0x6400;
    /// Guest CR0.
    pub const GUEST_CR0: u32 = 0x6800;
    /// Guest CR3.
    pub const GUEST_CR3: u32 = 0x6802;
    /// Guest CR4.
    pub const GUEST_CR4: u32 = 0x6804;
    /// Guest segment bases: ES, CS, SS, DS, FS, GS, LDTR, TR (+2 each).
    pub const GUEST_ES_BASE: u32 = 0x6806;
    /// Guest GDTR base.
    pub const GUEST_GDTR_BASE: u32 = 0x6816;
    /// Guest IDTR base.
    pub const GUEST_IDTR_BASE: u32 = 0x6818;
    /// Guest DR7.
    pub const GUEST_DR7: u32 = 0x681a;
    /// Guest RSP.
    pub const GUEST_RSP: u32 = 0x681c;
    /// Guest RIP.
    pub const GUEST_RIP: u32 = 0x681e;
    /// Guest RFLAGS.
    pub const GUEST_RFLAGS: u32 = 0x6820;
    /// Guest pending debug exceptions.
    pub const GUEST_PENDING_DEBUG: u32 = 0x6822;
    /// Guest IA32_SYSENTER_ESP.
    pub const GUEST_SYSENTER_ESP: u32 = 0x6824;
    /// Guest IA32_SYSENTER_EIP.
    pub const GUEST_SYSENTER_EIP: u32 = 0x6826;
    /// Host CR0.
    pub const HOST_CR0: u32 = 0x6c00;
    /// Host CR3.
    pub const HOST_CR3: u32 = 0x6c02;
    /// Host CR4.
    pub const HOST_CR4: u32 = 0x6c04;
    /// Host FS base.
    pub const HOST_FS_BASE: u32 = 0x6c06;
    /// Host GS base.
    pub const HOST_GS_BASE: u32 = 0x6c08;
    /// Host TR base.
    pub const HOST_TR_BASE: u32 = 0x6c0a;
    /// Host GDTR base.
    pub const HOST_GDTR_BASE: u32 = 0x6c0c;
    /// Host IDTR base.
    pub const HOST_IDTR_BASE: u32 = 0x6c0e;
    /// Host IA32_SYSENTER_ESP.
    pub const HOST_SYSENTER_ESP: u32 = 0x6c10;
    /// Host IA32_SYSENTER_EIP.
    pub const HOST_SYSENTER_EIP: u32 = 0x6c12;
    /// Host RSP.
    pub const HOST_RSP: u32 = 0x6c14;
    /// Host RIP.
    pub const HOST_RIP: u32 = 0x6c16;
}

/// Capability MSRs.
pub mod msr {
    /// IA32_VMX_BASIC.
    pub const BASIC: u32 = 0x480;
    /// IA32_VMX_PINBASED_CTLS.
    pub const PINBASED: u32 = 0x481;
    /// IA32_VMX_PROCBASED_CTLS.
    pub const PROCBASED: u32 = 0x482;
    /// IA32_VMX_EXIT_CTLS.
    pub const EXIT: u32 = 0x483;
    /// IA32_VMX_ENTRY_CTLS.
    pub const ENTRY: u32 = 0x484;
    /// IA32_VMX_MISC (preemption-timer rate in bits 0..5).
    pub const MISC: u32 = 0x485;
    /// IA32_VMX_CR0_FIXED0.
    pub const CR0_FIXED0: u32 = 0x486;
    /// IA32_VMX_CR0_FIXED1.
    pub const CR0_FIXED1: u32 = 0x487;
    /// IA32_VMX_CR4_FIXED0.
    pub const CR4_FIXED0: u32 = 0x488;
    /// IA32_VMX_CR4_FIXED1.
    pub const CR4_FIXED1: u32 = 0x489;
    /// IA32_VMX_PROCBASED_CTLS2.
    pub const PROCBASED2: u32 = 0x48b;
    /// IA32_VMX_EPT_VPID_CAP.
    pub const EPT_VPID_CAP: u32 = 0x48c;
    /// IA32_VMX_TRUE_PINBASED_CTLS (the TRUE_* MSRs exist when BASIC bit 55 is set).
    pub const TRUE_PINBASED: u32 = 0x48d;
    /// IA32_VMX_TRUE_PROCBASED_CTLS.
    pub const TRUE_PROCBASED: u32 = 0x48e;
    /// IA32_VMX_TRUE_EXIT_CTLS.
    pub const TRUE_EXIT: u32 = 0x48f;
    /// IA32_VMX_TRUE_ENTRY_CTLS.
    pub const TRUE_ENTRY: u32 = 0x490;
    /// IA32_VMX_VMFUNC.
    pub const VMFUNC: u32 = 0x491;
}

/// Pin-based controls.
pub mod pin {
    /// External-interrupt exiting: a host interrupt ends the guest.
    pub const EXTERNAL_INTERRUPT: u32 = 1 << 0;
    /// NMI exiting.
    pub const NMI: u32 = 1 << 3;
    /// VMX-preemption timer.
    pub const PREEMPTION_TIMER: u32 = 1 << 6;
}

/// Primary processor-based controls.
pub mod proc {
    /// Interrupt-window exiting.
    pub const INTERRUPT_WINDOW: u32 = 1 << 2;
    /// HLT exiting.
    pub const HLT: u32 = 1 << 7;
    /// CR3-load exiting.
    pub const CR3_LOAD: u32 = 1 << 15;
    /// CR3-store exiting.
    pub const CR3_STORE: u32 = 1 << 16;
    /// Use I/O bitmaps.
    pub const IO_BITMAPS: u32 = 1 << 25;
    /// Use MSR bitmaps.
    pub const MSR_BITMAPS: u32 = 1 << 28;
    /// Activate the secondary controls.
    pub const SECONDARY: u32 = 1 << 31;
}

/// Secondary processor-based controls.
pub mod proc2 {
    /// Enable EPT.
    pub const EPT: u32 = 1 << 1;
    /// Enable VPID.
    pub const VPID: u32 = 1 << 5;
    /// Unrestricted guest.
    pub const UNRESTRICTED: u32 = 1 << 7;
    /// Enable VM functions.
    pub const VMFUNC: u32 = 1 << 13;
    /// EPT-violation #VE.
    pub const EPT_VE: u32 = 1 << 18;
    /// Instructions that are #UD in a guest unless enabled, though the
    /// CPU (and so the guest's CPUID) has them: RDTSCP, INVPCID,
    /// XSAVES/XRSTORS, TPAUSE/UMWAIT. None gives the guest more than the
    /// hardware does natively; they are turned on where the CPU allows.
    pub const NATIVE: u32 = 1 << 3 | 1 << 12 | 1 << 20 | 1 << 26;
}

/// VM-exit controls.
pub mod exit {
    /// Save debug controls.
    pub const SAVE_DEBUG: u32 = 1 << 2;
    /// Host address-space size (64-bit host).
    pub const HOST_64: u32 = 1 << 9;
    /// Save IA32_PAT.
    pub const SAVE_PAT: u32 = 1 << 18;
    /// Load IA32_PAT.
    pub const LOAD_PAT: u32 = 1 << 19;
    /// Save IA32_EFER.
    pub const SAVE_EFER: u32 = 1 << 20;
    /// Load IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 21;
}

/// VM-entry controls.
pub mod entry {
    /// Load debug controls.
    pub const LOAD_DEBUG: u32 = 1 << 2;
    /// IA-32e mode guest (must equal the guest's EFER.LMA).
    pub const IA32E_GUEST: u32 = 1 << 9;
    /// Load IA32_PAT.
    pub const LOAD_PAT: u32 = 1 << 14;
    /// Load IA32_EFER.
    pub const LOAD_EFER: u32 = 1 << 15;
}

/// A control the kernel needs is not offered by the CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Missing(pub u32);

/// The value of a control field: `want` bits on plus every bit the CPU
/// requires (allowed-0 settings, the capability MSR's low half), only bits
/// the CPU allows (allowed-1, the high half). `Missing` names the wanted
/// bits the CPU cannot set.
pub fn control(cap: u64, want: u32) -> Result<u32, Missing> {
    let must = cap as u32;
    let may = (cap >> 32) as u32;
    let missing = want & !may;
    if missing != 0 {
        return Err(Missing(missing));
    }
    Ok((want | must) & may)
}

/// Which capability MSR defines a control: the TRUE_* variant when
/// IA32_VMX_BASIC bit 55 says it exists (it may allow default-1 bits to be
/// 0), else the original.
pub fn cap_msr(basic: u64, original: u32) -> u32 {
    if basic & (1 << 55) == 0 {
        return original;
    }
    match original {
        msr::PINBASED => msr::TRUE_PINBASED,
        msr::PROCBASED => msr::TRUE_PROCBASED,
        msr::EXIT => msr::TRUE_EXIT,
        msr::ENTRY => msr::TRUE_ENTRY,
        other => other,
    }
}

/// CR0.PE.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;
/// CR0.CD and CR0.NW: not loaded by VM entry (SDM 26.3.2.1), so kept in
/// the read shadow.
pub const CR0_CD_NW: u64 = 3 << 29;

/// What a guest's CR0 or CR4 must hold in VMX non-root operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fixed {
    /// Bits that must be 1.
    pub ones: u64,
    /// Bits that may be 1.
    pub allowed: u64,
    /// Further bits the guest sees from the read shadow only.
    pub owned: u64,
}

impl Fixed {
    /// From the FIXED0/FIXED1 MSRs; for CR0 with unrestricted guest, PE and
    /// PG may be 0 (the guest may run in real mode or without paging).
    pub fn new(fixed0: u64, fixed1: u64, unrestricted_cr0: bool) -> Self {
        let mut ones = fixed0;
        if unrestricted_cr0 {
            ones &= !(CR0_PE | CR0_PG);
        }
        Self {
            ones,
            allowed: fixed1,
            owned: 0,
        }
    }

    /// The same with `bits` shown from the read shadow too — for CR0, CD
    /// and NW, which VM entry does not load (the guest would see the
    /// host's).
    pub fn with_owned(self, bits: u64) -> Self {
        Self {
            owned: bits,
            ..self
        }
    }

    /// The guest/host mask: the bits the guest may not choose; a guest
    /// read of them sees the read shadow (what it last wrote).
    pub fn mask(self) -> u64 {
        self.ones | !self.allowed | self.owned
    }

    /// The value loaded into the real register for a guest-chosen `v`.
    pub fn real(self, v: u64) -> u64 {
        (v | self.ones) & self.allowed
    }

    /// What the guest sees: its own value where the mask owns the bit.
    pub fn visible(self, real: u64, shadow: u64) -> u64 {
        let m = self.mask();
        (real & !m) | (shadow & m)
    }
}

/// Where a register lives for a VT-x vCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    /// In this VMCS field.
    Field(u32),
    /// Segment access rights in this field (converted, see [`ar_to_vmcs`]).
    AccessRights(u32),
    /// CR0 / CR4: the real field, its read shadow and which fixed bits.
    Cr(u32, u32, bool),
    /// Saved by the kernel's entry stub: GPR index.
    Saved(usize),
    /// CR2, which VMX does not switch: saved by the entry stub.
    Cr2,
    /// An MSR VMX does not switch (the syscall MSRs): kept by the kernel
    /// per vCPU at this index and loaded into the CPU before entry.
    SoftMsr(usize),
}

/// MSRs kept in software per vCPU, in [`Slot::SoftMsr`] index order.
pub const SOFT_MSRS: [u32; 5] = [
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0xc000_0102,
];

const SEGMENT_INDEX: [Segment; 8] = [
    Segment::Es,
    Segment::Cs,
    Segment::Ss,
    Segment::Ds,
    Segment::Fs,
    Segment::Gs,
    Segment::Ldtr,
    Segment::Tr,
];

fn segment_index(s: Segment) -> u32 {
    SEGMENT_INDEX.iter().position(|&x| x == s).unwrap_or(0) as u32
}

/// The VT-x slot of every register of the interface.
pub fn slot(r: Register) -> Slot {
    use field::*;
    match r {
        Register::Gpr(Gpr::Rsp) => Slot::Field(GUEST_RSP),
        Register::Gpr(g) => Slot::Saved(g as usize),
        Register::Rip => Slot::Field(GUEST_RIP),
        Register::Rflags => Slot::Field(GUEST_RFLAGS),
        Register::Cr0 => Slot::Cr(GUEST_CR0, CR0_SHADOW, false),
        Register::Cr2 => Slot::Cr2,
        Register::Cr3 => Slot::Field(GUEST_CR3),
        Register::Cr4 => Slot::Cr(GUEST_CR4, CR4_SHADOW, true),
        Register::Efer => Slot::Field(GUEST_EFER),
        Register::Dr7 => Slot::Field(GUEST_DR7),
        Register::Segment(s, f) => {
            let i = segment_index(s) * 2;
            match f {
                SegmentField::Selector => Slot::Field(GUEST_ES_SELECTOR + i),
                SegmentField::Base => Slot::Field(GUEST_ES_BASE + i),
                SegmentField::Limit => Slot::Field(GUEST_ES_LIMIT + i),
                SegmentField::Attributes => Slot::AccessRights(GUEST_ES_AR + i),
            }
        }
        Register::Gdtr(limit) => Slot::Field(if limit {
            GUEST_GDTR_LIMIT
        } else {
            GUEST_GDTR_BASE
        }),
        Register::Idtr(limit) => Slot::Field(if limit {
            GUEST_IDTR_LIMIT
        } else {
            GUEST_IDTR_BASE
        }),
        Register::Msr(m) => match m {
            Msr::Star => Slot::SoftMsr(0),
            Msr::Lstar => Slot::SoftMsr(1),
            Msr::Cstar => Slot::SoftMsr(2),
            Msr::Sfmask => Slot::SoftMsr(3),
            Msr::KernelGsBase => Slot::SoftMsr(4),
            Msr::SysenterCs => Slot::Field(GUEST_SYSENTER_CS),
            Msr::SysenterEsp => Slot::Field(GUEST_SYSENTER_ESP),
            Msr::SysenterEip => Slot::Field(GUEST_SYSENTER_EIP),
            Msr::Pat => Slot::Field(GUEST_PAT),
        },
    }
}

/// Width in bits of a VMCS field, from its encoding (bits 13..15: 16, 64,
/// 32, natural = 64 on a 64-bit host).
pub fn width(encoding: u32) -> u32 {
    match (encoding >> 13) & 3 {
        0 => 16,
        2 => 32,
        _ => 64,
    }
}

/// The access-rights "unusable" bit.
pub const AR_UNUSABLE: u64 = 1 << 16;

/// Interface attributes (VMX layout: type, S, DPL, P, AVL, L, D/B, G) to
/// the VMCS field: a not-present segment is marked unusable, as VMX wants.
pub fn ar_to_vmcs(attrs: u64) -> u64 {
    let a = attrs & 0xf0ff;
    if a & (1 << 7) == 0 {
        a | AR_UNUSABLE
    } else {
        a
    }
}

/// The VMCS field to interface attributes: an unusable segment reads as
/// not present.
pub fn ar_from_vmcs(ar: u64) -> u64 {
    if ar & AR_UNUSABLE != 0 {
        ar & 0xf07f
    } else {
        ar & 0xf0ff
    }
}

/// Whether a VMM may write this field through raw VMCS access: guest
/// state only (encoding type bits 10..12 = 2), and not the fields the
/// kernel keeps consistent itself (the VMCS link pointer and the
/// preemption timer, which bounds the guest by the VMM's budget).
pub fn vmm_may_write(encoding: u32) -> bool {
    valid_encoding(encoding)
        && (encoding >> 10) & 3 == 2
        && !matches!(encoding, field::VMCS_LINK_POINTER | field::PREEMPTION_TIMER)
}

/// Whether a VMM may read this field: guest state, read-only exit
/// information and the controls; never host state (kernel addresses).
pub fn vmm_may_read(encoding: u32) -> bool {
    valid_encoding(encoding) && (encoding >> 10) & 3 != 3
}

/// A plausible encoding: access type 0 (full), no reserved bits set.
pub fn valid_encoding(encoding: u32) -> bool {
    encoding & !0x6ffe == 0
}

/// The VE information area (the first 32 bytes of the page whose address
/// is in [`field::VE_INFO`]): exit reason (48), the 0xffff_ffff word the
/// guest clears to re-arm #VE, exit qualification, guest-linear address,
/// guest-physical address, EPTP index.
pub mod ve {
    /// Exit reason (u32).
    pub const REASON: usize = 0;
    /// Set to 0xffff_ffff by the CPU when it delivers a #VE; while it is
    /// so, further violations exit instead (u32).
    pub const BUSY: usize = 4;
    /// Exit qualification (u64).
    pub const QUALIFICATION: usize = 8;
    /// Guest-linear address (u64).
    pub const LINEAR: usize = 16;
    /// Guest-physical address (u64).
    pub const PHYSICAL: usize = 24;
    /// EPTP index (u16).
    pub const EPTP_INDEX: usize = 32;
    /// The #VE vector.
    pub const VECTOR: u8 = 20;
}

/// The EPTP-list page: entry `i` is the EPTP of view `i`; entries of views
/// that do not exist are 0, which VMFUNC refuses with a VM exit the VMM
/// sees, so the guest can reach only existing views.
pub fn eptp_list_entry(view_root: Option<u64>) -> u64 {
    view_root
        .and_then(|r| crate::nested::ept::eptp(r).ok())
        .unwrap_or(0)
}

/// The preemption-timer value for a budget of `tsc` cycles: the timer
/// counts down at the TSC rate divided by 2^(IA32_VMX_MISC bits 0..5).
pub fn preemption_ticks(tsc: u64, misc: u64) -> u32 {
    let shift = (misc & 0x1f) as u32;
    u32::try_from(tsc >> shift).unwrap_or(u32::MAX).max(1)
}

/// Instruction-information-less exits whose VM-exit instruction length
/// field is defined (the VMM adds it to RIP to skip the instruction).
pub fn has_insn_len(basic_reason: u32) -> bool {
    use crate::vmexit::vmx::*;
    matches!(
        basic_reason,
        CPUID | HLT | VMCALL | CR_ACCESS | IO | RDMSR | WRMSR
    )
}

/// Whether a guest MOV to CR0 of `v` is architecturally valid (else the
/// kernel injects #GP(0), as the CPU would): no bits above 31, PG only
/// with PE, NW only with CD.
pub fn cr0_write_ok(v: u64) -> bool {
    const CD: u64 = 1 << 30;
    const NW: u64 = 1 << 29;
    v >> 32 == 0 && (v & CR0_PG == 0 || v & CR0_PE != 0) && (v & NW == 0 || v & CD != 0)
}

/// Whether a guest MOV to CR4 of `v` is valid: only bits the CPU allows in
/// VMX non-root operation, and not VMXE (no nested VMX is offered).
pub fn cr4_write_ok(v: u64, fixed: Fixed) -> bool {
    const VMXE: u64 = 1 << 13;
    v & VMXE == 0 && v & !fixed.allowed == 0
}

/// EFER after the guest's CR0 changes from `old` to `new`: turning paging
/// on with EFER.LME set activates long mode (LMA), turning it off leaves
/// it — what the CPU does when it executes the MOV itself.
pub fn efer_after_cr0(old: u64, new: u64, efer: u64) -> u64 {
    const LME: u64 = 1 << 8;
    const LMA: u64 = 1 << 10;
    match (old & CR0_PG != 0, new & CR0_PG != 0) {
        (false, true) if efer & LME != 0 => efer | LMA,
        (true, false) => efer & !LMA,
        _ => efer,
    }
}

/// Whether the guest's XSETBV(`ecx`, `value`) is valid given the XCR0
/// bits the CPU supports: XCR0 only, x87 always on, AVX only with SSE,
/// AVX-512 state (bits 5..8) all or none and only with AVX.
pub fn xsetbv_ok(ecx: u64, value: u64, supported: u64) -> bool {
    let avx512 = value & 0xe0;
    ecx & 0xffff_ffff == 0
        && value & 1 != 0
        && value & !supported == 0
        && (value & 4 == 0 || value & 2 != 0)
        && (avx512 == 0 || (avx512 == 0xe0 && value & 4 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_respect_allowed_settings() {
        // Bits 1, 2 and 4 must be 1; bits 0..8 and 31 may be 1.
        let cap = (0x8000_00ffu64 << 32) | 0x16;
        assert_eq!(control(cap, 1 | 1 << 7), Ok(0x97));
        assert_eq!(control(cap, 1 << 31), Ok(0x8000_0016));
        assert_eq!(control(cap, 1 << 9 | 1), Err(Missing(1 << 9)));
        assert_eq!(control(0, 0), Ok(0));
    }

    #[test]
    fn true_msrs_only_when_basic_says_so() {
        assert_eq!(cap_msr(0, msr::PINBASED), msr::PINBASED);
        assert_eq!(cap_msr(1 << 55, msr::PINBASED), msr::TRUE_PINBASED);
        assert_eq!(cap_msr(1 << 55, msr::ENTRY), msr::TRUE_ENTRY);
        assert_eq!(cap_msr(1 << 55, msr::PROCBASED2), msr::PROCBASED2);
    }

    #[test]
    fn fixed_bits_and_unrestricted_guest() {
        // Typical: CR0 FIXED0 = PE|NE|PG, FIXED1 = all low 32 bits.
        let f = Fixed::new(0x8000_0021, 0xffff_ffff, true);
        assert_eq!(f.ones, 0x20);
        assert_eq!(f.real(0), 0x20);
        assert_eq!(f.real(0x8000_0011), 0x8000_0031);
        let m = f.mask();
        assert!(m & 0x20 != 0 && m & 1 == 0 && m & (1 << 40) != 0);
        // The guest sees what it wrote for the masked NE bit.
        assert_eq!(f.visible(f.real(0x11), 0x11), 0x11);
        let strict = Fixed::new(0x8000_0021, 0xffff_ffff, false);
        assert_eq!(strict.real(0), 0x8000_0021);
        // CR4: VMXE must be 1, hidden from the guest.
        let c4 = Fixed::new(0x2000, 0x3767ff, false);
        assert_eq!(c4.real(0x20), 0x2020);
        assert_eq!(c4.visible(0x2020, 0x20), 0x20);
        assert_eq!(c4.real(1 << 30), 0x2000); // not allowed: dropped
                                              // CD/NW from the shadow: what the guest wrote, whatever the real.
        let cd_nw = 0x6000_0000;
        let f = f.with_owned(cd_nw);
        assert_eq!(f.visible(0xe000_0031, 0x8000_0011), 0x8000_0011);
        assert_eq!(f.visible(0x8000_0031, 0xc000_0031), 0xc000_0031);
    }

    #[test]
    fn every_register_has_a_slot_of_the_right_kind() {
        for raw in 0..0x400u64 {
            let Some(r) = Register::from_raw(raw) else {
                continue;
            };
            match slot(r) {
                Slot::Field(f) | Slot::AccessRights(f) | Slot::Cr(f, _, _) => {
                    assert!(valid_encoding(f), "{r:?} {f:#x}");
                    assert!(vmm_may_write(f), "{r:?} is guest state");
                }
                Slot::Saved(i) => assert!(i < 16 && i != 4),
                Slot::SoftMsr(i) => assert!(i < SOFT_MSRS.len()),
                Slot::Cr2 => assert_eq!(r, Register::Cr2),
            }
        }
        use field::*;
        assert_eq!(
            slot(Register::Segment(Segment::Tr, SegmentField::Attributes)),
            Slot::AccessRights(0x4822)
        );
        assert_eq!(
            slot(Register::Segment(Segment::Cs, SegmentField::Selector)),
            Slot::Field(0x0802)
        );
        assert_eq!(
            slot(Register::Segment(Segment::Gs, SegmentField::Base)),
            Slot::Field(0x6810)
        );
        assert_eq!(
            slot(Register::Segment(Segment::Ldtr, SegmentField::Limit)),
            Slot::Field(0x480c)
        );
        assert_eq!(slot(Register::Gpr(Gpr::Rsp)), Slot::Field(GUEST_RSP));
        assert_eq!(slot(Register::Gpr(Gpr::Rax)), Slot::Saved(0));
        assert_eq!(slot(Register::Msr(Msr::Pat)), Slot::Field(0x2804));
        assert_eq!(width(GUEST_PAT), 64);
        assert_eq!(width(GUEST_ES_AR), 32);
        assert_eq!(width(GUEST_ES_SELECTOR), 16);
        assert_eq!(width(GUEST_RIP), 64);
    }

    #[test]
    fn raw_access_never_reaches_kernel_state() {
        use field::*;
        for f in [
            HOST_RIP,
            HOST_CR3,
            HOST_ES_SELECTOR,
            EPTP,
            VPID,
            PIN_CONTROLS,
            PROC_CONTROLS,
            PROC2_CONTROLS,
            MSR_BITMAP,
            IO_BITMAP_A,
            EPTP_LIST,
            VE_INFO,
            EXIT_REASON,
            VMCS_LINK_POINTER,
            PREEMPTION_TIMER,
        ] {
            assert!(!vmm_may_write(f), "{f:#x}");
        }
        for f in [HOST_RIP, HOST_CR3, HOST_GDTR_BASE] {
            assert!(!vmm_may_read(f));
        }
        assert!(vmm_may_read(EXIT_QUALIFICATION) && vmm_may_read(GUEST_RIP));
        assert!(vmm_may_write(GUEST_INTERRUPTIBILITY) && vmm_may_write(GUEST_CR3));
        // High-access (odd) and reserved-bit encodings are refused.
        assert!(!vmm_may_write(GUEST_PAT + 1));
        assert!(!vmm_may_read(0x1_0000 | GUEST_RIP));
        assert!(!vmm_may_read(0x8000 | GUEST_RIP));
    }

    #[test]
    fn access_rights_round_trip_and_unusable() {
        assert_eq!(ar_to_vmcs(0xa09b), 0xa09b);
        assert_eq!(ar_from_vmcs(0xa09b), 0xa09b);
        assert_eq!(ar_to_vmcs(0), AR_UNUSABLE);
        assert_eq!(ar_from_vmcs(AR_UNUSABLE | 0x82), 0x02);
        // Reserved bits 8..12 and above 16 never reach the field.
        assert_eq!(ar_to_vmcs(0xffff_0f93), 0x93);
    }

    #[test]
    fn guest_cr_and_xcr_writes() {
        assert!(cr0_write_ok(0x8000_0011));
        assert!(cr0_write_ok(0x11));
        assert!(!cr0_write_ok(0x8000_0010)); // PG without PE
        assert!(!cr0_write_ok(1 << 29 | 1)); // NW without CD
        assert!(!cr0_write_ok(1 << 32 | 1));
        let c4 = Fixed::new(0x2000, 0x3767ff, false);
        assert!(cr4_write_ok(0x6b0, c4));
        assert!(!cr4_write_ok(0x2000, c4)); // VMXE
        assert!(!cr4_write_ok(1 << 23, c4)); // not allowed
        assert_eq!(efer_after_cr0(0x11, 0x8000_0011, 0x100), 0x500);
        assert_eq!(efer_after_cr0(0x11, 0x8000_0011, 0), 0);
        assert_eq!(efer_after_cr0(0x8000_0011, 0x11, 0x500), 0x100);
        assert_eq!(efer_after_cr0(0x8000_0011, 0x8000_0031, 0x500), 0x500);
        assert!(xsetbv_ok(0, 7, 0xe7));
        assert!(xsetbv_ok(0, 0xe7, 0xe7));
        assert!(!xsetbv_ok(1, 7, 0xe7)); // not XCR0
        assert!(!xsetbv_ok(0, 6, 0xe7)); // x87 off
        assert!(!xsetbv_ok(0, 5, 0xe7)); // AVX without SSE
        assert!(!xsetbv_ok(0, 0x27, 0xe7)); // part of AVX-512
        assert!(!xsetbv_ok(0, 0x1f, 0x07)); // unsupported bits
    }

    #[test]
    fn eptp_list_and_timer() {
        assert_eq!(eptp_list_entry(Some(0x5000)), 0x5000 | 0x1e);
        assert_eq!(eptp_list_entry(None), 0);
        assert_eq!(eptp_list_entry(Some(0x5001)), 0);
        assert_eq!(preemption_ticks(1 << 20, 5), 1 << 15);
        assert_eq!(preemption_ticks(0, 5), 1);
        assert_eq!(preemption_ticks(u64::MAX, 0), u32::MAX);
        assert!(has_insn_len(crate::vmexit::vmx::CPUID));
        assert!(!has_insn_len(crate::vmexit::vmx::EPT_VIOLATION));
    }
}
