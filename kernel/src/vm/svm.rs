//! The AMD-V backend: a VMCB per vCPU, the I/O and MSR permission maps per
//! VM, VMRUN, and the translation of the VMCB's exit state into the
//! vendor-neutral [`HwExit`].
//!
//! Design rules: no `unsafe` here (`arch::svm` does the hardware); the
//! VMM writes only the VMCB's state-save area through [`Vcpu::write`],
//! never its control area, so it cannot switch off an intercept the kernel
//! needs, change the ASID, the nested root or the permission maps.

#![deny(unsafe_code)]

use bulkhead_abi::vcpu::{ExitReason, Injection, Intercepts, Register};
use kernel_core::plan::PAGE;
use kernel_core::vmcb::{self, misc1, misc2, Slot};
use kernel_core::vmexit::{self, Action, SvmExit};

use super::HwExit;
use crate::arch::paging;
use crate::arch::svm::{self, Page, RunState};
use kernel_core::boot_info::FrameAllocator;

pub use svm::{detect, enable, Features};

/// The state-save offset of RFLAGS, RIP and RAX (AMD APM vol. 2, VMCB layout).
const SAVE_RFLAGS: usize = 0x570;
const SAVE_RIP: usize = 0x578;
const SAVE_RAX: usize = 0x5f8;
/// The interrupt shadow (bit 0) of the control area.
const INTERRUPT_SHADOW: usize = 0x068;
/// V_INTR fields: V_IRQ (bit 8), V_INTR_MASKING (bit 24).
const V_IRQ: u64 = 1 << 8;
const V_INTR_MASKING: u64 = 1 << 24;

/// MSRs the guest may access without an exit: exactly those the VMCB
/// state-save area holds and VMRUN/VMLOAD/VMSAVE switch, so a pass-through
/// never leaks or changes the host's value.
const SWITCHED_MSRS: [u32; 10] = [
    0xc000_0100, // FS.base
    0xc000_0101, // GS.base
    0xc000_0102, // KernelGSbase
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
];

/// Per-VM permission maps (a set bit intercepts).
pub struct Maps {
    iopm: u64,
    msrpm: u64,
}

fn contiguous(frames: &mut FrameAllocator, n: u64, fill: u8) -> Option<u64> {
    let base = frames.alloc_contiguous(n)?;
    for p in 0..n {
        paging::copy_to_phys(base + p * PAGE, &[fill; PAGE as usize]);
    }
    Some(base)
}

impl Maps {
    /// Every port and MSR intercepted (the VMM decides).
    pub fn new(frames: &mut FrameAllocator) -> Option<Self> {
        Some(Self {
            iopm: contiguous(frames, 3, 0xff)?,
            msrpm: contiguous(frames, 2, 0xff)?,
        })
    }

    /// Intercepts or passes one port.
    pub fn set_port(&self, port: u16, intercept: bool) {
        super::set_phys_bit(self.iopm + port as u64 / 8, (port % 8) as u8, intercept);
    }

    /// Intercepts or passes reads and writes of one MSR; false if the MSR
    /// may not be passed through (not switched by the hardware).
    pub fn set_msr(&self, msr: u32, intercept: bool) -> bool {
        if !intercept && !SWITCHED_MSRS.contains(&msr) {
            return false;
        }
        // Two bits per MSR (read, write) in three 2 KiB ranges.
        let base = match msr {
            0..=0x1fff => 0,
            0xc000_0000..=0xc000_1fff => 0x800,
            0xc001_0000..=0xc001_1fff => 0x1000,
            _ => return intercept, // outside the map: always intercepted
        };
        let bit = (msr & 0x1fff) as u64 * 2;
        let at = self.msrpm + base + bit / 8;
        super::set_phys_bit(at, (bit % 8) as u8, intercept);
        super::set_phys_bit(at, (bit % 8) as u8 + 1, intercept);
        true
    }
}

/// One vCPU's VMCB, host save area and the GPRs VMRUN does not switch.
pub struct Vcpu {
    run: RunState,
    nrips: bool,
    /// Flush this ASID's TLB on the next VMRUN (nested tables changed).
    flush: bool,
}

impl Vcpu {
    /// Builds a VMCB with the kernel's intercepts, the VM's maps, ASID and
    /// nested root, and a reset-like 64-bit state.
    pub fn new(
        frames: &mut FrameAllocator,
        maps: &Maps,
        asid: u32,
        root: u64,
        feat: &Features,
    ) -> Option<Self> {
        let vmcb = frames.alloc()?;
        let host_save = frames.alloc()?;
        paging::zero_frame(vmcb);
        paging::zero_frame(host_save);
        let v = Page(vmcb);
        v.write(
            vmcb::INTERCEPT_MISC1,
            4,
            (misc1::INTR
                | misc1::NMI
                | misc1::CPUID
                | misc1::HLT
                | misc1::IOIO
                | misc1::MSR
                | misc1::SHUTDOWN) as u64,
        );
        v.write(vmcb::INTERCEPT_MISC2, 4, misc2::SVM_INSNS as u64);
        v.write(vmcb::IOPM_BASE, 8, maps.iopm);
        v.write(vmcb::MSRPM_BASE, 8, maps.msrpm);
        v.write(
            vmcb::ASID,
            4,
            (asid as u64).min(feat.asids.saturating_sub(1) as u64),
        );
        v.write(vmcb::NP_ENABLE, 8, 1);
        v.write(vmcb::N_CR3, 8, root);
        // V_INTR_MASKING: the guest's IF masks only virtual interrupts,
        // host interrupts still exit.
        v.write(vmcb::V_INTR, 8, V_INTR_MASKING);
        let mut vcpu = Self {
            run: RunState {
                gprs: [0; 16],
                vmcb,
                host_save,
            },
            nrips: feat.nrips,
            flush: true,
        };
        vcpu.reset();
        Some(vcpu)
    }

    fn page(&self) -> Page {
        Page(self.run.vmcb)
    }

    /// Architectural reset-like state for a 64-bit guest whose VMM sets
    /// CR3, RIP and RSP: long mode on, flat segments, GPRs zero, no event
    /// pending.
    pub fn reset(&mut self) {
        use bulkhead_abi::vcpu::{Segment as S, SegmentField as F};
        self.run.gprs = [0; 16];
        let v = self.page();
        v.write(vmcb::EVENTINJ, 8, 0);
        let set = |r: Register, val: u64| {
            if let Slot::Vmcb(off, w) = vmcb::slot(r) {
                v.write(off, w, val);
            }
        };
        for r in [
            Register::Rip,
            Register::Gpr(bulkhead_abi::vcpu::Gpr::Rsp),
            Register::Gpr(bulkhead_abi::vcpu::Gpr::Rax),
            Register::Cr2,
            Register::Cr3,
        ] {
            set(r, 0);
        }
        set(Register::Cr0, 0x8000_0031); // PG, NE, ET, PE
        set(Register::Cr4, 0x20); // PAE
        set(Register::Efer, 0x1d00); // SVME, LMA, LME, NXE
        set(Register::Rflags, 2);
        set(Register::Dr7, 0x400);
        v.write(0x568, 8, 0xffff_0ff0); // DR6
        set(
            Register::Msr(bulkhead_abi::vcpu::Msr::Pat),
            0x0007_0406_0007_0406,
        );
        for (s, sel, attrs) in [
            (S::Cs, 0x08, 0xa9b),
            (S::Ds, 0x10, 0xc93),
            (S::Es, 0x10, 0xc93),
            (S::Ss, 0x10, 0xc93),
            (S::Fs, 0x10, 0xc93),
            (S::Gs, 0x10, 0xc93),
            (S::Tr, 0x18, 0x08b),
            (S::Ldtr, 0, 0x082),
        ] {
            set(Register::Segment(s, F::Selector), sel);
            set(Register::Segment(s, F::Limit), 0xffff_ffff);
            if let Slot::Vmcb(off, _) = vmcb::slot(Register::Segment(s, F::Attributes)) {
                v.write(off, 2, attrs);
            }
        }
        set(Register::Gdtr(true), 0xffff);
        set(Register::Idtr(true), 0xffff);
        self.flush = true;
    }

    /// Reads a register.
    pub fn read(&self, r: Register) -> u64 {
        let page = self.page();
        match (vmcb::slot(r), r) {
            (Slot::Saved(i), _) => self.run.gprs[i],
            (
                Slot::Vmcb(off, w),
                Register::Segment(_, bulkhead_abi::vcpu::SegmentField::Attributes),
            ) => vmcb::attrs_from_vmcb(page.read(off, w) as u16),
            (Slot::Vmcb(off, w), _) => page.read(off, w),
        }
    }

    /// Writes a register (the state-save area only).
    pub fn write(&mut self, r: Register, v: u64) {
        let page = self.page();
        match (vmcb::slot(r), r) {
            (Slot::Saved(i), _) => self.run.gprs[i] = v,
            (
                Slot::Vmcb(off, w),
                Register::Segment(_, bulkhead_abi::vcpu::SegmentField::Attributes),
            ) => page.write(off, w, vmcb::attrs_to_vmcb(v) as u64),
            (Slot::Vmcb(off, w), _) => page.write(off, w, v),
        }
    }

    /// Puts an event in EVENTINJ for the next entry.
    pub fn inject(&mut self, i: Injection) {
        self.page().write(vmcb::EVENTINJ, 8, i.to_raw());
    }

    /// Whether EVENTINJ already holds an event.
    pub fn event_pending(&self) -> bool {
        self.page().read(vmcb::EVENTINJ, 8) & (1 << 31) != 0
    }

    /// Whether the guest would take an external interrupt now: IF set and
    /// no interrupt shadow (after `sti` or `mov ss`).
    pub fn interruptible(&self) -> bool {
        let p = self.page();
        p.read(SAVE_RFLAGS, 8) & (1 << 9) != 0 && p.read(INTERRUPT_SHADOW, 8) & 1 == 0
    }

    /// Sets the optional intercepts; `window` asks for an exit as soon as
    /// the guest can take an interrupt (V_IRQ with the VINTR intercept).
    pub fn set_intercepts(&mut self, i: Intercepts, window: bool) {
        let page = self.page();
        let mut m = page.read(vmcb::INTERCEPT_MISC1, 4) as u32;
        m &= !(misc1::HLT | misc1::VINTR);
        if i.contains(Intercepts::HLT) {
            m |= misc1::HLT;
        }
        let mut vi = page.read(vmcb::V_INTR, 8) & !V_IRQ;
        if window {
            m |= misc1::VINTR;
            vi |= V_IRQ;
        }
        page.write(vmcb::V_INTR, 8, vi);
        page.write(vmcb::INTERCEPT_MISC1, 4, m as u64);
        let mut ex = 0u64;
        if i.contains(Intercepts::INT3) {
            ex |= 1 << 3;
        }
        if i.contains(Intercepts::DEBUG) {
            ex |= 1 << 1;
        }
        page.write(vmcb::INTERCEPT_EXCEPTIONS, 4, ex);
        let mut cr = 0u64;
        if i.contains(Intercepts::CR3_STORE) {
            cr |= 1 << 3;
        }
        if i.contains(Intercepts::CR3_LOAD) {
            cr |= 1 << (16 + 3);
        }
        page.write(vmcb::INTERCEPT_CR, 4, cr);
    }

    /// Makes `root` the nested root (a view switch) and flushes.
    pub fn set_root(&mut self, root: u64) {
        self.page().write(vmcb::N_CR3, 8, root);
        self.flush = true;
    }

    /// Flushes this vCPU's guest TLB entries on the next entry.
    pub fn flush(&mut self) {
        self.flush = true;
    }

    /// Runs the guest until its next exit.
    pub fn enter(&mut self) -> HwExit {
        let page = self.page();
        page.write(vmcb::TLB_CONTROL, 1, self.flush as u64);
        self.flush = false;
        page.write(vmcb::CLEAN, 4, 0);
        svm::run(&mut self.run);
        let exit = SvmExit {
            code: page.read(vmcb::EXITCODE, 8),
            info1: page.read(vmcb::EXITINFO1, 8),
            info2: page.read(vmcb::EXITINFO2, 8),
            rax: page.read(SAVE_RAX, 8),
            rcx: self.run.gprs[1],
            rdx: self.run.gprs[2],
        };
        // EVENTINJ was consumed at entry; an event whose delivery this exit
        // interrupted (e.g. by a nested page fault or a host interrupt) is in
        // EXITINTINFO and is injected again on the next entry, so it is not lost.
        let pending = page.read(vmcb::EXITINTINFO, 8);
        page.write(
            vmcb::EVENTINJ,
            8,
            if pending & (1 << 31) != 0 { pending } else { 0 },
        );
        let rip = page.read(SAVE_RIP, 8);
        let insn_len = if self.nrips && page.read(vmcb::NRIP, 8) > rip {
            page.read(vmcb::NRIP, 8).wrapping_sub(rip).min(15) as u8
        } else {
            vmexit::svm_insn_len(&exit, rip)
        };
        let action = vmexit::normalize_svm(&exit);
        if action == Action::Deliver(ExitReason::InterruptWindow) {
            // One-shot: whoever wants the next window asks again.
            page.write(vmcb::V_INTR, 8, page.read(vmcb::V_INTR, 8) & !V_IRQ);
            let m = page.read(vmcb::INTERCEPT_MISC1, 4) & !(misc1::VINTR as u64);
            page.write(vmcb::INTERCEPT_MISC1, 4, m);
        }
        HwExit {
            action,
            rip,
            insn_len,
        }
    }
}
