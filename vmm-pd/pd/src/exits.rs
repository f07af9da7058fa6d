//! What the VMM does with each vCPU exit.
//!
//! Design rules: [`Machine::handle_exit`] gets the exit and two views of
//! the world — the vCPU ([`Cpu`], the kernel's VM calls in the PD, a double
//! in tests) and the emulated board ([`Board`], vmm-core's device models
//! and CPUID/MSR policy) — and answers [`Verdict::Resume`] (the reply
//! resumes the vCPU) or [`Verdict::Stop`] with the reason. Every emulated
//! instruction is skipped by the length the kernel reports; an exit without
//! one that should have one stops the guest rather than loop on it.

use bulkhead_abi::vcpu::{EventType, ExitMessage, ExitReason, Gpr, Injection, Register, VmError};

use crate::console::Console;
use crate::stats::ExitStats;

/// The vCPU as the VMM drives it.
pub trait Cpu {
    /// Reads a register.
    fn read(&mut self, r: Register) -> Result<u64, VmError>;
    /// Writes a register.
    fn write(&mut self, r: Register, v: u64) -> Result<(), VmError>;
    /// Queues an event.
    fn inject(&mut self, i: Injection) -> Result<(), VmError>;
}

/// The kernel's vCPU (the PD's VM calls) is the real one.
impl Cpu for bulkhead_microkit::vcpu::Vcpu {
    fn read(&mut self, r: Register) -> Result<u64, VmError> {
        bulkhead_microkit::vcpu::Vcpu::read(*self, r)
    }
    fn write(&mut self, r: Register, v: u64) -> Result<(), VmError> {
        bulkhead_microkit::vcpu::Vcpu::write(*self, r, v)
    }
    fn inject(&mut self, i: Injection) -> Result<(), VmError> {
        bulkhead_microkit::vcpu::Vcpu::inject(*self, i)
    }
}

pub use vmm_core::msr::{ReadAction, WriteAction};

/// EFER's number: its writes need the vCPU's current EFER.
const EFER: u32 = 0xc000_0080;

/// The emulated board: device models behind port I/O, their interrupt
/// controller, timers, the guest's UART output, and the CPUID/MSR policy.
pub trait Board {
    /// An `in` of `size` bytes.
    fn io_in(&mut self, port: u16, size: u8) -> u32;
    /// An `out`.
    fn io_out(&mut self, port: u16, size: u8, value: u32);
    /// Brings the timers to `now_ns`, raising their interrupts.
    fn advance(&mut self, now_ns: u64);
    /// When the next timer interrupt is due.
    fn next_event_ns(&self) -> Option<u64>;
    /// The vector the interrupt controller would deliver now.
    fn pending_vector(&self) -> Option<u8>;
    /// The guest took that vector (the INTA cycle).
    fn acknowledge(&mut self);
    /// Moves the UART's output into `buf`; returns how many bytes.
    fn drain_output(&mut self, buf: &mut [u8]) -> usize;
    /// The guest's answer to `cpuid`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// An `rdmsr` (the MSR policy's decision).
    fn msr_read(&mut self, msr: u32) -> ReadAction;
    /// A `wrmsr`, given the vCPU's current EFER (read only for EFER).
    fn msr_write(&mut self, msr: u32, value: u64, efer: u64) -> WriteAction;
}

/// Whether the vCPU goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Reply: the vCPU resumes.
    Resume,
    /// The guest's run ends; why.
    Stop(StopReason),
}

/// Why the VMM stopped a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest triple-faulted.
    TripleFault,
    /// The hardware refused its state (vendor code).
    EntryFailure(u64),
    /// It touched guest-physical memory outside its RAM (address).
    OutsideRam(u64),
    /// An exit the VMM cannot complete (vendor code, or 0).
    Unhandled(u64),
    /// A VM call the VMM made was refused.
    Kernel(VmError),
    /// The guest asked the board for a reset (keyboard controller, port
    /// 0x92 or 0xcf9), as Linux does to reboot.
    ResetRequested,
}

impl core::fmt::Display for StopReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TripleFault => write!(f, "triple fault"),
            Self::EntryFailure(c) => write!(f, "entry failure (code {c:#x})"),
            Self::OutsideRam(a) => write!(f, "access to {a:#x}, outside guest RAM"),
            Self::Unhandled(c) => write!(f, "unhandled exit (code {c:#x})"),
            Self::Kernel(e) => write!(f, "VM call refused: {e:?}"),
            Self::ResetRequested => write!(f, "the guest asked for a reset"),
        }
    }
}

impl From<VmError> for StopReason {
    fn from(e: VmError) -> Self {
        Self::Kernel(e)
    }
}

const GP: Injection = Injection {
    vector: 13,
    kind: EventType::Exception,
    error_code: Some(0),
};
const UD: Injection = Injection {
    vector: 6,
    kind: EventType::Exception,
    error_code: None,
};

/// One VM's exit handling state.
pub struct Machine<B: Board> {
    /// The emulated board.
    pub board: B,
    /// The guest's console.
    pub console: Console,
    /// Exits by reason.
    pub stats: ExitStats,
    /// String I/O (`ins`/`outs`) exits, answered with #UD: the devices
    /// emulated here are driven by single `in`/`out` by Linux.
    pub string_io: u64,
    /// MSR accesses refused with #GP.
    pub refused_msrs: u64,
}

fn gpr(g: Gpr) -> Register {
    Register::Gpr(g)
}

impl<B: Board> Machine<B> {
    /// A machine around `board`.
    pub fn new(board: B) -> Self {
        Self {
            board,
            console: Console::new(),
            stats: ExitStats::default(),
            string_io: 0,
            refused_msrs: 0,
        }
    }

    fn skip(cpu: &mut impl Cpu, exit: &ExitMessage) -> Result<Verdict, StopReason> {
        if exit.insn_len == 0 {
            return Ok(Verdict::Stop(StopReason::Unhandled(0)));
        }
        cpu.write(Register::Rip, exit.rip.wrapping_add(exit.insn_len as u64))?;
        Ok(Verdict::Resume)
    }

    /// Handles one exit at time `now_ns`; `emit` gets every complete line
    /// of guest console output. Returns what to do with the vCPU.
    pub fn handle_exit(
        &mut self,
        cpu: &mut impl Cpu,
        exit: &ExitMessage,
        now_ns: u64,
        emit: impl FnMut(&[u8]),
    ) -> Verdict {
        self.stats.count(&exit.reason);
        self.board.advance(now_ns);
        let v = match self.dispatch(cpu, exit) {
            Ok(v) => v,
            Err(stop) => Verdict::Stop(stop),
        };
        self.flush_console(emit);
        v
    }

    /// Moves the guest's UART output to the console.
    pub fn flush_console(&mut self, mut emit: impl FnMut(&[u8])) -> bool {
        let mut buf = [0u8; 128];
        let mut ready = false;
        loop {
            let n = self.board.drain_output(&mut buf);
            if n == 0 {
                return ready;
            }
            ready |= self.console.push(&buf[..n], &mut emit);
        }
    }

    /// Hands the interrupt controller's pending vector to the vCPU if it
    /// has room for one (the kernel delivers it when the guest can take
    /// it); true if one was queued.
    pub fn deliver_interrupt(&mut self, cpu: &mut impl Cpu) -> bool {
        let Some(vector) = self.board.pending_vector() else {
            return false;
        };
        match cpu.inject(Injection {
            vector,
            kind: EventType::External,
            error_code: None,
        }) {
            Ok(()) => {
                self.board.acknowledge();
                true
            }
            // One is still waiting for the guest: this one stays pending in
            // the controller until the next chance.
            Err(_) => false,
        }
    }

    fn dispatch(&mut self, cpu: &mut impl Cpu, exit: &ExitMessage) -> Result<Verdict, StopReason> {
        match exit.reason {
            ExitReason::Io { string: true, .. } => {
                self.string_io += 1;
                cpu.inject(UD)?;
                Ok(Verdict::Resume)
            }
            ExitReason::Io {
                port,
                size,
                write,
                data,
                ..
            } => {
                if write {
                    self.board.io_out(port, size, data);
                } else {
                    let value = self.board.io_in(port, size);
                    let rax = cpu.read(gpr(Gpr::Rax))?;
                    cpu.write(
                        gpr(Gpr::Rax),
                        vmm_core::devices::rax_after_in(rax, size, value),
                    )?;
                }
                Self::skip(cpu, exit)
            }
            ExitReason::Cpuid { leaf, subleaf } => {
                let [a, b, c, d] = self.board.cpuid(leaf, subleaf);
                cpu.write(gpr(Gpr::Rax), a as u64)?;
                cpu.write(gpr(Gpr::Rbx), b as u64)?;
                cpu.write(gpr(Gpr::Rcx), c as u64)?;
                cpu.write(gpr(Gpr::Rdx), d as u64)?;
                Self::skip(cpu, exit)
            }
            ExitReason::MsrRead { msr } => {
                let value = match self.board.msr_read(msr) {
                    ReadAction::Value(v) => v,
                    ReadAction::Register { reg, hide } => cpu.read(reg)? & !hide,
                    ReadAction::Refuse(_) => {
                        self.refused_msrs += 1;
                        cpu.inject(GP)?;
                        return Ok(Verdict::Resume);
                    }
                };
                cpu.write(gpr(Gpr::Rax), value & 0xffff_ffff)?;
                cpu.write(gpr(Gpr::Rdx), value >> 32)?;
                Self::skip(cpu, exit)
            }
            ExitReason::MsrWrite { msr, value } => {
                let efer = if msr == EFER {
                    cpu.read(Register::Efer)?
                } else {
                    0
                };
                match self.board.msr_write(msr, value, efer) {
                    WriteAction::Register { reg, value } => cpu.write(reg, value)?,
                    WriteAction::Ignore => {}
                    WriteAction::Refuse(_) => {
                        self.refused_msrs += 1;
                        cpu.inject(GP)?;
                        return Ok(Verdict::Resume);
                    }
                }
                Self::skip(cpu, exit)
            }
            // HLT is not intercepted by this VMM; if it is, the guest
            // waits for its next interrupt here.
            ExitReason::Hlt => Self::skip(cpu, exit),
            ExitReason::InterruptWindow | ExitReason::CrAccess { .. } => Ok(Verdict::Resume),
            ExitReason::Hypercall { .. } => {
                // No hypercalls are offered: as on hardware without them.
                cpu.inject(UD)?;
                Ok(Verdict::Resume)
            }
            ExitReason::Exception { vector, error_code } => {
                // Not intercepted by this VMM: give it back to the guest.
                cpu.inject(Injection {
                    vector,
                    kind: EventType::Exception,
                    error_code,
                })?;
                Ok(Verdict::Resume)
            }
            ExitReason::NestedPageFault { gpa, .. } => {
                Ok(Verdict::Stop(StopReason::OutsideRam(gpa)))
            }
            ExitReason::TripleFault => Ok(Verdict::Stop(StopReason::TripleFault)),
            ExitReason::EntryFailure { code } => Ok(Verdict::Stop(StopReason::EntryFailure(code))),
            ExitReason::Unknown { code } => Ok(Verdict::Stop(StopReason::Unhandled(code))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_abi::vcpu::Msr;
    use std::collections::HashMap;
    use std::vec::Vec;

    #[derive(Default)]
    struct FakeCpu {
        regs: HashMap<u64, u64>,
        injected: Vec<Injection>,
        busy: bool,
    }

    impl Cpu for FakeCpu {
        fn read(&mut self, r: Register) -> Result<u64, VmError> {
            Ok(*self.regs.get(&r.to_raw()).unwrap_or(&0))
        }
        fn write(&mut self, r: Register, v: u64) -> Result<(), VmError> {
            self.regs.insert(r.to_raw(), v);
            Ok(())
        }
        fn inject(&mut self, i: Injection) -> Result<(), VmError> {
            if self.busy && i.kind == EventType::External {
                return Err(VmError::Busy);
            }
            self.injected.push(i);
            Ok(())
        }
    }

    #[derive(Default)]
    struct FakeBoard {
        outs: Vec<(u16, u8, u32)>,
        out_bytes: Vec<u8>,
        pending: Option<u8>,
        acked: u32,
        now: u64,
    }

    impl Board for FakeBoard {
        fn io_in(&mut self, port: u16, _size: u8) -> u32 {
            if port == 0x3fd {
                0x60
            } else {
                0xffff_ffff
            }
        }
        fn io_out(&mut self, port: u16, size: u8, value: u32) {
            self.outs.push((port, size, value));
            if port == 0x3f8 {
                self.out_bytes.push(value as u8);
            }
        }
        fn advance(&mut self, now_ns: u64) {
            self.now = now_ns;
        }
        fn next_event_ns(&self) -> Option<u64> {
            None
        }
        fn pending_vector(&self) -> Option<u8> {
            self.pending
        }
        fn acknowledge(&mut self) {
            self.pending = None;
            self.acked += 1;
        }
        fn drain_output(&mut self, buf: &mut [u8]) -> usize {
            let n = self.out_bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&self.out_bytes[..n]);
            self.out_bytes.drain(..n);
            n
        }
        fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
            [leaf, subleaf, 0xc, 0xd]
        }
        fn msr_read(&mut self, msr: u32) -> ReadAction {
            match msr {
                0x10 => ReadAction::Value(0x1234_5678_9abc_def0),
                0xc000_0082 => ReadAction::Register {
                    reg: Register::Msr(Msr::Lstar),
                    hide: 0,
                },
                0xc000_0080 => ReadAction::Register {
                    reg: Register::Efer,
                    hide: 1 << 12,
                },
                _ => ReadAction::Refuse(vmm_core::msr::Refusal::Unknown),
            }
        }
        fn msr_write(&mut self, msr: u32, value: u64, efer: u64) -> WriteAction {
            match msr {
                0xc000_0082 => WriteAction::Register {
                    reg: Register::Msr(Msr::Lstar),
                    value,
                },
                0xc000_0080 => WriteAction::Register {
                    reg: Register::Efer,
                    value: value | (efer & (1 << 12)),
                },
                0x8b => WriteAction::Ignore,
                _ => WriteAction::Refuse(vmm_core::msr::Refusal::Unknown),
            }
        }
    }

    fn exit(reason: ExitReason, len: u8) -> ExitMessage {
        ExitMessage {
            vcpu: 0,
            reason,
            rip: 0x1000,
            insn_len: len,
        }
    }

    fn io(port: u16, size: u8, write: bool, data: u32) -> ExitReason {
        ExitReason::Io {
            port,
            size,
            write,
            string: false,
            rep: false,
            data,
        }
    }

    fn run(
        m: &mut Machine<FakeBoard>,
        cpu: &mut FakeCpu,
        e: ExitMessage,
    ) -> (Verdict, Vec<String>) {
        let mut lines = Vec::new();
        let v = m.handle_exit(cpu, &e, 42, |l| {
            lines.push(String::from_utf8_lossy(l).into_owned())
        });
        (v, lines)
    }

    fn rip(cpu: &mut FakeCpu) -> u64 {
        cpu.read(Register::Rip).unwrap()
    }

    #[test]
    fn out_reaches_the_board_and_skips_the_instruction() {
        let (mut m, mut cpu) = (Machine::new(FakeBoard::default()), FakeCpu::default());
        for b in b"hi\n" {
            let (v, _) = run(&mut m, &mut cpu, exit(io(0x3f8, 1, true, *b as u32), 1));
            assert_eq!(v, Verdict::Resume);
        }
        assert_eq!(m.board.outs.len(), 3);
        assert_eq!(rip(&mut cpu), 0x1001);
        assert_eq!(
            m.board.now, 42,
            "the board's clock advanced to the exit's time"
        );
        assert_eq!(m.console.lines, 1);
        assert_eq!(m.stats.get("io"), Some(3));
    }

    #[test]
    fn in_merges_into_rax_by_size() {
        let (mut m, mut cpu) = (Machine::new(FakeBoard::default()), FakeCpu::default());
        cpu.write(Register::Gpr(Gpr::Rax), 0xaaaa_bbbb_cccc_dddd)
            .unwrap();
        run(&mut m, &mut cpu, exit(io(0x3fd, 1, false, 0), 1));
        assert_eq!(
            cpu.read(Register::Gpr(Gpr::Rax)).unwrap(),
            0xaaaa_bbbb_cccc_dd60
        );
        run(&mut m, &mut cpu, exit(io(0x60, 2, false, 0), 2));
        assert_eq!(
            cpu.read(Register::Gpr(Gpr::Rax)).unwrap(),
            0xaaaa_bbbb_cccc_ffff
        );
        run(&mut m, &mut cpu, exit(io(0x60, 4, false, 0), 1));
        assert_eq!(
            cpu.read(Register::Gpr(Gpr::Rax)).unwrap(),
            0xffff_ffff,
            "32-bit in zero-extends"
        );
    }

    #[test]
    fn cpuid_answers_in_four_registers() {
        let (mut m, mut cpu) = (Machine::new(FakeBoard::default()), FakeCpu::default());
        run(
            &mut m,
            &mut cpu,
            exit(
                ExitReason::Cpuid {
                    leaf: 7,
                    subleaf: 1,
                },
                2,
            ),
        );
        let r = |cpu: &mut FakeCpu, g| cpu.read(Register::Gpr(g)).unwrap();
        assert_eq!(
            [
                r(&mut cpu, Gpr::Rax),
                r(&mut cpu, Gpr::Rbx),
                r(&mut cpu, Gpr::Rcx),
                r(&mut cpu, Gpr::Rdx)
            ],
            [7, 1, 0xc, 0xd]
        );
        assert_eq!(rip(&mut cpu), 0x1002);
    }

    #[test]
    fn msrs_answer_forward_or_fault() {
        let (mut m, mut cpu) = (Machine::new(FakeBoard::default()), FakeCpu::default());
        run(&mut m, &mut cpu, exit(ExitReason::MsrRead { msr: 0x10 }, 2));
        assert_eq!(cpu.read(Register::Gpr(Gpr::Rax)).unwrap(), 0x9abc_def0);
        assert_eq!(cpu.read(Register::Gpr(Gpr::Rdx)).unwrap(), 0x1234_5678);
        run(
            &mut m,
            &mut cpu,
            exit(
                ExitReason::MsrWrite {
                    msr: 0xc000_0082,
                    value: 0xffff_ffff_8160_0000,
                },
                2,
            ),
        );
        assert_eq!(
            cpu.read(Register::Msr(Msr::Lstar)).unwrap(),
            0xffff_ffff_8160_0000
        );
        run(
            &mut m,
            &mut cpu,
            exit(ExitReason::MsrRead { msr: 0xc000_0082 }, 2),
        );
        assert_eq!(cpu.read(Register::Gpr(Gpr::Rdx)).unwrap(), 0xffff_ffff);
        assert!(cpu.injected.is_empty());
        cpu.write(Register::Rip, 0x1000).unwrap();
        let (v, _) = run(
            &mut m,
            &mut cpu,
            exit(ExitReason::MsrRead { msr: 0xdead }, 2),
        );
        assert_eq!(v, Verdict::Resume);
        assert_eq!(cpu.injected, [GP]);
        assert_eq!(rip(&mut cpu), 0x1000, "a faulting rdmsr is not skipped");
        assert_eq!(m.refused_msrs, 1);
        // EFER: the write keeps the bit the current value has, the read hides it.
        cpu.write(Register::Efer, 0x1d00).unwrap();
        run(
            &mut m,
            &mut cpu,
            exit(
                ExitReason::MsrWrite {
                    msr: 0xc000_0080,
                    value: 0xd01,
                },
                2,
            ),
        );
        assert_eq!(cpu.read(Register::Efer).unwrap(), 0x1d01);
        run(
            &mut m,
            &mut cpu,
            exit(ExitReason::MsrRead { msr: 0xc000_0080 }, 2),
        );
        assert_eq!(cpu.read(Register::Gpr(Gpr::Rax)).unwrap(), 0xd01);
    }

    #[test]
    fn what_cannot_be_answered_stops_the_guest() {
        let (mut m, mut cpu) = (Machine::new(FakeBoard::default()), FakeCpu::default());
        let npf = ExitReason::NestedPageFault {
            gpa: 0xfee0_0000,
            access: bulkhead_abi::vcpu::Access::Read,
            present: false,
        };
        assert_eq!(
            run(&mut m, &mut cpu, exit(npf, 0)).0,
            Verdict::Stop(StopReason::OutsideRam(0xfee0_0000))
        );
        assert_eq!(
            run(&mut m, &mut cpu, exit(ExitReason::TripleFault, 0)).0,
            Verdict::Stop(StopReason::TripleFault)
        );
        assert_eq!(
            run(&mut m, &mut cpu, exit(io(0x80, 1, true, 0), 0)).0,
            Verdict::Stop(StopReason::Unhandled(0)),
            "an emulated instruction without a length cannot be skipped"
        );
        let (v, _) = run(
            &mut m,
            &mut cpu,
            exit(
                ExitReason::Io {
                    port: 0x3f8,
                    size: 1,
                    write: true,
                    string: true,
                    rep: true,
                    data: 0,
                },
                2,
            ),
        );
        assert_eq!(v, Verdict::Resume);
        assert_eq!(cpu.injected, [UD]);
        assert_eq!(m.string_io, 1);
    }

    #[test]
    fn an_interrupt_waits_in_the_controller_while_the_vcpu_is_busy() {
        let (mut m, mut cpu) = (Machine::new(FakeBoard::default()), FakeCpu::default());
        m.board.pending = Some(0x30);
        cpu.busy = true;
        assert!(!m.deliver_interrupt(&mut cpu));
        assert_eq!(m.board.acked, 0);
        cpu.busy = false;
        assert!(m.deliver_interrupt(&mut cpu));
        assert_eq!(m.board.acked, 1);
        assert_eq!(cpu.injected[0].vector, 0x30);
        assert!(!m.deliver_interrupt(&mut cpu), "nothing pending now");
    }
}
