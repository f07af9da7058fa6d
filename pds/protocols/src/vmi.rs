//! Between the VMI monitor and the VMM: the monitor asks for guest vCPU
//! state, pauses and resumes vCPUs and subscribes to events; the VMM answers
//! and streams the events. Two enums, one per direction.
//!
//! Every request carries a `tag` the monitor chooses; the VMM echoes it in
//! the matching [`VmmToMonitor::Reply`], so replies may be matched even when
//! events are interleaved with them.
//!
//! Both directions travel in typed rings (`vmi_requests`, `vmi_events` in
//! `system.xml`) whose slots are [`REQUEST_SLOT`] and [`EVENT_SLOT`] bytes:
//! both ends build their ring with these, so they cannot disagree.
//! docs/vmi-channel.md describes the whole exchange.
//!
//! Version 2 of [`VmmToMonitor`] added [`VmiError::Unreadable`] and
//! [`Event::GuestUp`].

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::envelope::{Message, ProtocolId};

/// Most registers one request may ask for (and one reply carry).
pub const MAX_REGS: usize = 8;

/// Slot size of the `vmi_requests` ring: [`MonitorToVmm::MAX_SIZE`] plus
/// the ring's 16-byte slot header, rounded up to a multiple of 8.
pub const REQUEST_SLOT: usize = 40;
/// Slot size of the `vmi_events` ring: [`VmmToMonitor::MAX_SIZE`] plus the
/// ring's 16-byte slot header, rounded up to a multiple of 8.
pub const EVENT_SLOT: usize = 112;

/// The vCPU id that means "every vCPU" in [`MonitorToVmm::Pause`] and
/// [`MonitorToVmm::Resume`].
pub const ALL_VCPUS: u8 = u8::MAX;

/// A guest register the monitor may read.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reg {
    /// Instruction pointer.
    Rip,
    /// Stack pointer.
    Rsp,
    /// Flags.
    Rflags,
    /// Control register 0.
    Cr0,
    /// Page-table base.
    Cr3,
    /// Control register 4.
    Cr4,
    /// Extended feature enable MSR.
    Efer,
    /// 64-bit system-call entry MSR.
    Lstar,
    /// System-call segment MSR.
    Star,
    /// SYSENTER entry MSR.
    SysenterEip,
    /// Interrupt descriptor table base.
    IdtrBase,
    /// Interrupt descriptor table limit.
    IdtrLimit,
    /// Global descriptor table base.
    GdtrBase,
    /// FS base.
    FsBase,
    /// GS base.
    GsBase,
    /// The MSR `swapgs` exchanges with GS base.
    KernelGsBase,
}

/// Events the monitor may subscribe to, as a bit set.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EventMask(pub u32);

impl EventMask {
    /// Writes to CR0, CR3 or CR4.
    pub const CR_WRITE: EventMask = EventMask(1 << 0);
    /// Writes to the MSRs above (LSTAR, STAR, SYSENTER, EFER...).
    pub const MSR_WRITE: EventMask = EventMask(1 << 1);
    /// A stealth breakpoint the monitor placed was hit.
    pub const BREAKPOINT: EventMask = EventMask(1 << 2);
    /// An access the monitor's EPT/NPT view forbids.
    pub const MEMORY_ACCESS: EventMask = EventMask(1 << 3);
    /// `lidt`/`lgdt` executed.
    pub const DESCRIPTOR_TABLE: EventMask = EventMask(1 << 4);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: EventMask) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Monitor → VMM.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub enum MonitorToVmm {
    /// Read registers of one vCPU.
    ReadRegs {
        /// Echoed in the reply.
        tag: u32,
        /// Which vCPU.
        vcpu: u8,
        /// Which registers, answered in this order.
        regs: Vec<Reg, MAX_REGS>,
    },
    /// Stop a vCPU (all of them with `vcpu == u8::MAX`).
    Pause {
        /// Echoed in the reply.
        tag: u32,
        /// Which vCPU.
        vcpu: u8,
    },
    /// Let a paused vCPU run again (all of them with `vcpu == u8::MAX`).
    Resume {
        /// Echoed in the reply.
        tag: u32,
        /// Which vCPU.
        vcpu: u8,
    },
    /// Replace the event subscription.
    Subscribe {
        /// Echoed in the reply.
        tag: u32,
        /// Events to deliver from now on; an empty mask unsubscribes.
        events: EventMask,
    },
}

/// Why the VMM refused a request.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmiError {
    /// No such vCPU.
    NoSuchVcpu,
    /// The vCPU must be paused for this.
    NotPaused,
    /// The event kind is not supported on this CPU (e.g. #VE on AMD).
    Unsupported,
    /// The VMM cannot read this register of this vCPU (not exposed by the
    /// kernel's vCPU interface, or the vCPU is stopped for good).
    Unreadable,
}

/// The answer to one request.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub enum Answer {
    /// Done.
    Ok,
    /// Register values, in the order asked.
    Regs(Vec<u64, MAX_REGS>),
    /// Refused.
    Err(VmiError),
}

/// An event the monitor subscribed to.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// A control register write: which (0, 3, 4), old and new value.
    CrWrite {
        /// Control register number.
        cr: u8,
        /// Before.
        old: u64,
        /// After.
        new: u64,
    },
    /// An MSR write.
    MsrWrite {
        /// MSR index.
        msr: u32,
        /// Value written.
        value: u64,
    },
    /// A stealth breakpoint at guest-physical `gpa` was hit at `rip`.
    Breakpoint {
        /// Guest-physical address of the breakpoint.
        gpa: u64,
        /// Guest instruction pointer.
        rip: u64,
    },
    /// A forbidden access to `gpa` (`access` bits: 1 read, 2 write, 4 exec).
    MemoryAccess {
        /// Guest-physical address.
        gpa: u64,
        /// Kind of access.
        access: u8,
        /// Guest instruction pointer.
        rip: u64,
    },
    /// `lidt` or `lgdt` loaded a new table base.
    DescriptorTable {
        /// True for the IDT, false for the GDT.
        idt: bool,
        /// New base.
        base: u64,
    },
    /// The guest is up (the VMM decides when: its kernel runs with its own
    /// IDT and system-call entry). Not subject to the subscription: every
    /// monitor needs it to know when introspection makes sense.
    GuestUp,
}

/// VMM → monitor.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub enum VmmToMonitor {
    /// The answer to the request with this tag.
    Reply {
        /// The request's tag.
        tag: u32,
        /// The answer.
        answer: Answer,
    },
    /// A subscribed event; the vCPU is paused until resumed when `paused`.
    Event {
        /// Which vCPU.
        vcpu: u8,
        /// Whether the VMM paused the vCPU for the monitor.
        paused: bool,
        /// What happened.
        event: Event,
    },
}

impl Message for MonitorToVmm {
    const PROTOCOL: ProtocolId = ProtocolId::MonitorToVmm;
    const VERSION: u16 = 1;
    /// ReadRegs: header 4, variant 1, tag 5, vcpu 1, count 1, 8 regs of 1.
    const MAX_SIZE: usize = 20;
}

impl Message for VmmToMonitor {
    const PROTOCOL: ProtocolId = ProtocolId::VmmToMonitor;
    const VERSION: u16 = 2;
    /// Reply with 8 registers: header 4, variant 1, tag 5, answer 1,
    /// count 1, 8 values of 10.
    const MAX_SIZE: usize = 92;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::check_bound;

    #[test]
    fn worst_cases_fit_max_size() {
        let regs = Vec::from_slice(&[Reg::KernelGsBase; MAX_REGS]).unwrap();
        let sizes = [
            check_bound(&MonitorToVmm::ReadRegs {
                tag: u32::MAX,
                vcpu: u8::MAX,
                regs,
            }),
            check_bound(&MonitorToVmm::Pause {
                tag: u32::MAX,
                vcpu: u8::MAX,
            }),
            check_bound(&MonitorToVmm::Resume {
                tag: u32::MAX,
                vcpu: 0,
            }),
            check_bound(&MonitorToVmm::Subscribe {
                tag: u32::MAX,
                events: EventMask(u32::MAX),
            }),
        ];
        assert_eq!(sizes.iter().max(), Some(&MonitorToVmm::MAX_SIZE));

        let values = Vec::from_slice(&[u64::MAX; MAX_REGS]).unwrap();
        let m = u64::MAX;
        let sizes = [
            check_bound(&VmmToMonitor::Reply {
                tag: u32::MAX,
                answer: Answer::Regs(values),
            }),
            check_bound(&VmmToMonitor::Reply {
                tag: 1,
                answer: Answer::Err(VmiError::Unsupported),
            }),
            check_bound(&VmmToMonitor::Event {
                vcpu: u8::MAX,
                paused: true,
                event: Event::MemoryAccess {
                    gpa: m,
                    access: u8::MAX,
                    rip: m,
                },
            }),
            check_bound(&VmmToMonitor::Event {
                vcpu: 1,
                paused: false,
                event: Event::CrWrite {
                    cr: 4,
                    old: m,
                    new: m,
                },
            }),
            check_bound(&VmmToMonitor::Event {
                vcpu: 1,
                paused: false,
                event: Event::MsrWrite {
                    msr: u32::MAX,
                    value: m,
                },
            }),
        ];
        assert_eq!(sizes.iter().max(), Some(&VmmToMonitor::MAX_SIZE));
    }

    #[test]
    fn ring_slots_hold_the_largest_record() {
        // 16: the ring's slot header (length word, check word).
        for (max, slot) in [
            (MonitorToVmm::MAX_SIZE, REQUEST_SLOT),
            (VmmToMonitor::MAX_SIZE, EVENT_SLOT),
        ] {
            assert!(max + 16 <= slot && slot % 8 == 0 && slot - (max + 16) < 8);
        }
        let up = VmmToMonitor::Event {
            vcpu: u8::MAX,
            paused: true,
            event: Event::GuestUp,
        };
        assert!(check_bound(&up) < VmmToMonitor::MAX_SIZE);
        check_bound(&VmmToMonitor::Reply {
            tag: u32::MAX,
            answer: Answer::Err(VmiError::Unreadable),
        });
    }

    #[test]
    fn event_mask_contains() {
        let m = EventMask(EventMask::CR_WRITE.0 | EventMask::BREAKPOINT.0);
        assert!(m.contains(EventMask::CR_WRITE));
        assert!(!m.contains(EventMask::MSR_WRITE));
    }
}
