//! The VT-x backend: VMCS per vCPU, EPT views, VPID, unrestricted guest,
//! the preemption timer, exits normalised with `normalize_vmx`.
//!
//! Design rules: no `unsafe` (the arch layer's `vmx` does the hardware);
//! nothing is allocated after boot (EPT tables for every granted page of
//! every view, bitmaps and VMCS regions are built at boot); the VMM can
//! change only guest state — controls, EPTP, VPID, host state and bitmaps
//! are the kernel's. A bad guest state is an entry failure returned to the
//! VMM; a VMLAUNCH/VMRESUME that fails outright (bad control the VMM's
//! request produced, e.g. a malformed injection) is reported the same way
//! with the VM-instruction error, and the kernel carries on.

use bulkhead_abi::vcpu::{Injection, Intercepts, Perms, Register, VmError};
use kernel_core::boot_info::FrameAllocator;
use kernel_core::nested::{self, ept};
use kernel_core::plan::PAGE;
use kernel_core::vmcs::{self, entry, exit, field, msr, pin, proc, proc2, Fixed, Slot};
use kernel_core::vmexit::{self, Action, VmxExit};

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::arch::vmx::{self as hw, Features, RunState};
use crate::arch::{paging, read_phys};
use crate::kprintln;

/// `EntryFailure` codes: VMLAUNCH/VMRESUME failed outright with this
/// VM-instruction error in the low bits (the guest never ran); otherwise
/// the code is the exit reason (bit 31 set) with the exit qualification in
/// bits 32..64.
pub const VMFAIL: u64 = 1 << 63;

/// What this CPU's VT-x gives the kernel, computed once at boot.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// The features `detect` found.
    pub feat: Features,
    pin: u32,
    proc_cap: u64,
    proc: u32,
    proc2: u32,
    proc2_cap: u64,
    invept_all: bool,
    exit: u32,
    entry: u32,
    cr0: Fixed,
    cr4: Fixed,
    misc: u64,
}

/// Detects VT-x, enters VMX root operation and computes the controls every
/// vCPU gets; prints what it found, or why VMs cannot start.
pub fn enable(frames: &mut FrameAllocator) -> Option<Cpu> {
    let Some(f) = hw::detect() else {
        kprintln!("bulkhead: VMs not started: neither AMD-V nor VT-x usable");
        return None;
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    kprintln!(
        "bulkhead: VT-x: EPT {} (2 MiB {}), VPID {}, unrestricted guest {}, VMFUNC EPTP switching {}, #VE {}, preemption timer {}",
        yes(f.ept),
        yes(f.ept_2m),
        yes(f.vpid),
        yes(f.unrestricted),
        yes(f.eptp_switching),
        yes(f.ve),
        yes(f.preemption_timer)
    );
    if !f.ept || !f.unrestricted {
        kprintln!("bulkhead: VMs not started: VT-x without EPT or unrestricted guest");
        return None;
    }
    let on = frames.alloc().is_some_and(|region| {
        paging::zero_frame(region);
        hw::enable(&f, region)
    });
    if !on {
        kprintln!("bulkhead: VMs not started: VMXON refused");
        return None;
    }
    let basic = hw::cap(msr::BASIC);
    let capm = |m| hw::cap(vmcs::cap_msr(basic, m));
    let proc_cap = capm(msr::PROCBASED);
    let mut p2 = proc2::EPT | proc2::UNRESTRICTED;
    if f.vpid {
        p2 |= proc2::VPID;
    }
    let mut pins = pin::EXTERNAL_INTERRUPT | pin::NMI;
    if f.preemption_timer {
        pins |= pin::PREEMPTION_TIMER;
    }
    let controls = (|| {
        Some(Cpu {
            feat: f,
            pin: vmcs::control(capm(msr::PINBASED), pins).ok()?,
            proc_cap,
            proc: vmcs::control(
                proc_cap,
                proc::HLT | proc::IO_BITMAPS | proc::MSR_BITMAPS | proc::SECONDARY,
            )
            .ok()?,
            proc2: vmcs::control(hw::cap(msr::PROCBASED2), p2).ok()?,
            proc2_cap: hw::cap(msr::PROCBASED2),
            invept_all: hw::cap(msr::EPT_VPID_CAP) & (1 << 26) != 0,
            exit: vmcs::control(
                capm(msr::EXIT),
                exit::HOST_64
                    | exit::SAVE_DEBUG
                    | exit::SAVE_PAT
                    | exit::LOAD_PAT
                    | exit::SAVE_EFER
                    | exit::LOAD_EFER,
            )
            .ok()?,
            entry: vmcs::control(
                capm(msr::ENTRY),
                entry::LOAD_DEBUG | entry::LOAD_PAT | entry::LOAD_EFER,
            )
            .ok()?,
            cr0: Fixed::new(hw::cap(msr::CR0_FIXED0), hw::cap(msr::CR0_FIXED1), true),
            cr4: Fixed::new(hw::cap(msr::CR4_FIXED0), hw::cap(msr::CR4_FIXED1), false),
            misc: hw::cap(msr::MISC),
        })
    })();
    if controls.is_none() {
        kprintln!("bulkhead: VMs not started: VT-x lacks a control the kernel needs");
    }
    controls
}

fn read64(phys: u64) -> u64 {
    let mut b = [0u8; 8];
    read_phys(phys, &mut b);
    u64::from_le_bytes(b)
}

fn write64(phys: u64, v: u64) {
    paging::copy_to_phys(phys, &v.to_le_bytes());
}

/// Walks an EPT hierarchy to the 4 KiB leaf slot of `gpa`, creating tables
/// from `frames` if given.
pub fn leaf_slot(root: u64, gpa: u64, mut frames: Option<&mut FrameAllocator>) -> Option<u64> {
    let idx = nested::indices(gpa);
    let mut table = root;
    for &i in &idx[..3] {
        let slot = table + i as u64 * 8;
        let e = read64(slot);
        if e & (ept::R | ept::W | ept::X) == 0 {
            let f = frames.as_mut()?.alloc()?;
            paging::zero_frame(f);
            write64(slot, ept::table(f).ok()?);
            table = f;
        } else if e & ept::PS != 0 {
            return None; // a 2 MiB leaf: no 4 KiB slot to rewrite
        } else {
            table = e & 0x000f_ffff_ffff_f000;
        }
    }
    Some(table + idx[3] as u64 * 8)
}

/// A 4 KiB EPT leaf; `ve` leaves suppress-#VE clear.
pub fn leaf(phys: u64, perms: Perms, uncached: bool, ve: bool) -> Option<u64> {
    ept::leaf(phys, PAGE, perms, uncached, ve, false).ok()
}

/// The EPT pointer of a view root.
pub fn eptp(root: u64) -> u64 {
    ept::eptp(root).unwrap_or(0)
}

/// One vCPU: its VMCS, the state VMX does not switch, and what the kernel
/// tracks to rebuild controls.
#[derive(Clone, Copy, Debug)]
pub struct Vcpu {
    vmcs: u64,
    run: RunState,
    /// STAR, LSTAR, CSTAR, SFMASK, KernelGSBase (`vmcs::SOFT_MSRS`).
    msrs: [u64; 5],
    proc: u32,
    proc2: u32,
    eptp: u64,
    vpid: u16,
    /// Flush the VPID's and EPTP's cached translations before the next entry.
    flush: bool,
}

/// The VMCS that is current on this CPU (VMPTRLD is skipped when it is).
static CURRENT: AtomicU64 = AtomicU64::new(0);
/// The vCPU (by VMCS) whose syscall MSRs are in the CPU.
static MSRS_OF: AtomicU64 = AtomicU64::new(0);

fn make_current(vmcs: u64) {
    if CURRENT.load(Relaxed) != vmcs {
        hw::load(vmcs);
        CURRENT.store(vmcs, Relaxed);
    }
}

impl Vcpu {
    /// A vCPU with a fresh VMCS: `vpid`, view root `eptp`, the I/O bitmaps
    /// (two pages at `io`), the MSR bitmap page `msrs` and the reset-like
    /// 64-bit state the AMD-V path gives.
    pub fn new(
        cpu: &Cpu,
        frames: &mut FrameAllocator,
        vpid: u16,
        eptp: u64,
        io: u64,
        msr_bitmap: u64,
    ) -> Option<Self> {
        let vmcs = frames.alloc()?;
        paging::zero_frame(vmcs);
        if !hw::init_vmcs(&cpu.feat, vmcs) {
            return None;
        }
        CURRENT.store(vmcs, Relaxed);
        let w = |f, v| {
            hw::write(f, v);
        };
        w(field::PIN_CONTROLS, cpu.pin as u64);
        w(field::PROC_CONTROLS, cpu.proc as u64);
        w(field::PROC2_CONTROLS, cpu.proc2 as u64);
        w(field::EXIT_CONTROLS, cpu.exit as u64);
        w(field::ENTRY_CONTROLS, cpu.entry as u64);
        w(field::EXCEPTION_BITMAP, 0);
        w(field::CR3_TARGET_COUNT, 0);
        w(field::EXIT_MSR_STORE_COUNT, 0);
        w(field::EXIT_MSR_LOAD_COUNT, 0);
        w(field::ENTRY_MSR_LOAD_COUNT, 0);
        w(field::ENTRY_INTR_INFO, 0);
        w(field::CR0_MASK, cpu.cr0.mask());
        w(field::CR4_MASK, cpu.cr4.mask());
        w(field::VMCS_LINK_POINTER, u64::MAX);
        w(field::EPTP, eptp);
        if cpu.proc2 & proc2::VPID != 0 {
            w(field::VPID, vpid as u64);
        }
        w(field::IO_BITMAP_A, io);
        w(field::IO_BITMAP_B, io + PAGE);
        w(field::MSR_BITMAP, msr_bitmap);
        hw::write_host_state();
        let mut v = Self {
            vmcs,
            run: RunState::default(),
            msrs: [0; 5],
            proc: cpu.proc,
            proc2: cpu.proc2,
            eptp,
            vpid,
            flush: true,
        };
        v.reset_state(cpu);
        Some(v)
    }

    fn reset_state(&mut self, cpu: &Cpu) {
        use bulkhead_abi::vcpu::{Msr, Segment as S, SegmentField as F};
        self.write(cpu, Register::Cr0, 0x8000_0031); // PG, NE, ET, PE
        self.write(cpu, Register::Cr4, 0x20); // PAE
        self.write(cpu, Register::Efer, 0xd00); // LMA, LME, NXE
        self.write(cpu, Register::Rflags, 2);
        self.write(cpu, Register::Dr7, 0x400);
        self.write(cpu, Register::Msr(Msr::Pat), 0x0007_0406_0007_0406);
        for (s, sel, attrs, limit) in [
            (S::Cs, 0x08, 0xa09b, 0xffff_ffff),
            (S::Ds, 0x10, 0xc093, 0xffff_ffff),
            (S::Es, 0x10, 0xc093, 0xffff_ffff),
            (S::Ss, 0x10, 0xc093, 0xffff_ffff),
            (S::Fs, 0x10, 0xc093, 0xffff_ffff),
            (S::Gs, 0x10, 0xc093, 0xffff_ffff),
            // TR: a busy 64-bit TSS; byte-granular, so the limit stays
            // below 1 MiB (VMX checks G against the limit).
            (S::Tr, 0x18, 0x008b, 0xffff),
            (S::Ldtr, 0, 0, 0xffff), // unusable
        ] {
            self.write(cpu, Register::Segment(s, F::Selector), sel);
            self.write(cpu, Register::Segment(s, F::Limit), limit);
            self.write(cpu, Register::Segment(s, F::Base), 0);
            self.write(cpu, Register::Segment(s, F::Attributes), attrs);
        }
        self.write(cpu, Register::Gdtr(true), 0xffff);
        self.write(cpu, Register::Idtr(true), 0xffff);
        hw::write(field::GUEST_ACTIVITY, 0);
        hw::write(field::GUEST_INTERRUPTIBILITY, 0);
        hw::write(field::GUEST_PENDING_DEBUG, 0);
        hw::write(field::GUEST_DEBUGCTL, 0);
    }

    /// Reads a register as the guest sees it.
    pub fn read(&mut self, cpu: &Cpu, r: Register) -> u64 {
        make_current(self.vmcs);
        match vmcs::slot(r) {
            Slot::Field(f) => hw::read(f).unwrap_or(0),
            Slot::AccessRights(f) => vmcs::ar_from_vmcs(hw::read(f).unwrap_or(0)),
            Slot::Cr(f, shadow, is_cr4) => {
                let fixed = if is_cr4 { cpu.cr4 } else { cpu.cr0 };
                fixed.visible(hw::read(f).unwrap_or(0), hw::read(shadow).unwrap_or(0))
            }
            Slot::Saved(i) => self.run.gprs[i],
            Slot::Cr2 => self.run.cr2,
            Slot::SoftMsr(i) => self.msrs[i],
        }
    }

    /// Writes a register. Writing RIP ends an STI/MOV-SS interrupt shadow
    /// (the VMM skipped the instruction that had it), as hardware would.
    pub fn write(&mut self, cpu: &Cpu, r: Register, v: u64) {
        make_current(self.vmcs);
        match vmcs::slot(r) {
            Slot::Field(f) => {
                hw::write(f, v);
                if r == Register::Rip {
                    let s = hw::read(field::GUEST_INTERRUPTIBILITY).unwrap_or(0);
                    hw::write(field::GUEST_INTERRUPTIBILITY, s & !3);
                }
            }
            Slot::AccessRights(f) => {
                hw::write(f, vmcs::ar_to_vmcs(v));
            }
            Slot::Cr(f, shadow, is_cr4) => {
                let fixed = if is_cr4 { cpu.cr4 } else { cpu.cr0 };
                hw::write(shadow, v);
                hw::write(f, fixed.real(v));
            }
            Slot::Saved(i) => self.run.gprs[i] = v,
            Slot::Cr2 => self.run.cr2 = v,
            Slot::SoftMsr(i) => {
                self.msrs[i] = v;
                // Reloaded into the CPU before the next entry.
                MSRS_OF.store(0, Relaxed);
            }
        }
    }

    /// Queues an event for the next entry (the entry interruption field).
    pub fn inject(&mut self, inj: Injection) {
        make_current(self.vmcs);
        let raw = inj.to_raw();
        hw::write(field::ENTRY_INTR_INFO, raw & 0xffff_ffff);
        hw::write(field::ENTRY_EXCEPTION_ERROR, raw >> 32);
        // A software interrupt re-executes as `int n` (2 bytes).
        hw::write(field::ENTRY_INSN_LEN, 2);
    }

    /// Applies the VMM's intercept choice (HLT, INT3, #DB, CR3 load/store,
    /// the one-shot interrupt window); `NotSupported` if the CPU cannot.
    pub fn set_intercepts(&mut self, cpu: &Cpu, i: Intercepts) -> Result<(), VmError> {
        make_current(self.vmcs);
        let mut want =
            cpu.proc & !(proc::HLT | proc::INTERRUPT_WINDOW | proc::CR3_LOAD | proc::CR3_STORE);
        for (flag, bit) in [
            (Intercepts::HLT, proc::HLT),
            (Intercepts::INTERRUPT_WINDOW, proc::INTERRUPT_WINDOW),
            (Intercepts::CR3_LOAD, proc::CR3_LOAD),
            (Intercepts::CR3_STORE, proc::CR3_STORE),
        ] {
            if i.contains(flag) {
                want |= bit;
            }
        }
        let p = vmcs::control(cpu.proc_cap, want).map_err(|_| VmError::NotSupported)?;
        let mut ex = 0u64;
        if i.contains(Intercepts::INT3) {
            ex |= 1 << 3;
        }
        if i.contains(Intercepts::DEBUG) {
            ex |= 1 << 1;
        }
        self.proc = p;
        hw::write(field::PROC_CONTROLS, p as u64);
        hw::write(field::EXCEPTION_BITMAP, ex);
        Ok(())
    }

    /// Points the vCPU at view `view`'s EPT root.
    pub fn set_root(&mut self, eptp: u64, view: u8) {
        make_current(self.vmcs);
        hw::write(field::EPTP, eptp);
        if self.proc2 & (proc2::VMFUNC | proc2::EPT_VE) != 0 {
            hw::write(field::EPTP_INDEX, view as u64);
        }
        self.eptp = eptp;
        self.flush = true;
    }

    fn set_proc2(&mut self, cpu: &Cpu, bit: u32, on: bool) -> Result<(), VmError> {
        let want = if on { self.proc2 | bit } else { self.proc2 & !bit };
        let p = vmcs::control(cpu.proc2_cap, want).map_err(|_| VmError::NotSupported)?;
        self.proc2 = p;
        hw::write(field::PROC2_CONTROLS, p as u64);
        Ok(())
    }

    /// Lets the guest switch among the views of the EPTP list at `list`
    /// (host-physical) with VMFUNC leaf 0; `active` is its current view.
    pub fn allow_vmfunc(&mut self, cpu: &Cpu, list: u64, active: u8, on: bool) -> Result<(), VmError> {
        if !cpu.feat.eptp_switching {
            return Err(VmError::NotSupported);
        }
        make_current(self.vmcs);
        if on {
            hw::write(field::EPTP_LIST, list);
            hw::write(field::VMFUNC_CONTROLS, 1);
        }
        self.set_proc2(cpu, proc2::VMFUNC, on)?;
        hw::write(field::EPTP_INDEX, active as u64);
        Ok(())
    }

    /// #VE with the VE information area at host-physical `info` (`None`:
    /// off); `active` is the current view (the EPTP index #VE reports).
    pub fn set_ve_info(&mut self, cpu: &Cpu, info: Option<u64>, active: u8) -> Result<(), VmError> {
        if !cpu.feat.ve {
            return Err(VmError::NotSupported);
        }
        make_current(self.vmcs);
        if let Some(p) = info {
            hw::write(field::VE_INFO, p);
        }
        self.set_proc2(cpu, proc2::EPT_VE, info.is_some())?;
        hw::write(field::EPTP_INDEX, active as u64);
        Ok(())
    }

    /// The view's leaves changed: flush cached translations before entry.
    pub fn flush(&mut self) {
        self.flush = true;
    }

    /// Raw VMCS read (Microkit's `vcpu_read_vmcs`): guest state, controls
    /// and exit information; never host state.
    pub fn read_field(&mut self, encoding: u32) -> Result<u64, VmError> {
        if !vmcs::vmm_may_read(encoding) {
            return Err(VmError::BadRegister);
        }
        make_current(self.vmcs);
        hw::read(encoding).ok_or(VmError::BadRegister)
    }

    /// Raw VMCS write: guest-state fields only.
    pub fn write_field(&mut self, encoding: u32, value: u64) -> Result<(), VmError> {
        if !vmcs::vmm_may_write(encoding) {
            return Err(VmError::BadRegister);
        }
        make_current(self.vmcs);
        if hw::write(encoding, value) {
            Ok(())
        } else {
            Err(VmError::BadRegister)
        }
    }

    /// Enters the guest until its next exit, for at most `budget_tsc` TSC
    /// cycles (the VMX preemption timer). Returns what the exit means, the
    /// guest RIP and the exiting instruction's length (0 when undefined).
    pub fn run(&mut self, cpu: &Cpu, budget_tsc: u64) -> (Action, u64, u8) {
        make_current(self.vmcs);
        if MSRS_OF.load(Relaxed) != self.vmcs {
            hw::load_soft_msrs(&self.msrs);
            MSRS_OF.store(self.vmcs, Relaxed);
        }
        // The IA-32e-mode-guest entry control follows the guest's EFER.LMA,
        // so a VMM changes modes by writing registers only.
        let lma = hw::read(field::GUEST_EFER).unwrap_or(0) & (1 << 10) != 0;
        let e = if lma {
            cpu.entry | entry::IA32E_GUEST
        } else {
            cpu.entry & !entry::IA32E_GUEST
        };
        hw::write(field::ENTRY_CONTROLS, e as u64);
        if cpu.pin & pin::PREEMPTION_TIMER != 0 {
            hw::write(
                field::PREEMPTION_TIMER,
                vmcs::preemption_ticks(budget_tsc, cpu.misc) as u64,
            );
        }
        if self.flush {
            if cpu.invept_all {
                hw::invept_all();
            } else {
                // The guest may have switched views with VMFUNC.
                hw::invept(hw::read(field::EPTP).unwrap_or(self.eptp));
            }
            if cpu.proc2 & proc2::VPID != 0 {
                hw::invvpid(self.vpid);
            }
            self.flush = false;
        }
        if let Err(err) = hw::run(&mut self.run) {
            // The guest never ran: drop the injection that may have caused
            // it, so the VMM can correct the state and run again.
            hw::write(field::ENTRY_INTR_INFO, 0);
            let rip = hw::read(field::GUEST_RIP).unwrap_or(0);
            return (
                Action::Stop(bulkhead_abi::vcpu::ExitReason::EntryFailure {
                    code: VMFAIL | err as u64,
                }),
                rip,
                0,
            );
        }
        let r = |f| hw::read(f).unwrap_or(0);
        let exit = VmxExit {
            reason: r(field::EXIT_REASON) as u32,
            qualification: r(field::EXIT_QUALIFICATION),
            gpa: r(field::GUEST_PHYSICAL_ADDRESS),
            intr_info: r(field::EXIT_INTR_INFO) as u32,
            intr_error: r(field::EXIT_INTR_ERROR) as u32,
            rax: self.run.gprs[0],
            rcx: self.run.gprs[1],
            rdx: self.run.gprs[2],
        };
        let rip = r(field::GUEST_RIP);
        let basic = exit.reason & 0xffff;
        // An event whose delivery this exit interrupted is delivered again
        // on the next entry, so it is not lost.
        let vectoring = r(field::IDT_VECTORING_INFO);
        if exit.reason & (1 << 31) == 0 && vectoring & (1 << 31) != 0 {
            hw::write(field::ENTRY_INTR_INFO, vectoring & !(1 << 12));
            hw::write(field::ENTRY_EXCEPTION_ERROR, r(field::IDT_VECTORING_ERROR));
            hw::write(field::ENTRY_INSN_LEN, r(field::EXIT_INSN_LEN));
        }
        if basic == vmexit::vmx::INTERRUPT_WINDOW {
            // One-shot: the VMM asks again for the next one.
            self.proc &= !proc::INTERRUPT_WINDOW;
            hw::write(field::PROC_CONTROLS, self.proc as u64);
        }
        let insn_len = if exit.reason & (1 << 31) == 0 && vmcs::has_insn_len(basic) {
            r(field::EXIT_INSN_LEN).min(15) as u8
        } else {
            0
        };
        let mut action = vmexit::normalize_vmx(&exit);
        if let Action::Stop(bulkhead_abi::vcpu::ExitReason::EntryFailure { code }) = &mut action {
            if exit.reason & (1 << 31) != 0 {
                *code |= exit.qualification << 32;
            }
        }
        (action, rip, insn_len)
    }
}

// ---- VM objects and VM calls for VT-x VMs -------------------------------

use bulkhead_abi::vcpu::{ExitMessage, ExitReason, VmCall, GUEST_PAGE_SIZE, MAX_VIEWS};
use kernel_core::plan::BootPlan;
use kernel_core::plan_vm::MAX_VMS;
use kernel_core::vm::{GrantSet, Views, MAX_VCPUS};

use super::Outcome;

struct VcpuSlot {
    id: u8,
    hw: Vcpu,
    stopped: bool,
}

struct Vm {
    name: heapless::String<{ kernel_core::plan::MAX_NAME }>,
    owner: usize,
    grants: GrantSet,
    views: Views,
    roots: [u64; MAX_VIEWS],
    /// The two I/O bitmap pages (a set bit intercepts the port).
    io: u64,
    /// The EPTP list (VMFUNC leaf 0): the EPTPs of the views that exist.
    eptp_list: u64,
    ports: heapless::Vec<(u16, u32), { kernel_core::plan::MAX_IOPORTS }>,
    vcpus: heapless::Vec<VcpuSlot, MAX_VCPUS>,
}

struct Vms {
    cpu: Cpu,
    vms: heapless::Vec<Vm, MAX_VMS>,
}

static VMS: crate::arch::Global<Vms> = crate::arch::Global::new();
static ACTIVE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether the VMs of this boot are VT-x VMs (then [`call`] serves them).
pub fn active() -> bool {
    ACTIVE.load(Relaxed)
}

fn contiguous(frames: &mut FrameAllocator, n: u64, fill: u8) -> Option<u64> {
    let base = frames.alloc_contiguous(n)?;
    for p in 0..n {
        paging::copy_to_phys(base + p * PAGE, &[fill; PAGE as usize]);
    }
    Some(base)
}

/// Creates every VM of the plan on VT-x (called when the CPU has no AMD-V).
pub fn create(plan: &BootPlan, region_base: &[u64], frames: &mut FrameAllocator) {
    let Some(cpu) = enable(frames) else {
        return;
    };
    let vms = VMS.init(Vms {
        cpu,
        vms: heapless::Vec::new(),
    });
    ACTIVE.store(true, Relaxed);
    for (vi, pvm) in plan.vms.iter().enumerate() {
        match build(plan, vi, region_base, frames, &cpu) {
            Some(vm) => {
                kprintln!(
                    "bulkhead: VM '{}': VT-x, EPT, VPID {}, {} vCPU(s), unrestricted guest, preemption timer {}",
                    pvm.name.as_str(),
                    vi + 1,
                    vm.vcpus.len(),
                    if cpu.pin & pin::PREEMPTION_TIMER != 0 { "on" } else { "absent" }
                );
                let _ = vms.vms.push(vm);
            }
            None => kprintln!(
                "bulkhead: VM '{}' not started: out of memory, bad grants or VMCS refused",
                pvm.name.as_str()
            ),
        }
    }
}

fn build(
    plan: &BootPlan,
    vi: usize,
    region_base: &[u64],
    frames: &mut FrameAllocator,
    cpu: &Cpu,
) -> Option<Vm> {
    let pvm = &plan.vms[vi];
    let grants = plan.vm_grants(pvm, region_base).ok()?;
    let mut roots = [0u64; MAX_VIEWS];
    for (view, root) in roots.iter_mut().enumerate() {
        let r = frames.alloc()?;
        paging::zero_frame(r);
        *root = r;
        for g in grants.grants() {
            let mut off = 0;
            while off < g.size {
                let slot = leaf_slot(r, g.gpa + off, Some(frames))?;
                let e = if view == 0 {
                    leaf(g.phys + off, g.perms, g.uncached, false)?
                } else {
                    leaf(0, Perms::NONE, false, false)?
                };
                write64(slot, e);
                off += PAGE;
            }
        }
    }
    let io = contiguous(frames, 2, 0xff)?;
    let eptp_list = contiguous(frames, 1, 0)?;
    write64(eptp_list, vmcs::eptp_list_entry(Some(roots[0])));
    let msr_bitmap = contiguous(frames, 1, 0xff)?;
    let mut vcpus = heapless::Vec::new();
    for &id in &pvm.vcpus {
        let hw = Vcpu::new(cpu, frames, vi as u16 + 1, eptp(roots[0]), io, msr_bitmap)?;
        let _ = vcpus.push(VcpuSlot {
            id,
            hw,
            stopped: false,
        });
    }
    Some(Vm {
        name: pvm.name.clone(),
        owner: pvm.owner as usize,
        grants,
        views: Views::new(pvm.vcpus.len()),
        roots,
        io,
        eptp_list,
        ports: plan.pds[pvm.owner as usize]
            .ioports
            .iter()
            .map(|io| (io.base, io.size))
            .collect(),
        vcpus,
    })
}

/// The TSC cycles a guest may run before the preemption timer ends it (the
/// host's 1 ms tick ends it earlier; this bounds a guest even if the tick
/// were masked).
const RUN_SLICE_TSC: u64 = 50_000_000;

/// A VM call by PD `pd` on a VT-x VM; `args` = (rdi, rsi, rdx, r8).
pub fn call(pd: usize, c: VmCall, args: [u64; 4], ipc_frame: u64) -> Outcome {
    let all = VMS.get();
    let cpu = all.cpu;
    let Some(vi) = all.vms.iter().position(|v| v.owner == pd) else {
        return Outcome::NotYours(args[0]);
    };
    let vm = &mut all.vms[vi];
    let [a, b, cc, d] = args;
    let done = |e: VmError| Outcome::Done(e, 0);
    match c {
        VmCall::ReadRegister
        | VmCall::WriteRegister
        | VmCall::Inject
        | VmCall::Run
        | VmCall::SwitchView
        | VmCall::SetIntercepts
        | VmCall::AllowVmfunc
        | VmCall::SetVeInfo
        | VmCall::ReadVmcs
        | VmCall::WriteVmcs => {
            let Some(n) = vm.vcpus.iter().position(|v| v.id as u64 == a) else {
                return Outcome::NotYours(a);
            };
            match c {
                VmCall::ReadRegister | VmCall::WriteRegister => {
                    let Some(r) = Register::from_raw(b) else {
                        return done(VmError::BadRegister);
                    };
                    let v = &mut vm.vcpus[n].hw;
                    if c == VmCall::WriteRegister {
                        v.write(&cpu, r, cc);
                    }
                    Outcome::Done(VmError::Ok, v.read(&cpu, r))
                }
                VmCall::Inject => match Injection::from_raw(b) {
                    Some(inj) => {
                        vm.vcpus[n].hw.inject(inj);
                        done(VmError::Ok)
                    }
                    None => done(VmError::BadInjection),
                },
                VmCall::SetIntercepts => match Intercepts::from_raw(b) {
                    Some(i) => match vm.vcpus[n].hw.set_intercepts(&cpu, i) {
                        Ok(()) => done(VmError::Ok),
                        Err(e) => done(e),
                    },
                    None => done(VmError::BadRegister),
                },
                VmCall::SwitchView => match vm.views.switch(n as u64, b) {
                    Ok(_) => {
                        vm.vcpus[n].hw.set_root(eptp(vm.roots[b as usize]), b as u8);
                        done(VmError::Ok)
                    }
                    Err(e) => done(e),
                },
                VmCall::AllowVmfunc => {
                    let active = vm.views.active(n);
                    match vm.vcpus[n].hw.allow_vmfunc(&cpu, vm.eptp_list, active, b == 1) {
                        Ok(()) => done(VmError::Ok),
                        Err(e) => done(e),
                    }
                }
                VmCall::SetVeInfo => {
                    // The CPU writes the VE information area by host-physical
                    // address: it must be a whole guest page the VMM may
                    // make writable.
                    let info = if b == 0 {
                        None
                    } else {
                        match vm.grants.resolve(b, GUEST_PAGE_SIZE, Perms::RW) {
                            Ok(r) if !r.uncached => Some(r.phys),
                            Ok(_) => return done(VmError::BadPermissions),
                            Err(e) => return done(e),
                        }
                    };
                    let active = vm.views.active(n);
                    match vm.vcpus[n].hw.set_ve_info(&cpu, info, active) {
                        Ok(()) => done(VmError::Ok),
                        Err(e) => done(e),
                    }
                }
                VmCall::ReadVmcs => match vm.vcpus[n].hw.read_field(b as u32) {
                    Ok(v) if b >> 32 == 0 => Outcome::Done(VmError::Ok, v),
                    Ok(_) => done(VmError::BadRegister),
                    Err(e) => done(e),
                },
                VmCall::WriteVmcs => {
                    if b >> 32 != 0 {
                        return done(VmError::BadRegister);
                    }
                    match vm.vcpus[n].hw.write_field(b as u32, cc) {
                        Ok(()) => done(VmError::Ok),
                        Err(e) => done(e),
                    }
                }
                _ => run(vm, &cpu, n, ipc_frame),
            }
        }
        VmCall::Map | VmCall::Unmap | VmCall::Protect => {
            let view = d >> 8;
            if !vm.views.exists(view) {
                return done(VmError::NoSuchView);
            }
            let perms = if c == VmCall::Unmap {
                Perms::NONE
            } else {
                match Perms::from_raw(d & 0xff) {
                    Some(p) => p,
                    None => return done(VmError::BadPermissions),
                }
            };
            let r = match vm.grants.resolve(b, cc, perms) {
                Ok(r) => r,
                Err(e) => return done(e),
            };
            let root = vm.roots[view as usize];
            let mut off = 0;
            while off < cc {
                let Some(slot) = leaf_slot(root, b + off, None) else {
                    return done(VmError::OutsideGrant);
                };
                // A page's #VE setting survives a permission change.
                let ve = read64(slot) & ept::SUPPRESS_VE == 0;
                let Some(e) = leaf(r.phys + off, perms, r.uncached, ve) else {
                    return done(VmError::BadPermissions);
                };
                write64(slot, e);
                off += GUEST_PAGE_SIZE;
            }
            for v in vm.vcpus.iter_mut() {
                v.hw.flush();
            }
            done(VmError::Ok)
        }
        VmCall::SetVe => {
            let view = d >> 8;
            if !vm.views.exists(view) {
                return done(VmError::NoSuchView);
            }
            if !cpu.feat.ve {
                return done(VmError::NotSupported);
            }
            if let Err(e) = vm.grants.resolve(b, cc, Perms::R) {
                return done(e);
            }
            let root = vm.roots[view as usize];
            let mut off = 0;
            while off < cc {
                let Some(slot) = leaf_slot(root, b + off, None) else {
                    return done(VmError::OutsideGrant);
                };
                let old = read64(slot);
                write64(
                    slot,
                    if d & 1 != 0 {
                        old & !ept::SUPPRESS_VE
                    } else {
                        old | ept::SUPPRESS_VE
                    },
                );
                off += GUEST_PAGE_SIZE;
            }
            for v in vm.vcpus.iter_mut() {
                v.hw.flush();
            }
            done(VmError::Ok)
        }
        VmCall::CreateView => match vm.views.create(a) {
            Ok(new) => {
                write64(
                    vm.eptp_list + new as u64 * 8,
                    vmcs::eptp_list_entry(Some(vm.roots[new as usize])),
                );
                let (from, to) = (vm.roots[a as usize], vm.roots[new as usize]);
                for g in vm.grants.grants() {
                    let mut off = 0;
                    while off < g.size {
                        if let (Some(s), Some(t)) = (
                            leaf_slot(from, g.gpa + off, None),
                            leaf_slot(to, g.gpa + off, None),
                        ) {
                            write64(t, read64(s));
                        }
                        off += PAGE;
                    }
                }
                Outcome::Done(VmError::Ok, new as u64)
            }
            Err(e) => done(e),
        },
        VmCall::SetIoIntercept => {
            let (base, count) = (b & 0xffff, (b >> 16) & 0x1_ffff);
            if count == 0 || base + count > 0x1_0000 {
                return done(VmError::PortsNotHeld);
            }
            let held = vm
                .ports
                .iter()
                .any(|&(pb, ps)| pb as u64 <= base && base + count <= pb as u64 + ps as u64);
            if cc == 0 && !held {
                return done(VmError::PortsNotHeld);
            }
            for port in base..base + count {
                // Bitmap A covers 0..0x8000, B (the next page) the rest:
                // one bit per port across both pages.
                let at = vm.io + port / 8;
                let mut byte = [0u8];
                read_phys(at, &mut byte);
                let bit = 1u8 << (port % 8);
                byte[0] = if cc == 0 {
                    byte[0] & !bit
                } else {
                    byte[0] | bit
                };
                paging::copy_to_phys(at, &byte);
            }
            done(VmError::Ok)
        }
    }
}

fn run(vm: &mut Vm, cpu: &Cpu, n: usize, ipc_frame: u64) -> Outcome {
    let slot = &mut vm.vcpus[n];
    if slot.stopped {
        return Outcome::Done(VmError::VcpuStopped, 0);
    }
    let (action, rip, insn_len) = slot.hw.run(cpu, RUN_SLICE_TSC);
    let reason = match action {
        Action::HostInterrupt | Action::Preempted => return Outcome::Again,
        Action::Deliver(r) => r,
        Action::Stop(r) => {
            slot.stopped = r == ExitReason::TripleFault;
            kprintln!(
                "bulkhead: VM '{}' vCPU {} {} (RIP {:#x}), reported to the VMM",
                vm.name.as_str(),
                slot.id,
                match r {
                    ExitReason::TripleFault => "stopped: triple fault",
                    ExitReason::EntryFailure { code } if code & VMFAIL != 0 => {
                        "entry failure: VMLAUNCH/VMRESUME refused the controls"
                    }
                    _ => "entry failure: invalid guest state",
                },
                rip
            );
            r
        }
    };
    super::write_exit(
        ipc_frame,
        &ExitMessage {
            vcpu: slot.id,
            reason,
            rip,
            insn_len,
        },
    );
    Outcome::Done(VmError::Ok, 0)
}
