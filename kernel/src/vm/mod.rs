//! Virtual machines: created at boot from the plan's VMs (a vCPU state per
//! vCPU, nested page tables per view built from the VM's grants), the VM
//! calls of the owning VMM PD, and the running of vCPUs on the VMM's behalf.
//!
//! Design rules: no `unsafe` here (the vendor backends call the arch
//! layer); nothing is allocated after boot, so every view's nested tables
//! are built at boot with 4 KiB leaves for every granted page, and later
//! map/unmap/protect/create-view only rewrite leaves that exist; every
//! request is checked by `kernel_core::vm` before a leaf changes.
//!
//! Delivery (Microkit's model): `Run` (or the VMM's reply to an exit) makes
//! a vCPU runnable; the kernel enters it when the VMM waits for events
//! ([`enter`], called by the scheduler loop) and turns each exit into a
//! fault event for the VMM, an `ExitMessage` in its message registers. A
//! host interrupt ends the guest's turn without an event; a triple fault
//! stops that vCPU only; a failed entry is reported and the VMM may fix the
//! state. The vendor backends (`svm`, `vmx`) only load state, enter and
//! translate exits.

#![deny(unsafe_code)]

mod svm;
mod vmx;

use bulkhead_abi::vcpu::{
    EventType, ExitMessage, ExitReason, Injection, Intercepts, Perms, Register, VmCall, VmError,
    GUEST_PAGE_SIZE, MAX_VIEWS,
};
use kernel_core::boot_info::FrameAllocator;
use kernel_core::nested::{self, npt};
use kernel_core::plan::{BootPlan, PAGE};
use kernel_core::plan_vm::MAX_VMS;
use kernel_core::vm::{GrantSet, Views, MAX_VCPUS};
use kernel_core::vmexit::Action;

use crate::arch::{paging, Global};
use crate::kprintln;

/// A vCPU exit as the backends report it.
pub struct HwExit {
    /// What the kernel does with it.
    pub action: Action,
    /// The guest RIP at the exit.
    pub rip: u64,
    /// The exiting instruction's length (0 when it has none).
    pub insn_len: u8,
}

/// The vendor state of one vCPU.
enum Hw {
    Svm(svm::Vcpu),
    Vmx(vmx::Vcpu),
}

/// The vendor state of one VM.
enum HwVm {
    Svm(svm::Maps),
    Vmx(vmx::Maps),
}

/// Calls the same method on whichever backend a vCPU has.
macro_rules! hw {
    ($v:expr, $h:ident => $e:expr) => {
        match $v {
            Hw::Svm($h) => $e,
            Hw::Vmx($h) => $e,
        }
    };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RunState {
    /// Not runnable until the VMM runs it (never started, or held).
    Held,
    /// Runs while its VMM waits for events.
    Runnable,
    /// Its exit is with the VMM; the reply resumes it.
    Exited,
    /// Triple-faulted: stopped until the VMM PD is restarted.
    Stopped,
}

struct Vcpu {
    id: u8,
    hw: Hw,
    state: RunState,
    intercepts: Intercepts,
    /// An external interrupt waiting for the guest to be interruptible.
    pending_irq: Option<u8>,
}

struct Vm {
    name: heapless::String<{ kernel_core::plan::MAX_NAME }>,
    owner: usize,
    grants: GrantSet,
    views: Views,
    roots: [u64; MAX_VIEWS],
    hw: HwVm,
    /// The owner's own I/O port grants: the only ports it may pass through.
    ports: heapless::Vec<(u16, u32), { kernel_core::plan::MAX_IOPORTS }>,
    vcpus: heapless::Vec<Vcpu, MAX_VCPUS>,
    /// The vCPU entered last (round robin among runnable ones).
    last: usize,
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
}

/// What entering a VMM's guest came to.
pub enum Entered {
    /// vCPU `.0` exited: its `ExitMessage` is in the VMM's message
    /// registers; deliver it as a fault event.
    Exit(u8),
    /// A host interrupt (or an exit the kernel handled itself) ended the
    /// guest's turn; the vCPU stays runnable.
    Interrupted,
    /// The VMM has no runnable vCPU.
    Idle,
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

/// The 4 KiB leaf slot of `gpa` in a view; on VT-x, where view 0 may map
/// 2 MiB leaves, `split` makes the slot writable first.
fn slot_of(hw: &HwVm, root: u64, gpa: u64, split: bool) -> Option<u64> {
    match hw {
        HwVm::Svm(_) => leaf_slot(root, gpa, None),
        HwVm::Vmx(m) => m.slot(root, gpa, split),
    }
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
            vmx::create(plan, region_base, frames, vms);
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
        match build(plan, vi, region_base, frames, &feat) {
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
    feat: &svm::Features,
) -> Option<Vm> {
    let pvm = &plan.vms[vi];
    let grants = plan.vm_grants(pvm, region_base).ok()?;
    let roots = build_views(&grants, frames, leaf_slot, 0, |phys, perms, uncached| {
        npt::leaf(phys, PAGE, perms, uncached).ok()
    })?;
    let maps = svm::Maps::new(frames)?;
    let mut vcpus = heapless::Vec::new();
    for &id in &pvm.vcpus {
        let hw = svm::Vcpu::new(frames, &maps, vi as u32 + 1, roots[0], feat)?;
        let _ = vcpus.push(Vcpu::new(id, Hw::Svm(hw)));
    }
    Some(Vm::new(plan, vi, grants, roots, HwVm::Svm(maps), vcpus))
}

/// Builds every view's nested tables for `grants` now (nothing is
/// allocated later): `slot` walks (and creates) a vendor's tables, view 0
/// maps each granted page with `leaf(phys, perms, uncached)`, the other
/// views hold `empty` until `create_view` copies into them.
fn build_views(
    grants: &GrantSet,
    frames: &mut FrameAllocator,
    slot: fn(u64, u64, Option<&mut FrameAllocator>) -> Option<u64>,
    empty: u64,
    leaf: impl Fn(u64, Perms, bool) -> Option<u64>,
) -> Option<[u64; MAX_VIEWS]> {
    let mut roots = [0u64; MAX_VIEWS];
    for (view, root) in roots.iter_mut().enumerate() {
        let r = frames.alloc()?;
        paging::zero_frame(r);
        *root = r;
        for g in grants.grants() {
            let mut off = 0;
            while off < g.size {
                let at = slot(r, g.gpa + off, Some(frames))?;
                let entry = if view == 0 {
                    leaf(g.phys + off, g.perms, g.uncached)?
                } else {
                    empty
                };
                write64(at, entry);
                off += PAGE;
            }
        }
    }
    Some(roots)
}

/// Sets (`on`) or clears bit `bit` of the byte at physical `at` (a
/// permission bitmap a VM's hardware reads: I/O, MSR).
fn set_phys_bit(at: u64, bit: u8, on: bool) {
    let mut byte = [0u8];
    crate::arch::read_phys(at, &mut byte);
    byte[0] = if on {
        byte[0] | 1 << bit
    } else {
        byte[0] & !(1 << bit)
    };
    paging::copy_to_phys(at, &byte);
}

impl Vcpu {
    /// A held vCPU with the default intercepts.
    fn new(id: u8, hw: Hw) -> Self {
        Self {
            id,
            hw,
            state: RunState::Held,
            intercepts: Intercepts::HLT,
            pending_irq: None,
        }
    }
}

impl Vm {
    /// VM `vi` of the plan, from its built parts.
    fn new(
        plan: &BootPlan,
        vi: usize,
        grants: GrantSet,
        roots: [u64; MAX_VIEWS],
        hw: HwVm,
        vcpus: heapless::Vec<Vcpu, MAX_VCPUS>,
    ) -> Self {
        let pvm = &plan.vms[vi];
        Self {
            name: pvm.name.clone(),
            owner: pvm.owner as usize,
            grants,
            views: Views::new(pvm.vcpus.len()),
            roots,
            hw,
            ports: plan.pds[pvm.owner as usize]
                .ioports
                .iter()
                .map(|io| (io.base, io.size))
                .collect(),
            vcpus,
            last: 0,
        }
    }
}

fn write_exit(ipc_frame: u64, m: &ExitMessage) {
    let w = m.to_words();
    let mut b = [0u8; 8 * bulkhead_abi::vcpu::EXIT_MESSAGE_WORDS];
    for (i, x) in w.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes());
    }
    paging::copy_to_phys(ipc_frame, &b);
}

fn vm_of(pd: usize) -> Option<&'static mut Vm> {
    VMS.get().vms.iter_mut().find(|v| v.owner == pd)
}

/// Whether PD `pd` owns a vCPU that should run while it waits.
pub fn runnable(pd: usize) -> bool {
    vm_of(pd).is_some_and(|vm| vm.vcpus.iter().any(|v| v.state == RunState::Runnable))
}

/// The VMM replied to vCPU `id`'s exit: resume it.
pub fn reply(pd: usize, id: u8) {
    if let Some(v) = vm_of(pd).and_then(|vm| vm.vcpus.iter_mut().find(|v| v.id == id)) {
        if v.state == RunState::Exited {
            v.state = RunState::Runnable;
        }
    }
}

/// PD `pd` was restarted: its vCPUs are held with reset state, so the new
/// VMM instance starts its guest afresh (a triple-faulted vCPU included).
pub fn reset_owner(pd: usize) {
    if let Some(vm) = vm_of(pd) {
        for v in vm.vcpus.iter_mut() {
            v.state = RunState::Held;
            v.pending_irq = None;
            v.intercepts = Intercepts::HLT;
            hw!(&mut v.hw, h => {
                h.reset();
                h.set_intercepts(Intercepts::HLT, false);
            });
        }
    }
}

/// A VM call by PD `pd`; `args` = (rdi, rsi, rdx, r8).
pub fn call(pd: usize, c: VmCall, args: [u64; 4]) -> Outcome {
    let Some(vm) = vm_of(pd) else {
        return Outcome::NotYours(args[0]);
    };
    let [a, b, cc, d] = args;
    let done = |e: VmError| Outcome::Done(e, 0);
    match c {
        VmCall::ReadRegister
        | VmCall::WriteRegister
        | VmCall::Inject
        | VmCall::Run
        | VmCall::SwitchView
        | VmCall::SetIntercepts
        | VmCall::Pause
        | VmCall::Reset
        | VmCall::AllowVmfunc
        | VmCall::SetVeInfo
        | VmCall::ReadVmcs
        | VmCall::WriteVmcs => {
            let Some(n) = vm.vcpus.iter().position(|v| v.id as u64 == a) else {
                return Outcome::NotYours(a);
            };
            if matches!(
                c,
                VmCall::AllowVmfunc | VmCall::SetVeInfo | VmCall::ReadVmcs | VmCall::WriteVmcs
            ) {
                // VT-x only (VMFUNC, #VE, raw VMCS): `NotSupported` on AMD-V.
                return vmx::call(vm, n, c, b, cc);
            }
            let v = &mut vm.vcpus[n];
            match c {
                VmCall::ReadRegister | VmCall::WriteRegister => {
                    let Some(r) = Register::from_raw(b) else {
                        return done(VmError::BadRegister);
                    };
                    if c == VmCall::WriteRegister {
                        hw!(&mut v.hw, h => h.write(r, cc));
                    }
                    Outcome::Done(VmError::Ok, hw!(&v.hw, h => h.read(r)))
                }
                VmCall::Inject => match Injection::from_raw(b) {
                    Some(inj) if inj.kind == EventType::External => {
                        if v.pending_irq.is_some() {
                            return done(VmError::Busy);
                        }
                        v.pending_irq = Some(inj.vector);
                        done(VmError::Ok)
                    }
                    Some(inj) => {
                        hw!(&mut v.hw, h => h.inject(inj));
                        done(VmError::Ok)
                    }
                    None => done(VmError::BadInjection),
                },
                VmCall::SetIntercepts => {
                    let Some(i) = Intercepts::from_raw(b) else {
                        return done(VmError::BadRegister);
                    };
                    v.intercepts = i;
                    let window =
                        i.contains(Intercepts::INTERRUPT_WINDOW) || v.pending_irq.is_some();
                    hw!(&mut v.hw, h => h.set_intercepts(i, window));
                    done(VmError::Ok)
                }
                VmCall::SwitchView => match vm.views.switch(n as u64, b) {
                    Ok(_) => {
                        let root = vm.roots[b as usize];
                        hw!(&mut vm.vcpus[n].hw, h => h.set_root(root));
                        done(VmError::Ok)
                    }
                    Err(e) => done(e),
                },
                VmCall::Pause => {
                    if v.state == RunState::Runnable {
                        v.state = RunState::Held;
                    }
                    done(VmError::Ok)
                }
                VmCall::Reset => {
                    v.state = RunState::Held;
                    v.pending_irq = None;
                    v.intercepts = Intercepts::HLT;
                    hw!(&mut v.hw, h => {
                        h.reset();
                        h.set_intercepts(Intercepts::HLT, false);
                    });
                    let view0 = vm.roots[0];
                    let _ = vm.views.switch(n as u64, 0);
                    hw!(&mut vm.vcpus[n].hw, h => h.set_root(view0));
                    done(VmError::Ok)
                }
                _ => {
                    if v.state == RunState::Stopped {
                        return done(VmError::VcpuStopped);
                    }
                    v.state = RunState::Runnable;
                    done(VmError::Ok)
                }
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
                let Some(slot) = slot_of(&vm.hw, root, b + off, true) else {
                    return done(VmError::OutsideGrant);
                };
                let e = match &vm.hw {
                    HwVm::Svm(_) => npt::leaf(r.phys + off, PAGE, perms, r.uncached).ok(),
                    HwVm::Vmx(_) => vmx::Maps::leaf(read64(slot), r.phys + off, perms, r.uncached),
                };
                let Some(e) = e else {
                    return done(VmError::BadPermissions);
                };
                write64(slot, e);
                off += GUEST_PAGE_SIZE;
            }
            for v in vm.vcpus.iter_mut() {
                hw!(&mut v.hw, h => h.flush());
            }
            done(VmError::Ok)
        }
        VmCall::SetVe => {
            let view = d >> 8;
            if !vm.views.exists(view) {
                return done(VmError::NoSuchView);
            }
            if !matches!(vm.hw, HwVm::Vmx(_)) {
                return done(VmError::NotSupported);
            }
            if let Err(e) = vm.grants.resolve(b, cc, Perms::R) {
                return done(e);
            }
            let HwVm::Vmx(m) = &vm.hw else {
                return done(VmError::NotSupported);
            };
            let r = vmx::set_ve(m, vm.roots[view as usize], b, cc, d & 1 != 0);
            for v in vm.vcpus.iter_mut() {
                hw!(&mut v.hw, h => h.flush());
            }
            done(r.err().unwrap_or(VmError::Ok))
        }
        VmCall::CreateView => match vm.views.create(a) {
            Ok(new) => {
                let (from, to) = (vm.roots[a as usize], vm.roots[new as usize]);
                if let HwVm::Vmx(m) = &vm.hw {
                    m.set_view(new, to);
                }
                for g in vm.grants.grants() {
                    let mut off = 0;
                    while off < g.size {
                        if let (Some(s), Some(t)) = (
                            slot_of(&vm.hw, from, g.gpa + off, false),
                            slot_of(&vm.hw, to, g.gpa + off, true),
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
                match &vm.hw {
                    HwVm::Svm(m) => m.set_port(port as u16, cc != 0),
                    HwVm::Vmx(m) => m.set_port(port as u16, cc != 0),
                }
            }
            done(VmError::Ok)
        }
        VmCall::SetMsrIntercept => {
            let Ok(msr) = u32::try_from(b) else {
                return done(VmError::BadRegister);
            };
            let ok = match &vm.hw {
                HwVm::Svm(m) => m.set_msr(msr, cc != 0),
                HwVm::Vmx(m) => m.set_msr(msr, cc != 0),
            };
            done(if ok {
                VmError::Ok
            } else {
                VmError::MsrNotSwitched
            })
        }
    }
}

/// The CPU time (TSC cycles) the VMM PD whose guest runs next has left in
/// its budget: on VT-x the preemption timer ends the guest's run there, so
/// a guest cannot hold the CPU past its VMM's budget.
pub fn set_guest_budget(tsc: u64) {
    vmx::set_budget(tsc);
}

/// Enters a runnable vCPU of PD `pd`'s VM until its next exit, writing
/// that exit into the message registers at `ipc_frame`.
pub fn enter(pd: usize, ipc_frame: u64) -> Entered {
    let Some(vm) = vm_of(pd) else {
        return Entered::Idle;
    };
    let count = vm.vcpus.len();
    let Some(n) = (1..=count)
        .map(|k| (vm.last + k) % count)
        .find(|&k| vm.vcpus[k].state == RunState::Runnable)
    else {
        return Entered::Idle;
    };
    vm.last = n;
    let v = &mut vm.vcpus[n];
    // A queued external interrupt goes in when the guest can take it;
    // until then the guest runs with an interrupt-window exit armed.
    if let Some(vector) = v.pending_irq {
        let ready = hw!(&v.hw, h => !h.event_pending() && h.interruptible());
        if ready {
            hw!(&mut v.hw, h => h.inject(Injection {
                vector,
                kind: EventType::External,
                error_code: None,
            }));
            v.pending_irq = None;
        }
        let window = v.pending_irq.is_some() || v.intercepts.contains(Intercepts::INTERRUPT_WINDOW);
        let i = v.intercepts;
        hw!(&mut v.hw, h => h.set_intercepts(i, window));
    }
    let exit = hw!(&mut v.hw, h => h.enter());
    let reason = match exit.action {
        Action::HostInterrupt | Action::Preempted => return Entered::Interrupted,
        Action::Deliver(ExitReason::InterruptWindow)
            if !v.intercepts.contains(Intercepts::INTERRUPT_WINDOW) =>
        {
            // The kernel's own window, for a queued interrupt: not the VMM's.
            return Entered::Interrupted;
        }
        Action::Deliver(r) => {
            if r == ExitReason::InterruptWindow {
                // One-shot for the VMM too: it asks again for the next one.
                v.intercepts =
                    Intercepts::from_raw(v.intercepts.raw() & !Intercepts::INTERRUPT_WINDOW.raw())
                        .unwrap_or(v.intercepts);
            }
            v.state = RunState::Exited;
            r
        }
        Action::Stop(r) => {
            // A triple fault ends the vCPU; after an entry failure the VMM
            // may correct the state and run it again.
            let stopped = r == ExitReason::TripleFault;
            v.state = if stopped {
                RunState::Stopped
            } else {
                RunState::Exited
            };
            kprintln!(
                "bulkhead: VM '{}' vCPU {} {} (RIP {:#x}), reported to the VMM",
                vm.name.as_str(),
                v.id,
                if stopped {
                    "stopped: triple fault"
                } else {
                    "entry failure: invalid guest state"
                },
                exit.rip
            );
            r
        }
    };
    write_exit(
        ipc_frame,
        &ExitMessage {
            vcpu: v.id,
            reason,
            rip: exit.rip,
            insn_len: exit.insn_len,
        },
    );
    Entered::Exit(v.id)
}
