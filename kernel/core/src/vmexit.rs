//! Normalisation of VM exits: AMD-V exit codes and Intel VT-x basic exit
//! reasons to the vendor-neutral [`ExitReason`] of the ABI, and what the
//! kernel does with each.
//!
//! Design rules: the tables follow the vendors' manuals (AMD APM vol. 2
//! appendix C, Intel SDM vol. 3 appendix C); every input word is decoded
//! totally — an unknown code becomes [`ExitReason::Unknown`], never a panic;
//! the kernel, not the VMM, keeps what is its own (host interrupts, the
//! preemption timer), and a triple fault or failed entry stops the vCPU.

use bulkhead_abi::vcpu::{Access, ExitReason, Gpr};

/// What the kernel does after an exit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    /// Deliver to the VMM PD's `fault` handler; its reply resumes the vCPU.
    Deliver(ExitReason),
    /// Deliver, and mark the vCPU stopped: a reply does not resume it, only
    /// `VmCall::Run` after the VMM reset its state.
    Stop(ExitReason),
    /// A host interrupt (or NMI) arrived while the guest ran: the kernel
    /// handles it and resumes the guest itself (or schedules).
    HostInterrupt,
    /// The VMM PD's budget ran out in the guest (VMX preemption timer):
    /// the kernel schedules and resumes the guest later.
    Preempted,
}

/// The AMD-V exit state the normaliser reads (VMCB control and save area).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SvmExit {
    /// EXITCODE.
    pub code: u64,
    /// EXITINFO1.
    pub info1: u64,
    /// EXITINFO2.
    pub info2: u64,
    /// Guest RAX (in the VMCB save area).
    pub rax: u64,
    /// Guest RCX.
    pub rcx: u64,
    /// Guest RDX.
    pub rdx: u64,
}

/// SVM exit codes the kernel names.
pub mod svm {
    /// Read of CR0..CR15 (code = 0x00 + n).
    pub const CR_READ: u64 = 0x00;
    /// Write of CR0..CR15 (code = 0x10 + n).
    pub const CR_WRITE: u64 = 0x10;
    /// Exception vector n (code = 0x40 + n).
    pub const EXCEPTION: u64 = 0x40;
    /// Physical interrupt.
    pub const INTR: u64 = 0x60;
    /// Physical NMI.
    pub const NMI: u64 = 0x61;
    /// Virtual interrupt window (V_IRQ intercept).
    pub const VINTR: u64 = 0x64;
    /// CPUID.
    pub const CPUID: u64 = 0x72;
    /// HLT.
    pub const HLT: u64 = 0x78;
    /// IN/OUT.
    pub const IOIO: u64 = 0x7b;
    /// RDMSR/WRMSR.
    pub const MSR: u64 = 0x7c;
    /// Shutdown (triple fault).
    pub const SHUTDOWN: u64 = 0x7f;
    /// VMMCALL.
    pub const VMMCALL: u64 = 0x81;
    /// Nested page fault.
    pub const NPF: u64 = 0x400;
    /// VMRUN with invalid guest state.
    pub const INVALID: u64 = u64::MAX;
}

fn low32(x: u64) -> u32 {
    x as u32
}

fn io_data(rax: u64, size: u8) -> u32 {
    match size {
        1 => rax as u8 as u32,
        2 => rax as u16 as u32,
        _ => rax as u32,
    }
}

/// Normalises an AMD-V exit.
pub fn normalize_svm(e: &SvmExit) -> Action {
    use svm::*;
    // VMEXIT_INVALID is -1; QEMU's TCG stores it as a 32-bit -1.
    if e.code == INVALID || e.code == u32::MAX as u64 {
        return Action::Stop(ExitReason::EntryFailure { code: INVALID });
    }
    let r = match e.code {
        SHUTDOWN => return Action::Stop(ExitReason::TripleFault),
        INTR | NMI => return Action::HostInterrupt,
        0x00..=0x1f => {
            let cr = (e.code & 0xf) as u8;
            if !matches!(cr, 0 | 3 | 4 | 8) {
                return Action::Deliver(ExitReason::Unknown { code: e.code });
            }
            // With decode assists, bit 63 says a MOV CR was decoded and
            // bits 0..4 name its GPR.
            let gpr = if e.info1 >> 63 == 1 {
                Gpr::from_index(e.info1 & 0xf)
            } else {
                None
            };
            ExitReason::CrAccess {
                cr,
                write: e.code >= CR_WRITE,
                gpr,
            }
        }
        0x40..=0x5f => {
            let vector = (e.code - EXCEPTION) as u8;
            // EXITINFO1 holds the error code for the vectors that push one.
            let error_code =
                matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30).then(|| low32(e.info1));
            ExitReason::Exception { vector, error_code }
        }
        VINTR => ExitReason::InterruptWindow,
        CPUID => ExitReason::Cpuid {
            leaf: low32(e.rax),
            subleaf: low32(e.rcx),
        },
        HLT => ExitReason::Hlt,
        IOIO => {
            let i = e.info1;
            let size = if i & (1 << 4) != 0 {
                1
            } else if i & (1 << 5) != 0 {
                2
            } else {
                4
            };
            let write = i & 1 == 0; // TYPE: 1 = IN
            ExitReason::Io {
                port: (i >> 16) as u16,
                size,
                write,
                string: i & (1 << 2) != 0,
                rep: i & (1 << 3) != 0,
                data: if write && i & (1 << 2) == 0 {
                    io_data(e.rax, size)
                } else {
                    0
                },
            }
        }
        MSR => match e.info1 {
            0 => ExitReason::MsrRead { msr: low32(e.rcx) },
            1 => ExitReason::MsrWrite {
                msr: low32(e.rcx),
                value: (e.rdx << 32) | (e.rax & 0xffff_ffff),
            },
            _ => ExitReason::Unknown { code: e.code },
        },
        VMMCALL => ExitReason::Hypercall { nr: e.rax },
        NPF => {
            // EXITINFO1 is a page-fault error code: P 0, RW 1, ID (fetch) 4.
            let access = if e.info1 & (1 << 4) != 0 {
                Access::Exec
            } else if e.info1 & 2 != 0 {
                Access::Write
            } else {
                Access::Read
            };
            ExitReason::NestedPageFault {
                gpa: e.info2,
                access,
                present: e.info1 & 1 != 0,
            }
        }
        code => ExitReason::Unknown { code },
    };
    Action::Deliver(r)
}

/// The length of the exiting instruction on a CPU without NRIP save
/// (QEMU's TCG): IN/OUT report the next RIP in EXITINFO2 on every CPU; the
/// other instruction intercepts have one fixed encoding without prefixes
/// (CPUID `0f a2`, RDMSR/WRMSR `0f 32`/`0f 30`, HLT `f4`, VMMCALL
/// `0f 01 d9`). A prefixed form would be reported one byte short; the
/// guest then re-executes a prefix byte and exits again, so the VMM sees
/// it rather than silently skipping code. 0 = unknown.
pub fn svm_insn_len(e: &SvmExit, rip: u64) -> u8 {
    match e.code {
        svm::IOIO => {
            let n = e.info2.wrapping_sub(rip);
            if (1..=15).contains(&n) {
                n as u8
            } else {
                0
            }
        }
        svm::CPUID | svm::MSR => 2,
        svm::HLT => 1,
        svm::VMMCALL => 3,
        _ => 0,
    }
}

/// The VT-x exit state the normaliser reads (VMCS exit-information fields).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct VmxExit {
    /// Exit reason (basic reason in bits 0..16, bit 31 = entry failure).
    pub reason: u32,
    /// Exit qualification.
    pub qualification: u64,
    /// Guest-physical address (EPT violations).
    pub gpa: u64,
    /// VM-exit interruption information.
    pub intr_info: u32,
    /// VM-exit interruption error code.
    pub intr_error: u32,
    /// Guest RAX, RCX, RDX (saved by the kernel's exit stub).
    pub rax: u64,
    /// Guest RCX.
    pub rcx: u64,
    /// Guest RDX.
    pub rdx: u64,
}

/// VMX basic exit reasons the kernel names.
pub mod vmx {
    /// Exception or NMI.
    pub const EXCEPTION_NMI: u32 = 0;
    /// External interrupt.
    pub const EXTERNAL_INTERRUPT: u32 = 1;
    /// Triple fault.
    pub const TRIPLE_FAULT: u32 = 2;
    /// Interrupt window.
    pub const INTERRUPT_WINDOW: u32 = 7;
    /// CPUID.
    pub const CPUID: u32 = 10;
    /// HLT.
    pub const HLT: u32 = 12;
    /// VMCALL.
    pub const VMCALL: u32 = 18;
    /// Control-register access.
    pub const CR_ACCESS: u32 = 28;
    /// I/O instruction.
    pub const IO: u32 = 30;
    /// RDMSR.
    pub const RDMSR: u32 = 31;
    /// WRMSR.
    pub const WRMSR: u32 = 32;
    /// Entry failure: invalid guest state.
    pub const INVALID_GUEST_STATE: u32 = 33;
    /// Entry failure: MSR loading.
    pub const MSR_LOADING: u32 = 34;
    /// Entry failure: machine check.
    pub const MACHINE_CHECK: u32 = 41;
    /// EPT violation.
    pub const EPT_VIOLATION: u32 = 48;
    /// EPT misconfiguration (a bad entry the kernel wrote).
    pub const EPT_MISCONFIG: u32 = 49;
    /// VMX preemption timer expired.
    pub const PREEMPTION_TIMER: u32 = 52;
}

/// Normalises a VT-x exit.
pub fn normalize_vmx(e: &VmxExit) -> Action {
    use vmx::*;
    let basic = e.reason & 0xffff;
    if e.reason & (1 << 31) != 0
        || matches!(basic, INVALID_GUEST_STATE | MSR_LOADING | MACHINE_CHECK)
    {
        return Action::Stop(ExitReason::EntryFailure {
            code: e.reason as u64,
        });
    }
    let q = e.qualification;
    let r = match basic {
        TRIPLE_FAULT => return Action::Stop(ExitReason::TripleFault),
        EXTERNAL_INTERRUPT => return Action::HostInterrupt,
        PREEMPTION_TIMER => return Action::Preempted,
        // The kernel's own bad entry: stop the vCPU rather than loop.
        EPT_MISCONFIG => return Action::Stop(ExitReason::EntryFailure { code: basic as u64 }),
        EXCEPTION_NMI => {
            let kind = (e.intr_info >> 8) & 7;
            if e.intr_info & (1 << 31) == 0 || e.intr_info as u8 >= 32 {
                ExitReason::Unknown { code: basic as u64 }
            } else if kind == 2 {
                return Action::HostInterrupt; // a host NMI
            } else {
                ExitReason::Exception {
                    vector: e.intr_info as u8,
                    error_code: (e.intr_info & (1 << 11) != 0).then_some(e.intr_error),
                }
            }
        }
        INTERRUPT_WINDOW => ExitReason::InterruptWindow,
        CPUID => ExitReason::Cpuid {
            leaf: low32(e.rax),
            subleaf: low32(e.rcx),
        },
        HLT => ExitReason::Hlt,
        VMCALL => ExitReason::Hypercall { nr: e.rax },
        CR_ACCESS => {
            // Access type 0 = MOV to CR, 1 = MOV from CR; CLTS and LMSW
            // (2, 3) write CR0 without a GPR.
            let ty = (q >> 4) & 3;
            let cr = (q & 0xf) as u8;
            if !matches!(cr, 0 | 3 | 4 | 8) {
                ExitReason::Unknown { code: basic as u64 }
            } else {
                ExitReason::CrAccess {
                    cr,
                    write: ty != 1,
                    gpr: if ty < 2 {
                        Gpr::from_index((q >> 8) & 0xf)
                    } else {
                        None
                    },
                }
            }
        }
        IO => {
            let size = match q & 7 {
                0 => 1,
                1 => 2,
                3 => 4,
                _ => return Action::Deliver(ExitReason::Unknown { code: basic as u64 }),
            };
            let write = q & (1 << 3) == 0; // direction: 1 = IN
            let string = q & (1 << 4) != 0;
            ExitReason::Io {
                port: (q >> 16) as u16,
                size,
                write,
                string,
                rep: q & (1 << 5) != 0,
                data: if write && !string {
                    io_data(e.rax, size)
                } else {
                    0
                },
            }
        }
        RDMSR => ExitReason::MsrRead { msr: low32(e.rcx) },
        WRMSR => ExitReason::MsrWrite {
            msr: low32(e.rcx),
            value: (e.rdx << 32) | (e.rax & 0xffff_ffff),
        },
        EPT_VIOLATION => {
            // Bits 0..3: the access (read, write, fetch); bits 3..6: what
            // the entry allowed — any set means a mapping was present.
            let access = if q & 4 != 0 {
                Access::Exec
            } else if q & 2 != 0 {
                Access::Write
            } else {
                Access::Read
            };
            ExitReason::NestedPageFault {
                gpa: e.gpa,
                access,
                present: q & 0x38 != 0,
            }
        }
        code => ExitReason::Unknown { code: code as u64 },
    };
    Action::Deliver(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svm(code: u64, info1: u64, info2: u64) -> SvmExit {
        SvmExit {
            code,
            info1,
            info2,
            rax: 0x1234_5678_9abc_def0,
            rcx: 0xc000_0080,
            rdx: 0x1,
        }
    }

    #[test]
    fn svm_exits_normalise() {
        use svm::*;
        // OUT dx, al to 0x3f8: TYPE 0, SZ8, port in 16..32.
        assert_eq!(
            normalize_svm(&svm(IOIO, 0x3f8 << 16 | 1 << 4, 0)),
            Action::Deliver(ExitReason::Io {
                port: 0x3f8,
                size: 1,
                write: true,
                string: false,
                rep: false,
                data: 0xf0
            })
        );
        // REP INSD from 0x1f0.
        assert_eq!(
            normalize_svm(&svm(IOIO, 0x1f0 << 16 | 1 << 6 | 1 << 3 | 1 << 2 | 1, 0)),
            Action::Deliver(ExitReason::Io {
                port: 0x1f0,
                size: 4,
                write: false,
                string: true,
                rep: true,
                data: 0
            })
        );
        // NPF: a write to a present read-only page, and a fetch from nothing.
        assert_eq!(
            normalize_svm(&svm(NPF, 0b111, 0xfee0_0000)),
            Action::Deliver(ExitReason::NestedPageFault {
                gpa: 0xfee0_0000,
                access: Access::Write,
                present: true
            })
        );
        assert_eq!(
            normalize_svm(&svm(NPF, 0b10100, 0x20_0000)),
            Action::Deliver(ExitReason::NestedPageFault {
                gpa: 0x20_0000,
                access: Access::Exec,
                present: false
            })
        );
        assert_eq!(
            normalize_svm(&svm(CPUID, 0, 0)),
            Action::Deliver(ExitReason::Cpuid {
                leaf: 0x9abc_def0,
                subleaf: 0xc000_0080
            })
        );
        assert_eq!(
            normalize_svm(&svm(MSR, 0, 0)),
            Action::Deliver(ExitReason::MsrRead { msr: 0xc000_0080 })
        );
        assert_eq!(
            normalize_svm(&svm(MSR, 1, 0)),
            Action::Deliver(ExitReason::MsrWrite {
                msr: 0xc000_0080,
                value: 0x1_9abc_def0
            })
        );
        assert_eq!(
            normalize_svm(&svm(MSR, 2, 0)),
            Action::Deliver(ExitReason::Unknown { code: MSR })
        );
        assert_eq!(
            normalize_svm(&svm(HLT, 0, 0)),
            Action::Deliver(ExitReason::Hlt)
        );
        assert_eq!(
            normalize_svm(&svm(VMMCALL, 0, 0)),
            Action::Deliver(ExitReason::Hypercall {
                nr: 0x1234_5678_9abc_def0
            })
        );
        assert_eq!(
            normalize_svm(&svm(VINTR, 0, 0)),
            Action::Deliver(ExitReason::InterruptWindow)
        );
        assert_eq!(
            normalize_svm(&svm(CR_WRITE + 3, 1 << 63 | 7, 0)),
            Action::Deliver(ExitReason::CrAccess {
                cr: 3,
                write: true,
                gpr: Some(Gpr::Rdi)
            })
        );
        assert_eq!(
            normalize_svm(&svm(CR_READ, 7, 0)),
            Action::Deliver(ExitReason::CrAccess {
                cr: 0,
                write: false,
                gpr: None
            })
        );
        assert_eq!(
            normalize_svm(&svm(CR_READ + 2, 0, 0)),
            Action::Deliver(ExitReason::Unknown { code: 2 })
        );
        assert_eq!(
            normalize_svm(&svm(EXCEPTION + 14, 6, 0x1000)),
            Action::Deliver(ExitReason::Exception {
                vector: 14,
                error_code: Some(6)
            })
        );
        assert_eq!(
            normalize_svm(&svm(EXCEPTION + 3, 6, 0)),
            Action::Deliver(ExitReason::Exception {
                vector: 3,
                error_code: None
            })
        );
        assert_eq!(
            normalize_svm(&svm(SHUTDOWN, 0, 0)),
            Action::Stop(ExitReason::TripleFault)
        );
        assert_eq!(
            normalize_svm(&svm(INVALID, 0, 0)),
            Action::Stop(ExitReason::EntryFailure { code: u64::MAX })
        );
        assert_eq!(
            normalize_svm(&svm(0xffff_ffff, 0, 0)),
            Action::Stop(ExitReason::EntryFailure { code: u64::MAX })
        );
        assert_eq!(normalize_svm(&svm(INTR, 0, 0)), Action::HostInterrupt);
        assert_eq!(
            normalize_svm(&svm(0x7777, 0, 0)),
            Action::Deliver(ExitReason::Unknown { code: 0x7777 })
        );
    }

    #[test]
    fn instruction_lengths_without_nrip_save() {
        use svm::*;
        assert_eq!(svm_insn_len(&svm(IOIO, 0, 0x1002), 0x1000), 2);
        assert_eq!(svm_insn_len(&svm(IOIO, 0, 0x1000), 0x1000), 0);
        assert_eq!(svm_insn_len(&svm(IOIO, 0, 0), 0x1000), 0);
        assert_eq!(svm_insn_len(&svm(CPUID, 0, 0), 0), 2);
        assert_eq!(svm_insn_len(&svm(HLT, 0, 0), 0), 1);
        assert_eq!(svm_insn_len(&svm(VMMCALL, 0, 0), 0), 3);
        assert_eq!(svm_insn_len(&svm(NPF, 0, 0x1003), 0x1000), 0);
    }

    fn vmx(reason: u32, qualification: u64) -> VmxExit {
        VmxExit {
            reason,
            qualification,
            gpa: 0xfeb0_0123,
            intr_info: 0,
            intr_error: 0,
            rax: 0xffff_ffff_0000_4241,
            rcx: 0x1b,
            rdx: 0xfee,
        }
    }

    #[test]
    fn vmx_exits_normalise() {
        use vmx::*;
        // OUT dx, ax to 0x60: size-1 = 1, direction 0.
        assert_eq!(
            normalize_vmx(&vmx(IO, 0x60 << 16 | 1)),
            Action::Deliver(ExitReason::Io {
                port: 0x60,
                size: 2,
                write: true,
                string: false,
                rep: false,
                data: 0x4241
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(IO, 0x64 << 16 | 1 << 3)),
            Action::Deliver(ExitReason::Io {
                port: 0x64,
                size: 1,
                write: false,
                string: false,
                rep: false,
                data: 0
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(IO, 2)),
            Action::Deliver(ExitReason::Unknown { code: IO as u64 })
        );
        // EPT violation: write (bit 1) to a readable entry (bit 3).
        assert_eq!(
            normalize_vmx(&vmx(EPT_VIOLATION, 0b1010)),
            Action::Deliver(ExitReason::NestedPageFault {
                gpa: 0xfeb0_0123,
                access: Access::Write,
                present: true
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(EPT_VIOLATION, 0b0001)),
            Action::Deliver(ExitReason::NestedPageFault {
                gpa: 0xfeb0_0123,
                access: Access::Read,
                present: false
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(EPT_VIOLATION, 0b0101100)),
            Action::Deliver(ExitReason::NestedPageFault {
                gpa: 0xfeb0_0123,
                access: Access::Exec,
                present: true
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(CPUID, 0)),
            Action::Deliver(ExitReason::Cpuid {
                leaf: 0x4241,
                subleaf: 0x1b
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(RDMSR, 0)),
            Action::Deliver(ExitReason::MsrRead { msr: 0x1b })
        );
        assert_eq!(
            normalize_vmx(&vmx(WRMSR, 0)),
            Action::Deliver(ExitReason::MsrWrite {
                msr: 0x1b,
                value: 0xfee_0000_4241
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(HLT, 0)),
            Action::Deliver(ExitReason::Hlt)
        );
        assert_eq!(
            normalize_vmx(&vmx(VMCALL, 0)),
            Action::Deliver(ExitReason::Hypercall {
                nr: 0xffff_ffff_0000_4241
            })
        );
        // MOV CR3, R9 / MOV RAX, CR8 / LMSW.
        assert_eq!(
            normalize_vmx(&vmx(CR_ACCESS, 9 << 8 | 3)),
            Action::Deliver(ExitReason::CrAccess {
                cr: 3,
                write: true,
                gpr: Some(Gpr::R9)
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(CR_ACCESS, 1 << 4 | 8)),
            Action::Deliver(ExitReason::CrAccess {
                cr: 8,
                write: false,
                gpr: Some(Gpr::Rax)
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(CR_ACCESS, 3 << 4)),
            Action::Deliver(ExitReason::CrAccess {
                cr: 0,
                write: true,
                gpr: None
            })
        );
        let mut pf = vmx(EXCEPTION_NMI, 0);
        pf.intr_info = 1 << 31 | 1 << 11 | 3 << 8 | 14;
        pf.intr_error = 4;
        assert_eq!(
            normalize_vmx(&pf),
            Action::Deliver(ExitReason::Exception {
                vector: 14,
                error_code: Some(4)
            })
        );
        pf.intr_info = 1 << 31 | 2 << 8 | 2;
        assert_eq!(normalize_vmx(&pf), Action::HostInterrupt);
        assert_eq!(
            normalize_vmx(&vmx(TRIPLE_FAULT, 0)),
            Action::Stop(ExitReason::TripleFault)
        );
        assert_eq!(
            normalize_vmx(&vmx(1 << 31 | INVALID_GUEST_STATE, 0)),
            Action::Stop(ExitReason::EntryFailure {
                code: (1 << 31 | INVALID_GUEST_STATE) as u64
            })
        );
        assert_eq!(
            normalize_vmx(&vmx(EPT_MISCONFIG, 0)),
            Action::Stop(ExitReason::EntryFailure { code: 49 })
        );
        assert_eq!(normalize_vmx(&vmx(PREEMPTION_TIMER, 0)), Action::Preempted);
        assert_eq!(
            normalize_vmx(&vmx(EXTERNAL_INTERRUPT, 0)),
            Action::HostInterrupt
        );
        assert_eq!(
            normalize_vmx(&vmx(7, 0)),
            Action::Deliver(ExitReason::InterruptWindow)
        );
        assert_eq!(
            normalize_vmx(&vmx(0xffff, 0)),
            Action::Deliver(ExitReason::Unknown { code: 0xffff })
        );
    }

    #[test]
    fn normalised_exits_always_encode() {
        // Whatever the hardware reports, the message to the VMM decodes back.
        use bulkhead_abi::vcpu::ExitMessage;
        let words = [
            0,
            1,
            2,
            3,
            7,
            0xf,
            0x10,
            0x38,
            0x3f8 << 16 | 0x35,
            1 << 63 | 0x1f,
            u64::MAX,
        ];
        for &code in [
            0u64,
            0x13,
            0x4e,
            0x60,
            0x64,
            0x72,
            0x78,
            0x7b,
            0x7c,
            0x7f,
            0x81,
            0x400,
            u64::MAX,
        ]
        .iter()
        {
            for &i1 in &words {
                let a = normalize_svm(&SvmExit {
                    code,
                    info1: i1,
                    info2: i1,
                    rax: i1,
                    rcx: i1,
                    rdx: i1,
                });
                check(a);
            }
        }
        for reason in 0..70u32 {
            for &q in &words {
                let e = VmxExit {
                    reason,
                    qualification: q,
                    gpa: q,
                    intr_info: q as u32,
                    intr_error: 1,
                    rax: q,
                    rcx: q,
                    rdx: q,
                };
                check(normalize_vmx(&e));
            }
        }
        fn check(a: Action) {
            if let Action::Deliver(r) | Action::Stop(r) = a {
                let m = ExitMessage {
                    vcpu: 0,
                    reason: r,
                    rip: 0,
                    insn_len: 0,
                };
                assert_eq!(ExitMessage::from_words(&m.to_words()), Some(m), "{r:?}");
            }
        }
    }
}
