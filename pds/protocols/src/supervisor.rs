//! Reports to the supervisor: alerts, faults a PD observed in what it
//! manages, and log records. Any PD → supervisor, one way.
//!
//! The supervisor learns of faults of its *children* from the kernel, not
//! from here; [`Report::Fault`] is for faults a PD sees in something it runs
//! (the VMM's guest, a firmware container).

use heapless::String;
use serde::{Deserialize, Serialize};

use crate::envelope::{Message, ProtocolId};

/// Labels of the protected calls to the supervisor, and of its replies.
/// Every PD that calls the supervisor (and the supervisor) takes them from
/// here, so the two ends cannot disagree.
pub mod calls {
    /// A child's "I am up" call.
    pub const LABEL_UP: u64 = 1;
    /// The VMM's "the firmware told me to start the guest" call.
    pub const LABEL_GUEST_START: u64 = 2;
    /// A `Report` carried in message registers.
    pub const LABEL_REPORT: u64 = 3;
    /// Reply: accepted.
    pub const REPLY_OK: u64 = 0;
    /// Reply: the request was malformed or unknown (and counted).
    pub const REPLY_REJECTED: u64 = 1;
    /// Reply to the VMM's "I am up" when the firmware's go came before: the
    /// VMM was restarted after its guest had started, so it starts the
    /// guest again at once instead of waiting for a notification that will
    /// not come twice.
    pub const REPLY_START_GUEST: u64 = 2;
}

/// Maximum bytes of free text in an alert.
pub const ALERT_DETAIL_LEN: usize = 64;
/// Maximum bytes of text in one log record.
pub const LOG_TEXT_LEN: usize = 96;
/// Slot size of a ring of reports (the monitor's `alerts` ring): both ends
/// build the ring with it. [`Report::MAX_SIZE`] plus the ring's 16-byte
/// slot header, rounded up to a cache-friendly 128.
pub const REPORT_SLOT: usize = 128;

/// How urgent a report is.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Severity {
    /// For the record.
    Info,
    /// Unexpected but contained.
    Warning,
    /// Integrity or safety is at stake.
    Critical,
}

/// What an alert is about.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum AlertKind {
    /// Kernel code or read-only data of the guest changed.
    IntegrityViolation,
    /// A system-call table entry or MSR (LSTAR...) points outside the kernel.
    SyscallHook,
    /// A process or module the profile does not explain.
    UnexpectedProcess,
    /// Control flow left the allowed graph (Intel PT check).
    ControlFlow,
    /// The gateway denied a request by policy.
    PolicyDenied,
    /// A channel peer sent records that were rejected.
    ChannelGarbage,
}

/// An alert raised by a PD.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Alert {
    /// How urgent.
    pub severity: Severity,
    /// What about.
    pub kind: AlertKind,
    /// A number the kind defines (an address, a CAN id, a count).
    pub subject: u64,
    /// Short free text for a person.
    pub detail: String<ALERT_DETAIL_LEN>,
}

/// What went wrong in the thing a PD manages.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultKind {
    /// A page fault at `addr` with instruction pointer `ip`.
    PageFault {
        /// The faulting address.
        addr: u64,
        /// The faulting instruction.
        ip: u64,
        /// Whether the access was a write.
        write: bool,
    },
    /// Any other CPU exception.
    Exception {
        /// The exception vector (0..32).
        vector: u8,
        /// The faulting instruction.
        ip: u64,
    },
    /// Ran out of its budget (fuel, time).
    BudgetExhausted,
    /// Stopped itself with an error code.
    Exited(u32),
}

/// A fault a PD observed in something it runs.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fault {
    /// Which of the reporter's things (vCPU, container index).
    pub unit: u16,
    /// What happened.
    pub kind: FaultKind,
    /// Whether the reporter restarted it.
    pub restarted: bool,
}

/// Log level of a [`Log`] record.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// Errors.
    Error,
    /// Warnings.
    Warn,
    /// Information.
    Info,
    /// Debugging detail.
    Debug,
}

/// One log line.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Log {
    /// Level.
    pub level: Level,
    /// The text.
    pub text: String<LOG_TEXT_LEN>,
}

/// A report to the supervisor.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub enum Report {
    /// An alert.
    Alert(Alert),
    /// A fault in something the reporter runs.
    Fault(Fault),
    /// A log record.
    Log(Log),
}

impl Message for Report {
    const PROTOCOL: ProtocolId = ProtocolId::SupervisorReport;
    const VERSION: u16 = 1;
    /// Worst case is the longest log line: header 4, variant 1, level 1,
    /// length 1, text 96.
    const MAX_SIZE: usize = 103;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::check_bound;

    fn full<const N: usize>(c: char) -> String<N> {
        let mut s = String::new();
        while s.push(c).is_ok() {}
        s
    }

    #[test]
    fn worst_cases_fit_max_size() {
        let alert = Report::Alert(Alert {
            severity: Severity::Critical,
            kind: AlertKind::ChannelGarbage,
            subject: u64::MAX,
            detail: full('x'),
        });
        let fault = Report::Fault(Fault {
            unit: u16::MAX,
            kind: FaultKind::PageFault {
                addr: u64::MAX,
                ip: u64::MAX,
                write: true,
            },
            restarted: true,
        });
        let log = Report::Log(Log {
            level: Level::Debug,
            text: full('y'),
        });
        let sizes = [check_bound(&alert), check_bound(&fault), check_bound(&log)];
        // The bound is tight: the largest variant meets it exactly.
        assert_eq!(sizes.iter().max(), Some(&Report::MAX_SIZE));
    }
}
