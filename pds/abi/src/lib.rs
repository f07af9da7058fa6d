//! The Bulkhead syscall ABI, shared by the kernel and every protection domain.
//!
//! Design rules: plain data only (no unsafe, no allocation, no panics); every
//! value that crosses the user/kernel boundary has one definition here, and
//! every decoder from a raw register value is total (unknown values map to
//! `None`, never to a panic).
//!
//! # Calling convention
//! A PD enters the kernel with `int 0x80` ([`SYSCALL_VECTOR`]). `rax` holds the
//! [`Syscall`] number, arguments go in `rdi`, `rsi`, `rdx`; the kernel returns
//! an [`Error`] code in `rax` (0 = success) and results in `rdi`, `rsi`, `rdx`,
//! `r8`. Message registers live in the PD's IPC buffer page, mapped at
//! [`IPC_BUFFER_VADDR`]; the kernel copies them between IPC buffers on
//! `ppcall` and on reply.
//!
//! A syscall that names a channel the PD does not hold, an unknown syscall
//! number, or a pointer outside the PD's mappings is not an error return: it
//! is a fault of the caller, delivered to its parent (CONVENTIONS.md §8).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod vcpu;

/// The interrupt vector PDs use to enter the kernel.
pub const SYSCALL_VECTOR: u8 = 0x80;

/// Number of message registers (words) a PPC or its reply may carry.
pub const MAX_MESSAGE_REGISTERS: usize = 64;

/// Highest channel id (Microkit's limit: ids 0..=62).
pub const MAX_CHANNEL_ID: u64 = 62;

/// The notification bit of the PD's own timer ([`Syscall::SetTimeout`]):
/// above every channel id `system.xml` may give.
pub const TIMER_CHANNEL: u64 = 63;

/// Where every PD's IPC buffer (message registers) is mapped, read/write.
pub const IPC_BUFFER_VADDR: u64 = 0x0000_7fff_ff00_0000;

/// The top of every PD's stack; the stack grows down from here, and the page
/// below its lowest page is an unmapped guard page.
pub const STACK_TOP: u64 = 0x0000_7fff_fe00_0000;

/// The lowest address no user mapping may reach (the end of the canonical
/// lower half is above this; the kernel reserves nothing below it).
pub const USER_TOP: u64 = 0x0000_8000_0000_0000;

/// Syscall numbers (in `rax`).
#[repr(u64)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Syscall {
    /// Print `rsi` bytes at `rdi` on the console, prefixed with the PD's name.
    DebugPuts = 1,
    /// Signal channel `rdi`.
    Notify = 2,
    /// Protected procedure call on channel `rdi` with message info `rsi`;
    /// returns the reply's message info in `rdi`.
    PpCall = 3,
    /// Reply (if `rdi` != 0, with message info `rsi`) to the PPC being
    /// handled, then wait for the next event. Returns an [`Event`] code in
    /// `rdi` and its payload in `rsi`, `rdx`, `r8`.
    ReplyRecv = 4,
    /// Re-enable the IRQ delivered on channel `rdi`.
    IrqAck = 5,
    /// Restart child `rdi` from its entry point with fresh data, bss and stack.
    ChildRestart = 6,
    /// Stop child `rdi` for good.
    ChildStop = 7,
    /// Read the time-stamp counter as the kernel sees it (returns in `rdi`).
    /// Used by benches; harmless since user code can run `rdtsc` anyway.
    ReadTsc = 8,
    /// The PD gives up: it faults with [`FaultKind::Panic`] (its runtime
    /// calls this from the panic handler after printing the message).
    Panic = 9,
    /// The TSC frequency in Hz that the kernel calibrated at boot against
    /// the PIT (returns in `rdi`). PDs time with `rdtsc` at this rate; the
    /// PIT itself stays the kernel's, so no PD needs a grant for it.
    TscHz = 10,
    /// Arm (`rdi` = TSC deadline) or cancel (`rdi` = 0) this PD's one-shot
    /// timer: at the deadline the kernel notifies the PD on
    /// [`TIMER_CHANNEL`] (at the resolution of the kernel's 1 ms tick).
    SetTimeout = 11,
}

impl Syscall {
    /// Decodes a raw syscall number.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::DebugPuts,
            2 => Self::Notify,
            3 => Self::PpCall,
            4 => Self::ReplyRecv,
            5 => Self::IrqAck,
            6 => Self::ChildRestart,
            7 => Self::ChildStop,
            8 => Self::ReadTsc,
            9 => Self::Panic,
            10 => Self::TscHz,
            11 => Self::SetTimeout,
            _ => return None,
        })
    }
}

/// Error codes returned in `rax`.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// Success.
    Ok = 0,
    /// The child id does not name a child of the caller.
    NoSuchChild = 1,
    /// `ReplyRecv` was asked to reply but no PPC is being handled.
    NothingToReply = 2,
    /// The callee of a PPC was stopped or faulted; no reply will come.
    CalleeUnavailable = 3,
    /// The message info carries more than [`MAX_MESSAGE_REGISTERS`] words.
    MessageTooLong = 4,
    /// The channel has no IRQ to acknowledge.
    NotAnIrq = 5,
}

impl Error {
    /// Decodes a raw error code; unknown codes are `None`.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => Self::Ok,
            1 => Self::NoSuchChild,
            2 => Self::NothingToReply,
            3 => Self::CalleeUnavailable,
            4 => Self::MessageTooLong,
            5 => Self::NotAnIrq,
            _ => return None,
        })
    }
}

/// What `ReplyRecv` woke up for (in `rdi`).
#[repr(u64)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// Notifications arrived: `rsi` is the bit set of channels (bit n = channel n).
    Notified = 1,
    /// A PPC arrived: `rsi` = channel, `rdx` = message info; the message
    /// registers are in the IPC buffer. Answer with `ReplyRecv`'s reply.
    Protected = 2,
    /// A child faulted: `rsi` = child id, `rdx` = [`FaultKind`] in bits 0..8
    /// and nothing else, `r8` = fault address, `r9` = the child's RIP.
    Fault = 3,
}

impl Event {
    /// Decodes a raw event code.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::Notified,
            2 => Self::Protected,
            3 => Self::Fault,
            _ => return None,
        })
    }
}

/// Why a PD faulted. The fault address is given beside it: the faulting
/// linear address for page faults, the port for I/O faults, the channel for
/// capability faults, the syscall number for bad syscalls, else the RIP.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultKind {
    /// Read of an address the PD has no readable mapping for.
    ReadFault = 1,
    /// Write to an unmapped or read-only address.
    WriteFault = 2,
    /// Instruction fetch from an unmapped or non-executable page.
    ExecFault = 3,
    /// General protection fault (privileged instruction, non-canonical address).
    GeneralProtection = 4,
    /// `in`/`out` on a port the PD was not granted.
    IoPort = 5,
    /// Invalid opcode (also SSE/x87 use: PDs are soft-float).
    InvalidOpcode = 6,
    /// Divide error.
    Divide = 7,
    /// Breakpoint, overflow, bound, alignment, or other exceptions.
    OtherException = 8,
    /// A syscall named a channel the PD does not hold for that operation
    /// (address = channel id).
    Capability = 9,
    /// Unknown syscall number or invalid argument (address = syscall number).
    BadSyscall = 10,
    /// A syscall passed a buffer outside the PD's readable mappings
    /// (address = the pointer).
    BadUserPointer = 11,
    /// The PD panicked (its runtime reported it and stopped).
    Panic = 12,
}

impl FaultKind {
    /// Decodes a raw fault kind.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::ReadFault,
            2 => Self::WriteFault,
            3 => Self::ExecFault,
            4 => Self::GeneralProtection,
            5 => Self::IoPort,
            6 => Self::InvalidOpcode,
            7 => Self::Divide,
            8 => Self::OtherException,
            9 => Self::Capability,
            10 => Self::BadSyscall,
            11 => Self::BadUserPointer,
            12 => Self::Panic,
            _ => return None,
        })
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadFault => "read fault",
            Self::WriteFault => "write fault",
            Self::ExecFault => "exec fault",
            Self::GeneralProtection => "general protection",
            Self::IoPort => "I/O port",
            Self::InvalidOpcode => "invalid opcode",
            Self::Divide => "divide error",
            Self::OtherException => "exception",
            Self::Capability => "capability",
            Self::BadSyscall => "bad syscall",
            Self::BadUserPointer => "bad user pointer",
            Self::Panic => "panic",
        }
    }
}

/// A PPC's message info: a label and the number of message registers used.
/// Encoded in one word: count in bits 0..7, label in bits 12..64.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MessageInfo {
    raw: u64,
}

impl MessageInfo {
    /// The largest label that fits.
    pub const MAX_LABEL: u64 = (1 << 52) - 1;

    /// A message with `label` (truncated to 52 bits) and `count` registers
    /// (clamped to [`MAX_MESSAGE_REGISTERS`]).
    pub const fn new(label: u64, count: usize) -> Self {
        let count = if count > MAX_MESSAGE_REGISTERS {
            MAX_MESSAGE_REGISTERS
        } else {
            count
        };
        Self {
            raw: ((label & Self::MAX_LABEL) << 12) | count as u64,
        }
    }
    /// From the raw register word.
    pub const fn from_raw(raw: u64) -> Self {
        Self { raw }
    }
    /// The raw register word.
    pub const fn raw(self) -> u64 {
        self.raw
    }
    /// The label.
    pub const fn label(self) -> u64 {
        self.raw >> 12
    }
    /// The number of message registers, as encoded (may exceed the limit
    /// in a raw value; the kernel rejects that).
    pub const fn count(self) -> usize {
        (self.raw & 0x7f) as usize
    }
    /// Whether bits 7..12 (reserved) are clear and the count is within limits.
    pub const fn is_valid(self) -> bool {
        self.raw & 0xf80 == 0 && self.count() <= MAX_MESSAGE_REGISTERS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_info_round_trips() {
        let m = MessageInfo::new(0xabc, 7);
        assert_eq!(m.label(), 0xabc);
        assert_eq!(m.count(), 7);
        assert!(m.is_valid());
        assert_eq!(MessageInfo::from_raw(m.raw()), m);
        assert_eq!(MessageInfo::new(1, 1000).count(), MAX_MESSAGE_REGISTERS);
        assert!(!MessageInfo::from_raw(65).is_valid());
        assert!(!MessageInfo::from_raw(0x100).is_valid());
    }

    #[test]
    fn decoders_are_total() {
        for raw in 0..300u64 {
            if let Some(s) = Syscall::from_raw(raw) {
                assert_eq!(s as u64, raw);
            }
            if let Some(e) = Error::from_raw(raw) {
                assert_eq!(e as u64, raw);
            }
            if let Some(k) = FaultKind::from_raw(raw) {
                assert_eq!(k as u64, raw);
                assert!(!k.name().is_empty());
            }
            if let Some(e) = Event::from_raw(raw) {
                assert_eq!(e as u64, raw);
            }
        }
        assert_eq!(Syscall::from_raw(0), None);
        assert_eq!(Syscall::from_raw(10), Some(Syscall::TscHz));
        assert_eq!(Syscall::from_raw(11), Some(Syscall::SetTimeout));
        assert_eq!(Syscall::from_raw(12), None);
        assert_eq!(FaultKind::from_raw(12), Some(FaultKind::Panic));
    }
}
