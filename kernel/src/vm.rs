//! Virtual machines on AMD-V: created at boot from the plan's VMs (VMCB per
//! vCPU, nested page tables per view built from the VM's grants, ASID),
//! and the VM calls of the owning VMM PD.
//!
//! Design rules: no `unsafe` here (the arch layer's `svm` does the
//! hardware); nothing is allocated after boot, so every view's nested
//! tables are built at boot with 4 KiB leaves for every granted page, and
//! later map/unmap/protect/create-view only rewrite leaves that exist; every
//! request is checked by `kernel_core::vm` before a leaf changes. A vCPU's
//! exit is written into the VMM's message registers as an `ExitMessage`;
//! a triple fault or failed entry stops that vCPU only.

#![deny(unsafe_code)]

mod vmx;

use bulkhead_abi::vcpu::{
    ExitMessage, Injection, Intercepts, Perms, Register, VmCall, VmError, GUEST_PAGE_SIZE,
    MAX_VIEWS,
};
use kernel_core::boot_info::FrameAllocator;
use kernel_core::nested::{self, npt};
use kernel_core::plan::{BootPlan, PAGE};
use kernel_core::plan_vm::MAX_VMS;
use kernel_core::vm::{GrantSet, Views, MAX_VCPUS};
use kernel_core::vmcb::{self, misc1, misc2, Slot};
use kernel_core::vmexit::{self, Action, SvmExit};

use crate::arch::svm::{self, Page, RunState};
use crate::arch::{paging, Global};
use crate::kprintln;

#[derive(Clone, Copy)]
struct Vcpu {
    id: u8,
    run: RunState,
    stopped: bool,
    /// Flush this ASID's TLB on the next VMRUN (nested tables changed).
    flush: bool,
    intercepts: Intercepts,
}

struct Vm {
    name: heapless::String<{ kernel_core::plan::MAX_NAME }>,
    owner: usize,
    grants: GrantSet,
    views: Views,
    roots: [u64; MAX_VIEWS],
    /// The I/O permission map (3 pages, a set bit intercepts the port).
    iopm: u64,
    /// The owner's own I/O port grants: the only ports it may pass through.
    ports: heapless::Vec<(u16, u32), { kernel_core::plan::MAX_IOPORTS }>,
    vcpus: heapless::Vec<Vcpu, MAX_VCPUS>,
    nrips: bool,
}

struct Vms {
    vms: heapless::Vec<Vm, MAX_VMS>,
}

static VMS: Global<Vms> = Global::new();

/// What a VM call asks the kernel to do with the caller.
pub enum Outcome {
    /// Return to it with this error code in `rax` (and results in `rdi`).
    Done(VmError, u64),
    /// The vCPU id or VM is not the caller's: a capability fault.
    NotYours(u64),
    /// A host interrupt ended the guest's run: return to the caller with
    /// its RIP back on the `int 0x80`, so the interrupt is taken in its
    /// context and the call repeats afterwards.
    Again,
}

fn read64(phys: u64) -> u64 {
    let mut b = [0u8; 8];
    crate::arch::read_phys(phys, &mut b);
    u64::from_le_bytes(b)
}

fn write64(phys: u64, v: u64) {
    paging::copy_to_phys(phys, &v.to_le_bytes());
}

/// Walks to the leaf slot of `gpa`, creating tables from `frames` if given.
fn leaf_slot(root: u64, gpa: u64, mut frames: Option<&mut FrameAllocator>) -> Option<u64> {
    let idx = nested::indices(gpa);
    let mut table = root;
    for &i in &idx[..3] {
        let slot = table + i as u64 * 8;
        let e = read64(slot);
        if e & npt::P == 0 {
            let f = frames.as_mut()?.alloc()?;
            paging::zero_frame(f);
            write64(slot, npt::table(f).ok()?);
            table = f;
        } else {
            table = npt::address(e, false);
        }
    }
    Some(table + idx[3] as u64 * 8)
}

fn contiguous(frames: &mut FrameAllocator, n: u64, fill: u8) -> Option<u64> {
    let base = frames.alloc_contiguous(n)?;
    for p in 0..n {
        paging::copy_to_phys(base + p * PAGE, &[fill; PAGE as usize]);
    }
    Some(base)
}

/// Creates every VM of the plan, or says why not (the rest of the system
/// runs either way).
pub fn create(plan: &BootPlan, region_base: &[u64], frames: &mut FrameAllocator) {
    let vms = VMS.init(Vms {
        vms: heapless::Vec::new(),
    });
    if plan.vms.is_empty() {
        return;
    }
    let feat = match svm::detect() {
        Some(f) if f.npt => f,
        Some(_) => {
            kprintln!("bulkhead: VMs not started: AMD-V without nested paging");
            return;
        }
        None => {
            vmx::create(plan, region_base, frames);
            return;
        }
    };
    let Some(hsave) = frames.alloc() else {
        kprintln!("bulkhead: VMs not started: out of memory");
        return;
    };
    paging::zero_frame(hsave);
    svm::enable(hsave);
    for (vi, pvm) in plan.vms.iter().enumerate() {
        let name = pvm.name.as_str();
        match build(plan, vi, region_base, frames, feat) {
            Some(vm) => {
                kprintln!(
                    "bulkhead: VM '{}': AMD-V, NPT, ASID {}, {} vCPU(s), NRIP save {}",
                    name,
                    vi + 1,
                    vm.vcpus.len(),
                    if feat.nrips { "on" } else { "absent" }
                );
                let _ = vms.vms.push(vm);
            }
            None => kprintln!(
                "bulkhead: VM '{}' not started: out of memory or bad grants",
                name
            ),
        }
    }
}

fn build(
    plan: &BootPlan,
    vi: usize,
    region_base: &[u64],
    frames: &mut FrameAllocator,
    feat: svm::Features,
) -> Option<Vm> {
    let pvm = &plan.vms[vi];
    let grants = plan.vm_grants(pvm, region_base).ok()?;
    let mut roots = [0u64; MAX_VIEWS];
    for (view, root) in roots.iter_mut().enumerate() {
        let r = frames.alloc()?;
        paging::zero_frame(r);
        *root = r;
        // Every view gets every table now (nothing is allocated later);
        // only view 0 starts with the grants mapped.
        for g in grants.grants() {
            let mut off = 0;
            while off < g.size {
                let slot = leaf_slot(r, g.gpa + off, Some(frames))?;
                let entry = if view == 0 {
                    npt::leaf(g.phys + off, PAGE, g.perms, g.uncached).ok()?
                } else {
                    0
                };
                write64(slot, entry);
                off += PAGE;
            }
        }
    }
    // The maps: every port and MSR intercepted (the VMM decides).
    let iopm = contiguous(frames, 3, 0xff)?;
    let msrpm = contiguous(frames, 2, 0xff)?;
    let mut vcpus = heapless::Vec::new();
    for &id in &pvm.vcpus {
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
        v.write(vmcb::IOPM_BASE, 8, iopm);
        v.write(vmcb::MSRPM_BASE, 8, msrpm);
        v.write(
            vmcb::ASID,
            4,
            (vi as u64 + 1).min(feat.asids.saturating_sub(1) as u64),
        );
        v.write(vmcb::TLB_CONTROL, 1, 1);
        v.write(vmcb::NP_ENABLE, 8, 1);
        v.write(vmcb::N_CR3, 8, roots[0]);
        // V_INTR_MASKING: the guest's IF masks only virtual interrupts,
        // host interrupts still exit.
        v.write(vmcb::V_INTR, 8, 1 << 24);
        reset_state(v);
        let _ = vcpus.push(Vcpu {
            id,
            run: RunState {
                gprs: [0; 16],
                vmcb,
                host_save,
            },
            stopped: false,
            flush: true,
            intercepts: Intercepts::HLT,
        });
    }
    Some(Vm {
        name: pvm.name.clone(),
        owner: pvm.owner as usize,
        grants,
        views: Views::new(pvm.vcpus.len()),
        roots,
        iopm,
        ports: plan.pds[pvm.owner as usize]
            .ioports
            .iter()
            .map(|io| (io.base, io.size))
            .collect(),
        vcpus,
        nrips: feat.nrips,
    })
}

/// Architectural reset-like state for a 64-bit guest whose VMM sets CR3,
/// RIP and RSP: long mode on, flat segments.
fn reset_state(v: Page) {
    use bulkhead_abi::vcpu::{Segment as S, SegmentField as F};
    let set = |r: Register, val: u64| {
        if let Slot::Vmcb(off, w) = vmcb::slot(r) {
            v.write(off, w, val);
        }
    };
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
}

fn write_exit(ipc_frame: u64, m: &ExitMessage) {
    let w = m.to_words();
    let mut b = [0u8; 8 * bulkhead_abi::vcpu::EXIT_MESSAGE_WORDS];
    for (i, x) in w.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
    }
    paging::copy_to_phys(ipc_frame, &b);
}

/// A VM call by PD `pd`; `args` = (rdi, rsi, rdx, r8).
pub fn call(pd: usize, c: VmCall, args: [u64; 4], ipc_frame: u64) -> Outcome {
    if vmx::active() {
        return vmx::call(pd, c, args, ipc_frame);
    }
    let vms = VMS.get();
    let Some(vi) = vms.vms.iter().position(|v| v.owner == pd) else {
        return Outcome::NotYours(args[0]);
    };
    let vm = &mut vms.vms[vi];
    let [a, b, cc, d] = args;
    let vcpu = |vm: &Vm, id: u64| vm.vcpus.iter().position(|v| v.id as u64 == id);
    let done = |e: VmError| Outcome::Done(e, 0);
    match c {
        VmCall::ReadRegister
        | VmCall::WriteRegister
        | VmCall::Inject
        | VmCall::Run
        | VmCall::SwitchView
        | VmCall::SetIntercepts => {
            let Some(n) = vcpu(vm, a) else {
                return Outcome::NotYours(a);
            };
            let v = &mut vm.vcpus[n];
            let page = Page(v.run.vmcb);
            match c {
                VmCall::ReadRegister | VmCall::WriteRegister => {
                    let Some(r) = Register::from_raw(b) else {
                        return done(VmError::BadRegister);
                    };
                    let write = c == VmCall::WriteRegister;
                    let value = match (vmcb::slot(r), r) {
                        (Slot::Saved(i), _) => {
                            if write {
                                v.run.gprs[i] = cc;
                            }
                            v.run.gprs[i]
                        }
                        (
                            Slot::Vmcb(off, w),
                            Register::Segment(_, bulkhead_abi::vcpu::SegmentField::Attributes),
                        ) => {
                            if write {
                                page.write(off, w, vmcb::attrs_to_vmcb(cc) as u64);
                            }
                            vmcb::attrs_from_vmcb(page.read(off, w) as u16)
                        }
                        (Slot::Vmcb(off, w), _) => {
                            if write {
                                page.write(off, w, cc);
                            }
                            page.read(off, w)
                        }
                    };
                    Outcome::Done(VmError::Ok, value)
                }
                VmCall::Inject => match Injection::from_raw(b) {
                    Some(inj) => {
                        page.write(vmcb::EVENTINJ, 8, inj.to_raw());
                        done(VmError::Ok)
                    }
                    None => done(VmError::BadInjection),
                },
                VmCall::SetIntercepts => {
                    let Some(i) = Intercepts::from_raw(b) else {
                        return done(VmError::BadRegister);
                    };
                    v.intercepts = i;
                    let mut m = page.read(vmcb::INTERCEPT_MISC1, 4) as u32;
                    m &= !(misc1::HLT | misc1::VINTR);
                    if i.contains(Intercepts::HLT) {
                        m |= misc1::HLT;
                    }
                    let mut vi = page.read(vmcb::V_INTR, 8) & !(1 << 8);
                    if i.contains(Intercepts::INTERRUPT_WINDOW) {
                        m |= misc1::VINTR;
                        vi |= 1 << 8; // V_IRQ: exit when the guest can take it
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
                    done(VmError::Ok)
                }
                VmCall::SwitchView => match vm.views.switch(n as u64, b) {
                    Ok(_) => {
                        let v = &mut vm.vcpus[n];
                        Page(v.run.vmcb).write(vmcb::N_CR3, 8, vm.roots[b as usize]);
                        v.flush = true;
                        done(VmError::Ok)
                    }
                    Err(e) => done(e),
                },
                _ => run(vm, n, ipc_frame),
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
                let Ok(e) = npt::leaf(r.phys + off, PAGE, perms, r.uncached) else {
                    return done(VmError::BadPermissions);
                };
                write64(slot, e);
                off += GUEST_PAGE_SIZE;
            }
            for v in vm.vcpus.iter_mut() {
                v.flush = true;
            }
            done(VmError::Ok)
        }
        VmCall::CreateView => match vm.views.create(a) {
            Ok(new) => {
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
        // VT-x only: VMFUNC, #VE and raw VMCS access have no AMD-V form
        // (views are switched by the kernel here).
        VmCall::AllowVmfunc
        | VmCall::SetVeInfo
        | VmCall::SetVe
        | VmCall::ReadVmcs
        | VmCall::WriteVmcs => done(VmError::NotSupported),
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
                let at = vm.iopm + port / 8;
                let mut byte = [0u8];
                crate::arch::read_phys(at, &mut byte);
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

fn run(vm: &mut Vm, n: usize, ipc_frame: u64) -> Outcome {
    let nrips = vm.nrips;
    let name = vm.name.clone();
    let v = &mut vm.vcpus[n];
    if v.stopped {
        return Outcome::Done(VmError::VcpuStopped, 0);
    }
    let page = Page(v.run.vmcb);
    page.write(vmcb::TLB_CONTROL, 1, v.flush as u64);
    v.flush = false;
    page.write(vmcb::CLEAN, 4, 0);
    svm::run(&mut v.run);
    let exit = SvmExit {
        code: page.read(vmcb::EXITCODE, 8),
        info1: page.read(vmcb::EXITINFO1, 8),
        info2: page.read(vmcb::EXITINFO2, 8),
        rax: page.read(0x5f8, 8),
        rcx: v.run.gprs[1],
        rdx: v.run.gprs[2],
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
    let rip = page.read(0x578, 8);
    let insn_len = if nrips && page.read(vmcb::NRIP, 8) > rip {
        page.read(vmcb::NRIP, 8).wrapping_sub(rip).min(15) as u8
    } else {
        vmexit::svm_insn_len(&exit, rip)
    };
    let reason = match vmexit::normalize_svm(&exit) {
        Action::HostInterrupt | Action::Preempted => return Outcome::Again,
        Action::Deliver(r) => r,
        Action::Stop(r) => {
            // A triple fault ends the vCPU; after an entry failure the VMM
            // may correct the state and run it again.
            v.stopped = r == bulkhead_abi::vcpu::ExitReason::TripleFault;
            kprintln!(
                "bulkhead: VM '{}' vCPU {} {} (RIP {:#x}), reported to the VMM",
                name.as_str(),
                v.id,
                if v.stopped {
                    "stopped: triple fault"
                } else {
                    "entry failure: invalid guest state"
                },
                rip
            );
            r
        }
    };
    if reason == bulkhead_abi::vcpu::ExitReason::InterruptWindow {
        // One-shot: the VMM asks again for the next one.
        page.write(vmcb::V_INTR, 8, page.read(vmcb::V_INTR, 8) & !(1 << 8));
        let m = page.read(vmcb::INTERCEPT_MISC1, 4) & !(misc1::VINTR as u64);
        page.write(vmcb::INTERCEPT_MISC1, 4, m);
    }
    write_exit(
        ipc_frame,
        &ExitMessage {
            vcpu: v.id,
            reason,
            rip,
            insn_len,
        },
    );
    Outcome::Done(VmError::Ok, 0)
}
