//! The vCPU/VM interface between the kernel and a VMM PD, one for Intel VT-x
//! and AMD-V.
//!
//! Design rules:
//! - vendor-neutral: a VMM never sees a VMCB offset or a VMX exit number
//!   unless it asks for raw access; exits are normalised as KVM does
//!   (`KVM_EXIT_IO`, `KVM_EXIT_MMIO`, ...), registers are named, not offsets;
//! - every value that crosses the boundary has a total decoder (unknown raw
//!   values are `None`, never a panic) and an encoder that round-trips;
//! - exits are delivered as Microkit does: [`VmCall::Run`] makes a vCPU
//!   runnable and returns; the vCPU runs while its VMM waits for events
//!   (`ReplyRecv`), on the VMM's budget and priority, and each exit reaches
//!   the VMM as a fault event whose child id carries [`VCPU_FAULT_BIT`],
//!   with an [`ExitMessage`] in the message registers. The VMM's reply to
//!   that event resumes the vCPU; not replying holds it. A notification for
//!   the VMM interrupts the guest (its state is kept) and is delivered first;
//! - an external interrupt queued with [`VmCall::Inject`] is delivered when
//!   the guest can take it (IF set, no interrupt shadow), without an exit
//!   to the VMM for the wait; the other event types go in on the next entry;
//! - guest-physical memory: the VMM maps, unmaps and changes permissions
//!   only inside the regions `system.xml` maps into the VM; views are a
//!   bounded set ([`MAX_VIEWS`]), view 0 is the default and always exists.
//!
//! # Calling convention
//! The calls are syscalls with the numbers of [`VmCall`] (a range of their
//! own, so they never collide with [`crate::Syscall`]): `rax` = number,
//! arguments in `rdi`, `rsi`, `rdx`, `r8`; `rax` returns a [`VmError`] code
//! (0 = success), results in `rdi`. A vCPU id the caller does not own is a
//! [`crate::FaultKind::Capability`] fault, as for channels; a well-formed
//! request the kernel refuses (outside the grant, too many views) is an
//! error return, so the VMM can handle it.

/// How many guest-physical views (EPTP list entries on VT-x, nested page
/// table roots on AMD-V) one VM may have, the default view 0 included.
/// Bounded because every view is a full set of page tables allocated at boot.
pub const MAX_VIEWS: usize = 4;

/// Guest-physical page size the map calls work in.
pub const GUEST_PAGE_SIZE: u64 = 4096;

/// Number of message registers an [`ExitMessage`] occupies.
pub const EXIT_MESSAGE_WORDS: usize = 6;

/// VM syscall numbers (in `rax`).
#[repr(u64)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmCall {
    /// VT-x only (`NotSupported` on AMD-V): let vCPU `rdi`'s guest switch
    /// views itself with VMFUNC leaf 0 (EPTP switching) when `rsi` = 1, or
    /// stop it (`rsi` = 0). The EPTP list holds the VM's existing views.
    AllowVmfunc = 0x50,
    /// VT-x only: deliver EPT violations on #VE-enabled pages to vCPU
    /// `rdi`'s guest as vector 20, with the VE information area at
    /// guest-physical `rsi` (page-aligned, inside a writable grant); `rsi`
    /// = 0 switches #VE off.
    SetVeInfo = 0x51,
    /// VT-x only: enable (`r8 & 1` = 1) or disable #VE for `rdx` bytes of
    /// guest-physical pages at `rsi` in view `r8 >> 8` (inside one grant).
    SetVe = 0x52,
    /// VT-x only: raw VMCS read of field `rsi` (its encoding) of vCPU
    /// `rdi`, value in `rdi`. Guest state, controls and exit information;
    /// host-state fields are refused (`BadRegister`).
    ReadVmcs = 0x53,
    /// VT-x only: raw VMCS write of `rdx` to guest-state field `rsi` of
    /// vCPU `rdi`. Controls, host state, EPTP, VPID, the VMCS link pointer
    /// and the preemption timer stay the kernel's (`BadRegister`).
    WriteVmcs = 0x54,
    /// Read register `rsi` ([`Register::to_raw`]) of vCPU `rdi`; value in `rdi`.
    ReadRegister = 0x40,
    /// Write `rdx` to register `rsi` of vCPU `rdi`.
    WriteRegister = 0x41,
    /// Queue an event ([`Injection::to_raw`] in `rsi`) for vCPU `rdi`: an
    /// external interrupt is delivered as soon as the guest can take it
    /// (one at a time: `Busy` while one waits), the other kinds on the next
    /// entry.
    Inject = 0x42,
    /// Make vCPU `rdi` runnable (the first time, or one held by not
    /// replying to its exit) and return; it runs while the VMM waits for
    /// events. The reply to a vCPU's exit does the same.
    Run = 0x43,
    /// Map `rdx` bytes at guest-physical `rsi` in view `r8 >> 8` with
    /// [`Perms`] `r8 & 7`, backed by the granted region at that address
    /// (`rdi` is ignored: a PD owns at most one VM).
    Map = 0x44,
    /// Unmap `rdx` bytes at guest-physical `rsi` in view `r8 >> 8`.
    Unmap = 0x45,
    /// Change the permissions of mapped pages (same arguments as `Map`).
    Protect = 0x46,
    /// Create a view as a copy of view `rdi`; its index returns in `rdi`.
    CreateView = 0x47,
    /// Make view `rsi` the active one of vCPU `rdi` (the kernel switches
    /// the nested root; on VT-x also the EPTP index VMFUNC would use).
    SwitchView = 0x48,
    /// Set vCPU `rdi`'s [`Intercepts`] to `rsi` (CPUID is always on).
    SetIntercepts = 0x49,
    /// Intercept (`rdx` = 1) or pass (`rdx` = 0) guest I/O on ports
    /// `rsi & 0xffff` .. `+ (rsi >> 16)`; passing is refused unless the
    /// VMM PD itself holds those ports.
    SetIoIntercept = 0x4a,
    /// Intercept (`rdx` = 1) or pass (`rdx` = 0) guest reads and writes of
    /// MSR `rsi`; passing is refused (`MsrNotSwitched`) unless the hardware
    /// switches that MSR between host and guest on every entry and exit.
    SetMsrIntercept = 0x4b,
    /// Hold vCPU `rdi`: it does not run until `Run` (a vCPU whose exit is
    /// with the VMM is held by not replying; this holds a runnable one,
    /// e.g. for the monitor's pause).
    Pause = 0x4c,
    /// Reset vCPU `rdi` to the architectural start state the kernel gives
    /// a new vCPU (64-bit mode, flat segments, GPRs zero, nothing pending)
    /// and hold it; this also ends a triple-faulted vCPU's stop, so a VMM
    /// can reboot its guest.
    Reset = 0x4d,
}

impl VmCall {
    /// Decodes a raw syscall number; `None` outside the VM range.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0x50 => Self::AllowVmfunc,
            0x51 => Self::SetVeInfo,
            0x52 => Self::SetVe,
            0x53 => Self::ReadVmcs,
            0x54 => Self::WriteVmcs,
            0x40 => Self::ReadRegister,
            0x41 => Self::WriteRegister,
            0x42 => Self::Inject,
            0x43 => Self::Run,
            0x44 => Self::Map,
            0x45 => Self::Unmap,
            0x46 => Self::Protect,
            0x47 => Self::CreateView,
            0x48 => Self::SwitchView,
            0x49 => Self::SetIntercepts,
            0x4a => Self::SetIoIntercept,
            0x4b => Self::SetMsrIntercept,
            0x4c => Self::Pause,
            0x4d => Self::Reset,
            _ => return None,
        })
    }
}

/// Errors of the VM calls (in `rax`).
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmError {
    /// Success.
    Ok = 0,
    /// The range is not wholly inside one region `system.xml` maps into the VM.
    OutsideGrant = 0x40,
    /// Address or length not a multiple of [`GUEST_PAGE_SIZE`], or zero length.
    Unaligned = 0x41,
    /// Permissions the hardware cannot express (write without read), or more
    /// than the grant allows.
    BadPermissions = 0x42,
    /// No such view.
    NoSuchView = 0x43,
    /// Already [`MAX_VIEWS`] views.
    TooManyViews = 0x44,
    /// Unknown register, or a value the kernel will not load (e.g. a
    /// non-canonical RIP is accepted — the entry check reports it — but an
    /// unknown MSR is not).
    BadRegister = 0x45,
    /// Malformed [`Injection`].
    BadInjection = 0x46,
    /// The vCPU triple-faulted and is stopped for good. (After an entry
    /// failure it is not: the VMM may correct the state and run it again.)
    VcpuStopped = 0x47,
    /// The CPU lacks the feature (e.g. VMFUNC on AMD-V).
    NotSupported = 0x48,
    /// The ports are not the VMM's to pass through.
    PortsNotHeld = 0x49,
    /// An external interrupt is already queued for this vCPU (it is
    /// delivered as soon as the guest can take it); queue the next one
    /// after the guest took it.
    Busy = 0x4a,
    /// The MSR may not be passed through: the hardware does not switch it
    /// between host and guest.
    MsrNotSwitched = 0x4b,
}

impl VmError {
    /// Decodes a raw error code; unknown codes are `None`.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => Self::Ok,
            0x40 => Self::OutsideGrant,
            0x41 => Self::Unaligned,
            0x42 => Self::BadPermissions,
            0x43 => Self::NoSuchView,
            0x44 => Self::TooManyViews,
            0x45 => Self::BadRegister,
            0x46 => Self::BadInjection,
            0x47 => Self::VcpuStopped,
            0x48 => Self::NotSupported,
            0x49 => Self::PortsNotHeld,
            0x4a => Self::Busy,
            0x4b => Self::MsrNotSwitched,
            _ => return None,
        })
    }
}

/// Guest-physical page permissions: bit 0 read, bit 1 write, bit 2 execute.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Perms(u8);

impl Perms {
    /// No access (the page is not present).
    pub const NONE: Self = Self(0);
    /// Read.
    pub const R: Self = Self(1);
    /// Read and write.
    pub const RW: Self = Self(3);
    /// Read and execute.
    pub const RX: Self = Self(5);
    /// Everything.
    pub const RWX: Self = Self(7);

    /// From the low three bits; `None` if any other bit is set.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        if raw & !7 != 0 {
            None
        } else {
            Some(Self(raw as u8))
        }
    }
    /// The raw bits.
    pub const fn raw(self) -> u8 {
        self.0
    }
    /// Read allowed.
    pub const fn read(self) -> bool {
        self.0 & 1 != 0
    }
    /// Write allowed.
    pub const fn write(self) -> bool {
        self.0 & 2 != 0
    }
    /// Execute allowed.
    pub const fn exec(self) -> bool {
        self.0 & 4 != 0
    }
    /// Whether every right in `self` is also in `other`.
    pub const fn within(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }
}

/// The kind of a guest memory access (of an NPT/EPT violation).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Data read.
    Read = 0,
    /// Data write.
    Write = 1,
    /// Instruction fetch.
    Exec = 2,
}

/// A general-purpose register.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)] // the names are the architecture's
pub enum Gpr {
    Rax = 0,
    Rcx,
    Rdx,
    Rbx,
    Rsp,
    Rbp,
    Rsi,
    Rdi,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

impl Gpr {
    /// By the architecture's encoding (0 = rax ... 15 = r15).
    pub fn from_index(i: u64) -> Option<Self> {
        const ALL: [Gpr; 16] = [
            Gpr::Rax,
            Gpr::Rcx,
            Gpr::Rdx,
            Gpr::Rbx,
            Gpr::Rsp,
            Gpr::Rbp,
            Gpr::Rsi,
            Gpr::Rdi,
            Gpr::R8,
            Gpr::R9,
            Gpr::R10,
            Gpr::R11,
            Gpr::R12,
            Gpr::R13,
            Gpr::R14,
            Gpr::R15,
        ];
        ALL.get(usize::try_from(i).ok()?).copied()
    }
}

/// A segment register (with LDTR and TR).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub enum Segment {
    Es = 0,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
    Ldtr,
    Tr,
}

/// A part of a segment register's hidden state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SegmentField {
    /// The visible selector.
    Selector = 0,
    /// The base address.
    Base,
    /// The byte-granular limit.
    Limit,
    /// Attributes in the VMX access-rights layout (type 0..4, S 4, DPL 5..7,
    /// P 7, AVL 12, L 13, D/B 14, G 15, unusable 16); the kernel converts for
    /// the VMCB's packed form.
    Attributes,
}

/// A model-specific register a VMM may read and write. Others are not
/// reachable: the guest's MSR traffic goes through the MSR bitmap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub enum Msr {
    Star = 0,
    Lstar,
    Cstar,
    Sfmask,
    KernelGsBase,
    SysenterCs,
    SysenterEsp,
    SysenterEip,
    Pat,
}

impl Msr {
    /// The architectural MSR number.
    pub const fn number(self) -> u32 {
        match self {
            Self::Star => 0xc000_0081,
            Self::Lstar => 0xc000_0082,
            Self::Cstar => 0xc000_0083,
            Self::Sfmask => 0xc000_0084,
            Self::KernelGsBase => 0xc000_0102,
            Self::SysenterCs => 0x174,
            Self::SysenterEsp => 0x175,
            Self::SysenterEip => 0x176,
            Self::Pat => 0x277,
        }
    }
}

/// A vCPU register the VMM may read or write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Register {
    /// A general-purpose register.
    Gpr(Gpr),
    /// The instruction pointer.
    Rip,
    /// The flags.
    Rflags,
    /// CR0.
    Cr0,
    /// CR2 (page-fault address).
    Cr2,
    /// CR3 (guest page-table root).
    Cr3,
    /// CR4.
    Cr4,
    /// EFER.
    Efer,
    /// DR7.
    Dr7,
    /// A segment register's selector, base, limit or attributes.
    Segment(Segment, SegmentField),
    /// GDTR base (`false`) or limit (`true`).
    Gdtr(bool),
    /// IDTR base (`false`) or limit (`true`).
    Idtr(bool),
    /// A model-specific register.
    Msr(Msr),
}

impl Register {
    /// The raw encoding: GPRs 0..16, RIP 0x10, RFLAGS 0x11, CR0/2/3/4
    /// 0x20/0x22/0x23/0x24, EFER 0x30, DR7 0x31, segments
    /// `0x100 + segment * 4 + field`, GDTR 0x200/0x201, IDTR 0x202/0x203,
    /// MSRs `0x300 + index`.
    pub const fn to_raw(self) -> u64 {
        match self {
            Self::Gpr(g) => g as u64,
            Self::Rip => 0x10,
            Self::Rflags => 0x11,
            Self::Cr0 => 0x20,
            Self::Cr2 => 0x22,
            Self::Cr3 => 0x23,
            Self::Cr4 => 0x24,
            Self::Efer => 0x30,
            Self::Dr7 => 0x31,
            Self::Segment(s, f) => 0x100 + (s as u64) * 4 + f as u64,
            Self::Gdtr(limit) => 0x200 + limit as u64,
            Self::Idtr(limit) => 0x202 + limit as u64,
            Self::Msr(m) => 0x300 + m as u64,
        }
    }

    /// Decodes [`Register::to_raw`]'s encoding; `None` for anything else.
    pub fn from_raw(raw: u64) -> Option<Self> {
        const SEGS: [Segment; 8] = [
            Segment::Es,
            Segment::Cs,
            Segment::Ss,
            Segment::Ds,
            Segment::Fs,
            Segment::Gs,
            Segment::Ldtr,
            Segment::Tr,
        ];
        const FIELDS: [SegmentField; 4] = [
            SegmentField::Selector,
            SegmentField::Base,
            SegmentField::Limit,
            SegmentField::Attributes,
        ];
        const MSRS: [Msr; 9] = [
            Msr::Star,
            Msr::Lstar,
            Msr::Cstar,
            Msr::Sfmask,
            Msr::KernelGsBase,
            Msr::SysenterCs,
            Msr::SysenterEsp,
            Msr::SysenterEip,
            Msr::Pat,
        ];
        Some(match raw {
            0..=15 => Self::Gpr(Gpr::from_index(raw)?),
            0x10 => Self::Rip,
            0x11 => Self::Rflags,
            0x20 => Self::Cr0,
            0x22 => Self::Cr2,
            0x23 => Self::Cr3,
            0x24 => Self::Cr4,
            0x30 => Self::Efer,
            0x31 => Self::Dr7,
            0x100..=0x11f => {
                let i = (raw - 0x100) as usize;
                Self::Segment(SEGS[i / 4], FIELDS[i % 4])
            }
            0x200 | 0x201 => Self::Gdtr(raw == 0x201),
            0x202 | 0x203 => Self::Idtr(raw == 0x203),
            0x300..=0x308 => Self::Msr(MSRS[(raw - 0x300) as usize]),
            _ => return None,
        })
    }
}

/// The type of an injected event (the encoding both VMX's entry
/// interruption information and SVM's EVENTINJ use in bits 8..11).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventType {
    /// External interrupt (the VMM's virtual interrupt controller).
    External = 0,
    /// Non-maskable interrupt (vector 2).
    Nmi = 2,
    /// Hardware exception (vectors 0..32).
    Exception = 3,
    /// Software interrupt (`int n`).
    Software = 4,
}

/// An event to inject on the next VM entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Injection {
    /// The vector.
    pub vector: u8,
    /// What kind of event.
    pub kind: EventType,
    /// The error code pushed for exceptions that have one.
    pub error_code: Option<u32>,
}

impl Injection {
    /// The raw word: vector 0..8, type 8..11, error code valid 11, valid 31,
    /// error code 32..64 — SVM's EVENTINJ layout, which VMX's shares in the
    /// low 32 bits.
    pub const fn to_raw(self) -> u64 {
        let mut raw = self.vector as u64 | ((self.kind as u64) << 8) | (1 << 31);
        if let Some(e) = self.error_code {
            raw |= (1 << 11) | ((e as u64) << 32);
        }
        raw
    }

    /// Decodes and checks an injection: valid bit set, reserved bits clear,
    /// a known type, exceptions only below 32 and NMIs only on vector 2,
    /// external interrupts at 32 or above, an error code only on exceptions.
    pub fn from_raw(raw: u64) -> Option<Self> {
        if raw & (1 << 31) == 0 || raw & 0x7fff_f000 != 0 {
            return None;
        }
        let vector = raw as u8;
        let kind = match (raw >> 8) & 7 {
            0 => EventType::External,
            2 => EventType::Nmi,
            3 => EventType::Exception,
            4 => EventType::Software,
            _ => return None,
        };
        let has_error = raw & (1 << 11) != 0;
        let ok = match kind {
            EventType::External => vector >= 32,
            EventType::Nmi => vector == 2,
            EventType::Exception => vector < 32,
            EventType::Software => true,
        };
        if !ok || (has_error && kind != EventType::Exception) {
            return None;
        }
        if !has_error && raw >> 32 != 0 {
            return None;
        }
        Some(Self {
            vector,
            kind,
            error_code: has_error.then_some((raw >> 32) as u32),
        })
    }
}

/// Intercepts a VMM may switch on (bits of a word). CPUID, the
/// virtualization instructions, triple fault and the nested-paging faults
/// are always intercepted: they are not the VMM's to give away.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Intercepts(u64);

impl Intercepts {
    /// Guest I/O goes through the I/O bitmap (else every port exits).
    pub const IO_BITMAP: Self = Self(1 << 0);
    /// Guest `rdmsr`/`wrmsr` go through the MSR bitmap (else every MSR exits).
    pub const MSR_BITMAP: Self = Self(1 << 1);
    /// `mov cr3, r` exits.
    pub const CR3_LOAD: Self = Self(1 << 2);
    /// `mov r, cr3` exits.
    pub const CR3_STORE: Self = Self(1 << 3);
    /// `int3` (#BP) exits.
    pub const INT3: Self = Self(1 << 4);
    /// #DB exits.
    pub const DEBUG: Self = Self(1 << 5);
    /// `hlt` exits.
    pub const HLT: Self = Self(1 << 6);
    /// Exit as soon as the guest can take an interrupt (for a pending one).
    pub const INTERRUPT_WINDOW: Self = Self(1 << 7);
    const ALL: u64 = 0xff;

    /// From the raw word; `None` if an unknown bit is set.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        if raw & !Self::ALL != 0 {
            None
        } else {
            Some(Self(raw))
        }
    }
    /// The raw word.
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    /// Both sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Why a vCPU left the guest, vendor-neutral.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExitReason {
    /// `in`/`out` (string forms included). `data` is the value written for
    /// `out`; for `in` the VMM writes the value to RAX before replying.
    Io {
        /// Port.
        port: u16,
        /// 1, 2 or 4 bytes.
        size: u8,
        /// `out` (true) or `in`.
        write: bool,
        /// `ins`/`outs`.
        string: bool,
        /// With a `rep` prefix.
        rep: bool,
        /// The value for `out` (RAX masked to `size`), else 0.
        data: u32,
    },
    /// A guest-physical access the nested page tables do not allow (MMIO
    /// for a device model, or a monitor's protection).
    NestedPageFault {
        /// Guest-physical address.
        gpa: u64,
        /// What the guest tried.
        access: Access,
        /// Whether a mapping was present (a permission violation) or not.
        present: bool,
    },
    /// `cpuid`: the VMM writes RAX/RBX/RCX/RDX and replies.
    Cpuid {
        /// EAX at the exit.
        leaf: u32,
        /// ECX at the exit.
        subleaf: u32,
    },
    /// `rdmsr` of an intercepted MSR: the VMM writes EDX:EAX.
    MsrRead {
        /// ECX.
        msr: u32,
    },
    /// `wrmsr` of an intercepted MSR.
    MsrWrite {
        /// ECX.
        msr: u32,
        /// EDX:EAX.
        value: u64,
    },
    /// `hlt`.
    Hlt,
    /// `mov` to or from a control register.
    CrAccess {
        /// 0, 3, 4 or 8.
        cr: u8,
        /// `mov cr, r` (true) or `mov r, cr`.
        write: bool,
        /// The general-purpose register, when the hardware decodes it.
        gpr: Option<Gpr>,
    },
    /// The guest can take an interrupt now.
    InterruptWindow,
    /// An intercepted exception.
    Exception {
        /// Vector.
        vector: u8,
        /// Error code, if the exception has one.
        error_code: Option<u32>,
    },
    /// `vmcall` (VT-x) or `vmmcall` (AMD-V); RAX is the call number.
    Hypercall {
        /// RAX.
        nr: u64,
    },
    /// The guest triple-faulted (shutdown): the vCPU is stopped.
    TripleFault,
    /// The hardware refused to enter the guest (bad guest state): the vCPU
    /// is stopped; `code` is the vendor's reason (VMX exit reason or
    /// instruction error, SVM `VMEXIT_INVALID` = -1).
    EntryFailure {
        /// Vendor code.
        code: u64,
    },
    /// An exit the interface does not normalise; `code` is the vendor's.
    Unknown {
        /// Vendor exit code.
        code: u64,
    },
}

/// Which vendor's codes a raw exit code is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Vendor {
    /// Intel VT-x.
    Vmx = 1,
    /// AMD-V.
    Svm = 2,
}

/// What the VMM PD's `fault` handler receives for a vCPU exit, in the first
/// [`EXIT_MESSAGE_WORDS`] message registers (the fault's kind is
/// [`crate::FaultKind`]-independent: the event's child id is the vCPU id
/// with bit 8 set, so it never collides with a child PD).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExitMessage {
    /// The vCPU.
    pub vcpu: u8,
    /// The normalised reason.
    pub reason: ExitReason,
    /// Guest RIP of the exiting instruction.
    pub rip: u64,
    /// Its length, when the hardware reports it (NRIP save, VMX exit
    /// instruction length), else 0; the VMM adds it to RIP to skip it.
    pub insn_len: u8,
}

/// The bit of the fault event's child id that marks a vCPU exit.
pub const VCPU_FAULT_BIT: u64 = 1 << 8;

mod tag {
    pub const IO: u64 = 1;
    pub const NPF: u64 = 2;
    pub const CPUID: u64 = 3;
    pub const MSR_READ: u64 = 4;
    pub const MSR_WRITE: u64 = 5;
    pub const HLT: u64 = 6;
    pub const CR: u64 = 7;
    pub const IRQ_WINDOW: u64 = 8;
    pub const EXCEPTION: u64 = 9;
    pub const HYPERCALL: u64 = 10;
    pub const TRIPLE: u64 = 11;
    pub const ENTRY: u64 = 12;
    pub const UNKNOWN: u64 = 13;
}

impl ExitMessage {
    /// Encodes into message registers: word 0 = tag | vcpu << 8 |
    /// insn_len << 16, word 1 = RIP, words 2..6 the reason's fields.
    pub fn to_words(&self) -> [u64; EXIT_MESSAGE_WORDS] {
        let (t, a, b, c) = match self.reason {
            ExitReason::Io {
                port,
                size,
                write,
                string,
                rep,
                data,
            } => (
                tag::IO,
                port as u64,
                size as u64 | (write as u64) << 8 | (string as u64) << 9 | (rep as u64) << 10,
                data as u64,
            ),
            ExitReason::NestedPageFault {
                gpa,
                access,
                present,
            } => (tag::NPF, gpa, access as u64, present as u64),
            ExitReason::Cpuid { leaf, subleaf } => (tag::CPUID, leaf as u64, subleaf as u64, 0),
            ExitReason::MsrRead { msr } => (tag::MSR_READ, msr as u64, 0, 0),
            ExitReason::MsrWrite { msr, value } => (tag::MSR_WRITE, msr as u64, value, 0),
            ExitReason::Hlt => (tag::HLT, 0, 0, 0),
            ExitReason::CrAccess { cr, write, gpr } => (
                tag::CR,
                cr as u64,
                write as u64,
                gpr.map_or(u64::MAX, |g| g as u64),
            ),
            ExitReason::InterruptWindow => (tag::IRQ_WINDOW, 0, 0, 0),
            ExitReason::Exception { vector, error_code } => (
                tag::EXCEPTION,
                vector as u64,
                error_code.is_some() as u64,
                error_code.unwrap_or(0) as u64,
            ),
            ExitReason::Hypercall { nr } => (tag::HYPERCALL, nr, 0, 0),
            ExitReason::TripleFault => (tag::TRIPLE, 0, 0, 0),
            ExitReason::EntryFailure { code } => (tag::ENTRY, code, 0, 0),
            ExitReason::Unknown { code } => (tag::UNKNOWN, code, 0, 0),
        };
        [
            t | (self.vcpu as u64) << 8 | (self.insn_len as u64) << 16,
            self.rip,
            a,
            b,
            c,
            0,
        ]
    }

    /// Decodes [`ExitMessage::to_words`]; `None` for anything it would not
    /// produce (the VMM must not act on a garbled exit).
    pub fn from_words(w: &[u64; EXIT_MESSAGE_WORDS]) -> Option<Self> {
        if w[0] >> 24 != 0 || w[5] != 0 {
            return None;
        }
        let (a, b, c) = (w[2], w[3], w[4]);
        let none_after = |n: usize| w[2 + n..5].iter().all(|&x| x == 0);
        let u32_of = |x: u64| u32::try_from(x).ok();
        let reason = match w[0] & 0xff {
            tag::IO => {
                let size = (b & 0xff) as u8;
                if b >> 11 != 0 || !matches!(size, 1 | 2 | 4) {
                    return None;
                }
                ExitReason::Io {
                    port: u16::try_from(a).ok()?,
                    size,
                    write: b & (1 << 8) != 0,
                    string: b & (1 << 9) != 0,
                    rep: b & (1 << 10) != 0,
                    data: u32_of(c)?,
                }
            }
            tag::NPF => ExitReason::NestedPageFault {
                gpa: a,
                access: match b {
                    0 => Access::Read,
                    1 => Access::Write,
                    2 => Access::Exec,
                    _ => return None,
                },
                present: match c {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
            },
            tag::CPUID if none_after(2) => ExitReason::Cpuid {
                leaf: u32_of(a)?,
                subleaf: u32_of(b)?,
            },
            tag::MSR_READ if none_after(1) => ExitReason::MsrRead { msr: u32_of(a)? },
            tag::MSR_WRITE if none_after(2) => ExitReason::MsrWrite {
                msr: u32_of(a)?,
                value: b,
            },
            tag::HLT if none_after(0) => ExitReason::Hlt,
            tag::CR if b <= 1 => ExitReason::CrAccess {
                cr: u8::try_from(a)
                    .ok()
                    .filter(|cr| matches!(cr, 0 | 3 | 4 | 8))?,
                write: b == 1,
                gpr: if c == u64::MAX {
                    None
                } else {
                    Some(Gpr::from_index(c)?)
                },
            },
            tag::IRQ_WINDOW if none_after(0) => ExitReason::InterruptWindow,
            tag::EXCEPTION if a < 32 && b <= 1 && (b == 1 || c == 0) => ExitReason::Exception {
                vector: a as u8,
                error_code: if b == 1 { Some(u32_of(c)?) } else { None },
            },
            tag::HYPERCALL if none_after(1) => ExitReason::Hypercall { nr: a },
            tag::TRIPLE if none_after(0) => ExitReason::TripleFault,
            tag::ENTRY if none_after(1) => ExitReason::EntryFailure { code: a },
            tag::UNKNOWN if none_after(1) => ExitReason::Unknown { code: a },
            _ => return None,
        };
        Some(Self {
            vcpu: (w[0] >> 8) as u8,
            reason,
            rip: w[1],
            insn_len: (w[0] >> 16) as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_reasons() -> [ExitReason; 14] {
        [
            ExitReason::Io {
                port: 0x3f8,
                size: 1,
                write: true,
                string: false,
                rep: false,
                data: 0x41,
            },
            ExitReason::Io {
                port: 0xcfc,
                size: 4,
                write: false,
                string: true,
                rep: true,
                data: 0,
            },
            ExitReason::NestedPageFault {
                gpa: 0xfee0_0000,
                access: Access::Write,
                present: false,
            },
            ExitReason::Cpuid {
                leaf: 0x4000_0000,
                subleaf: 3,
            },
            ExitReason::MsrRead { msr: 0x1b },
            ExitReason::MsrWrite {
                msr: 0xc000_0080,
                value: u64::MAX,
            },
            ExitReason::Hlt,
            ExitReason::CrAccess {
                cr: 3,
                write: true,
                gpr: Some(Gpr::R15),
            },
            ExitReason::InterruptWindow,
            ExitReason::Exception {
                vector: 14,
                error_code: Some(6),
            },
            ExitReason::Hypercall { nr: 7 },
            ExitReason::TripleFault,
            ExitReason::EntryFailure { code: u64::MAX },
            ExitReason::Unknown { code: 0x7b },
        ]
    }

    #[test]
    fn exit_messages_round_trip() {
        for (i, reason) in all_reasons().into_iter().enumerate() {
            let m = ExitMessage {
                vcpu: i as u8,
                reason,
                rip: 0x1000 + i as u64,
                insn_len: 3,
            };
            assert_eq!(
                ExitMessage::from_words(&m.to_words()),
                Some(m),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn garbled_exit_messages_are_refused() {
        let io = ExitMessage {
            vcpu: 0,
            reason: all_reasons()[0],
            rip: 0,
            insn_len: 1,
        }
        .to_words();
        let mut bad = io;
        bad[3] = 3; // size 3
        assert_eq!(ExitMessage::from_words(&bad), None);
        let mut bad = io;
        bad[2] = 0x1_0000; // port beyond 16 bits
        assert_eq!(ExitMessage::from_words(&bad), None);
        let mut bad = io;
        bad[0] = 0xee; // unknown tag
        assert_eq!(ExitMessage::from_words(&bad), None);
        let mut bad = io;
        bad[5] = 1;
        assert_eq!(ExitMessage::from_words(&bad), None);
        let hlt = [tag::HLT, 0, 1, 0, 0, 0];
        assert_eq!(ExitMessage::from_words(&hlt), None);
        // Every single-bit flip of every word of every message either
        // decodes to something that re-encodes identically or is refused.
        for reason in all_reasons() {
            let w = ExitMessage {
                vcpu: 1,
                reason,
                rip: 2,
                insn_len: 2,
            }
            .to_words();
            for i in 0..EXIT_MESSAGE_WORDS {
                for bit in 0..64 {
                    let mut f = w;
                    f[i] ^= 1 << bit;
                    if let Some(m) = ExitMessage::from_words(&f) {
                        assert_eq!(m.to_words(), f);
                    }
                }
            }
        }
    }

    #[test]
    fn registers_round_trip_and_decoding_is_total() {
        let mut seen = 0;
        for raw in 0..0x1000u64 {
            if let Some(r) = Register::from_raw(raw) {
                assert_eq!(r.to_raw(), raw);
                seen += 1;
            }
        }
        // 16 GPRs, RIP, RFLAGS, 4 CRs, EFER, DR7, 32 segment fields,
        // 4 descriptor-table fields, 9 MSRs.
        assert_eq!(seen, 16 + 2 + 4 + 2 + 32 + 4 + 9);
        assert_eq!(
            Register::from_raw(0x105),
            Some(Register::Segment(Segment::Cs, SegmentField::Base))
        );
        assert_eq!(Register::from_raw(0x21), None); // CR1 does not exist
        assert_eq!(Register::from_raw(u64::MAX), None);
        assert_eq!(Msr::Lstar.number(), 0xc000_0082);
    }

    #[test]
    fn injections_are_checked() {
        let pf = Injection {
            vector: 14,
            kind: EventType::Exception,
            error_code: Some(2),
        };
        assert_eq!(pf.to_raw(), 14 | 3 << 8 | 1 << 11 | 1 << 31 | 2 << 32);
        assert_eq!(Injection::from_raw(pf.to_raw()), Some(pf));
        let timer = Injection {
            vector: 0x20,
            kind: EventType::External,
            error_code: None,
        };
        assert_eq!(Injection::from_raw(timer.to_raw()), Some(timer));
        // Not valid, an external interrupt on an exception vector, an NMI on
        // the wrong vector, an error code on an interrupt, reserved bits.
        assert_eq!(Injection::from_raw(timer.to_raw() & !(1 << 31)), None);
        assert_eq!(Injection::from_raw(0x8000_000e), None);
        assert_eq!(Injection::from_raw(0x8000_0203), None);
        assert_eq!(Injection::from_raw(timer.to_raw() | 1 << 11), None);
        assert_eq!(Injection::from_raw(timer.to_raw() | 1 << 20), None);
        assert_eq!(Injection::from_raw(timer.to_raw() | 1 << 40), None);
        assert_eq!(Injection::from_raw(0x8000_0120), None); // type 1 is reserved
    }

    #[test]
    fn small_decoders_are_total() {
        for raw in 0..0x200u64 {
            if let Some(c) = VmCall::from_raw(raw) {
                assert_eq!(c as u64, raw);
                assert!(crate::Syscall::from_raw(raw).is_none());
            }
            if let Some(e) = VmError::from_raw(raw) {
                assert_eq!(e as u64, raw);
                if raw != 0 {
                    assert!(crate::Error::from_raw(raw).is_none());
                }
            }
            if let Some(p) = Perms::from_raw(raw) {
                assert_eq!(p.raw() as u64, raw);
            }
            if let Some(i) = Intercepts::from_raw(raw) {
                assert_eq!(i.raw(), raw);
            }
        }
        assert!(Perms::R.within(Perms::RX));
        assert!(!Perms::RW.within(Perms::RX));
        assert_eq!(Intercepts::from_raw(0x100), None);
    }
}
