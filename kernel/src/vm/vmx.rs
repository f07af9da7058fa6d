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

use bulkhead_abi::vcpu::{ExitReason, Injection, Intercepts, Perms, Register, VmError, MAX_VIEWS};
use kernel_core::boot_info::FrameAllocator;
use kernel_core::nested::{self, ept};
use kernel_core::plan::PAGE;
use kernel_core::vmcs::{self, entry, exit, field, msr, pin, proc, proc2, Fixed, Slot};
use kernel_core::vmexit::{self, Action, VmxExit};

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::HwExit;
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
    /// XCR0 bits the CPU supports (0: no XSAVE, a guest XSETBV is #UD).
    xcr0_mask: u64,
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
    let xcr0_mask = hw::enable_xsave();
    let basic = hw::cap(msr::BASIC);
    let capm = |m| hw::cap(vmcs::cap_msr(basic, m));
    let proc_cap = capm(msr::PROCBASED);
    let p2_cap = hw::cap(msr::PROCBASED2);
    let mut p2 = proc2::EPT | proc2::UNRESTRICTED | (proc2::NATIVE & (p2_cap >> 32) as u32);
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
            cr0: Fixed::new(hw::cap(msr::CR0_FIXED0), hw::cap(msr::CR0_FIXED1), true)
                .with_owned(vmcs::CR0_CD_NW),
            cr4: Fixed::new(hw::cap(msr::CR4_FIXED0), hw::cap(msr::CR4_FIXED1), false),
            misc: hw::cap(msr::MISC),
            xcr0_mask,
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

/// The PD slot (2 MiB level) of `gpa` under `root`, if its tables exist.
fn pd_slot(root: u64, gpa: u64) -> Option<u64> {
    let idx = nested::indices(gpa);
    let mut table = root;
    for &i in &idx[..2] {
        let e = read64(table + i as u64 * 8);
        if e & (ept::R | ept::W | ept::X) == 0 || e & ept::PS != 0 {
            return None;
        }
        table = e & EPT_ADDR;
    }
    Some(table + idx[2] as u64 * 8)
}

/// A 4 KiB EPT leaf; `ve` leaves suppress-#VE clear.
pub fn leaf(phys: u64, perms: Perms, uncached: bool, ve: bool) -> Option<u64> {
    ept::leaf(phys, PAGE, perms, uncached, ve, false).ok()
}

/// The EPT pointer of a view root.
pub fn eptp(root: u64) -> u64 {
    ept::eptp(root).unwrap_or(0)
}

/// Per-VM pages: the I/O bitmaps (two pages), the MSR bitmap and the
/// EPTP list (VMFUNC leaf 0: the EPTPs of the views that exist).
pub struct Maps {
    io: u64,
    msr: u64,
    /// The EPTP list page.
    pub eptp_list: u64,
    /// Which VM: its view 0's 2 MiB leaves are `BIG[vm]`.
    vm: usize,
}

/// Per VM, view 0's 2 MiB leaves: (PD slot, the table entry of the 4 KiB
/// page table kept beside it). The page table always holds the same
/// mapping in 4 KiB leaves, so a change to one page puts the table back (a
/// split, for good) and rewrites one leaf — nothing is allocated after
/// boot. A static of its own, so the per-VM `Maps` stays small.
type BigLeaves = heapless::Vec<(u64, u64), MAX_BIG>;
static BIG: crate::arch::Global<[BigLeaves; kernel_core::plan_vm::MAX_VMS]> =
    crate::arch::Global::new();

fn big() -> &'static mut [BigLeaves; kernel_core::plan_vm::MAX_VMS] {
    BIG.get()
}

/// Most 2 MiB leaves one VM keeps (1 GiB of guest RAM); beyond, 4 KiB.
const MAX_BIG: usize = 512;

/// The address bits of an EPT paging-structure entry.
const EPT_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// MSRs a guest may access without an exit: those the VMCS switches
/// between host and guest on every entry and exit (guest-state fields),
/// and the syscall MSRs, which the kernel switches itself (it uses none
/// of them: a vCPU's values are loaded before its entry and, when passed
/// through, read back after its exit). A pass-through never leaks or
/// changes a host value.
const SWITCHED_MSRS: [u32; 10] = [
    0xc000_0100,
    0xc000_0101,
    0x174,
    0x175,
    0x176,
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0xc000_0102,
];

fn contiguous(frames: &mut FrameAllocator, n: u64, fill: u8) -> Option<u64> {
    let base = frames.alloc_contiguous(n)?;
    for p in 0..n {
        paging::copy_to_phys(base + p * PAGE, &[fill; PAGE as usize]);
    }
    Some(base)
}

impl Maps {
    /// Every port and MSR intercepted (the VMM decides); an EPTP list with
    /// view 0 only.
    pub fn new(frames: &mut FrameAllocator, view0: u64, vm: usize) -> Option<Self> {
        let m = Self {
            io: contiguous(frames, 2, 0xff)?,
            msr: contiguous(frames, 1, 0xff)?,
            eptp_list: contiguous(frames, 1, 0)?,
            vm,
        };
        m.set_view(0, view0);
        Some(m)
    }

    /// Intercepts or passes one port (bitmap A then B: one bit per port).
    pub fn set_port(&self, port: u16, intercept: bool) {
        super::set_phys_bit(self.io + port as u64 / 8, (port % 8) as u8, intercept);
    }

    /// Intercepts or passes reads and writes of one MSR; false if it may
    /// not be passed through (not switched by the VMCS).
    pub fn set_msr(&self, msr: u32, intercept: bool) -> bool {
        if !intercept && !SWITCHED_MSRS.contains(&msr) {
            return false;
        }
        // Read bitmaps for low / high MSRs at 0 / 0x400, writes at 0x800 / 0xc00.
        let (base, index) = match msr {
            0..=0x1fff => (0, msr),
            0xc000_0000..=0xc000_1fff => (0x400, msr & 0x1fff),
            _ => return intercept, // outside the bitmap: always exits
        };
        for rw in [0u64, 0x800] {
            let at = self.msr + base + rw + index as u64 / 8;
            super::set_phys_bit(at, (index % 8) as u8, intercept);
        }
        true
    }

    /// Puts view `view`'s root in the EPTP list (a view now exists).
    pub fn set_view(&self, view: u8, root: u64) {
        if (view as usize) < MAX_VIEWS {
            write64(
                self.eptp_list + view as u64 * 8,
                vmcs::eptp_list_entry(Some(root)),
            );
        }
    }

    /// Maps whole 2 MiB chunks of view 0 (root `root`) with 2 MiB leaves
    /// where a grant covers the chunk with 2 MiB-aligned backing, keeping
    /// each chunk's 4 KiB page table for a later split. Returns how many.
    fn use_big_pages(&self, root: u64, grants: &kernel_core::vm::GrantSet) -> usize {
        let Some(list) = big().get_mut(self.vm) else {
            return 0;
        };
        for g in grants.grants() {
            let mut off = 0;
            while off < g.size {
                let (gpa, phys) = (g.gpa + off, g.phys + off);
                if nested::page_size_for(gpa, phys, g.size - off) == nested::PAGE_2M {
                    let big = ept::leaf(phys, nested::PAGE_2M, g.perms, g.uncached, false, false);
                    if let (Some(pd), Ok(big)) = (pd_slot(root, gpa), big) {
                        if list.push((pd, read64(pd))).is_ok() {
                            write64(pd, big);
                        }
                    }
                    off += nested::PAGE_2M;
                } else {
                    off += PAGE;
                }
            }
        }
        list.len()
    }

    /// How many 2 MiB leaves view 0 has (until their first split).
    pub fn big_leaves(&self) -> usize {
        big().get(self.vm).map_or(0, |l| l.len())
    }

    /// The 4 KiB leaf slot of `gpa` in the view rooted at `root`. Under a
    /// 2 MiB leaf the kept page table answers; `split` first puts that
    /// table back, so the slot may be rewritten (reads need not split).
    pub fn slot(&self, root: u64, gpa: u64, split: bool) -> Option<u64> {
        let pd = pd_slot(root, gpa)?;
        let e = read64(pd);
        let table = if e & ept::PS != 0 {
            let &(_, kept) = big().get(self.vm)?.iter().find(|(s, _)| *s == pd)?;
            if split {
                write64(pd, kept);
            }
            kept & EPT_ADDR
        } else if e & (ept::R | ept::W | ept::X) == 0 {
            return None;
        } else {
            e & EPT_ADDR
        };
        Some(table + nested::indices(gpa)[3] as u64 * 8)
    }

    /// The 4 KiB EPT leaf for a map request, keeping the page's #VE setting.
    pub fn leaf(old: u64, phys: u64, perms: Perms, uncached: bool) -> Option<u64> {
        leaf(phys, perms, uncached, old & ept::SUPPRESS_VE == 0)
    }
}

/// One vCPU: its VMCS, the state VMX does not switch, and what the kernel
/// tracks to rebuild controls.
#[derive(Clone, Copy, Debug)]
pub struct Vcpu {
    eptp_list: u64,
    msr_bitmap: u64,
    vmcs: u64,
    run: RunState,
    /// STAR, LSTAR, CSTAR, SFMASK, KernelGSBase (`vmcs::SOFT_MSRS`).
    msrs: [u64; 5],
    proc: u32,
    proc2: u32,
    eptp: u64,
    vpid: u16,
    /// The guest's XCR0 (XSETBV is emulated by the kernel).
    xcr0: u64,
    /// The VMM asked for CR3 load / store exits (else the kernel does them).
    vmm_cr3: (bool, bool),
    /// Flush the VPID's and EPTP's cached translations before the next entry.
    flush: bool,
}

/// The most TSC cycles one guest run may last (the preemption timer), when
/// the VMM's remaining budget is larger; the host's 1 ms tick usually ends
/// the run sooner.
pub const RUN_SLICE_TSC: u64 = 50_000_000;

/// The running VMM PD's remaining budget in TSC cycles ([`set_budget`]).
static BUDGET: AtomicU64 = AtomicU64::new(RUN_SLICE_TSC);

/// Sets the budget the next guest run may use (the scheduler computes it
/// from the VMM PD's, or its donor's, remaining budget).
pub fn set_budget(tsc: u64) {
    BUDGET.store(tsc.min(RUN_SLICE_TSC), Relaxed);
}

/// This CPU's VT-x setup, set once at boot by [`create`].
static CPU: crate::arch::Global<Cpu> = crate::arch::Global::new();

fn cpu() -> &'static Cpu {
    CPU.get()
}

/// The XCR0 in the CPU (guests' values stay loaded: the host uses none).
static XCR0_NOW: AtomicU64 = AtomicU64::new(1);

/// XSETBV's exit reason (it always exits in VMX non-root operation).
const EXIT_XSETBV: u32 = 55;

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
        maps: &Maps,
        vpid: u16,
        root: u64,
    ) -> Option<Self> {
        let eptp = eptp(root);
        let (io, msr_bitmap) = (maps.io, maps.msr);
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
        w(field::XSS_EXITING_BITMAP, 0);
        hw::write_host_state();
        let mut v = Self {
            eptp_list: maps.eptp_list,
            msr_bitmap: maps.msr,
            vmcs,
            run: RunState::default(),
            msrs: [0; 5],
            proc: cpu.proc,
            proc2: cpu.proc2,
            eptp,
            vpid,
            xcr0: 1,
            vmm_cr3: (false, false),
            flush: true,
        };
        v.reset();
        Some(v)
    }

    /// Architectural reset-like state for a 64-bit guest whose VMM sets
    /// CR3, RIP and RSP (the one the AMD-V backend gives): long mode on,
    /// flat segments, GPRs zero, nothing pending, VMFUNC and #VE off.
    pub fn reset(&mut self) {
        use bulkhead_abi::vcpu::{Gpr, Msr, Segment as S, SegmentField as F};
        let cpu = *cpu();
        make_current(self.vmcs);
        self.run.gprs = [0; 16];
        self.run.cr2 = 0;
        self.msrs = [0; 5];
        self.xcr0 = 1;
        MSRS_OF.store(0, Relaxed);
        hw::write(field::ENTRY_INTR_INFO, 0);
        self.proc2 = cpu.proc2;
        hw::write(field::PROC2_CONTROLS, cpu.proc2 as u64);
        for r in [Register::Rip, Register::Gpr(Gpr::Rsp), Register::Cr3] {
            self.write(r, 0);
        }
        self.write(Register::Cr0, 0x8000_0031); // PG, NE, ET, PE
        self.write(Register::Cr4, 0x20); // PAE
        self.write(Register::Efer, 0xd00); // LMA, LME, NXE
        self.write(Register::Rflags, 2);
        self.write(Register::Dr7, 0x400);
        self.write(Register::Msr(Msr::Pat), 0x0007_0406_0007_0406);
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
            self.write(Register::Segment(s, F::Selector), sel);
            self.write(Register::Segment(s, F::Limit), limit);
            self.write(Register::Segment(s, F::Base), 0);
            self.write(Register::Segment(s, F::Attributes), attrs);
        }
        self.write(Register::Gdtr(true), 0xffff);
        self.write(Register::Idtr(true), 0xffff);
        hw::write(field::GUEST_ACTIVITY, 0);
        hw::write(field::GUEST_INTERRUPTIBILITY, 0);
        hw::write(field::GUEST_PENDING_DEBUG, 0);
        hw::write(field::GUEST_DEBUGCTL, 0);
        self.flush = true;
    }

    /// Reads a register as the guest sees it.
    pub fn read(&self, r: Register) -> u64 {
        let cpu = cpu();
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
    pub fn write(&mut self, r: Register, v: u64) {
        let cpu = *cpu();
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

    /// Whether the entry interruption field already holds an event.
    pub fn event_pending(&self) -> bool {
        make_current(self.vmcs);
        hw::read(field::ENTRY_INTR_INFO).unwrap_or(0) & (1 << 31) != 0
    }

    /// Whether the guest would take an external interrupt now: IF set and
    /// no STI/MOV-SS shadow.
    pub fn interruptible(&self) -> bool {
        make_current(self.vmcs);
        hw::read(field::GUEST_RFLAGS).unwrap_or(0) & (1 << 9) != 0
            && hw::read(field::GUEST_INTERRUPTIBILITY).unwrap_or(0) & 3 == 0
    }

    /// Applies the VMM's intercept choice (HLT, INT3, #DB, CR3 load/store);
    /// `window` asks for an exit as soon as the guest can take an
    /// interrupt. A control the CPU cannot set is left off.
    pub fn set_intercepts(&mut self, i: Intercepts, window: bool) {
        let _ = self.try_set_intercepts(i, window);
    }

    fn try_set_intercepts(&mut self, i: Intercepts, window: bool) -> Result<(), VmError> {
        let cpu = *cpu();
        make_current(self.vmcs);
        let mut want =
            cpu.proc & !(proc::HLT | proc::INTERRUPT_WINDOW | proc::CR3_LOAD | proc::CR3_STORE);
        for (flag, bit) in [
            (Intercepts::HLT, proc::HLT),
            (Intercepts::CR3_LOAD, proc::CR3_LOAD),
            (Intercepts::CR3_STORE, proc::CR3_STORE),
        ] {
            if i.contains(flag) {
                want |= bit;
            }
        }
        if window {
            want |= proc::INTERRUPT_WINDOW;
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
        self.vmm_cr3 = (
            i.contains(Intercepts::CR3_LOAD),
            i.contains(Intercepts::CR3_STORE),
        );
        hw::write(field::PROC_CONTROLS, p as u64);
        hw::write(field::EXCEPTION_BITMAP, ex);
        Ok(())
    }

    /// Points the vCPU at a view's EPT root (and, for VMFUNC and #VE, at
    /// its index in the EPTP list).
    pub fn set_root(&mut self, root: u64) {
        let eptp = eptp(root);
        make_current(self.vmcs);
        hw::write(field::EPTP, eptp);
        hw::write(field::EPTP_INDEX, self.view_of(eptp) as u64);
        self.eptp = eptp;
        self.flush = true;
    }

    fn view_of(&self, eptp: u64) -> u8 {
        (0..MAX_VIEWS as u8)
            .find(|&i| read64(self.eptp_list + i as u64 * 8) == eptp)
            .unwrap_or(0)
    }

    fn active_view(&self) -> u8 {
        self.view_of(hw::read(field::EPTP).unwrap_or(self.eptp))
    }

    fn set_proc2(&mut self, bit: u32, on: bool) -> Result<(), VmError> {
        let cpu = *cpu();
        let want = if on {
            self.proc2 | bit
        } else {
            self.proc2 & !bit
        };
        let p = vmcs::control(cpu.proc2_cap, want).map_err(|_| VmError::NotSupported)?;
        self.proc2 = p;
        hw::write(field::PROC2_CONTROLS, p as u64);
        Ok(())
    }

    /// Lets the guest switch among the views of the VM's EPTP list with
    /// VMFUNC leaf 0 (`on`), or stops it.
    pub fn allow_vmfunc(&mut self, on: bool) -> Result<(), VmError> {
        if !cpu().feat.eptp_switching {
            return Err(VmError::NotSupported);
        }
        make_current(self.vmcs);
        if on {
            hw::write(field::EPTP_LIST, self.eptp_list);
            hw::write(field::VMFUNC_CONTROLS, 1);
        }
        self.set_proc2(proc2::VMFUNC, on)?;
        hw::write(field::EPTP_INDEX, self.active_view() as u64);
        Ok(())
    }

    /// #VE with the VE information area at host-physical `info` (`None`:
    /// off).
    pub fn set_ve_info(&mut self, info: Option<u64>) -> Result<(), VmError> {
        if !cpu().feat.ve {
            return Err(VmError::NotSupported);
        }
        make_current(self.vmcs);
        if let Some(p) = info {
            hw::write(field::VE_INFO, p);
        }
        self.set_proc2(proc2::EPT_VE, info.is_some())?;
        hw::write(field::EPTP_INDEX, self.active_view() as u64);
        Ok(())
    }

    /// The view's leaves changed: flush cached translations before entry.
    pub fn flush(&mut self) {
        self.flush = true;
    }

    /// Raw VMCS read (Microkit's `vcpu_read_vmcs`): guest state, controls
    /// and exit information; never host state.
    pub fn read_field(&self, encoding: u32) -> Result<u64, VmError> {
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

    /// Enters the guest until its next exit, for at most the VMM's
    /// remaining budget ([`set_budget`], the VMX preemption timer; the
    /// kernel's tick usually ends the run first). Returns what the exit
    /// means, the guest RIP and the exiting instruction's length (0 when
    /// undefined).
    pub fn enter(&mut self) -> HwExit {
        let cpu = *cpu();
        let cpu = &cpu;
        let budget_tsc = BUDGET.load(Relaxed);
        make_current(self.vmcs);
        if MSRS_OF.load(Relaxed) != self.vmcs {
            hw::load_soft_msrs(&self.msrs);
            MSRS_OF.store(self.vmcs, Relaxed);
        }
        if cpu.xcr0_mask != 0 && XCR0_NOW.load(Relaxed) != self.xcr0 {
            hw::xsetbv(self.xcr0);
            XCR0_NOW.store(self.xcr0, Relaxed);
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
            return HwExit {
                action: Action::Stop(ExitReason::EntryFailure {
                    code: VMFAIL | err as u64,
                }),
                rip,
                insn_len: 0,
            };
        }
        self.save_passed_msrs();
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
        if exit.reason & (1 << 31) == 0 && self.emulate(basic, exit.qualification, rip) {
            // Done by the kernel: no event for the VMM, the vCPU runs on.
            return HwExit {
                action: Action::HostInterrupt,
                rip,
                insn_len,
            };
        }
        let mut action = vmexit::normalize_vmx(&exit);
        if let Action::Stop(ExitReason::EntryFailure { code }) = &mut action {
            if exit.reason & (1 << 31) != 0 {
                *code |= exit.qualification << 32;
            }
        }
        HwExit {
            action,
            rip,
            insn_len,
        }
    }

    /// Reads back the syscall MSRs the guest may write without an exit
    /// (their read-bitmap bit clear), so the kernel's copy stays the
    /// guest's value when another vCPU's are loaded.
    fn save_passed_msrs(&mut self) {
        let mut low = [0u8; 1];
        let mut kgs = [0u8; 1];
        // High-MSR read bitmap at 0x400: 0xc000_0081..84 in byte 0x10,
        // 0xc000_0102 in byte 0x20.
        read_phys(self.msr_bitmap + 0x410, &mut low);
        read_phys(self.msr_bitmap + 0x420, &mut kgs);
        for (i, &m) in vmcs::SOFT_MSRS.iter().enumerate() {
            let bit = m & 0x1fff;
            let byte = if bit >> 3 == 0x20 { kgs[0] } else { low[0] };
            if (bit >> 3 == 0x10 || bit >> 3 == 0x20) && byte & (1 << (bit & 7)) == 0 {
                self.msrs[i] = hw::read_msr(m);
            }
        }
    }

    fn gpr(&self, i: usize) -> u64 {
        if i == 4 {
            hw::read(field::GUEST_RSP).unwrap_or(0)
        } else {
            self.run.gprs[i & 15]
        }
    }

    fn set_gpr(&mut self, i: usize, v: u64) {
        if i == 4 {
            hw::write(field::GUEST_RSP, v);
        } else {
            self.run.gprs[i & 15] = v;
        }
    }

    fn inject_hw_exception(&mut self, vector: u8, error: Option<u32>) {
        let mut info = vector as u64 | 3 << 8 | 1 << 31;
        if let Some(e) = error {
            info |= 1 << 11;
            hw::write(field::ENTRY_EXCEPTION_ERROR, e as u64);
        }
        hw::write(field::ENTRY_INTR_INFO, info);
    }

    /// Exits the kernel completes itself because the interface offers the
    /// VMM no say in them and AMD-V would not exit at all: MOV to CR0/CR4
    /// that only disagrees with the read shadow in bits VMX owns (e.g. a
    /// guest clearing CR0.NE), MOV to/from CR3 the VMM did not ask to see,
    /// and XSETBV (always an exit on VT-x). Invalid values get the #GP the
    /// CPU would raise. True if handled.
    fn emulate(&mut self, basic: u32, q: u64, rip: u64) -> bool {
        let len = hw::read(field::EXIT_INSN_LEN).unwrap_or(0);
        match basic {
            vmexit::vmx::CR_ACCESS => {
                let (cr, ty, g) = (q & 0xf, (q >> 4) & 3, ((q >> 8) & 0xf) as usize);
                match (cr, ty) {
                    (0, 0) => {
                        let v = self.gpr(g);
                        if !vmcs::cr0_write_ok(v) {
                            self.inject_hw_exception(13, Some(0));
                            return true;
                        }
                        let old = self.read(Register::Cr0);
                        let efer = hw::read(field::GUEST_EFER).unwrap_or(0);
                        self.write(Register::Cr0, v);
                        hw::write(field::GUEST_EFER, vmcs::efer_after_cr0(old, v, efer));
                    }
                    (4, 0) => {
                        let v = self.gpr(g);
                        if !vmcs::cr4_write_ok(v, cpu().cr4) {
                            self.inject_hw_exception(13, Some(0));
                            return true;
                        }
                        self.write(Register::Cr4, v);
                    }
                    (3, 0) if !self.vmm_cr3.0 => {
                        // Bit 63 (PCID no-flush) is not part of CR3.
                        let v = self.gpr(g) & !(1 << 63);
                        hw::write(field::GUEST_CR3, v);
                    }
                    (3, 1) if !self.vmm_cr3.1 => {
                        let v = hw::read(field::GUEST_CR3).unwrap_or(0);
                        self.set_gpr(g, v);
                    }
                    _ => return false,
                }
            }
            EXIT_XSETBV => {
                let value = self.run.gprs[2] << 32 | (self.run.gprs[0] & 0xffff_ffff);
                if cpu().xcr0_mask == 0 {
                    self.inject_hw_exception(6, None);
                    return true;
                }
                if !vmcs::xsetbv_ok(self.run.gprs[1], value, cpu().xcr0_mask) {
                    self.inject_hw_exception(13, Some(0));
                    return true;
                }
                self.xcr0 = value;
            }
            _ => return false,
        }
        self.write(Register::Rip, rip + len);
        true
    }
}

/// Creates every VM of the plan on VT-x (the CPU has no AMD-V): the same
/// VM objects the AMD-V path builds, with EPT views and VMCSs.
pub(super) fn create(
    plan: &kernel_core::plan::BootPlan,
    region_base: &[u64],
    frames: &mut FrameAllocator,
    vms: &mut super::Vms,
) {
    let Some(cpu) = enable(frames) else {
        return;
    };
    let cpu = *CPU.init(cpu);
    BIG.init(Default::default());
    for (vi, pvm) in plan.vms.iter().enumerate() {
        match build(plan, vi, region_base, frames, &cpu) {
            Some(vm) => {
                let big = match &vm.hw {
                    super::HwVm::Vmx(m) => m.big_leaves(),
                    _ => 0,
                };
                kprintln!(
                    "bulkhead: VM '{}': VT-x, EPT, VPID {}, {} vCPU(s), unrestricted guest, preemption timer {}, {} 2 MiB leaves",
                    pvm.name.as_str(),
                    vi + 1,
                    vm.vcpus.len(),
                    if cpu.pin & pin::PREEMPTION_TIMER != 0 { "on" } else { "absent" },
                    big
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
    plan: &kernel_core::plan::BootPlan,
    vi: usize,
    region_base: &[u64],
    frames: &mut FrameAllocator,
    cpu: &Cpu,
) -> Option<super::Vm> {
    let pvm = &plan.vms[vi];
    let grants = plan.vm_grants(pvm, region_base).ok()?;
    let empty = leaf(0, Perms::NONE, false, false)?;
    let roots = super::build_views(
        &grants,
        frames,
        leaf_slot,
        empty,
        |phys, perms, uncached| leaf(phys, perms, uncached, false),
    )?;
    let maps = Maps::new(frames, roots[0], vi)?;
    maps.use_big_pages(roots[0], &grants);
    let mut vcpus = heapless::Vec::new();
    for &id in &pvm.vcpus {
        let hw = Vcpu::new(cpu, frames, &maps, vi as u16 + 1, roots[0])?;
        let _ = vcpus.push(super::Vcpu::new(id, super::Hw::Vmx(hw)));
    }
    Some(super::Vm::new(
        plan,
        vi,
        grants,
        roots,
        super::HwVm::Vmx(maps),
        vcpus,
    ))
}

/// The VT-x-only VM calls on vCPU `v` of `vm` (`AllowVmfunc`, `SetVeInfo`,
/// `ReadVmcs`, `WriteVmcs`); `SetVe` has no vCPU.
pub(super) fn call(
    vm: &mut super::Vm,
    n: usize,
    c: bulkhead_abi::vcpu::VmCall,
    b: u64,
    cc: u64,
) -> super::Outcome {
    use super::Outcome;
    use bulkhead_abi::vcpu::{VmCall, GUEST_PAGE_SIZE};
    let done = |e: VmError| Outcome::Done(e, 0);
    let result = |r: Result<(), VmError>| done(r.err().unwrap_or(VmError::Ok));
    let super::Hw::Vmx(h) = &mut vm.vcpus[n].hw else {
        return done(VmError::NotSupported);
    };
    match c {
        VmCall::AllowVmfunc => result(h.allow_vmfunc(b == 1)),
        VmCall::SetVeInfo => {
            // The CPU writes the VE information area by host-physical
            // address: it must be a whole guest page inside a writable,
            // cached grant.
            let info = if b == 0 {
                None
            } else {
                match vm.grants.resolve(b, GUEST_PAGE_SIZE, Perms::RW) {
                    Ok(r) if !r.uncached => Some(r.phys),
                    Ok(_) => return done(VmError::BadPermissions),
                    Err(e) => return done(e),
                }
            };
            result(h.set_ve_info(info))
        }
        VmCall::ReadVmcs => match u32::try_from(b).map(|f| h.read_field(f)) {
            Ok(Ok(v)) => Outcome::Done(VmError::Ok, v),
            Ok(Err(e)) => done(e),
            Err(_) => done(VmError::BadRegister),
        },
        VmCall::WriteVmcs => match u32::try_from(b) {
            Ok(f) => result(h.write_field(f, cc)),
            Err(_) => done(VmError::BadRegister),
        },
        _ => done(VmError::NotSupported),
    }
}

/// `SetVe`: clear (`on`) or set the suppress-#VE bit of `len` bytes of
/// pages at `gpa` in the view rooted at `root` (the caller checked the
/// range lies in one grant).
pub(super) fn set_ve(maps: &Maps, root: u64, gpa: u64, len: u64, on: bool) -> Result<(), VmError> {
    let mut off = 0;
    while off < len {
        let slot = maps
            .slot(root, gpa + off, true)
            .ok_or(VmError::OutsideGrant)?;
        let old = read64(slot);
        write64(
            slot,
            if on {
                old & !ept::SUPPRESS_VE
            } else {
                old | ept::SUPPRESS_VE
            },
        );
        off += PAGE;
    }
    Ok(())
}
