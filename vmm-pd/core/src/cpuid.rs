//! The guest's CPUID policy: a pure function from the leaf, subleaf, the
//! host's answer and a small configuration to the answer the guest sees.
//!
//! Design rules:
//! - leaves are answered from an allow-list; any other leaf (and any leaf
//!   above the clamped maxima) reads as zeros, which is how a CPU says
//!   "not supported" — so a new host leaf never leaks into the guest;
//! - inside an allowed leaf, feature bits are passed through except those
//!   for hardware the VMM does not virtualise (VMX/SVM, the local APIC and
//!   x2APIC, TSC-deadline, MONITOR/MWAIT, perfmon, thermal/power, MTRR,
//!   machine check, PCID/INVPCID, speculation-control MSRs, RDTSCP/RDPID
//!   (TSC_AUX is not switched), 5-level paging, protection keys, CET, SGX,
//!   Intel PT) — hiding a feature makes Linux leave its MSRs and
//!   instructions alone, which is what keeps a guest from faulting on an
//!   MSR the MSR policy refuses;
//! - XSAVE and everything that needs it (AVX, AVX-512, AMX, FMA, F16C, XOP,
//!   FMA4, VAES, VPCLMULQDQ) are hidden unless [`CpuidConfig::xsave`] is set:
//!   on VT-x XSETBV always exits, and guest XCR0 must be switched by the
//!   kernel; with XSAVE hidden Linux uses FXSAVE and never executes XSETBV;
//! - the guest has one CPU: initial APIC id 0, one logical processor, a
//!   one-thread, one-core topology, no hyper-threading;
//! - the hypervisor bit is set and leaf 0x4000_0000 carries the
//!   "BulkheadVMM\0" signature; leaf 0x4000_0010 (the common timing leaf)
//!   and leaves 0x15/0x16 report the configured TSC frequency.

/// An answer: EAX, EBX, ECX, EDX.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

impl CpuidResult {
    /// All zeros: "no such leaf".
    pub const ZERO: Self = Self {
        eax: 0,
        ebx: 0,
        ecx: 0,
        edx: 0,
    };
}

/// The hypervisor signature in EBX, ECX, EDX of leaf 0x4000_0000.
pub const SIGNATURE: [u8; 12] = *b"BulkheadVMM\0";
/// The highest hypervisor leaf.
pub const HYPERVISOR_MAX_LEAF: u32 = 0x4000_0010;
/// The highest standard leaf the guest is shown.
pub const MAX_BASIC_LEAF: u32 = 0x16;
/// The highest extended leaf the guest is shown (address sizes; beyond it
/// lie SVM, topology extensions, SEV).
pub const MAX_EXTENDED_LEAF: u32 = 0x8000_0008;

/// What the policy needs besides the leaf.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CpuidConfig {
    /// The guest's TSC frequency in kHz; 0 = unknown (leaves 0x15/0x16 are
    /// then the host's, and 0x4000_0010 reads 0).
    pub tsc_khz: u32,
    /// The host's highest standard leaf (host leaf 0, EAX).
    pub host_max_basic: u32,
    /// The host's highest extended leaf (host leaf 0x8000_0000, EAX).
    pub host_max_extended: u32,
    /// Pass XSAVE and the AVX family through. Only when the kernel handles
    /// XSETBV exits and switches XCR0 between guest and host.
    pub xsave: bool,
}

impl CpuidConfig {
    /// From the host's leaf 0 and leaf 0x8000_0000 answers.
    pub fn from_host(leaf0: CpuidResult, leaf_ext0: CpuidResult, tsc_khz: u32) -> Self {
        Self {
            tsc_khz,
            host_max_basic: leaf0.eax,
            host_max_extended: leaf_ext0.eax,
            xsave: false,
        }
    }
}

/// Bit masks the policy clears (or sets), named so tests and the docs can
/// refer to them.
pub mod bits {
    /// Leaf 1 EBX: bits 16..24 logical processor count, 24..32 initial APIC id.
    pub const L1_EBX_TOPOLOGY: u32 = 0xffff_0000;
    /// Leaf 1 ECX: DTES64 (2), MONITOR (3), DS-CPL (4), VMX (5), SMX (6),
    /// EST (7), TM2 (8), SDBG (11), xTPR (14), PDCM (15), PCID (17),
    /// DCA (18), x2APIC (21), TSC-deadline (24).
    pub const L1_ECX_HIDDEN: u32 = (1 << 2)
        | (1 << 3)
        | (1 << 4)
        | (1 << 5)
        | (1 << 6)
        | (1 << 7)
        | (1 << 8)
        | (1 << 11)
        | (1 << 14)
        | (1 << 15)
        | (1 << 17)
        | (1 << 18)
        | (1 << 21)
        | (1 << 24);
    /// Leaf 1 ECX: FMA (12), XSAVE (26), OSXSAVE (27), AVX (28), F16C (29).
    pub const L1_ECX_XSAVE: u32 = (1 << 12) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 29);
    /// Leaf 1 ECX: OSXSAVE, which mirrors the guest's CR4.OSXSAVE.
    pub const L1_ECX_OSXSAVE: u32 = 1 << 27;
    /// Leaf 1 ECX bit 31: running under a hypervisor.
    pub const L1_ECX_HYPERVISOR: u32 = 1 << 31;
    /// Leaf 1 EDX: MCE (7), APIC (9), MTRR (12), MCA (14), PSN (18),
    /// DS (21), ACPI thermal (22), HTT (28), TM (29), PBE (31).
    pub const L1_EDX_HIDDEN: u32 = (1 << 7)
        | (1 << 9)
        | (1 << 12)
        | (1 << 14)
        | (1 << 18)
        | (1 << 21)
        | (1 << 22)
        | (1 << 28)
        | (1 << 29)
        | (1 << 31);
    /// Leaf 4 EAX: cores per package (26..32) and threads sharing the cache (14..26).
    pub const L4_EAX_SHARING: u32 = 0xffff_c000;
    /// Leaf 7.0 EBX: TSC_ADJUST (1), SGX (2), INVPCID (10), RDT-M (12),
    /// MPX (14), RDT-A (15), Intel PT (25).
    pub const L7_EBX_HIDDEN: u32 =
        (1 << 1) | (1 << 2) | (1 << 10) | (1 << 12) | (1 << 14) | (1 << 15) | (1 << 25);
    /// Leaf 7.0 EBX: AVX2 (5), AVX-512 F/DQ/IFMA/PF/ER/CD/BW/VL (16, 17, 21, 26..28, 30, 31).
    pub const L7_EBX_XSAVE: u32 = (1 << 5)
        | (1 << 16)
        | (1 << 17)
        | (1 << 21)
        | (1 << 26)
        | (1 << 27)
        | (1 << 28)
        | (1 << 30)
        | (1 << 31);
    /// Leaf 7.0 ECX: PKU (3), OSPKE (4), WAITPKG (5), CET shadow stack (7),
    /// TME (13), LA57 (16), RDPID (22), bus-lock detect (24), ENQCMD (29),
    /// SGX launch control (30).
    pub const L7_ECX_HIDDEN: u32 = (1 << 3)
        | (1 << 4)
        | (1 << 5)
        | (1 << 7)
        | (1 << 13)
        | (1 << 16)
        | (1 << 22)
        | (1 << 24)
        | (1 << 29)
        | (1 << 30);
    /// Leaf 7.0 ECX: AVX-512 VBMI (1), VBMI2 (6), VAES (9), VPCLMULQDQ (10),
    /// VNNI (11), BITALG (12), VPOPCNTDQ (14).
    pub const L7_ECX_XSAVE: u32 =
        (1 << 1) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 14);
    /// Leaf 7.0 EDX: SRBDS control (9), TSX force-abort (13), hybrid (15),
    /// PCONFIG (18), arch LBR (19), CET IBT (20), IBRS/IBPB (26), STIBP
    /// (27), L1D flush (28), ARCH_CAPABILITIES (29), CORE_CAPABILITIES
    /// (30), SSBD (31) — every bit that implies an MSR we refuse.
    pub const L7_EDX_HIDDEN: u32 = (1 << 9)
        | (1 << 13)
        | (1 << 15)
        | (1 << 18)
        | (1 << 19)
        | (1 << 20)
        | (1 << 26)
        | (1 << 27)
        | (1 << 28)
        | (1 << 29)
        | (1 << 30)
        | (1 << 31);
    /// Leaf 7.0 EDX: AVX-512 4VNNIW/4FMAPS (2, 3), VP2INTERSECT (8),
    /// AMX-BF16 (22), AVX512-FP16 (23), AMX-TILE (24), AMX-INT8 (25).
    pub const L7_EDX_XSAVE: u32 =
        (1 << 2) | (1 << 3) | (1 << 8) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25);
    /// Leaf 7.1 EAX: AVX-VNNI (4), AVX512-BF16 (5) need XSAVE; LAM (26) is hidden.
    pub const L7_1_EAX_XSAVE: u32 = (1 << 4) | (1 << 5);
    /// Leaf 7.1 EAX: LAM (26).
    pub const L7_1_EAX_HIDDEN: u32 = 1 << 26;
    /// Leaf 0x8000_0001 ECX: CmpLegacy (1), SVM (2), ExtApicSpace (3),
    /// AltMovCr8 (4, CR8 is the APIC's TPR), OSVW (9), IBS (10), SKINIT
    /// (12), WDT (13), LWP (15), TCE (17, an EFER bit the
    /// MSR policy refuses), NodeId (19), TOPOEXT (22),
    /// PerfCtrCore (23), PerfCtrNb (24), DBX (26), PerfTsc (27),
    /// PerfCtrLlc (28), MWAITX (29).
    pub const E1_ECX_HIDDEN: u32 = (1 << 1)
        | (1 << 2)
        | (1 << 3)
        | (1 << 4)
        | (1 << 9)
        | (1 << 10)
        | (1 << 12)
        | (1 << 13)
        | (1 << 15)
        | (1 << 17)
        | (1 << 19)
        | (1 << 22)
        | (1 << 23)
        | (1 << 24)
        | (1 << 26)
        | (1 << 27)
        | (1 << 28)
        | (1 << 29);
    /// Leaf 0x8000_0001 ECX: XOP (11), FMA4 (16), TBM (21).
    pub const E1_ECX_XSAVE: u32 = (1 << 11) | (1 << 16) | (1 << 21);
    /// Leaf 0x8000_0001 EDX: AMD's copies of leaf 1's MCE (7), APIC (9),
    /// MTRR (12) and MCA (14), FFXSR (25, an EFER bit the MSR policy
    /// refuses), RDTSCP (27) (TSC_AUX is not switched per guest).
    pub const E1_EDX_HIDDEN: u32 =
        (1 << 7) | (1 << 9) | (1 << 12) | (1 << 14) | (1 << 25) | (1 << 27);
    /// Leaf 0x8000_0007 EDX: only invariant TSC (8) is kept.
    pub const E7_EDX_KEPT: u32 = 1 << 8;
    /// Leaf 0x8000_0008 EBX: IRPERF (1), IBPB (12), IBRS (14), STIBP (15),
    /// IBRS/STIBP always-on and preferences (16..19), SSBD (24),
    /// VIRT_SSBD (25), PPIN (23) — MSR-backed features.
    pub const E8_EBX_HIDDEN: u32 = (1 << 1)
        | (1 << 12)
        | (1 << 14)
        | (1 << 15)
        | (1 << 16)
        | (1 << 17)
        | (1 << 18)
        | (1 << 19)
        | (1 << 23)
        | (1 << 24)
        | (1 << 25);
}

/// Whether the answer for `leaf` depends on the guest's CR4 (so the VMM
/// reads CR4 only when it must): leaf 1 with XSAVE passed through.
pub fn needs_guest_cr4(leaf: u32, cfg: &CpuidConfig) -> bool {
    leaf == 1 && cfg.xsave
}

/// CR4.OSXSAVE.
const CR4_OSXSAVE: u64 = 1 << 18;

/// Leaf 0x15's answer for `tsc_khz`: (EAX denominator, EBX numerator, ECX
/// crystal Hz) such that Linux's arithmetic — all 32-bit:
/// `(ecx / 1000) * ebx / eax` — gives back exactly `tsc_khz`.
pub fn tsc_leaf_15(tsc_khz: u32) -> (u32, u32, u32) {
    // A 1 MHz crystal with the ratio tsc_khz / 1000 reduced; if the
    // reduced numerator times 1000 overflows 32 bits, a 1 kHz crystal
    // with ratio tsc_khz / 1 (exact, no overflow possible).
    let g = gcd(tsc_khz, 1000);
    let (num, den) = (tsc_khz / g, 1000 / g);
    if num.checked_mul(1000).is_some() {
        (den, num, 1_000_000)
    } else {
        (1, tsc_khz, 1000)
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// The one-CPU topology of leaf 0xB (and 0x1F): level 0 is SMT with one
/// thread, level 1 is core with one logical processor, then invalid levels.
fn topology(subleaf: u32) -> CpuidResult {
    let level = subleaf & 0xff;
    let kind = match subleaf {
        0 => 1, // SMT
        1 => 2, // core
        _ => 0, // invalid: ends the enumeration
    };
    CpuidResult {
        eax: 0,
        ebx: if kind != 0 { 1 } else { 0 },
        ecx: (kind << 8) | level,
        edx: 0, // x2APIC id
    }
}

/// The guest's answer to CPUID(`leaf`, `subleaf`) given the host's answer
/// `host` to the same query. `guest_cr4` is only read when
/// [`needs_guest_cr4`] says so (pass 0 otherwise).
pub fn guest_cpuid(
    leaf: u32,
    subleaf: u32,
    host: CpuidResult,
    cfg: &CpuidConfig,
    guest_cr4: u64,
) -> CpuidResult {
    use bits::*;
    let xs = |mask: u32| if cfg.xsave { 0 } else { mask };
    let max_basic = if cfg.tsc_khz != 0 {
        MAX_BASIC_LEAF
    } else {
        cfg.host_max_basic.min(MAX_BASIC_LEAF)
    };
    let max_ext = cfg.host_max_extended.min(MAX_EXTENDED_LEAF);
    let zero = CpuidResult::ZERO;
    let host_has = |l: u32| l <= cfg.host_max_basic;
    match leaf {
        0 => CpuidResult {
            eax: max_basic,
            ..host
        },
        1..=MAX_BASIC_LEAF if leaf > max_basic => zero,
        1 => {
            let mut ecx = (host.ecx & !L1_ECX_HIDDEN & !xs(L1_ECX_XSAVE)) | L1_ECX_HYPERVISOR;
            if cfg.xsave {
                ecx &= !L1_ECX_OSXSAVE;
                if guest_cr4 & CR4_OSXSAVE != 0 && host.ecx & (1 << 26) != 0 {
                    ecx |= L1_ECX_OSXSAVE;
                }
            }
            CpuidResult {
                eax: host.eax,
                // One logical processor, APIC id 0; brand index and
                // CLFLUSH line size pass.
                ebx: (host.ebx & !L1_EBX_TOPOLOGY) | (1 << 16),
                ecx,
                edx: host.edx & !L1_EDX_HIDDEN,
            }
        }
        2 if host_has(2) => host,
        4 if host_has(4) => {
            if host.eax & 0x1f == 0 {
                zero // no more caches: the host's terminating answer
            } else {
                CpuidResult {
                    eax: host.eax & !L4_EAX_SHARING,
                    ..host
                }
            }
        }
        7 if host_has(7) => match subleaf {
            0 => CpuidResult {
                eax: host.eax.min(1),
                ebx: host.ebx & !L7_EBX_HIDDEN & !xs(L7_EBX_XSAVE),
                ecx: host.ecx & !L7_ECX_HIDDEN & !xs(L7_ECX_XSAVE),
                edx: host.edx & !L7_EDX_HIDDEN & !xs(L7_EDX_XSAVE),
            },
            1 => CpuidResult {
                eax: host.eax & !L7_1_EAX_HIDDEN & !xs(L7_1_EAX_XSAVE),
                ..zero
            },
            _ => zero,
        },
        0xb => topology(subleaf),
        0xd if cfg.xsave && host_has(0xd) => match subleaf {
            // XSAVES needs IA32_XSS, which the MSR policy refuses.
            1 => CpuidResult {
                eax: host.eax & !(1 << 3),
                ebx: 0,
                ecx: 0,
                edx: 0,
            },
            _ => host,
        },
        0x15 if cfg.tsc_khz != 0 => {
            let (eax, ebx, ecx) = tsc_leaf_15(cfg.tsc_khz);
            CpuidResult {
                eax,
                ebx,
                ecx,
                edx: 0,
            }
        }
        0x16 if cfg.tsc_khz != 0 => {
            let mhz = cfg.tsc_khz / 1000;
            CpuidResult {
                eax: mhz,
                ebx: mhz,
                ecx: 100,
                edx: 0,
            }
        }
        0x15 | 0x16 if host_has(leaf) => host,
        0x4000_0000 => CpuidResult {
            eax: HYPERVISOR_MAX_LEAF,
            ebx: sig_word(0),
            ecx: sig_word(1),
            edx: sig_word(2),
        },
        0x4000_0010 => CpuidResult {
            eax: cfg.tsc_khz,
            ..zero
        },
        0x8000_0000 => CpuidResult {
            eax: max_ext,
            ..host
        },
        0x8000_0001..=MAX_EXTENDED_LEAF if leaf > max_ext => zero,
        0x8000_0001 => CpuidResult {
            ecx: host.ecx & !E1_ECX_HIDDEN & !xs(E1_ECX_XSAVE),
            edx: host.edx & !E1_EDX_HIDDEN,
            ..host
        },
        0x8000_0002..=0x8000_0006 => host,
        0x8000_0007 => CpuidResult {
            edx: host.edx & E7_EDX_KEPT,
            ..zero
        },
        0x8000_0008 => CpuidResult {
            eax: host.eax,
            ebx: host.ebx & !E8_EBX_HIDDEN,
            // Core count and APIC id size: one core.
            ecx: 0,
            edx: 0,
        },
        _ => zero,
    }
}

fn sig_word(i: usize) -> u32 {
    let b = |j: usize| SIGNATURE.get(i * 4 + j).copied().unwrap_or(0);
    u32::from_le_bytes([b(0), b(1), b(2), b(3)])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: CpuidResult = CpuidResult {
        eax: u32::MAX,
        ebx: u32::MAX,
        ecx: u32::MAX,
        edx: u32::MAX,
    };

    fn cfg() -> CpuidConfig {
        CpuidConfig {
            tsc_khz: 2_000_000,
            host_max_basic: 0x1f,
            host_max_extended: 0x8000_0021,
            xsave: false,
        }
    }

    fn q(leaf: u32, subleaf: u32) -> CpuidResult {
        guest_cpuid(leaf, subleaf, ALL, &cfg(), 0)
    }

    enum Reg {
        A,
        B,
        C,
        D,
    }

    fn get(r: CpuidResult, reg: &Reg) -> u32 {
        match reg {
            Reg::A => r.eax,
            Reg::B => r.ebx,
            Reg::C => r.ecx,
            Reg::D => r.edx,
        }
    }

    #[test]
    fn each_hidden_bit_is_clear_even_when_the_host_sets_every_bit() {
        use Reg::*;
        // (leaf, subleaf, register, bit, what)
        let hidden: &[(u32, u32, Reg, u32, &str)] = &[
            (1, 0, C, 5, "VMX"),
            (1, 0, C, 3, "MONITOR"),
            (1, 0, C, 21, "x2APIC"),
            (1, 0, C, 24, "TSC-deadline"),
            (1, 0, C, 17, "PCID"),
            (1, 0, C, 15, "PDCM"),
            (1, 0, C, 26, "XSAVE"),
            (1, 0, C, 27, "OSXSAVE"),
            (1, 0, C, 28, "AVX"),
            (1, 0, C, 6, "SMX"),
            (1, 0, C, 7, "EST"),
            (1, 0, C, 8, "TM2"),
            (1, 0, D, 9, "local APIC"),
            (1, 0, D, 12, "MTRR"),
            (1, 0, D, 7, "MCE"),
            (1, 0, D, 14, "MCA"),
            (1, 0, D, 22, "ACPI thermal"),
            (1, 0, D, 28, "HTT"),
            (1, 0, D, 29, "TM"),
            (7, 0, B, 10, "INVPCID"),
            (7, 0, B, 1, "TSC_ADJUST"),
            (7, 0, B, 2, "SGX"),
            (7, 0, B, 25, "Intel PT"),
            (7, 0, B, 5, "AVX2"),
            (7, 0, B, 16, "AVX512F"),
            (7, 0, C, 16, "LA57"),
            (7, 0, C, 3, "PKU"),
            (7, 0, C, 5, "WAITPKG"),
            (7, 0, C, 22, "RDPID"),
            (7, 0, C, 7, "CET_SS"),
            (7, 0, D, 26, "IBRS/IBPB"),
            (7, 0, D, 29, "ARCH_CAPABILITIES"),
            (7, 0, D, 20, "CET_IBT"),
            (7, 0, D, 24, "AMX"),
            (7, 1, A, 26, "LAM"),
            (7, 1, A, 4, "AVX-VNNI"),
            (0x8000_0001, 0, C, 2, "SVM"),
            (0x8000_0001, 0, C, 1, "CmpLegacy"),
            (0x8000_0001, 0, C, 22, "TOPOEXT"),
            (0x8000_0001, 0, C, 23, "PERFCTR_CORE"),
            (0x8000_0001, 0, C, 29, "MWAITX"),
            (0x8000_0001, 0, C, 11, "XOP"),
            (0x8000_0001, 0, D, 27, "RDTSCP"),
            (0x8000_0001, 0, D, 25, "FFXSR"),
            (0x8000_0001, 0, D, 9, "AMD's APIC copy"),
            (0x8000_0001, 0, D, 12, "AMD's MTRR copy"),
            (0x8000_0001, 0, C, 12, "SKINIT"),
            (0x8000_0001, 0, C, 17, "TCE"),
            (7, 0, D, 9, "SRBDS_CTRL"),
            (7, 0, D, 13, "TSX_FORCE_ABORT"),
            (0x8000_0007, 0, D, 7, "hardware P-states"),
            (0x8000_0008, 0, B, 12, "IBPB"),
            (0x8000_0008, 0, B, 24, "SSBD"),
        ];
        for (leaf, sub, reg, bit, what) in hidden {
            let r = q(*leaf, *sub);
            assert_eq!(get(r, reg) & (1 << bit), 0, "{what} visible");
        }
        // And bits that must pass: SSE2, PAE, PAT, TSC, NX, LM, invariant TSC.
        let kept: &[(u32, Reg, u32, &str)] = &[
            (1, D, 26, "SSE2"),
            (1, D, 6, "PAE"),
            (1, D, 16, "PAT"),
            (1, D, 4, "TSC"),
            (1, C, 0, "SSE3"),
            (1, C, 20, "SSE4.2"),
            (7, B, 0, "FSGSBASE"),
            (0x8000_0001, D, 20, "NX"),
            (0x8000_0001, D, 29, "LM"),
            (0x8000_0007, D, 8, "invariant TSC"),
        ];
        for (leaf, reg, bit, what) in kept {
            assert_ne!(get(q(*leaf, 0), reg) & (1 << bit), 0, "{what} hidden");
        }
    }

    #[test]
    fn hypervisor_bit_and_signature() {
        assert_ne!(q(1, 0).ecx & (1 << 31), 0);
        // Even when the host does not set it.
        let none = guest_cpuid(1, 0, CpuidResult::ZERO, &cfg(), 0);
        assert_eq!(none.ecx, 1 << 31);
        let h = q(0x4000_0000, 0);
        assert_eq!(h.eax, 0x4000_0010);
        let mut sig = Vec::new();
        for w in [h.ebx, h.ecx, h.edx] {
            sig.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&sig, b"BulkheadVMM\0");
        assert_eq!(q(0x4000_0010, 0).eax, 2_000_000);
        assert_eq!(q(0x4000_0001, 0), CpuidResult::ZERO);
        assert_eq!(q(0x4000_0011, 0), CpuidResult::ZERO);
    }

    #[test]
    fn one_cpu_topology() {
        let host = CpuidResult {
            eax: 0x000906ea,
            ebx: 0x0710_0800, // APIC id 7, 16 logical, CLFLUSH 8
            ecx: 0,
            edx: 0,
        };
        let r = guest_cpuid(1, 0, host, &cfg(), 0);
        assert_eq!(r.eax, 0x000906ea, "signature passes");
        assert_eq!(r.ebx >> 24, 0, "APIC id 0");
        assert_eq!((r.ebx >> 16) & 0xff, 1, "one logical processor");
        assert_eq!(r.ebx & 0xffff, 0x0800, "CLFLUSH size passes");
        // Leaf 4: no sharing, other fields pass; a terminating answer stays zero.
        let l4 = guest_cpuid(
            4,
            0,
            CpuidResult {
                eax: 0xfc00_4121,
                ..ALL
            },
            &cfg(),
            0,
        );
        assert_eq!(l4.eax, 0x121);
        assert_eq!(l4.ebx, u32::MAX);
        assert_eq!(
            guest_cpuid(4, 4, CpuidResult { eax: 0, ..ALL }, &cfg(), 0),
            CpuidResult::ZERO
        );
        // Leaf 0xB: SMT and core levels with one processor each, then invalid.
        assert_eq!(
            q(0xb, 0),
            CpuidResult {
                eax: 0,
                ebx: 1,
                ecx: 0x100,
                edx: 0
            }
        );
        assert_eq!(
            q(0xb, 1),
            CpuidResult {
                eax: 0,
                ebx: 1,
                ecx: 0x201,
                edx: 0
            }
        );
        assert_eq!(
            q(0xb, 2),
            CpuidResult {
                eax: 0,
                ebx: 0,
                ecx: 2,
                edx: 0
            }
        );
        assert_eq!(q(0x8000_0008, 0).ecx, 0, "one core, no APIC id bits");
    }

    #[test]
    fn leaves_are_clamped_and_unknown_ones_are_zero() {
        // Max leaves.
        assert_eq!(q(0, 0).eax, 0x16);
        assert_eq!(q(0x8000_0000, 0).eax, 0x8000_0008);
        // Vendor string passes.
        let v = guest_cpuid(
            0,
            0,
            CpuidResult {
                eax: 0xd,
                ebx: 1,
                ecx: 2,
                edx: 3,
            },
            &cfg(),
            0,
        );
        assert_eq!((v.ebx, v.ecx, v.edx), (1, 2, 3));
        // Without a TSC frequency the basic max is the host's, capped.
        let mut c = cfg();
        c.tsc_khz = 0;
        c.host_max_basic = 0xd;
        assert_eq!(guest_cpuid(0, 0, ALL, &c, 0).eax, 0xd);
        c.host_max_basic = 0x20;
        assert_eq!(guest_cpuid(0, 0, ALL, &c, 0).eax, 0x16);
        // Hidden whole leaves: MONITOR, thermal, perfmon, SGX, PT, PSN,
        // DCA, RDT, beyond the max, SVM, SEV, topology extension, and
        // nonsense.
        for leaf in [
            3,
            5,
            6,
            9,
            0xa,
            0xf,
            0x10,
            0x12,
            0x14,
            0x17,
            0x1f,
            0x20,
            0x8000_000a,
            0x8000_001e,
            0x8000_001f,
            0x8000_0021,
            0x8000_0009,
            0x1234_5678,
            0xffff_ffff,
            0x2000_0000,
            0xc000_0000,
        ] {
            assert_eq!(q(leaf, 0), CpuidResult::ZERO, "leaf {leaf:#x}");
        }
        // Leaves above what the host has are zero even on the allow-list
        // (an Intel host would answer with its highest leaf's data).
        let mut c = cfg();
        c.host_max_basic = 4;
        assert_eq!(guest_cpuid(7, 0, ALL, &c, 0), CpuidResult::ZERO);
        c.host_max_extended = 0x8000_0004;
        assert_eq!(guest_cpuid(0x8000_0008, 0, ALL, &c, 0), CpuidResult::ZERO);
        assert_eq!(guest_cpuid(0x8000_0000, 0, ALL, &c, 0).eax, 0x8000_0004);
        // Brand string passes.
        assert_eq!(q(0x8000_0003, 0), ALL);
    }

    #[test]
    fn subleaves() {
        // Leaf 7: at most subleaf 1 is announced; subleaf 1 filtered;
        // 2 and up zero (spec-ctrl bits live there).
        assert_eq!(q(7, 0).eax, 1);
        let host = CpuidResult { eax: 0, ..ALL };
        assert_eq!(guest_cpuid(7, 0, host, &cfg(), 0).eax, 0);
        let s1 = q(7, 1);
        assert_eq!(s1.eax & (1 << 4), 0, "AVX-VNNI");
        assert_eq!(s1.eax & (1 << 26), 0, "LAM");
        assert_ne!(s1.eax & 1, 0, "other bits pass");
        assert_eq!((s1.ebx, s1.ecx, s1.edx), (0, 0, 0));
        assert_eq!(q(7, 2), CpuidResult::ZERO);
        assert_eq!(q(7, 0xffff_ffff), CpuidResult::ZERO);
        // Leaf 0xD: zero without XSAVE; with it, passed, XSAVES hidden.
        assert_eq!(q(0xd, 0), CpuidResult::ZERO);
        let mut c = cfg();
        c.xsave = true;
        assert_eq!(guest_cpuid(0xd, 0, ALL, &c, 0), ALL);
        assert_eq!(guest_cpuid(0xd, 1, ALL, &c, 0).eax & (1 << 3), 0);
        assert_eq!(guest_cpuid(0xd, 2, ALL, &c, 0), ALL);
    }

    #[test]
    fn xsave_passthrough_mirrors_cr4_osxsave() {
        let mut c = cfg();
        c.xsave = true;
        assert!(needs_guest_cr4(1, &c));
        assert!(!needs_guest_cr4(7, &c));
        assert!(!needs_guest_cr4(1, &cfg()));
        let off = guest_cpuid(1, 0, ALL, &c, 0);
        assert_ne!(off.ecx & (1 << 26), 0, "XSAVE");
        assert_ne!(off.ecx & (1 << 28), 0, "AVX");
        assert_eq!(off.ecx & (1 << 27), 0, "OSXSAVE with CR4.OSXSAVE clear");
        let on = guest_cpuid(1, 0, ALL, &c, 1 << 18);
        assert_ne!(on.ecx & (1 << 27), 0);
        // Hidden stays hidden with XSAVE on.
        assert_eq!(on.ecx & (1 << 5), 0);
        assert_ne!(guest_cpuid(7, 0, ALL, &c, 0).ebx & (1 << 5), 0, "AVX2");
    }

    #[test]
    fn tsc_frequency_leaves_give_back_the_frequency_by_linux_arithmetic() {
        for khz in [
            1,
            999,
            1000,
            1_000_000,
            2_000_000,
            2_903_999,
            3_600_000,
            4_294_967,
            4_294_968,
            5_000_001,
            u32::MAX,
        ] {
            let mut c = cfg();
            c.tsc_khz = khz;
            let r = guest_cpuid(0x15, 0, ALL, &c, 0);
            assert!(r.eax != 0 && r.ebx != 0 && r.ecx != 0);
            // native_calibrate_tsc(): unsigned int arithmetic.
            let crystal_khz = r.ecx / 1000;
            let product = crystal_khz.checked_mul(r.ebx).expect("32-bit overflow");
            assert_eq!(product / r.eax, khz, "{khz} kHz");
            let r16 = guest_cpuid(0x16, 0, ALL, &c, 0);
            assert_eq!(r16.eax, khz / 1000);
        }
        // Unknown frequency: the host's leaves pass.
        let mut c = cfg();
        c.tsc_khz = 0;
        let host = CpuidResult {
            eax: 2,
            ebx: 168,
            ecx: 24_000_000,
            edx: 0,
        };
        assert_eq!(guest_cpuid(0x15, 0, host, &c, 0), host);
        assert_eq!(guest_cpuid(0x4000_0010, 0, host, &c, 0).eax, 0);
    }

    #[test]
    fn from_host_takes_the_maxima() {
        let c = CpuidConfig::from_host(
            CpuidResult { eax: 0xd, ..ALL },
            CpuidResult {
                eax: 0x8000_001f,
                ..ALL
            },
            1234,
        );
        assert_eq!(
            (c.host_max_basic, c.host_max_extended, c.tsc_khz),
            (0xd, 0x8000_001f, 1234)
        );
        assert!(!c.xsave);
    }
}
