//! vm-loop/vmm: a test VMM written as a real one is — an event loop. Its
//! guest's exits arrive at `Handler::vcpu_exit` (Microkit's `fault` entry
//! for vCPUs) and the reply resumes the vCPU; its kernel timer arrives as a
//! notification while the guest runs. Checked, in order:
//!
//! 1. a CPUID exit answered from the handler (the guest sends the answer
//!    back by `out`);
//! 2. MSR pass-through: FS.base, which VMRUN switches, is passed and the
//!    guest's `wrmsr` does not exit, yet the VMM reads the value the guest
//!    wrote; passing the TSC MSR, which is not switched, is refused;
//! 3. the guest spins with interrupts off: the VMM's timer still fires (the
//!    guest cannot hold the CPU), its RIP is inside the spin loop; an
//!    external interrupt queued then is delivered only after the guest's
//!    `sti` (the handler sees the loop counter at 0), and a second one
//!    queued meanwhile is refused `Busy`;
//! 4. pause: a paused guest's memory counter stands still, and moves again
//!    after resume;
//! 5. reset: a reset guest starts where the VMM says; a triple fault stops
//!    it (`Run` then says `VcpuStopped`), a second reset reboots it.

#![cfg_attr(target_os = "none", no_std, no_main)]
// Taking the guest image between two linker symbols needs a raw slice.
#![allow(unsafe_code)]

use bulkhead_abi::vcpu::{
    EventType, ExitMessage, ExitReason, Gpr, Injection, Register, Segment, SegmentField, VmError,
};
use bulkhead_microkit::bytes::SharedBytes;
use bulkhead_microkit::vcpu::{self, Vcpu};
use bulkhead_microkit::{
    debug_println, protection_domain, set_timeout, shared_words, Channel, ChannelSet, Handler,
    Infallible,
};
use bulkhead_test_pds::{check, fail, pass};

bulkhead_microkit::setvar!(guest_ram);
bulkhead_microkit::setvar!(guest_ram_size);

const T: &str = "vm-loop";
const CODE: u64 = 0x1_0000;
const STACK: u64 = 0x8_0000;
const COUNTER: u64 = 0x7000;
const FS_BASE: u32 = 0xc000_0100;
const FS_VALUE: u64 = 0x1234_0000_5678;

core::arch::global_asm!(
    ".section .rodata.guest, \"a\"",
    ".global vmloop_guest_start",
    ".global vmloop_guest_end",
    ".global vmloop_spin_start",
    ".global vmloop_spin_end",
    ".global vmloop_triple",
    ".global vmloop_final",
    "vmloop_guest_start:",
    // 1. CPUID, answer sent back on port 0x500.
    "mov eax, 0x40000000",
    "xor ecx, ecx",
    "cpuid",
    "mov eax, ebx",
    "mov dx, 0x500",
    "out dx, eax",
    // 2. FS.base by wrmsr (passed through), then port 0x501.
    "mov ecx, 0xc0000100",
    "mov eax, 0x5678",
    "mov edx, 0x1234",
    "wrmsr",
    "mov dx, 0x501",
    "out dx, al",
    // 3. An IDT entry for vector 0x30 (IDT at 0x5000).
    "lea rax, [rip + 3f]",
    "mov rdi, 0x5300",
    "mov word ptr [rdi], ax",
    "mov word ptr [rdi + 2], 0x08",
    "mov word ptr [rdi + 4], 0x8e00",
    "shr rax, 16",
    "mov word ptr [rdi + 6], ax",
    "shr rax, 16",
    "mov dword ptr [rdi + 8], eax",
    "mov dword ptr [rdi + 12], 0",
    "lea rax, [rip + 5f]",
    "lidt [rax]",
    // Interrupts off, say so (port 0x502), then spin a long while.
    "cli",
    "mov ecx, 0x8000000",
    "mov dx, 0x502",
    "out dx, al",
    "vmloop_spin_start:",
    "2: dec ecx",
    "jnz 2b",
    "vmloop_spin_end:",
    "sti",
    "nop",
    // 4. Count for ever in memory.
    "4: inc qword ptr [0x7000]",
    "jmp 4b",
    // The interrupt handler: report ECX (0 once the spin is over).
    "3:",
    "mov eax, ecx",
    "mov dx, 0x503",
    "out dx, eax",
    "iretq",
    "5: .word 0xfff",
    ".quad 0x5000",
    // 5. After a reset: no IDT, #UD -> triple fault.
    "vmloop_triple:",
    "lea rax, [rip + 6f]",
    "lidt [rax]",
    "ud2",
    "6: .word 0",
    ".quad 0",
    // After the second reset: done.
    "vmloop_final:",
    "mov dx, 0x504",
    "out dx, al",
    "7: jmp 7b",
    "vmloop_guest_end:",
    ".text",
);

extern "C" {
    static vmloop_guest_start: u8;
    static vmloop_guest_end: u8;
    static vmloop_spin_start: u8;
    static vmloop_spin_end: u8;
    static vmloop_triple: u8;
    static vmloop_final: u8;
}

/// The guest-physical address of a label in the guest image.
fn gpa_of(label: *const u8) -> u64 {
    CODE + (label as u64 - (&raw const vmloop_guest_start) as u64)
}

fn guest_code() -> &'static [u8] {
    let start = &raw const vmloop_guest_start;
    let end = &raw const vmloop_guest_end;
    // SAFETY: both symbols delimit one read-only section of this image.
    unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Cpuid,
    FsBase,
    Spin,
    WaitTimer,
    Injected,
    Counting,
    Paused(u64),
    Resumed(u64),
    Rebooting,
    Final,
    Done,
}

struct Vmm {
    ram: SharedBytes,
    v: Vcpu,
    phase: Phase,
    msr_exits: u32,
}

fn ms_from_now(ms: u64) -> u64 {
    bulkhead_microkit::rdtsc() + bulkhead_microkit::tsc_hz() / 1000 * ms
}

fn set_regs(v: Vcpu, rip: u64) -> Result<(), VmError> {
    v.write(Register::Rip, rip)?;
    v.write(Register::Gpr(Gpr::Rsp), STACK)?;
    v.write(Register::Cr3, 0x1000)
}

impl Vmm {
    fn counter(&self) -> u64 {
        self.ram.read_u64(COUNTER as usize).unwrap_or(0)
    }

    fn skip(&self, m: &ExitMessage) -> bool {
        self.v
            .write(Register::Rip, m.rip + m.insn_len as u64)
            .is_ok()
    }

    /// Checks `ok`; on failure ends the test and holds the vCPU.
    fn check(&mut self, ok: bool, what: core::fmt::Arguments) -> bool {
        if !check(T, ok, what) {
            self.phase = Phase::Done;
        }
        ok
    }
}

fn init() -> Vmm {
    let Some(ram) = shared_words(&guest_ram, &guest_ram_size).map(SharedBytes::new) else {
        fail(T, format_args!("guest RAM not mapped"));
        panic!("no guest RAM");
    };
    let v = Vcpu(0);
    let mut vmm = Vmm {
        ram,
        v,
        phase: Phase::Cpuid,
        msr_exits: 0,
    };
    let g = &vmm.ram;
    let w = |gpa: u64, val: u64| g.write(gpa as usize, &val.to_le_bytes()).is_some();
    let mut ok = g.write(CODE as usize, guest_code()).is_some();
    // GDT: null, 64-bit code (0x08), data (0x10); page tables: 1 GiB
    // identity in 2 MiB pages.
    ok &= w(0x8, 0x00af_9b00_0000_ffff) && w(0x10, 0x00cf_9300_0000_ffff);
    ok &= w(0x1000, 0x2003) && w(0x2000, 0x3003);
    for i in 0..512u64 {
        ok &= w(0x3000 + i * 8, (i << 21) | 0x83);
    }
    if !vmm.check(ok, format_args!("guest image written")) {
        return vmm;
    }
    let passed = vcpu::set_msr_intercept(FS_BASE, false);
    let refused = vcpu::set_msr_intercept(0x10, false);
    if !vmm.check(
        passed.is_ok() && refused == Err(VmError::MsrNotSwitched),
        format_args!("MSR pass-through: FS.base {passed:?}, TSC {refused:?}"),
    ) {
        return vmm;
    }
    let started = set_regs(v, CODE).and_then(|()| v.resume());
    vmm.check(started.is_ok(), format_args!("start the vCPU: {started:?}"));
    debug_println!("guest started; serving it from the event loop");
    vmm
}

impl Handler for Vmm {
    type Error = Infallible;

    fn vcpu_exit(&mut self, v: Vcpu, m: ExitMessage) -> Result<bool, Self::Error> {
        let port = match m.reason {
            ExitReason::Io { port, data, .. } => Some((port, data)),
            ExitReason::MsrWrite { .. } | ExitReason::MsrRead { .. } => {
                self.msr_exits += 1;
                None
            }
            _ => None,
        };
        match (self.phase, port, m.reason) {
            (
                Phase::Cpuid,
                None,
                ExitReason::Cpuid {
                    leaf: 0x4000_0000, ..
                },
            ) => {
                let ok = v
                    .write(Register::Gpr(Gpr::Rbx), u32::from_le_bytes(*b"bulk") as u64)
                    .is_ok();
                Ok(self.check(ok && self.skip(&m), format_args!("answer CPUID")))
            }
            (Phase::Cpuid, Some((0x500, data)), _) => {
                let ok = self.check(
                    data == u32::from_le_bytes(*b"bulk"),
                    format_args!("CPUID answer echoed: {data:#x}"),
                );
                self.phase = Phase::FsBase;
                debug_println!("1. CPUID exit served by the vcpu_exit handler");
                Ok(ok && self.skip(&m))
            }
            (Phase::FsBase, Some((0x501, _)), _) => {
                let fs = v.read(Register::Segment(Segment::Fs, SegmentField::Base));
                let exits = self.msr_exits;
                let ok = self.check(
                    fs == Ok(FS_VALUE) && exits == 0,
                    format_args!("FS.base passed through: read {fs:x?}, MSR exits {exits}"),
                );
                debug_println!("2. wrmsr FS.base passed through without an exit; TSC MSR refused");
                self.phase = Phase::Spin;
                Ok(ok && self.skip(&m))
            }
            (Phase::Spin, Some((0x502, _)), _) => {
                set_timeout(ms_from_now(3));
                self.phase = Phase::WaitTimer;
                Ok(self.skip(&m))
            }
            (Phase::Injected, Some((0x503, ecx)), _) => {
                let ok = self.check(
                    ecx == 0,
                    format_args!("interrupt delivered during cli (ECX {ecx:#x})"),
                );
                debug_println!("3. the queued interrupt waited for the guest's sti");
                self.phase = Phase::Counting;
                set_timeout(ms_from_now(3));
                Ok(ok && self.skip(&m))
            }
            (Phase::Rebooting, None, ExitReason::TripleFault) => {
                let again = v.resume();
                let reset = v.reset();
                let ok = self.check(
                    again == Err(VmError::VcpuStopped) && reset.is_ok(),
                    format_args!("after a triple fault: run {again:?}, reset {reset:?}"),
                );
                let started =
                    set_regs(v, gpa_of(&raw const vmloop_final)).and_then(|()| v.resume());
                if ok && self.check(started.is_ok(), format_args!("reboot: {started:?}")) {
                    self.phase = Phase::Final;
                }
                Ok(false)
            }
            (Phase::Final, Some((0x504, _)), _) => {
                debug_println!("5. reset after a triple fault rebooted the guest");
                self.phase = Phase::Done;
                pass(T);
                Ok(false)
            }
            (phase, _, reason) => {
                fail(
                    T,
                    format_args!(
                        "unexpected exit in {phase:?}: {reason:?} at RIP {:#x}",
                        m.rip
                    ),
                );
                self.phase = Phase::Done;
                Ok(false)
            }
        }
    }

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(Channel::TIMER) {
            return Ok(());
        }
        let v = self.v;
        match self.phase {
            Phase::WaitTimer => {
                let rip = v.read(Register::Rip).unwrap_or(0);
                let (lo, hi) = (
                    gpa_of(&raw const vmloop_spin_start),
                    gpa_of(&raw const vmloop_spin_end),
                );
                if !self.check(
                    (lo..hi).contains(&rip),
                    format_args!("timer while the guest spins with IF=0: RIP {rip:#x}, loop {lo:#x}..{hi:#x}"),
                ) {
                    return Ok(());
                }
                let irq = |vector| Injection {
                    vector,
                    kind: EventType::External,
                    error_code: None,
                };
                let first = v.inject(irq(0x30));
                let second = v.inject(irq(0x31));
                self.check(
                    first.is_ok() && second == Err(VmError::Busy),
                    format_args!("queue interrupts: {first:?}, then {second:?}"),
                );
                self.phase = Phase::Injected;
            }
            Phase::Counting => {
                let r = v.pause();
                let c = self.counter();
                self.check(
                    r.is_ok() && c > 0,
                    format_args!("pause: {r:?}, counter {c}"),
                );
                self.phase = Phase::Paused(c);
                set_timeout(ms_from_now(5));
            }
            Phase::Paused(c) => {
                let now = self.counter();
                if !self.check(
                    now == c,
                    format_args!("a paused guest ran: counter {c} -> {now}"),
                ) {
                    return Ok(());
                }
                let r = v.resume();
                self.check(r.is_ok(), format_args!("resume: {r:?}"));
                self.phase = Phase::Resumed(c);
                set_timeout(ms_from_now(5));
            }
            Phase::Resumed(c) => {
                let now = self.counter();
                if !self.check(
                    now > c,
                    format_args!("a resumed guest did not run: counter {c} -> {now}"),
                ) {
                    return Ok(());
                }
                debug_println!(
                    "4. pause held the guest (counter {c}), resume let it run on ({now})"
                );
                let r = v.pause().and_then(|()| v.reset());
                let rip = v.read(Register::Rip);
                if !self.check(
                    r.is_ok() && rip == Ok(0),
                    format_args!("reset: {r:?}, RIP {rip:x?}"),
                ) {
                    return Ok(());
                }
                let started =
                    set_regs(v, gpa_of(&raw const vmloop_triple)).and_then(|()| v.resume());
                self.check(
                    started.is_ok(),
                    format_args!("restart after reset: {started:?}"),
                );
                self.phase = Phase::Rebooting;
            }
            _ => {}
        }
        Ok(())
    }
}

protection_domain!(init);
