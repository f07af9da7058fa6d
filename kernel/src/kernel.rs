//! The kernel proper: boot-time creation of every object from the plan, the
//! trap dispatcher, syscalls, IRQ delivery, fault routing and the scheduler
//! glue. No `unsafe` here: hardware and the global state cell are behind
//! the arch layer's safe wrappers.

#![deny(unsafe_code)]
//!
//! State of a PD (Microkit semantics):
//! - `Ready`: runnable (subject to budget);
//! - `Recv`: waiting in `ReplyRecv` for a notification, PPC or child fault;
//! - `Guest`: waiting as in `Recv`, with a runnable vCPU: the kernel runs
//!   the guest on the PD's budget until an event for the PD arrives (a
//!   vCPU exit is one);
//! - `Calling`: blocked in `ppcall` until the callee replies;
//! - `Faulted`: waiting for its parent to restart or stop it;
//! - `Stopped`: for good (by its parent, or a parentless fault).

use core::fmt::Write as _;

use bulkhead_abi::{Error, Event, FaultKind, MessageInfo, Syscall, IPC_BUFFER_VADDR, STACK_TOP};
use kernel_core::boot_info::{self, FrameAllocator, PhysRange};
use kernel_core::caps;
use kernel_core::plan::{self, BootPlan, MAX_PDS, PAGE, PERM_W, PERM_X};
use kernel_core::sched::Scheduler;

use crate::arch::paging::{self, AddressSpace, FrameSource, Perms};
use crate::arch::trap::TrapFrame;
use crate::arch::{apic, cpu, gdt, pci, Global};
use crate::{kprint, kprintln};

/// Timer tick: 1 ms.
const TICK_MS: u32 = 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Ready,
    Recv,
    Guest,
    Calling { callee: usize, served: bool },
    Faulted,
    Stopped,
}

#[derive(Clone, Copy)]
struct PdState {
    space: AddressSpace,
    ctx: TrapFrame,
    state: State,
    pending_notify: u64,
    /// Bit i: child PD i has a fault not yet delivered.
    pending_faults: u32,
    /// The caller whose PPC this PD is serving.
    serving: Option<usize>,
    ipc_frame: u64,
    fault: (FaultKind, u64, u64),
    line_start: bool,
    /// The vCPU whose exit was this PD's last event: a reply resumes it.
    vcpu_reply: Option<u8>,
    /// The TSC deadline of the PD's one-shot timer (0 = none).
    deadline: u64,
}

impl PdState {
    const EMPTY: PdState = PdState {
        space: AddressSpace { pml4: 0 },
        ctx: TrapFrame::ZERO,
        state: State::Stopped,
        pending_notify: 0,
        pending_faults: 0,
        serving: None,
        ipc_frame: 0,
        fault: (FaultKind::OtherException, 0, 0),
        line_start: true,
        vcpu_reply: None,
        deadline: 0,
    };
}

struct Kernel {
    plan: BootPlan,
    data: &'static [u8],
    pds: [PdState; MAX_PDS],
    sched: Scheduler,
    /// Vector -> (PD, IRQ index) + 1; 0 = none.
    irq_owner: [u16; 256],
    current: Option<usize>,
    /// The PD whose address space and I/O ports are loaded.
    loaded: Option<usize>,
    tsc_khz: u64,
    last_tsc: u64,
    /// Sub-microsecond leftover of charged time, in TSC cycles.
    carry: u64,
    /// The PD that printed last (to end its line if another one prints).
    last_printer: Option<usize>,
    /// Programmed MSI capabilities, by vector.
    msi: [Option<pci::Msi>; 256],
}

static KERNEL: Global<Kernel> = Global::new();

/// The kernel state. Initialised in `boot` before any trap can arrive;
/// never held across a wait (see `Global`).
fn k() -> &'static mut Kernel {
    KERNEL.get()
}

struct Frames<'a>(&'a mut FrameAllocator);

impl FrameSource for Frames<'_> {
    fn frame(&mut self) -> Option<u64> {
        let f = self.0.alloc()?;
        paging::zero_frame(f);
        Some(f)
    }
}

fn fatal(what: core::fmt::Arguments) -> ! {
    kprintln!("bulkhead: boot failed: {}", what);
    kprintln!("bulkhead: halted");
    crate::arch::debug_exit(0x7e);
    cpu::halt_forever()
}

/// Boot: from the trampoline to the first PD.
pub fn boot(magic: u32, info_phys: u64) -> ! {
    crate::arch::serial::init();
    kprintln!("bulkhead: kernel {} booting", env!("CARGO_PKG_VERSION"));
    gdt::init();
    paging::init_pat();
    let prot = crate::arch::enable_protections();
    kprintln!(
        "bulkhead: NX on, WP on, kernel W^X, SMEP {}, SMAP {}, PCID {}, TSC-deadline {}",
        on(prot.smep),
        on(prot.smap),
        on(prot.pcid),
        on(prot.tsc_deadline)
    );

    if info_phys == 0 || info_phys + 8 > paging::DIRECT_MAP_LIMIT {
        fatal(format_args!(
            "Multiboot2 information pointer {info_phys:#x} is unusable"
        ));
    }
    let info = crate::arch::boot_info_bytes(info_phys);
    let bi = match boot_info::parse(magic, info) {
        Ok(bi) => bi,
        Err(e) => fatal(format_args!("{e}")),
    };
    let mut frames = FrameAllocator::new(&bi.usable, 0x10_0000, paging::DIRECT_MAP_LIMIT);
    let (kstart, kend) = crate::arch::kernel_phys_range();
    frames.reserve(PhysRange {
        start: kstart,
        end: kend,
    });
    frames.reserve(PhysRange {
        start: info_phys,
        end: info_phys + info.len() as u64,
    });
    for m in &bi.modules {
        frames.reserve(*m);
    }
    paging::drop_identity_map();
    if paging::protect_kernel_image(&mut Frames(&mut frames)).is_none() {
        fatal(format_args!("out of memory for the kernel's page tables"));
    }
    kprintln!(
        "bulkhead: {} KiB free RAM below 4 GiB, {} module(s)",
        frames.free_bytes() / 1024,
        bi.modules.len()
    );
    let Some(module) = bi.modules.first() else {
        fatal(format_args!(
            "no boot module: the image must carry the plan written by `bulkhead pack`"
        ))
    };
    if module.end > paging::DIRECT_MAP_LIMIT {
        fatal(format_args!(
            "boot module above 4 GiB ({:#x}), not supported",
            module.start
        ));
    }
    let module_bytes = crate::arch::phys_slice(module.start, module.end - module.start);
    let (plan, data) = match plan::decode(module_bytes) {
        Ok(p) => p,
        Err(e) => fatal(format_args!("boot plan rejected: {e}")),
    };
    kprintln!(
        "bulkhead: boot plan v{}: {} PDs, {} regions, {} channels",
        plan::VERSION,
        plan.pds.len(),
        plan.regions.len(),
        plan.channels.len()
    );

    let ioapic = bi.rsdp.as_ref().map(|rsdp| {
        kernel_core::acpi::ioapic_address(rsdp, |phys, buf| {
            let ok = phys.saturating_add(buf.len() as u64) <= paging::DIRECT_MAP_LIMIT;
            if ok {
                crate::arch::read_phys(phys, buf);
            }
            ok
        })
    });
    match ioapic {
        Some(Ok(base)) if base + 0x1000 <= paging::DIRECT_MAP_LIMIT => {
            apic::set_ioapic_base(base);
            kprintln!("bulkhead: IOAPIC at {:#x} (ACPI MADT)", base);
        }
        other => kprintln!(
            "bulkhead: IOAPIC at the default {:#x} (ACPI: {:?})",
            apic::DEFAULT_IOAPIC_BASE,
            other
        ),
    }
    let (tsc_khz, lapic_per_ms) = apic::init();
    kprintln!(
        "bulkhead: TSC {} kHz, LAPIC timer {} ticks/ms",
        tsc_khz,
        lapic_per_ms
    );

    let k = KERNEL.init(Kernel {
        plan,
        data,
        pds: [PdState::EMPTY; MAX_PDS],
        sched: Scheduler::new(),
        irq_owner: [0; 256],
        current: None,
        loaded: None,
        tsc_khz,
        last_tsc: 0,
        carry: 0,
        last_printer: None,
        msi: [None; 256],
    });
    if let Err(e) = k.create_objects(&mut frames) {
        fatal(format_args!("{e}"));
    }
    kprintln!(
        "bulkhead: {} KiB used by PD memory and tables; starting",
        frames.allocated * 4
    );
    apic::start_timer(
        lapic_per_ms.saturating_mul(TICK_MS),
        tsc_khz.saturating_mul(TICK_MS as u64),
        prot.tsc_deadline,
    );
    k.last_tsc = cpu::rdtsc();
    let mut frame = TrapFrame::default();
    schedule(&mut frame);
    crate::arch::trap::enter_user(&frame)
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "absent"
    }
}

impl Kernel {
    fn create_objects(&mut self, frames: &mut FrameAllocator) -> Result<(), &'static str> {
        // Regions: RAM regions get zeroed contiguous frames; device regions
        // keep their physical address.
        let mut region_base = [0u64; plan::MAX_REGIONS];
        for (i, r) in self.plan.regions.iter().enumerate() {
            region_base[i] = match r.phys_addr {
                Some(p) => p,
                None => {
                    // Whole 2 MiB multiples are 2 MiB-aligned, so nested
                    // paging can map them with large pages (VT-x EPT).
                    let base = if r.size % 0x20_0000 == 0 {
                        frames.alloc_contiguous_aligned(r.size / PAGE, 0x20_0000)
                    } else {
                        None
                    }
                    .or_else(|| frames.alloc_contiguous(r.size / PAGE))
                    .ok_or("out of memory for regions")?;
                    for p in 0..r.size / PAGE {
                        paging::zero_frame(base + p * PAGE);
                    }
                    // Initial contents (prefill_path): the plan checked that
                    // they lie in the data area and fit the region, whose
                    // frames are contiguous.
                    if let Some(f) = r.prefill {
                        let bytes = self
                            .data
                            .get(f.data_offset as usize..(f.data_offset + f.data_len) as usize)
                            .ok_or("prefill data outside the boot module")?;
                        paging::copy_to_phys(base, bytes);
                    }
                    base
                }
            };
        }
        let now = self.now_us();
        for i in 0..self.plan.pds.len() {
            let pd = self.plan.pds[i].clone();
            let mut fs = Frames(frames);
            let space = AddressSpace::new(&mut fs).ok_or("out of memory for page tables")?;
            // Segments: fresh frames, own permissions (W^X checked by the plan).
            for seg in &pd.segments {
                let first = seg.vaddr & !(PAGE - 1);
                let last = (seg.vaddr + seg.mem_size + PAGE - 1) & !(PAGE - 1);
                let perms = Perms {
                    write: seg.perms & PERM_W != 0,
                    exec: seg.perms & PERM_X != 0,
                    uncached: false,
                };
                let mut va = first;
                while va < last {
                    let f = fs.frame().ok_or("out of memory for PD images")?;
                    space
                        .map(va, f, perms, &mut fs)
                        .ok_or("out of memory for page tables")?;
                    va += PAGE;
                }
            }
            // Stack (the guard page below it stays unmapped) and IPC buffer.
            let rw = Perms {
                write: true,
                exec: false,
                uncached: false,
            };
            let mut va = STACK_TOP - pd.stack_size;
            while va < STACK_TOP {
                let f = fs.frame().ok_or("out of memory for stacks")?;
                space
                    .map(va, f, rw, &mut fs)
                    .ok_or("out of memory for page tables")?;
                va += PAGE;
            }
            let ipc = fs.frame().ok_or("out of memory for IPC buffers")?;
            space
                .map(IPC_BUFFER_VADDR, ipc, rw, &mut fs)
                .ok_or("out of memory for page tables")?;
            for m in &pd.maps {
                let r = &self.plan.regions[m.region as usize];
                let perms = Perms {
                    write: m.perms & PERM_W != 0,
                    exec: m.perms & PERM_X != 0,
                    uncached: !m.cached,
                };
                for p in 0..r.size / PAGE {
                    space
                        .map(
                            m.vaddr + p * PAGE,
                            region_base[m.region as usize] + p * PAGE,
                            perms,
                            &mut fs,
                        )
                        .ok_or("out of memory for page tables")?;
                }
            }
            for (n, irq) in pd.irqs.iter().enumerate() {
                self.irq_owner[irq.vector as usize] = ((i << 8) | n) as u16 + 1;
                match irq.msi {
                    Some(bdf) => match pci::enable_msi(bdf, irq.vector) {
                        Ok(msi) => self.msi[irq.vector as usize] = Some(msi),
                        Err(e) => kprintln!(
                            "bulkhead: PD '{}': MSI of PCI {:02x}:{:02x}.{} not enabled: {}",
                            pd.name.as_str(),
                            bdf.0,
                            bdf.1,
                            bdf.2,
                            e
                        ),
                    },
                    None => apic::route(irq.pin, irq.vector, irq.level, irq.active_low, false),
                }
            }
            let s = &mut self.pds[i];
            s.space = space;
            s.ipc_frame = ipc;
            self.sched
                .add(pd.priority, pd.budget_us as u64, pd.period_us as u64, now)
                .ok_or("too many PDs")?;
            self.reset_pd(i);
        }
        crate::vm::create(&self.plan, &region_base, frames);
        Ok(())
    }

    /// Fresh data, bss, stack, IPC buffer and registers; runnable.
    fn reset_pd(&mut self, i: usize) {
        self.pds[i].vcpu_reply = None;
        self.pds[i].deadline = 0;
        let pd = &self.plan.pds[i];
        let space = self.pds[i].space;
        for seg in &pd.segments {
            let first = seg.vaddr & !(PAGE - 1);
            let last = (seg.vaddr + seg.mem_size + PAGE - 1) & !(PAGE - 1);
            let mut va = first;
            while va < last {
                if let Some((f, _)) = space.translate(va) {
                    paging::zero_frame(f);
                }
                va += PAGE;
            }
            // Copy the stored bytes page by page (the plan bounds-checked
            // data_offset + data_len against the data area).
            let bytes =
                &self.data[seg.data_offset as usize..(seg.data_offset + seg.data_len) as usize];
            let mut done = 0usize;
            while done < bytes.len() {
                let va = seg.vaddr + done as u64;
                let off = va & (PAGE - 1);
                let n = ((PAGE - off) as usize).min(bytes.len() - done);
                if let Some((f, _)) = space.translate(va) {
                    paging::copy_to_phys(f + off, &bytes[done..done + n]);
                }
                done += n;
            }
        }
        let mut va = STACK_TOP - pd.stack_size;
        while va < STACK_TOP {
            if let Some((f, _)) = space.translate(va) {
                paging::zero_frame(f);
            }
            va += PAGE;
        }
        paging::zero_frame(self.pds[i].ipc_frame);
        // A fresh instance gets its IRQs enabled again (an IRQ masked while
        // the old instance had not acknowledged it would stay off forever).
        for n in 0..pd.irqs.len() {
            let irq = self.plan.pds[i].irqs[n];
            self.set_irq_masked(&irq, false);
        }
        let entry = pd.entry;
        let s = &mut self.pds[i];
        s.ctx = TrapFrame::user(entry, STACK_TOP - 8);
        s.state = State::Ready;
        s.pending_notify = 0;
        s.serving = None;
        if !s.line_start {
            // The old instance left a line unfinished: end it.
            kprint!("\n");
            s.line_start = true;
        }
        self.sched.set_donor(i, None);
        self.sched.set_runnable(i, true);
    }

    fn now_us(&self) -> u64 {
        let c = cpu::rdtsc();
        (c / self.tsc_khz.max(1)).saturating_mul(1000)
            + (c % self.tsc_khz.max(1)) * 1000 / self.tsc_khz.max(1)
    }

    fn account(&mut self) {
        let now = cpu::rdtsc();
        let cycles = now.wrapping_sub(self.last_tsc) + self.carry;
        self.last_tsc = now;
        let per_us = (self.tsc_khz / 1000).max(1);
        self.carry = cycles % per_us;
        if let Some(c) = self.current {
            self.sched.charge(c, cycles / per_us);
        }
        let now_us = self.now_us();
        self.sched.refill(now_us);
    }

    fn name(&self, i: usize) -> &str {
        self.plan.pds[i].name.as_str()
    }

    /// Picks the next PD and loads its context into `frame`; false = idle.
    fn pick_and_load(&mut self, frame: &mut TrapFrame) -> bool {
        self.account();
        let Some(next) = self.sched.pick() else {
            self.current = None;
            return false;
        };
        self.current = Some(next);
        if self.loaded != Some(next) {
            if let Some(old) = self.loaded {
                for io in &self.plan.pds[old].ioports {
                    gdt::set_io_ports(io.base, io.size, false);
                }
            }
            for io in &self.plan.pds[next].ioports {
                gdt::set_io_ports(io.base, io.size, true);
            }
            self.pds[next].space.activate(next as u16 + 1);
            self.loaded = Some(next);
        }
        *frame = self.pds[next].ctx;
        true
    }

    fn block(&mut self, i: usize, state: State) {
        self.pds[i].state = state;
        self.sched.set_runnable(i, false);
    }

    fn wake(&mut self, i: usize) {
        self.pds[i].state = State::Ready;
        self.sched.set_runnable(i, true);
    }

    /// Tries to hand PD `i` (in `Recv`) its next event; true if delivered.
    fn deliver(&mut self, i: usize) -> bool {
        if !matches!(self.pds[i].state, State::Recv | State::Guest) {
            return false;
        }
        // 1. Faults of children.
        let pf = self.pds[i].pending_faults;
        if pf != 0 {
            let child = pf.trailing_zeros() as usize;
            self.pds[i].pending_faults &= !(1 << child);
            let (kind, addr, rip) = self.pds[child].fault;
            let id = self.plan.pds[child].child_id as u64;
            let c = &mut self.pds[i].ctx;
            c.rax = Error::Ok as u64;
            c.rdi = Event::Fault as u64;
            c.rsi = id;
            c.rdx = kind as u64;
            c.r8 = addr;
            c.r9 = rip;
            self.wake(i);
            return true;
        }
        // 2. PPCs waiting for this PD, highest priority caller first.
        let mut best: Option<usize> = None;
        for c in 0..self.plan.pds.len() {
            if let State::Calling {
                callee,
                served: false,
            } = self.pds[c].state
            {
                if callee == i
                    && best.is_none_or(|b| self.plan.pds[c].priority > self.plan.pds[b].priority)
                {
                    best = Some(c);
                }
            }
        }
        if let Some(caller) = best {
            if let State::Calling { callee, .. } = self.pds[caller].state {
                self.pds[caller].state = State::Calling {
                    callee,
                    served: true,
                };
            }
            let info = MessageInfo::from_raw(self.pds[caller].ctx.rsi);
            let ch = self.pds[caller].ctx.rdi;
            let peer = caps::call_target(&self.plan, caller, ch)
                .map(|p| p.id)
                .unwrap_or(0);
            self.copy_mrs(caller, i, info.count());
            self.pds[i].serving = Some(caller);
            if self.plan.pds[i].passive {
                self.sched.set_donor(i, Some(caller));
            }
            let c = &mut self.pds[i].ctx;
            c.rax = Error::Ok as u64;
            c.rdi = Event::Protected as u64;
            c.rsi = peer as u64;
            c.rdx = info.raw();
            self.wake(i);
            return true;
        }
        // 3. Notifications (a passive PD gets them only when it runs anyway).
        let bits = self.pds[i].pending_notify;
        if bits != 0 && !self.plan.pds[i].passive {
            self.pds[i].pending_notify = 0;
            let c = &mut self.pds[i].ctx;
            c.rax = Error::Ok as u64;
            c.rdi = Event::Notified as u64;
            c.rsi = bits;
            self.wake(i);
            return true;
        }
        // 4. Nothing to deliver: a VMM with a runnable vCPU runs its guest.
        if self.pds[i].state == State::Recv && crate::vm::runnable(i) {
            self.pds[i].state = State::Guest;
            self.sched.set_runnable(i, true);
        }
        false
    }

    /// Runs the guest of PD `i` (in `Guest`) until its next exit or a host
    /// interrupt; an exit becomes the PD's fault event.
    fn run_guest(&mut self, i: usize) {
        // The guest runs on its VMM's budget: VT-x's preemption timer ends
        // the run where that budget would (the tick usually comes first).
        let left_us = self.sched.remaining(self.sched.budget_owner(i));
        crate::vm::set_guest_budget(left_us.saturating_mul(self.tsc_khz) / 1000);
        match crate::vm::enter(i, self.pds[i].ipc_frame) {
            crate::vm::Entered::Exit(id) => {
                let c = &mut self.pds[i].ctx;
                c.rax = Error::Ok as u64;
                c.rdi = Event::Fault as u64;
                c.rsi = bulkhead_abi::vcpu::VCPU_FAULT_BIT | id as u64;
                c.rdx = 0;
                c.r8 = 0;
                c.r9 = 0;
                self.pds[i].vcpu_reply = Some(id);
                self.wake(i);
            }
            crate::vm::Entered::Interrupted => {}
            crate::vm::Entered::Idle => self.block(i, State::Recv),
        }
    }

    /// Notifies every PD whose one-shot timer has expired.
    fn expire_timers(&mut self) {
        let now = cpu::rdtsc();
        for i in 0..self.plan.pds.len() {
            let d = self.pds[i].deadline;
            if d != 0 && now >= d {
                self.pds[i].deadline = 0;
                self.signal(i, bulkhead_abi::TIMER_CHANNEL as u8);
            }
        }
    }

    fn copy_mrs(&mut self, from: usize, to: usize, count: usize) {
        let n = count.min(bulkhead_abi::MAX_MESSAGE_REGISTERS) * 8;
        let mut buf = [0u8; bulkhead_abi::MAX_MESSAGE_REGISTERS * 8];
        crate::arch::read_phys(self.pds[from].ipc_frame, &mut buf[..n]);
        paging::copy_to_phys(self.pds[to].ipc_frame, &buf[..n]);
    }

    /// Masks or unmasks one IRQ (an IOAPIC pin, or an MSI that supports it).
    fn set_irq_masked(&self, irq: &plan::Irq, masked: bool) {
        match (irq.msi, self.msi[irq.vector as usize]) {
            (Some(bdf), Some(msi)) => pci::set_masked(bdf, msi, masked),
            (Some(_), None) => {}
            (None, _) => apic::route(irq.pin, irq.vector, irq.level, irq.active_low, masked),
        }
    }

    /// PD `i` is stopped for good: every PD still waiting to call it gets
    /// `CalleeUnavailable` instead of waiting forever.
    fn fail_callers_of(&mut self, i: usize) {
        for c in 0..self.plan.pds.len() {
            if let State::Calling { callee, .. } = self.pds[c].state {
                if callee == i {
                    self.pds[c].ctx.rax = Error::CalleeUnavailable as u64;
                    self.wake(c);
                }
            }
        }
    }

    fn signal(&mut self, target: usize, id: u8) {
        self.pds[target].pending_notify |= 1 << id;
        self.deliver(target);
    }

    /// PD `i` faulted: stop it and tell its parent, or report it.
    fn fault(&mut self, i: usize, kind: FaultKind, addr: u64) {
        let rip = self.pds[i].ctx.rip;
        self.pds[i].fault = (kind, addr, rip);
        self.sched.set_donor(i, None);
        // A caller waiting on this PD's reply gets an error instead.
        if let Some(caller) = self.pds[i].serving.take() {
            if let State::Calling { callee, .. } = self.pds[caller].state {
                if callee == i {
                    self.pds[caller].ctx.rax = Error::CalleeUnavailable as u64;
                    self.wake(caller);
                }
            }
        }
        match caps::fault_route(&self.plan, i) {
            caps::FaultRoute::Parent { parent, .. } => {
                self.block(i, State::Faulted);
                self.pds[parent].pending_faults |= 1 << i;
                self.deliver(parent);
            }
            caps::FaultRoute::StopAndReport => {
                self.block(i, State::Stopped);
                self.fail_callers_of(i);
                kprintln!(
                    "bulkhead: PD '{}' stopped: {} at address {:#x}, RIP {:#x} (no parent to handle it)",
                    self.name(i),
                    kind.name(),
                    addr,
                    rip
                );
            }
        }
    }

    fn user_fault_kind(&mut self, i: usize, f: &TrapFrame) -> (FaultKind, u64) {
        match f.vector {
            14 => {
                let addr = cpu::cr2();
                let kind = if f.error & 0x10 != 0 {
                    FaultKind::ExecFault
                } else if f.error & 0x2 != 0 {
                    FaultKind::WriteFault
                } else {
                    FaultKind::ReadFault
                };
                (kind, addr)
            }
            13 => match self.io_port_of(i, f) {
                Some(port) => (FaultKind::IoPort, port as u64),
                None => (FaultKind::GeneralProtection, f.rip),
            },
            6 | 7 => (FaultKind::InvalidOpcode, f.rip),
            0 => (FaultKind::Divide, f.rip),
            _ => (FaultKind::OtherException, f.vector),
        }
    }

    /// If the #GP was an `in`/`out`, the port it named.
    fn io_port_of(&self, i: usize, f: &TrapFrame) -> Option<u16> {
        let mut code = [0u8; 2];
        self.pds[i].space.copy_from_user(f.rip, &mut code).ok()?;
        let (op, imm) = if code[0] == 0x66 {
            (code[1], None)
        } else {
            (code[0], Some(code[1]))
        };
        match op {
            0xe4..=0xe7 => {
                let mut b = [0u8; 3];
                self.pds[i].space.copy_from_user(f.rip, &mut b).ok()?;
                Some(imm.unwrap_or(b[2]) as u16)
            }
            0xec..=0xef | 0x6c..=0x6f => Some(f.rdx as u16),
            _ => None,
        }
    }

    fn syscall(&mut self, i: usize) {
        let ctx = self.pds[i].ctx;
        let Some(call) = Syscall::from_raw(ctx.rax) else {
            // VM calls have their own number range, off the IPC hot path.
            if let Some(c) = bulkhead_abi::vcpu::VmCall::from_raw(ctx.rax) {
                let args = [ctx.rdi, ctx.rsi, ctx.rdx, ctx.r8];
                match crate::vm::call(i, c, args) {
                    crate::vm::Outcome::Done(e, v) => {
                        self.pds[i].ctx.rax = e as u64;
                        self.pds[i].ctx.rdi = v;
                    }
                    crate::vm::Outcome::NotYours(id) => self.fault(i, FaultKind::Capability, id),
                }
                return;
            }
            return self.fault(i, FaultKind::BadSyscall, ctx.rax);
        };
        let ret = |k: &mut Kernel, e: Error| k.pds[i].ctx.rax = e as u64;
        match call {
            Syscall::DebugPuts => {
                let (ptr, len) = (ctx.rdi, ctx.rsi);
                if len > 4096 {
                    return self.fault(i, FaultKind::BadSyscall, ctx.rax);
                }
                let mut buf = [0u8; 256];
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(256) as usize;
                    if let Err(bad) = self.pds[i]
                        .space
                        .copy_from_user(ptr.wrapping_add(done), &mut buf[..n])
                    {
                        return self.fault(i, FaultKind::BadUserPointer, bad);
                    }
                    // Another PD's unfinished line ends here, so every line
                    // carries exactly one PD's name.
                    if let Some(last) = self.last_printer.filter(|&l| l != i) {
                        if !self.pds[last].line_start {
                            kprint!("\n");
                            self.pds[last].line_start = true;
                        }
                    }
                    self.last_printer = Some(i);
                    for &b in &buf[..n] {
                        if self.pds[i].line_start {
                            kprint!("{}| ", self.plan.pds[i].name.as_str());
                            self.pds[i].line_start = false;
                        }
                        // Printable ASCII, newline and tab only: a PD must not
                        // drive the terminal (escape sequences) or the log.
                        let c = match b {
                            b'\n' | b'\t' | 0x20..=0x7e => b as char,
                            _ => '?',
                        };
                        let _ = crate::arch::serial::Console.write_char(c);
                        if b == b'\n' {
                            self.pds[i].line_start = true;
                        }
                    }
                    done += n as u64;
                }
                ret(self, Error::Ok);
            }
            Syscall::Notify => match caps::notify_target(&self.plan, i, ctx.rdi) {
                Ok(peer) => {
                    ret(self, Error::Ok);
                    self.signal(peer.pd, peer.id);
                }
                Err(_) => self.fault(i, FaultKind::Capability, ctx.rdi),
            },
            Syscall::PpCall => {
                let peer = match caps::call_target(&self.plan, i, ctx.rdi) {
                    Ok(p) => p,
                    Err(_) => return self.fault(i, FaultKind::Capability, ctx.rdi),
                };
                let info = MessageInfo::from_raw(ctx.rsi);
                if !info.is_valid() {
                    return ret(self, Error::MessageTooLong);
                }
                if matches!(self.pds[peer.pd].state, State::Faulted | State::Stopped) {
                    return ret(self, Error::CalleeUnavailable);
                }
                self.block(
                    i,
                    State::Calling {
                        callee: peer.pd,
                        served: false,
                    },
                );
                self.deliver(peer.pd);
            }
            Syscall::ReplyRecv => {
                let vcpu_reply = self.pds[i].vcpu_reply.take();
                if ctx.rdi != 0 && self.pds[i].serving.is_none() {
                    // The reply to a vCPU's exit resumes that vCPU.
                    let Some(id) = vcpu_reply else {
                        return ret(self, Error::NothingToReply);
                    };
                    crate::vm::reply(i, id);
                } else if ctx.rdi != 0 {
                    let Some(caller) = self.pds[i].serving.take() else {
                        return ret(self, Error::NothingToReply);
                    };
                    let info = MessageInfo::from_raw(ctx.rsi);
                    if self.pds[caller].state
                        == (State::Calling {
                            callee: i,
                            served: true,
                        })
                    {
                        let info = if info.is_valid() {
                            info
                        } else {
                            MessageInfo::new(info.label(), 0)
                        };
                        self.copy_mrs(i, caller, info.count());
                        self.pds[caller].ctx.rax = Error::Ok as u64;
                        self.pds[caller].ctx.rdi = info.raw();
                        self.wake(caller);
                    }
                }
                self.pds[i].serving = None;
                self.sched.set_donor(i, None);
                self.block(i, State::Recv);
                self.deliver(i);
            }
            Syscall::IrqAck => match caps::irq_index(&self.plan, i, ctx.rdi) {
                Ok(n) => {
                    let irq = self.plan.pds[i].irqs[n];
                    self.set_irq_masked(&irq, false);
                    ret(self, Error::Ok);
                }
                Err(_) => self.fault(i, FaultKind::Capability, ctx.rdi),
            },
            Syscall::ChildRestart | Syscall::ChildStop => {
                let Some(child) = caps::child(&self.plan, i, ctx.rdi) else {
                    return ret(self, Error::NoSuchChild);
                };
                self.pds[i].pending_faults &= !(1 << child);
                if let Some(caller) = self.pds[child].serving.take() {
                    self.pds[caller].ctx.rax = Error::CalleeUnavailable as u64;
                    self.wake(caller);
                }
                if call == Syscall::ChildRestart {
                    crate::vm::reset_owner(child);
                    self.reset_pd(child);
                } else {
                    self.block(child, State::Stopped);
                    self.fail_callers_of(child);
                }
                ret(self, Error::Ok);
            }
            Syscall::Panic => self.fault(i, FaultKind::Panic, ctx.rip),
            Syscall::ReadTsc => {
                self.pds[i].ctx.rdi = cpu::rdtsc();
                ret(self, Error::Ok);
            }
            Syscall::TscHz => {
                self.pds[i].ctx.rdi = self.tsc_khz.saturating_mul(1000);
                ret(self, Error::Ok);
            }
            Syscall::SetTimeout => {
                self.pds[i].deadline = ctx.rdi;
                ret(self, Error::Ok);
            }
        }
    }

    fn irq(&mut self, vector: u8) {
        let owner = self.irq_owner[vector as usize];
        if owner == 0 {
            return;
        }
        let (pd, n) = (((owner - 1) >> 8) as usize, ((owner - 1) & 0xff) as usize);
        let irq = self.plan.pds[pd].irqs[n];
        // Masked until the PD acknowledges it.
        self.set_irq_masked(&irq, true);
        self.signal(pd, irq.id);
    }

    /// An interrupt that arrived while the kernel idled (ring 0).
    fn kernel_interrupt(&mut self, f: &TrapFrame) {
        match f.vector as u8 {
            apic::TIMER_VECTOR => {
                apic::rearm_timer();
                apic::eoi();
                self.sched.end_slice();
                self.expire_timers();
            }
            apic::SPURIOUS_VECTOR => {}
            v @ plan::MIN_IRQ_VECTOR..=plan::MAX_IRQ_VECTOR => {
                apic::eoi();
                self.irq(v);
            }
            _ => {
                kprintln!(
                    "bulkhead: KERNEL FAULT: vector {} error {:#x} at RIP {:#x}, CR2 {:#x}",
                    f.vector,
                    f.error,
                    f.rip,
                    cpu::cr2()
                );
                crate::arch::debug_exit(0x7d);
                cpu::halt_forever();
            }
        }
    }
}

/// Every trap lands here (see `arch::trap`).
pub fn trap(frame: &mut TrapFrame) {
    if !frame.came_from_user() {
        k().kernel_interrupt(frame);
        return;
    }
    {
        let k = k();
        let Some(i) = k.current else {
            // Cannot happen: user mode runs only with a current PD.
            return;
        };
        k.pds[i].ctx = *frame;
        match frame.vector {
            v if v == bulkhead_abi::SYSCALL_VECTOR as u64 => k.syscall(i),
            v if v == apic::TIMER_VECTOR as u64 => {
                apic::rearm_timer();
                apic::eoi();
                k.sched.end_slice();
                k.expire_timers();
            }
            v if v == apic::SPURIOUS_VECTOR as u64 => {}
            v if (plan::MIN_IRQ_VECTOR as u64..=plan::MAX_IRQ_VECTOR as u64).contains(&v) => {
                apic::eoi();
                k.irq(v as u8);
            }
            // An NMI is not the running PD's doing; a machine check is the
            // hardware's: neither may be blamed on a PD.
            2 => kprintln!("bulkhead: NMI (ignored)"),
            18 => {
                kprintln!("bulkhead: machine check; halting");
                crate::arch::debug_exit(0x7d);
                cpu::halt_forever();
            }
            0..=31 => {
                let (kind, addr) = k.user_fault_kind(i, frame);
                k.fault(i, kind, addr);
            }
            _ => {
                apic::eoi();
            }
        }
    }
    schedule(frame);
}

/// Picks the next PD to run in user mode and loads it into `frame`. A PD
/// waiting with a runnable vCPU runs its guest here, in the kernel's loop:
/// after each guest turn interrupts that ended it are taken, and the choice
/// is made again.
fn schedule(frame: &mut TrapFrame) {
    loop {
        let picked = {
            let k = k();
            match k.pick_and_load(frame).then_some(k.current).flatten() {
                Some(i) if k.pds[i].state == State::Guest => {
                    k.run_guest(i);
                    None
                }
                Some(_) => return,
                None => Some(()),
            }
        };
        match picked {
            // Idle: wait for an interrupt.
            Some(()) => cpu::wait_for_interrupt(),
            // After a guest turn: take what interrupted it.
            None => cpu::take_interrupts(),
        }
    }
}
