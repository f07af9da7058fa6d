//! The VMI monitor PD of the reference system (`system.xml`: `monitor`).
//!
//! It talks to the VMM over the introspection rings (docs/vmi-channel.md)
//! and reports to the supervisor over the `alerts` ring:
//!
//! 1. At init it subscribes to CR writes, MSR writes and descriptor-table
//!    loads ([`SUBSCRIPTION`]) and tells the supervisor it is up.
//! 2. Every event the VMM sends is logged, one console line each.
//! 3. On the VMM's `GuestUp` it asks for CR3, LSTAR, IDTR base and limit
//!    and GDTR base of that vCPU, prints them
//!    (`guest: CR3=... LSTAR=... IDT=...`) and checks LSTAR and the IDT
//!    against the Linux kernel's ranges ([`check`]); what is wrong becomes
//!    a critical alert to the supervisor.
//! 4. After `GuestUp`, an LSTAR write or IDT load in an event is checked
//!    the same way (before it, Linux is still setting its tables up).
//! 5. Records from the VMM that do not decode are counted, skipped and
//!    reported as one `ChannelGarbage` warning per batch; replies with a
//!    tag it never used are logged and counted.
//!
//! Nothing blocks and nothing is lost silently: a request or alert that
//! finds its ring full waits in a small queue and goes out when the peer
//! notifies that it made room; when that queue is full too, the drop is
//! counted and logged.
//!
//! Ids and addresses come from `system.xml` setvars only; a ring whose
//! setvars are missing is not used (and said so at init).

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod check;

use bulkhead_channel::{Receiver, RecvError, RingMemory, SendError, Sender};
use bulkhead_microkit::{
    debug_println, setvar, shared_words, Channel, ChannelSet, Handler, Infallible, MessageInfo,
    SetVar,
};
use bulkhead_protocols::supervisor::{Alert, AlertKind, Report, Severity, REPORT_SLOT};
use bulkhead_protocols::vmi::{
    Answer, Event, EventMask, MonitorToVmm, Reg, VmmToMonitor, EVENT_SLOT, REQUEST_SLOT,
};
use bulkhead_protocols::Message;
use heapless::{Deque, Vec};

use check::{alert, check, idt_ok, lstar_ok, Finding, GuestState};

pub use bulkhead_protocols::supervisor::calls::LABEL_UP;
/// The events the monitor subscribes to.
pub const SUBSCRIPTION: EventMask =
    EventMask(EventMask::CR_WRITE.0 | EventMask::MSR_WRITE.0 | EventMask::DESCRIPTOR_TABLE.0);
/// The registers read when the guest is up, in the order of [`GuestState`].
pub const STATE_REGS: [Reg; 5] = [
    Reg::Cr3,
    Reg::Lstar,
    Reg::IdtrBase,
    Reg::IdtrLimit,
    Reg::GdtrBase,
];
/// The LSTAR MSR's index.
pub const MSR_LSTAR: u32 = 0xc000_0082;
/// Records read from the events ring per notification at most, so a VMM
/// that keeps writing cannot keep the monitor from its other work.
pub const MAX_EVENTS_PER_NOTIFICATION: usize = 1024;

setvar!(ch_supervisor);
setvar!(ch_vmm);
setvar!(guest_ram);
setvar!(guest_ram_size);
setvar!(tx_vmi_requests_header);
setvar!(tx_vmi_requests_header_size);
setvar!(tx_vmi_requests_data);
setvar!(tx_vmi_requests_data_size);
setvar!(rx_vmi_events_header);
setvar!(rx_vmi_events_header_size);
setvar!(rx_vmi_events_data);
setvar!(rx_vmi_events_data_size);
setvar!(tx_alerts_header);
setvar!(tx_alerts_header_size);
setvar!(tx_alerts_data);
setvar!(tx_alerts_data_size);

/// What the monitor has seen and done (for its log and its tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events received.
    pub events: u64,
    /// Replies matched to a request.
    pub replies: u64,
    /// Replies whose tag matched no request.
    pub unexpected_replies: u64,
    /// Records from the VMM rejected (undecodable, wrong protocol...).
    pub rejected: u64,
    /// Alerts raised (sent or queued).
    pub alerts: u64,
    /// Requests or alerts dropped because their ring and queue were full.
    pub dropped: u64,
}

/// What a request was for, to interpret its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Query {
    Subscribe,
    GuestState { vcpu: u8 },
}

/// Requests whose reply has not come (more are dropped oldest-first: a
/// VMM that never answers cannot fill the monitor).
const PENDING: usize = 8;

/// Records that wait for room in their ring.
const QUEUE: usize = 4;

/// The sending end of one ring, with a small queue for when it is full.
struct Outbound<T: Message, const SLOT: usize> {
    tx: Option<Sender<'static, T, SLOT, Option<Channel>>>,
    queue: Deque<T, QUEUE>,
}

impl<T: Message, const SLOT: usize> Outbound<T, SLOT> {
    fn new(tx: Option<Sender<'static, T, SLOT, Option<Channel>>>) -> Self {
        Outbound {
            tx,
            queue: Deque::new(),
        }
    }

    /// Sends `msg` behind what waits, or queues it; `Err` says why it was
    /// dropped instead.
    fn send(&mut self, msg: T) -> Result<(), &'static str> {
        let Some(tx) = self.tx.as_mut() else {
            return Err("the ring is not mapped");
        };
        if self.queue.is_empty() {
            match tx.send(&msg) {
                Ok(()) => return Ok(()),
                Err(SendError::Full) => {}
                Err(SendError::TooLarge) => return Err("too large for a slot"),
                Err(SendError::PeerIndexInvalid) => return Err("the peer's ring index is invalid"),
            }
        }
        self.queue
            .push_back(msg)
            .map_err(|_| "the ring and the queue are full")
    }

    /// Sends what waits, in order, as far as there is room.
    fn flush(&mut self) {
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        while let Some(m) = self.queue.front() {
            if tx.send(m).is_err() {
                return;
            }
            self.queue.pop_front();
        }
    }
}

/// The monitor's state.
pub struct Monitor {
    vmm: Option<Channel>,
    requests: Outbound<MonitorToVmm, REQUEST_SLOT>,
    events: Option<Receiver<'static, VmmToMonitor, EVENT_SLOT, Option<Channel>>>,
    alerts: Outbound<Report, REPORT_SLOT>,
    next_tag: u32,
    pending: Vec<(u32, Query), PENDING>,
    guest_up: bool,
    guest: Option<GuestState>,
    counters: Counters,
}

fn ring(
    header: &'static SetVar,
    header_size: &'static SetVar,
    data: &'static SetVar,
    data_size: &'static SetVar,
) -> Option<RingMemory<'static>> {
    RingMemory::new(
        shared_words(header, header_size)?,
        shared_words(data, data_size)?,
    )
    .ok()
}

fn channel(v: &'static SetVar) -> Option<Channel> {
    v.get().map(|id| Channel::new(id as usize))
}

fn ready<T>(x: &Option<T>) -> &'static str {
    if x.is_some() {
        "ready"
    } else {
        "not mapped"
    }
}

/// The PD's init: takes its ends of the rings, subscribes, says it is up.
pub fn init() -> Monitor {
    let vmm = channel(&ch_vmm);
    let supervisor = channel(&ch_supervisor);
    let requests = ring(
        &tx_vmi_requests_header,
        &tx_vmi_requests_header_size,
        &tx_vmi_requests_data,
        &tx_vmi_requests_data_size,
    )
    .and_then(|m| Sender::new(m, vmm).ok());
    let events = ring(
        &rx_vmi_events_header,
        &rx_vmi_events_header_size,
        &rx_vmi_events_data,
        &rx_vmi_events_data_size,
    )
    .and_then(|m| Receiver::new(m, vmm).ok());
    let alerts = ring(
        &tx_alerts_header,
        &tx_alerts_header_size,
        &tx_alerts_data,
        &tx_alerts_data_size,
    )
    .and_then(|m| Sender::new(m, supervisor).ok());
    let ram = shared_words(&guest_ram, &guest_ram_size).map_or(0, |w| w.len() * 8);
    debug_println!(
        "monitor: up; requests ring {}, events ring {}, alerts ring {}; guest RAM view {} MiB (read-only)",
        ready(&requests),
        ready(&events),
        ready(&alerts),
        ram >> 20
    );
    let mut m = Monitor {
        vmm,
        requests: Outbound::new(requests),
        events,
        alerts: Outbound::new(alerts),
        next_tag: 1,
        pending: Vec::new(),
        guest_up: false,
        guest: None,
        counters: Counters::default(),
    };
    m.request(
        |tag| MonitorToVmm::Subscribe {
            tag,
            events: SUBSCRIPTION,
        },
        Query::Subscribe,
    );
    if let Some(s) = supervisor {
        if s.pp_call(MessageInfo::new(LABEL_UP, 0)).is_err() {
            debug_println!("monitor: the supervisor did not take the up call");
        }
    }
    m
}

fn cr_name(cr: u8) -> &'static str {
    match cr {
        0 => "CR0",
        3 => "CR3",
        4 => "CR4",
        _ => "CR?",
    }
}

fn msr_name(msr: u32) -> &'static str {
    match msr {
        0xc000_0080 => "EFER",
        0xc000_0081 => "STAR",
        MSR_LSTAR => "LSTAR",
        0xc000_0083 => "CSTAR",
        0xc000_0084 => "SFMASK",
        0x174 => "SYSENTER_CS",
        0x175 => "SYSENTER_ESP",
        0x176 => "SYSENTER_EIP",
        _ => "MSR",
    }
}

impl Monitor {
    /// What it has seen so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The guest state last read, once the guest is up.
    pub fn guest(&self) -> Option<GuestState> {
        self.guest
    }

    /// Whether the VMM said the guest is up.
    pub fn guest_is_up(&self) -> bool {
        self.guest_up
    }

    /// Sends a request built with a fresh tag, remembering what it was for.
    fn request(&mut self, build: impl FnOnce(u32) -> MonitorToVmm, q: Query) {
        let tag = self.next_tag;
        // 0 is never used, so a zeroed reply cannot match.
        self.next_tag = self.next_tag.checked_add(1).unwrap_or(1);
        if self.pending.is_full() {
            let (old, _) = self.pending.remove(0);
            debug_println!("monitor: no reply to request {old}; forgotten");
        }
        // Room was made just above.
        let _ = self.pending.push((tag, q));
        if let Err(why) = self.requests.send(build(tag)) {
            self.counters.dropped += 1;
            debug_println!("monitor: request {tag} dropped: {why}");
        }
    }

    /// Raises `report` to the supervisor (queued if its ring is full).
    fn raise(&mut self, report: Report) {
        self.counters.alerts += 1;
        if let Report::Alert(a) = &report {
            debug_println!(
                "ALERT {:?} {:?} subject {:#x}: {}",
                a.severity,
                a.kind,
                a.subject,
                a.detail.as_str()
            );
        }
        if let Err(why) = self.alerts.send(report) {
            self.counters.dropped += 1;
            debug_println!("monitor: alert dropped (it is only in this log): {why}");
        }
    }

    fn found(&mut self, f: Finding) {
        self.raise(alert(f));
    }

    /// Reads the events ring (bounded); returns the records rejected.
    fn drain_events(&mut self) -> u64 {
        let mut rejected = 0;
        for _ in 0..MAX_EVENTS_PER_NOTIFICATION {
            let Some(rx) = self.events.as_mut() else {
                break;
            };
            match rx.recv() {
                Ok(m) => self.on_message(m),
                Err(RecvError::Empty) => break,
                // Nothing consumed: reading again would count it again.
                Err(RecvError::WrongLayout | RecvError::IndexOutOfRange) => {
                    rejected += 1;
                    break;
                }
                Err(_) => rejected += 1,
            }
        }
        rejected
    }

    fn on_message(&mut self, m: VmmToMonitor) {
        match m {
            VmmToMonitor::Reply { tag, answer } => self.on_reply(tag, answer),
            VmmToMonitor::Event {
                vcpu,
                paused,
                event,
            } => self.on_event(vcpu, paused, event),
        }
    }

    fn on_reply(&mut self, tag: u32, answer: Answer) {
        let Some(i) = self.pending.iter().position(|(t, _)| *t == tag) else {
            self.counters.unexpected_replies += 1;
            debug_println!("monitor: a reply with tag {tag}, which no request had");
            return;
        };
        let (_, q) = self.pending.remove(i);
        self.counters.replies += 1;
        match (q, answer) {
            (Query::Subscribe, Answer::Ok) => {
                debug_println!("monitor: subscribed to CR, MSR and descriptor-table events")
            }
            (Query::GuestState { vcpu }, Answer::Regs(v)) if v.len() == STATE_REGS.len() => {
                let s = GuestState {
                    cr3: v[0],
                    lstar: v[1],
                    idtr_base: v[2],
                    idtr_limit: v[3],
                    gdtr_base: v[4],
                };
                debug_println!(
                    "guest: CR3={:#x} LSTAR={:#x} IDT={:#x} (limit {:#x}) GDT={:#x} (vCPU {vcpu})",
                    s.cr3,
                    s.lstar,
                    s.idtr_base,
                    s.idtr_limit,
                    s.gdtr_base
                );
                let found = check(&s);
                if found.is_empty() {
                    debug_println!(
                        "guest: LSTAR in the kernel image, IDT in the kernel image or CPU entry area: OK"
                    );
                }
                for f in found {
                    self.found(f);
                }
                self.guest = Some(s);
            }
            (q, a) => debug_println!("monitor: request {tag} ({q:?}) answered {a:?}"),
        }
    }

    fn on_event(&mut self, vcpu: u8, paused: bool, event: Event) {
        self.counters.events += 1;
        let p = if paused { " (paused)" } else { "" };
        match event {
            Event::CrWrite { cr, old, new } => {
                debug_println!("event vCPU {vcpu}: {} {old:#x} -> {new:#x}{p}", cr_name(cr))
            }
            Event::MsrWrite { msr, value } => {
                debug_println!(
                    "event vCPU {vcpu}: wrmsr {} ({msr:#x}) = {value:#x}{p}",
                    msr_name(msr)
                );
                if msr == MSR_LSTAR && self.guest_up && !lstar_ok(value) {
                    self.found(Finding::LstarOutsideKernel(value));
                }
            }
            Event::DescriptorTable { idt, base } => {
                debug_println!(
                    "event vCPU {vcpu}: {} loaded at {base:#x}{p}",
                    if idt { "IDT" } else { "GDT" }
                );
                if idt && self.guest_up && !idt_ok(base) {
                    self.found(Finding::IdtOutsideKernel(base));
                }
            }
            Event::Breakpoint { gpa, rip } => {
                debug_println!("event vCPU {vcpu}: breakpoint at gpa {gpa:#x}, rip {rip:#x}{p}")
            }
            Event::MemoryAccess { gpa, access, rip } => debug_println!(
                "event vCPU {vcpu}: access {access:#x} to gpa {gpa:#x}, rip {rip:#x}{p}"
            ),
            Event::GuestUp => {
                debug_println!("event vCPU {vcpu}: the guest is up; reading its state{p}");
                self.guest_up = true;
                self.request(
                    |tag| MonitorToVmm::ReadRegs {
                        tag,
                        vcpu,
                        regs: Vec::from_slice(&STATE_REGS).unwrap_or_default(),
                    },
                    Query::GuestState { vcpu },
                );
            }
        }
    }
}

impl Handler for Monitor {
    /// None: bad input is counted and logged, never a reason to fault.
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        for ch in channels.iter() {
            if Some(ch) == self.vmm {
                let rejected = self.drain_events();
                if rejected > 0 {
                    self.counters.rejected += rejected;
                    debug_println!(
                        "monitor: rejected {rejected} bad records from the VMM ({} in total)",
                        self.counters.rejected
                    );
                    self.raise(Report::Alert(Alert {
                        severity: Severity::Warning,
                        kind: AlertKind::ChannelGarbage,
                        subject: rejected,
                        detail: heapless::String::try_from("records from the VMM rejected")
                            .unwrap_or_default(),
                    }));
                }
                // The VMM may also have made room in the requests ring.
                self.requests.flush();
            } else {
                // The supervisor: it made room in the alerts ring.
                self.alerts.flush();
            }
        }
        Ok(())
    }
}
