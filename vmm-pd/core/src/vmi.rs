//! The VMM's side of the introspection channel: answers the monitor's
//! requests, keeps its event subscription, decides which VM exits become
//! events, and keeps the pause bookkeeping the run loop obeys.
//!
//! The monitor talks to the VMM over two typed rings (`system.xml`:
//! `vmi_requests`, monitor → VMM, [`MonitorToVmm`]; `vmi_events`, VMM →
//! monitor, [`VmmToMonitor`], replies and events in one ordered stream).
//! docs/vmi-channel.md describes the exchange; this module is the VMM's
//! half, hardware-free. The VMM PD wires it like this:
//!
//! ```ignore
//! use vmm_core::vmi::{Vcpus, VmiService};
//! // once, at init: what this VMM can deliver
//! let mut vmi = VmiService::new(EventMask(EventMask::CR_WRITE.0 | EventMask::MSR_WRITE.0));
//! // the monitor notified (channel `ch_monitor`): it wrote requests, or
//! // freed space in the events ring
//! let served = vmi.serve(&mut requests, &mut events, &mut my_vcpus);
//! if served.rejected > 0 { /* log: the monitor sent garbage (skipped) */ }
//! if served.subscription_changed { /* reprogram intercepts from vmi.subscription() */ }
//! // a VM exit the VMM handled (a CR write, an MSR write, lidt/lgdt ...)
//! if vmi.wants(&event) { vmi.report(vcpu, event, &mut events, &mut my_vcpus); }
//! // the guest is up (once)
//! vmi.guest_up(0, &mut events, &mut my_vcpus);
//! // the run loop: run vCPU n only while !vmi.is_paused(n)
//! ```
//!
//! - [`Vcpus`] is what the VMM implements: how many vCPUs, read one
//!   register of one vCPU, and two hooks, `pause(n)` when vCPU n must stop
//!   running and `resume(n)` when it may run again. Between the two,
//!   [`VmiService::is_paused`] is true. The service calls the hooks only on
//!   a change, so the VMM never sees two pauses in a row for one vCPU.
//! - A vCPU is held for two reasons: the monitor paused it, or it raised an
//!   event while the events ring was full (backpressure: the event waits in
//!   a small outbox, and the vCPU with it, until the monitor drains the
//!   ring and notifies; nothing is lost, the guest just waits).
//! - Requests ([`VmiService::handle`]): every reply echoes the request's
//!   tag; a refusal is an [`Answer::Err`] with a [`VmiError`]: an unknown
//!   vCPU ([`VmiError::NoSuchVcpu`]), a register the VMM cannot read
//!   ([`VmiError::Unreadable`], or whatever the [`Vcpus`] impl returns), a
//!   resume of a vCPU the monitor did not pause ([`VmiError::NotPaused`]),
//!   a subscription to events this VMM cannot deliver
//!   ([`VmiError::Unsupported`]; the old subscription stays).
//! - Events ([`VmiService::wants`], [`VmiService::report`]): CR writes to
//!   CR0/CR3/CR4 only, MSR writes to [`WATCHED_MSRS`] only (the MSRs that
//!   steer system calls and the kernel's entry; FS/GS base, TSC deadline
//!   and the like would flood the monitor), each only while subscribed.
//!   [`Event::GuestUp`] is never filtered, and is sent again after every
//!   subscription once the guest is up, so a monitor that (re)subscribes
//!   late still learns it.
//! - The monitor may be compromised: a ring record that does not decode is
//!   counted in [`Served::rejected`] and skipped, never fatal. One
//!   [`VmiService::serve`] handles at most [`MAX_REQUESTS_PER_SERVE`]
//!   requests, so a flooding monitor cannot keep the VMM from its guest;
//!   [`Served::more`] says to call again after the next exit.
//!
//! Design rules: no_std, no allocation, no panics on any input; the only
//! state is a few bit sets and the outbox.

use bulkhead_channel::{Notify, Receiver, RecvError, SendError, Sender};
use bulkhead_protocols::vmi::{
    Answer, Event, EventMask, MonitorToVmm, Reg, VmiError, VmmToMonitor, ALL_VCPUS,
};
use heapless::{Deque, Vec};

/// Requests one [`VmiService::serve`] handles at most.
pub const MAX_REQUESTS_PER_SERVE: usize = 64;
/// Messages that may wait for room in the events ring. A vCPU whose event
/// waits is held, so at most one event per vCPU plus one reply wait; more
/// is only possible with more than 15 vCPUs, and is counted as lost.
pub const OUTBOX: usize = 16;

/// MSRs whose writes are [`EventMask::MSR_WRITE`] events: EFER, STAR,
/// LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP.
pub const WATCHED_MSRS: [u32; 8] = [
    0xc000_0080,
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0x174,
    0x175,
    0x176,
];

/// What the VMM implements for the service.
pub trait Vcpus {
    /// How many vCPUs the VM has (ids `0..count`; at most 255, since
    /// [`ALL_VCPUS`] is not an id).
    fn count(&self) -> u8;
    /// The current value of `reg` of vCPU `vcpu` (an id below `count`).
    fn read(&mut self, vcpu: u8, reg: Reg) -> Result<u64, VmiError>;
    /// vCPU `vcpu` must not enter the guest until [`Vcpus::resume`].
    fn pause(&mut self, vcpu: u8);
    /// vCPU `vcpu` may enter the guest again.
    fn resume(&mut self, vcpu: u8);
}

/// What one [`VmiService::serve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Requests answered.
    pub requests: u32,
    /// Ring records rejected (undecodable, wrong protocol...) and skipped.
    pub rejected: u32,
    /// The last rejection, for the VMM's log.
    pub last_rejection: Option<RecvError>,
    /// A `Subscribe` was accepted: reprogram the intercepts from
    /// [`VmiService::subscription`].
    pub subscription_changed: bool,
    /// Requests may be left (the per-call bound was hit): call again soon.
    pub more: bool,
    /// The events ring is full: replies and events wait in the outbox, and
    /// the monitor will notify when it has room.
    pub blocked: bool,
}

/// What became of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Not subscribed (or never an introspection event): nothing sent.
    Filtered,
    /// In the events ring.
    Sent,
    /// Waiting for room in the ring; the vCPU is held until it is sent.
    Queued,
    /// The outbox was full too: the event is gone (counted).
    Lost,
}

/// Counters over the service's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmiStats {
    /// Requests answered.
    pub requests: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Events sent (or queued).
    pub events: u64,
    /// Events filtered out by the subscription.
    pub filtered: u64,
    /// Messages lost because the outbox was full.
    pub lost: u64,
}

/// A set of vCPU ids 0..255.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct VcpuSet([u64; 4]);

impl VcpuSet {
    fn contains(&self, v: u8) -> bool {
        self.0[usize::from(v / 64)] & (1 << (v % 64)) != 0
    }
    fn set(&mut self, v: u8, on: bool) {
        let w = &mut self.0[usize::from(v / 64)];
        if on {
            *w |= 1 << (v % 64);
        } else {
            *w &= !(1 << (v % 64));
        }
    }
    fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }
}

/// The VMM's introspection service; see the module docs.
#[derive(Debug)]
pub struct VmiService {
    supported: EventMask,
    subscription: EventMask,
    /// Paused by the monitor.
    paused: VcpuSet,
    /// Held because their event waits in the outbox.
    stalled: VcpuSet,
    /// The vCPU that reported the guest up, once it did.
    guest_up: Option<u8>,
    outbox: Deque<VmmToMonitor, OUTBOX>,
    stats: VmiStats,
}

impl VmiService {
    /// A service that can deliver the events in `supported` (a subscription
    /// asking for more is refused). Nothing is subscribed, nothing paused.
    pub const fn new(supported: EventMask) -> Self {
        VmiService {
            supported,
            subscription: EventMask(0),
            paused: VcpuSet([0; 4]),
            stalled: VcpuSet([0; 4]),
            guest_up: None,
            outbox: Deque::new(),
            stats: VmiStats {
                requests: 0,
                rejected: 0,
                events: 0,
                filtered: 0,
                lost: 0,
            },
        }
    }

    /// The events the monitor subscribed to.
    pub fn subscription(&self) -> EventMask {
        self.subscription
    }

    /// Whether vCPU `vcpu` must stay out of the guest (paused by the
    /// monitor, or waiting for its event to reach the ring).
    pub fn is_paused(&self, vcpu: u8) -> bool {
        self.paused.contains(vcpu) || self.stalled.contains(vcpu)
    }

    /// Whether the monitor itself paused vCPU `vcpu`.
    pub fn paused_by_monitor(&self, vcpu: u8) -> bool {
        self.paused.contains(vcpu)
    }

    /// Whether the VMM has said the guest is up.
    pub fn guest_is_up(&self) -> bool {
        self.guest_up.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> VmiStats {
        self.stats
    }

    /// Whether `event` would be sent now (so the VMM can skip building
    /// events nobody wants).
    pub fn wants(&self, event: &Event) -> bool {
        let class = match *event {
            Event::GuestUp => return true,
            Event::CrWrite { cr: 0 | 3 | 4, .. } => EventMask::CR_WRITE,
            Event::MsrWrite { msr, .. } if WATCHED_MSRS.contains(&msr) => EventMask::MSR_WRITE,
            Event::CrWrite { .. } | Event::MsrWrite { .. } => return false,
            Event::Breakpoint { .. } => EventMask::BREAKPOINT,
            Event::MemoryAccess { .. } => EventMask::MEMORY_ACCESS,
            Event::DescriptorTable { .. } => EventMask::DESCRIPTOR_TABLE,
        };
        self.subscription.contains(class)
    }

    /// Answers one request (the pure part of [`VmiService::serve`]): the
    /// reply to send, with the request's tag.
    pub fn handle(&mut self, req: &MonitorToVmm, vcpus: &mut impl Vcpus) -> VmmToMonitor {
        self.stats.requests = self.stats.requests.saturating_add(1);
        let (tag, answer) = match req {
            MonitorToVmm::ReadRegs { tag, vcpu, regs } => (*tag, self.read(*vcpu, regs, vcpus)),
            MonitorToVmm::Pause { tag, vcpu } => (*tag, self.pause(*vcpu, vcpus)),
            MonitorToVmm::Resume { tag, vcpu } => (*tag, self.resume(*vcpu, vcpus)),
            MonitorToVmm::Subscribe { tag, events } => {
                let answer = if events.0 & !self.supported.0 != 0 {
                    Answer::Err(VmiError::Unsupported)
                } else {
                    self.subscription = *events;
                    Answer::Ok
                };
                (*tag, answer)
            }
        };
        VmmToMonitor::Reply { tag, answer }
    }

    /// Serves the requests waiting in `requests`: answers each into
    /// `events` (after whatever waits in the outbox), skips and counts
    /// records that do not decode. Call it whenever the monitor notifies.
    pub fn serve<const RS: usize, const ES: usize, NR: Notify, NE: Notify>(
        &mut self,
        requests: &mut Receiver<'_, MonitorToVmm, RS, NR>,
        events: &mut Sender<'_, VmmToMonitor, ES, NE>,
        vcpus: &mut impl Vcpus,
    ) -> Served {
        let mut served = Served::default();
        self.flush(events, vcpus);
        for _ in 0..MAX_REQUESTS_PER_SERVE {
            if !self.outbox.is_empty() {
                // Backpressure: leave the requests in their ring until the
                // monitor has read our replies.
                served.blocked = true;
                return served;
            }
            match requests.recv() {
                Ok(req) => {
                    served.requests += 1;
                    let reply = self.handle(&req, vcpus);
                    let subscribed = matches!(req, MonitorToVmm::Subscribe { .. })
                        && matches!(
                            reply,
                            VmmToMonitor::Reply {
                                answer: Answer::Ok,
                                ..
                            }
                        );
                    self.emit(reply, events);
                    if subscribed {
                        served.subscription_changed = true;
                        // A monitor that subscribes after the guest came
                        // up (it restarted, or was slow) learns it now.
                        if let Some(vcpu) = self.guest_up {
                            let up = VmmToMonitor::Event {
                                vcpu,
                                paused: self.is_paused(vcpu),
                                event: Event::GuestUp,
                            };
                            self.emit(up, events);
                        }
                    }
                }
                Err(RecvError::Empty) => return served,
                // Nothing was consumed: the producer's header is wrong, and
                // reading again now would only count the same error again.
                Err(e @ (RecvError::WrongLayout | RecvError::IndexOutOfRange)) => {
                    self.reject(&mut served, e);
                    return served;
                }
                Err(e) => self.reject(&mut served, e),
            }
        }
        served.more = true;
        served.blocked = !self.outbox.is_empty();
        served
    }

    /// Reports an event of vCPU `vcpu` the VMM observed; sends it if the
    /// monitor subscribed to it. On [`Delivery::Queued`] the vCPU is held
    /// (its `pause` hook was called) until a later [`VmiService::serve`]
    /// gets the event into the ring.
    pub fn report<const ES: usize, NE: Notify>(
        &mut self,
        vcpu: u8,
        event: Event,
        events: &mut Sender<'_, VmmToMonitor, ES, NE>,
        vcpus: &mut impl Vcpus,
    ) -> Delivery {
        if matches!(event, Event::GuestUp) {
            self.guest_up = Some(vcpu);
        }
        if !self.wants(&event) {
            self.stats.filtered = self.stats.filtered.saturating_add(1);
            return Delivery::Filtered;
        }
        self.stats.events = self.stats.events.saturating_add(1);
        let msg = VmmToMonitor::Event {
            vcpu,
            paused: self.is_paused(vcpu),
            event,
        };
        match self.emit(msg, events) {
            Delivery::Queued if vcpu != ALL_VCPUS => {
                let was_held = self.is_paused(vcpu);
                self.stalled.set(vcpu, true);
                if !was_held {
                    vcpus.pause(vcpu);
                }
                Delivery::Queued
            }
            d => d,
        }
    }

    /// The VMM says the guest is up (its kernel runs with its own IDT and
    /// system-call entry): sends [`Event::GuestUp`] for vCPU `vcpu`.
    pub fn guest_up<const ES: usize, NE: Notify>(
        &mut self,
        vcpu: u8,
        events: &mut Sender<'_, VmmToMonitor, ES, NE>,
        vcpus: &mut impl Vcpus,
    ) -> Delivery {
        self.report(vcpu, Event::GuestUp, events, vcpus)
    }

    /// Sends what waits in the outbox, in order; releases the vCPUs whose
    /// events got out. [`VmiService::serve`] does this first.
    pub fn flush<const ES: usize, NE: Notify>(
        &mut self,
        events: &mut Sender<'_, VmmToMonitor, ES, NE>,
        vcpus: &mut impl Vcpus,
    ) {
        while let Some(msg) = self.outbox.front() {
            if events.send(msg).is_err() {
                return;
            }
            self.outbox.pop_front();
        }
        if !self.stalled.is_empty() {
            let stalled = core::mem::take(&mut self.stalled);
            for v in 0..ALL_VCPUS {
                if stalled.contains(v) && !self.paused.contains(v) {
                    vcpus.resume(v);
                }
            }
        }
    }

    /// Sends `msg`, or queues it behind what already waits.
    fn emit<const ES: usize, NE: Notify>(
        &mut self,
        msg: VmmToMonitor,
        events: &mut Sender<'_, VmmToMonitor, ES, NE>,
    ) -> Delivery {
        if self.outbox.is_empty() {
            match events.send(&msg) {
                Ok(()) => return Delivery::Sent,
                // Full, or a consumer index that makes no sense: hold it
                // until the monitor's ring works again.
                Err(SendError::Full | SendError::PeerIndexInvalid) => {}
                // Cannot happen (the slot is sized for MAX_SIZE at compile
                // time); counted rather than trusted.
                Err(SendError::TooLarge) => {
                    self.stats.lost = self.stats.lost.saturating_add(1);
                    return Delivery::Lost;
                }
            }
        }
        match self.outbox.push_back(msg) {
            Ok(()) => Delivery::Queued,
            Err(_) => {
                self.stats.lost = self.stats.lost.saturating_add(1);
                Delivery::Lost
            }
        }
    }

    fn reject(&mut self, served: &mut Served, e: RecvError) {
        served.rejected += 1;
        served.last_rejection = Some(e);
        self.stats.rejected = self.stats.rejected.saturating_add(1);
    }

    fn known(vcpu: u8, vcpus: &impl Vcpus) -> bool {
        vcpu != ALL_VCPUS && vcpu < vcpus.count()
    }

    fn read(&mut self, vcpu: u8, regs: &[Reg], vcpus: &mut impl Vcpus) -> Answer {
        if !Self::known(vcpu, vcpus) {
            return Answer::Err(VmiError::NoSuchVcpu);
        }
        let mut values = Vec::new();
        for &r in regs {
            match vcpus.read(vcpu, r) {
                // `regs` holds at most MAX_REGS, as does `values`.
                Ok(v) => {
                    if values.push(v).is_err() {
                        return Answer::Err(VmiError::Unsupported);
                    }
                }
                Err(e) => return Answer::Err(e),
            }
        }
        Answer::Regs(values)
    }

    fn pause(&mut self, vcpu: u8, vcpus: &mut impl Vcpus) -> Answer {
        if vcpu != ALL_VCPUS && !Self::known(vcpu, vcpus) {
            return Answer::Err(VmiError::NoSuchVcpu);
        }
        for v in 0..vcpus.count() {
            if vcpu == ALL_VCPUS || v == vcpu {
                let was_held = self.is_paused(v);
                self.paused.set(v, true);
                if !was_held {
                    vcpus.pause(v);
                }
            }
        }
        Answer::Ok
    }

    fn resume(&mut self, vcpu: u8, vcpus: &mut impl Vcpus) -> Answer {
        if vcpu != ALL_VCPUS {
            if !Self::known(vcpu, vcpus) {
                return Answer::Err(VmiError::NoSuchVcpu);
            }
            if !self.paused.contains(vcpu) {
                return Answer::Err(VmiError::NotPaused);
            }
        }
        for v in 0..ALL_VCPUS {
            if (vcpu == ALL_VCPUS || v == vcpu) && self.paused.contains(v) {
                self.paused.set(v, false);
                if !self.stalled.contains(v) {
                    vcpus.resume(v);
                }
            }
        }
        Answer::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_channel::layout::HEADER_WORDS;
    use bulkhead_channel::{AtomicU64, NoNotify, Producer, RingMemory};
    use bulkhead_protocols::vmi::{EVENT_SLOT, REQUEST_SLOT};
    use std::vec::Vec as StdVec;

    const SUPPORTED: EventMask =
        EventMask(EventMask::CR_WRITE.0 | EventMask::MSR_WRITE.0 | EventMask::DESCRIPTOR_TABLE.0);

    /// A VM with `count` vCPUs whose register `r` of vCPU `v` reads as
    /// `0x1000 * (v + 1) + r as u64`; KernelGsBase is not readable.
    struct FakeVcpus {
        count: u8,
        running: [bool; 256],
        hooks: StdVec<(&'static str, u8)>,
    }

    impl FakeVcpus {
        fn new(count: u8) -> Self {
            FakeVcpus {
                count,
                running: [true; 256],
                hooks: StdVec::new(),
            }
        }
        fn take_hooks(&mut self) -> StdVec<(&'static str, u8)> {
            core::mem::take(&mut self.hooks)
        }
    }

    impl Vcpus for FakeVcpus {
        fn count(&self) -> u8 {
            self.count
        }
        fn read(&mut self, vcpu: u8, reg: Reg) -> Result<u64, VmiError> {
            assert!(vcpu < self.count, "the service asked for vCPU {vcpu}");
            match reg {
                Reg::KernelGsBase => Err(VmiError::Unreadable),
                r => Ok(0x1000 * (u64::from(vcpu) + 1) + r as u64),
            }
        }
        fn pause(&mut self, vcpu: u8) {
            assert!(self.running[usize::from(vcpu)], "vCPU {vcpu} paused twice");
            self.running[usize::from(vcpu)] = false;
            self.hooks.push(("pause", vcpu));
        }
        fn resume(&mut self, vcpu: u8) {
            assert!(
                !self.running[usize::from(vcpu)],
                "vCPU {vcpu} resumed while running"
            );
            self.running[usize::from(vcpu)] = true;
            self.hooks.push(("resume", vcpu));
        }
    }

    fn region(slots: usize, slot: usize) -> &'static [AtomicU64] {
        Box::leak(
            (0..HEADER_WORDS + slots * slot / 8)
                .map(|_| AtomicU64::new(0))
                .collect::<StdVec<_>>()
                .into_boxed_slice(),
        )
    }

    /// The two rings, with the monitor's ends: a raw producer of requests
    /// (so tests can write garbage too) and a typed receiver of events.
    struct Rings {
        monitor_tx: Producer<'static, REQUEST_SLOT>,
        vmm_rx: Receiver<'static, MonitorToVmm, REQUEST_SLOT>,
        vmm_tx: Sender<'static, VmmToMonitor, EVENT_SLOT>,
        monitor_rx: Receiver<'static, VmmToMonitor, EVENT_SLOT>,
    }

    fn rings(event_slots: usize) -> Rings {
        let req = RingMemory::split(region(128, REQUEST_SLOT)).unwrap();
        let ev = RingMemory::split(region(event_slots, EVENT_SLOT)).unwrap();
        let monitor_tx = Producer::new(req, NoNotify).unwrap();
        let vmm_tx = Sender::new(ev, NoNotify).unwrap();
        Rings {
            monitor_tx,
            vmm_rx: Receiver::new(req, NoNotify).unwrap(),
            vmm_tx,
            monitor_rx: Receiver::new(ev, NoNotify).unwrap(),
        }
    }

    impl Rings {
        fn ask(&mut self, req: &MonitorToVmm) {
            let mut buf = [0u8; 64];
            let n = bulkhead_protocols::encode(req, &mut buf).unwrap();
            self.monitor_tx.try_send(&buf[..n]).unwrap();
        }
        fn answers(&mut self) -> StdVec<VmmToMonitor> {
            let mut out = StdVec::new();
            loop {
                match self.monitor_rx.recv() {
                    Ok(m) => out.push(m),
                    Err(RecvError::Empty) => return out,
                    Err(e) => panic!("the VMM sent a bad record: {e:?}"),
                }
            }
        }
    }

    fn regs(r: &[Reg]) -> heapless::Vec<Reg, 8> {
        heapless::Vec::from_slice(r).unwrap()
    }

    fn reply(tag: u32, answer: Answer) -> VmmToMonitor {
        VmmToMonitor::Reply { tag, answer }
    }

    #[test]
    fn reads_registers_in_the_order_asked_with_the_tag() {
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(2);
        let req = MonitorToVmm::ReadRegs {
            tag: 77,
            vcpu: 1,
            regs: regs(&[Reg::Lstar, Reg::Cr3, Reg::IdtrBase, Reg::IdtrLimit]),
        };
        let base = 0x2000;
        assert_eq!(
            vmi.handle(&req, &mut v),
            reply(
                77,
                Answer::Regs(
                    heapless::Vec::from_slice(&[
                        base + Reg::Lstar as u64,
                        base + Reg::Cr3 as u64,
                        base + Reg::IdtrBase as u64,
                        base + Reg::IdtrLimit as u64,
                    ])
                    .unwrap()
                )
            )
        );
        let none = MonitorToVmm::ReadRegs {
            tag: 3,
            vcpu: 0,
            regs: regs(&[]),
        };
        assert_eq!(
            vmi.handle(&none, &mut v),
            reply(3, Answer::Regs(heapless::Vec::new()))
        );
        assert_eq!(vmi.stats().requests, 2);
        assert!(v.take_hooks().is_empty());
    }

    #[test]
    fn refuses_unknown_vcpus_and_unreadable_registers() {
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(2);
        for (tag, vcpu) in [(1, 2), (2, 200), (3, ALL_VCPUS)] {
            let req = MonitorToVmm::ReadRegs {
                tag,
                vcpu,
                regs: regs(&[Reg::Cr3]),
            };
            assert_eq!(
                vmi.handle(&req, &mut v),
                reply(tag, Answer::Err(VmiError::NoSuchVcpu)),
                "vCPU {vcpu}"
            );
        }
        let req = MonitorToVmm::ReadRegs {
            tag: 9,
            vcpu: 0,
            regs: regs(&[Reg::Cr3, Reg::KernelGsBase]),
        };
        assert_eq!(
            vmi.handle(&req, &mut v),
            reply(9, Answer::Err(VmiError::Unreadable))
        );
        for (tag, req) in [
            (4, MonitorToVmm::Pause { tag: 4, vcpu: 2 }),
            (5, MonitorToVmm::Resume { tag: 5, vcpu: 7 }),
        ] {
            assert_eq!(
                vmi.handle(&req, &mut v),
                reply(tag, Answer::Err(VmiError::NoSuchVcpu))
            );
        }
        // A VM without vCPUs has nothing to pause, even "all".
        let mut empty = FakeVcpus::new(0);
        assert_eq!(
            vmi.handle(
                &MonitorToVmm::Pause {
                    tag: 6,
                    vcpu: ALL_VCPUS
                },
                &mut empty
            ),
            reply(6, Answer::Ok)
        );
        assert!(empty.take_hooks().is_empty() && v.take_hooks().is_empty());
    }

    #[test]
    fn pauses_and_resumes_one_vcpu() {
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(3);
        let ok = |tag| reply(tag, Answer::Ok);
        assert_eq!(
            vmi.handle(&MonitorToVmm::Resume { tag: 1, vcpu: 1 }, &mut v),
            reply(1, Answer::Err(VmiError::NotPaused))
        );
        assert_eq!(
            vmi.handle(&MonitorToVmm::Pause { tag: 2, vcpu: 1 }, &mut v),
            ok(2)
        );
        // Pausing again is no change: no second hook.
        assert_eq!(
            vmi.handle(&MonitorToVmm::Pause { tag: 3, vcpu: 1 }, &mut v),
            ok(3)
        );
        assert_eq!(v.take_hooks(), [("pause", 1)]);
        assert!(vmi.is_paused(1) && vmi.paused_by_monitor(1));
        assert!(!vmi.is_paused(0) && !vmi.is_paused(2));
        assert_eq!(
            vmi.handle(&MonitorToVmm::Resume { tag: 4, vcpu: 1 }, &mut v),
            ok(4)
        );
        assert_eq!(v.take_hooks(), [("resume", 1)]);
        assert!(!vmi.is_paused(1));
        assert_eq!(
            vmi.handle(&MonitorToVmm::Resume { tag: 5, vcpu: 1 }, &mut v),
            reply(5, Answer::Err(VmiError::NotPaused))
        );
    }

    #[test]
    fn pauses_and_resumes_all_vcpus() {
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(3);
        vmi.handle(&MonitorToVmm::Pause { tag: 1, vcpu: 2 }, &mut v);
        v.take_hooks();
        assert_eq!(
            vmi.handle(
                &MonitorToVmm::Pause {
                    tag: 2,
                    vcpu: ALL_VCPUS
                },
                &mut v
            ),
            reply(2, Answer::Ok)
        );
        // vCPU 2 was paused already: only 0 and 1 change.
        assert_eq!(v.take_hooks(), [("pause", 0), ("pause", 1)]);
        assert!((0..3).all(|i| vmi.is_paused(i)));
        assert!(!vmi.is_paused(3), "no such vCPU, never paused");
        assert_eq!(
            vmi.handle(
                &MonitorToVmm::Resume {
                    tag: 3,
                    vcpu: ALL_VCPUS
                },
                &mut v
            ),
            reply(3, Answer::Ok)
        );
        assert_eq!(
            v.take_hooks(),
            [("resume", 0), ("resume", 1), ("resume", 2)]
        );
        assert!((0..3).all(|i| !vmi.is_paused(i)));
        // Resuming all when none is paused is not an error, and no change.
        assert_eq!(
            vmi.handle(
                &MonitorToVmm::Resume {
                    tag: 4,
                    vcpu: ALL_VCPUS
                },
                &mut v
            ),
            reply(4, Answer::Ok)
        );
        assert!(v.take_hooks().is_empty());
    }

    fn cr(cr: u8) -> Event {
        Event::CrWrite { cr, old: 1, new: 2 }
    }

    #[test]
    fn subscription_decides_which_events_are_sent() {
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(1);
        let lstar = Event::MsrWrite {
            msr: 0xc000_0082,
            value: 0xffff_ffff_8100_0000,
        };
        let fs_base = Event::MsrWrite {
            msr: 0xc000_0100,
            value: 0x7f00_0000,
        };
        let idt = Event::DescriptorTable {
            idt: true,
            base: 0xffff_fe00_0000_0000,
        };
        let bp = Event::Breakpoint {
            gpa: 0x1000,
            rip: 2,
        };
        // Nothing subscribed: only GuestUp gets through.
        assert!(!vmi.wants(&cr(3)) && !vmi.wants(&lstar) && !vmi.wants(&idt));
        assert!(vmi.wants(&Event::GuestUp));
        // More than this VMM delivers: refused, and the old one stays.
        let everything = EventMask(u32::MAX);
        assert_eq!(
            vmi.handle(
                &MonitorToVmm::Subscribe {
                    tag: 1,
                    events: everything
                },
                &mut v
            ),
            reply(1, Answer::Err(VmiError::Unsupported))
        );
        assert_eq!(vmi.subscription(), EventMask(0));
        let cr_msr = EventMask(EventMask::CR_WRITE.0 | EventMask::MSR_WRITE.0);
        assert_eq!(
            vmi.handle(
                &MonitorToVmm::Subscribe {
                    tag: 2,
                    events: cr_msr
                },
                &mut v
            ),
            reply(2, Answer::Ok)
        );
        assert_eq!(vmi.subscription(), cr_msr);
        assert!(vmi.wants(&cr(0)) && vmi.wants(&cr(3)) && vmi.wants(&cr(4)));
        assert!(
            !vmi.wants(&cr(8)) && !vmi.wants(&cr(2)),
            "CR8/CR2 are never events"
        );
        assert!(vmi.wants(&lstar) && !vmi.wants(&fs_base));
        assert!(!vmi.wants(&idt) && !vmi.wants(&bp));
        // An empty mask unsubscribes.
        vmi.handle(
            &MonitorToVmm::Subscribe {
                tag: 3,
                events: EventMask(0),
            },
            &mut v,
        );
        assert!(!vmi.wants(&cr(3)) && !vmi.wants(&lstar));
        assert!(vmi.wants(&Event::GuestUp));
    }

    #[test]
    fn reported_events_reach_the_ring_only_when_subscribed() {
        let mut r = rings(8);
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(1);
        assert_eq!(
            vmi.report(0, cr(3), &mut r.vmm_tx, &mut v),
            Delivery::Filtered
        );
        r.ask(&MonitorToVmm::Subscribe {
            tag: 5,
            events: EventMask::DESCRIPTOR_TABLE,
        });
        let served = vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert!(served.subscription_changed && served.requests == 1);
        let idt = Event::DescriptorTable {
            idt: true,
            base: 0xffff_ffff_ff57_b000,
        };
        assert_eq!(
            vmi.report(0, cr(3), &mut r.vmm_tx, &mut v),
            Delivery::Filtered
        );
        assert_eq!(vmi.report(0, idt, &mut r.vmm_tx, &mut v), Delivery::Sent);
        assert_eq!(
            r.answers(),
            [
                reply(5, Answer::Ok),
                VmmToMonitor::Event {
                    vcpu: 0,
                    paused: false,
                    event: idt
                }
            ]
        );
        let s = vmi.stats();
        assert_eq!((s.events, s.filtered, s.requests), (1, 2, 1));
    }

    #[test]
    fn serves_every_kind_of_request_from_the_ring_in_order() {
        let mut r = rings(16);
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(2);
        r.ask(&MonitorToVmm::Subscribe {
            tag: 10,
            events: EventMask::CR_WRITE,
        });
        r.ask(&MonitorToVmm::Pause { tag: 11, vcpu: 0 });
        r.ask(&MonitorToVmm::ReadRegs {
            tag: 12,
            vcpu: 0,
            regs: regs(&[Reg::Cr3]),
        });
        r.ask(&MonitorToVmm::Resume { tag: 13, vcpu: 0 });
        r.ask(&MonitorToVmm::ReadRegs {
            tag: 14,
            vcpu: 9,
            regs: regs(&[Reg::Cr3]),
        });
        let served = vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!(
            served,
            Served {
                requests: 5,
                subscription_changed: true,
                ..Served::default()
            }
        );
        assert_eq!(
            r.answers(),
            [
                reply(10, Answer::Ok),
                reply(11, Answer::Ok),
                reply(
                    12,
                    Answer::Regs(heapless::Vec::from_slice(&[0x1000 + Reg::Cr3 as u64]).unwrap())
                ),
                reply(13, Answer::Ok),
                reply(14, Answer::Err(VmiError::NoSuchVcpu)),
            ]
        );
        assert_eq!(v.take_hooks(), [("pause", 0), ("resume", 0)]);
        // Nothing more waiting: the next serve does nothing.
        assert_eq!(
            vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v),
            Served::default()
        );
    }

    #[test]
    fn garbage_records_are_counted_and_skipped() {
        let mut r = rings(16);
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(1);
        r.monitor_tx
            .try_send(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
            .unwrap();
        r.ask(&MonitorToVmm::Pause { tag: 1, vcpu: 0 });
        // A VMM-to-monitor record sent the wrong way.
        let mut buf = [0u8; 128];
        let n = bulkhead_protocols::encode(&reply(2, Answer::Ok), &mut buf).unwrap();
        r.monitor_tx.try_send(&buf[..n]).unwrap();
        // A request whose body is cut short.
        let n = bulkhead_protocols::encode(
            &MonitorToVmm::ReadRegs {
                tag: 3,
                vcpu: 0,
                regs: regs(&[Reg::Cr3, Reg::Cr4]),
            },
            &mut buf,
        )
        .unwrap();
        r.monitor_tx.try_send(&buf[..n - 1]).unwrap();
        r.monitor_tx.try_send(&[]).unwrap();
        r.ask(&MonitorToVmm::Resume { tag: 4, vcpu: 0 });
        let served = vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!((served.requests, served.rejected), (2, 4));
        assert_eq!(served.last_rejection, Some(RecvError::Malformed));
        assert_eq!(r.answers(), [reply(1, Answer::Ok), reply(4, Answer::Ok)]);
        assert_eq!(vmi.stats().rejected, 4);
        assert_eq!(
            r.vmm_rx.stats().wrong_protocol,
            2,
            "the garbage and the wrong-way record"
        );
    }

    #[test]
    fn a_broken_ring_header_is_reported_once_per_serve_not_spun_on() {
        let mut r = rings(4);
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(1);
        let words = region(4, REQUEST_SLOT);
        for (i, w) in words.iter().enumerate() {
            w.store(
                0x5a5a_5a5a_0000_0000 | i as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let mut bad = Receiver::<MonitorToVmm, REQUEST_SLOT>::new(
            RingMemory::split(words).unwrap(),
            NoNotify,
        )
        .unwrap();
        let served = vmi.serve(&mut bad, &mut r.vmm_tx, &mut v);
        assert_eq!((served.requests, served.rejected), (0, 1));
        assert!(
            matches!(
                served.last_rejection,
                Some(RecvError::WrongLayout | RecvError::IndexOutOfRange)
            ),
            "{served:?}"
        );
        assert!(!served.more);
    }

    #[test]
    fn a_flood_of_requests_is_served_in_bounded_batches() {
        let mut r = rings(128);
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(1);
        for tag in 0..100 {
            r.ask(&MonitorToVmm::Subscribe {
                tag,
                events: EventMask(0),
            });
        }
        let first = vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!(first.requests as usize, MAX_REQUESTS_PER_SERVE);
        assert!(first.more);
        let second = vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!(second.requests as usize, 100 - MAX_REQUESTS_PER_SERVE);
        assert!(!second.more);
        let tags: StdVec<u32> = r
            .answers()
            .iter()
            .map(|m| match m {
                VmmToMonitor::Reply { tag, .. } => *tag,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tags, (0..100).collect::<StdVec<_>>());
    }

    #[test]
    fn a_full_event_ring_holds_the_vcpu_instead_of_losing_the_event() {
        // Two slots: the monitor is slow.
        let mut r = rings(2);
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(2);
        r.ask(&MonitorToVmm::Subscribe {
            tag: 1,
            events: EventMask::CR_WRITE,
        });
        vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!(vmi.report(0, cr(3), &mut r.vmm_tx, &mut v), Delivery::Sent);
        // Ring full (reply + one event): vCPU 1's event waits, and so does it.
        assert_eq!(
            vmi.report(1, cr(4), &mut r.vmm_tx, &mut v),
            Delivery::Queued
        );
        assert_eq!(v.take_hooks(), [("pause", 1)]);
        assert!(vmi.is_paused(1) && !vmi.paused_by_monitor(1) && !vmi.is_paused(0));
        // Requests now: while an event waits, none is even read
        // (backpressure): they stay in their ring.
        r.ask(&MonitorToVmm::Pause { tag: 2, vcpu: 1 });
        r.ask(&MonitorToVmm::Resume { tag: 3, vcpu: 1 });
        let served = vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert!(served.blocked && served.requests == 0);
        assert!(v.take_hooks().is_empty());
        // The monitor reads, then notifies, until all is through, in order.
        let mut got = StdVec::new();
        let mut rounds = 0;
        loop {
            got.extend(r.answers());
            let served = vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
            rounds += 1;
            if !served.blocked && served.requests == 0 {
                break;
            }
            assert!(rounds < 10, "no progress");
        }
        got.extend(r.answers());
        assert_eq!(
            got,
            [
                reply(1, Answer::Ok),
                VmmToMonitor::Event {
                    vcpu: 0,
                    paused: false,
                    event: cr(3)
                },
                VmmToMonitor::Event {
                    vcpu: 1,
                    paused: false,
                    event: cr(4)
                },
                reply(2, Answer::Ok),
                reply(3, Answer::Ok),
            ]
        );
        // Released once its event was out; then the monitor's own pause
        // and resume.
        assert_eq!(v.take_hooks(), [("resume", 1), ("pause", 1), ("resume", 1)]);
        assert!(!vmi.is_paused(1));
        assert_eq!(vmi.stats().lost, 0);
    }

    #[test]
    fn a_vcpu_paused_by_the_monitor_stays_paused_after_its_event_is_flushed() {
        let mut r = rings(1);
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(1);
        r.ask(&MonitorToVmm::Subscribe {
            tag: 1,
            events: EventMask::CR_WRITE,
        });
        vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!(
            vmi.report(0, cr(0), &mut r.vmm_tx, &mut v),
            Delivery::Queued
        );
        // The monitor pauses it while held (over the ring that cannot
        // happen before the event is out; a VMM may call `handle` itself).
        assert_eq!(
            vmi.handle(&MonitorToVmm::Pause { tag: 2, vcpu: 0 }, &mut v),
            reply(2, Answer::Ok)
        );
        r.answers();
        vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!(
            r.answers(),
            [VmmToMonitor::Event {
                vcpu: 0,
                paused: false,
                event: cr(0)
            }]
        );
        assert_eq!(v.take_hooks(), [("pause", 0)], "flushed, but still paused");
        assert!(vmi.paused_by_monitor(0) && vmi.is_paused(0));
        vmi.handle(&MonitorToVmm::Resume { tag: 3, vcpu: 0 }, &mut v);
        assert_eq!(v.take_hooks(), [("resume", 0)]);
    }

    #[test]
    fn guest_up_is_always_sent_and_repeated_for_a_late_subscriber() {
        let mut r = rings(8);
        let mut vmi = VmiService::new(SUPPORTED);
        let mut v = FakeVcpus::new(1);
        assert!(!vmi.guest_is_up());
        assert_eq!(vmi.guest_up(0, &mut r.vmm_tx, &mut v), Delivery::Sent);
        assert!(vmi.guest_is_up());
        let up = VmmToMonitor::Event {
            vcpu: 0,
            paused: false,
            event: Event::GuestUp,
        };
        assert_eq!(r.answers(), core::slice::from_ref(&up));
        r.ask(&MonitorToVmm::Subscribe {
            tag: 7,
            events: EventMask::MSR_WRITE,
        });
        vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!(r.answers(), [reply(7, Answer::Ok), up]);
        // A refused subscription changes nothing, so repeats nothing.
        r.ask(&MonitorToVmm::Subscribe {
            tag: 8,
            events: EventMask::BREAKPOINT,
        });
        vmi.serve(&mut r.vmm_rx, &mut r.vmm_tx, &mut v);
        assert_eq!(r.answers(), [reply(8, Answer::Err(VmiError::Unsupported))]);
    }
}

#[cfg(test)]
mod random {
    //! Long random mixes of requests, events, garbage and a slow monitor:
    //! the pause hooks always match `is_paused`, nothing is lost, and what
    //! reaches the monitor is in order.
    use super::*;
    use bulkhead_channel::layout::HEADER_WORDS;
    use bulkhead_channel::{AtomicU64, NoNotify, Producer, RingMemory};
    use bulkhead_protocols::vmi::{EVENT_SLOT, REQUEST_SLOT};
    use std::vec::Vec as StdVec;

    struct Cpus {
        count: u8,
        running: StdVec<bool>,
    }

    impl Vcpus for Cpus {
        fn count(&self) -> u8 {
            self.count
        }
        fn read(&mut self, vcpu: u8, reg: Reg) -> Result<u64, VmiError> {
            Ok(u64::from(vcpu) << 8 | reg as u64)
        }
        fn pause(&mut self, vcpu: u8) {
            let r = &mut self.running[usize::from(vcpu)];
            assert!(*r, "vCPU {vcpu} paused twice");
            *r = false;
        }
        fn resume(&mut self, vcpu: u8) {
            let r = &mut self.running[usize::from(vcpu)];
            assert!(!*r, "vCPU {vcpu} resumed while running");
            *r = true;
        }
    }

    fn region(words: usize) -> &'static [AtomicU64] {
        Box::leak(
            (0..words)
                .map(|_| AtomicU64::new(0))
                .collect::<StdVec<_>>()
                .into_boxed_slice(),
        )
    }

    #[test]
    fn hooks_bookkeeping_and_order_hold_under_random_traffic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20 {
            let count = 1 + (next() % 6) as u8;
            let event_slots = 1 + (next() % 4) as usize;
            let req = RingMemory::split(region(HEADER_WORDS + 16 * REQUEST_SLOT / 8)).unwrap();
            let ev =
                RingMemory::split(region(HEADER_WORDS + event_slots * EVENT_SLOT / 8)).unwrap();
            let mut monitor_tx = Producer::<REQUEST_SLOT>::new(req, NoNotify).unwrap();
            let mut vmm_rx = Receiver::<MonitorToVmm, REQUEST_SLOT>::new(req, NoNotify).unwrap();
            let mut vmm_tx = Sender::<VmmToMonitor, EVENT_SLOT>::new(ev, NoNotify).unwrap();
            let mut monitor_rx = Receiver::<VmmToMonitor, EVENT_SLOT>::new(ev, NoNotify).unwrap();
            let mut cpus = Cpus {
                count,
                running: vec![true; 256],
            };
            let mut vmi = VmiService::new(EventMask(0b1_0011));
            let (mut tag, mut asked, mut answered) = (0u32, StdVec::new(), StdVec::new());
            let mut reported = StdVec::new();
            let mut delivered = StdVec::new();
            for _ in 0..2000 {
                match next() % 8 {
                    0..=2 => {
                        tag += 1;
                        let vcpu = if next() % 5 == 0 {
                            ALL_VCPUS
                        } else {
                            (next() % 8) as u8
                        };
                        let req = match next() % 4 {
                            0 => MonitorToVmm::Pause { tag, vcpu },
                            1 => MonitorToVmm::Resume { tag, vcpu },
                            2 => MonitorToVmm::Subscribe {
                                tag,
                                events: EventMask((next() % 64) as u32),
                            },
                            _ => MonitorToVmm::ReadRegs {
                                tag,
                                vcpu,
                                regs: heapless::Vec::from_slice(&[Reg::Cr3, Reg::Lstar]).unwrap(),
                            },
                        };
                        let mut buf = [0u8; 64];
                        let n = bulkhead_protocols::encode(&req, &mut buf).unwrap();
                        // One in ten garbled: garbage, or another request
                        // under the same tag (not expected back).
                        let garbled = next() % 10 == 0;
                        if garbled {
                            buf[n - 1] ^= 0xff;
                        }
                        if monitor_tx.try_send(&buf[..n]).is_ok() && !garbled {
                            asked.push(tag);
                        }
                    }
                    3 => {
                        vmi.serve(&mut vmm_rx, &mut vmm_tx, &mut cpus);
                    }
                    4 | 5 => {
                        // The monitor reads a few.
                        for _ in 0..next() % 3 {
                            match monitor_rx.recv() {
                                Ok(VmmToMonitor::Reply { tag, .. }) => answered.push(tag),
                                Ok(VmmToMonitor::Event { vcpu, event, .. }) => {
                                    delivered.push((vcpu, event))
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    _ => {
                        // A running vCPU exits with an event.
                        let vcpu = (next() % u64::from(count)) as u8;
                        if !vmi.is_paused(vcpu) {
                            let event = Event::CrWrite {
                                cr: 3,
                                old: next(),
                                new: next(),
                            };
                            match vmi.report(vcpu, event, &mut vmm_tx, &mut cpus) {
                                Delivery::Sent | Delivery::Queued => reported.push((vcpu, event)),
                                Delivery::Filtered => {}
                                Delivery::Lost => panic!("lost with {count} vCPUs"),
                            }
                        }
                    }
                }
                for v in 0..=u8::MAX {
                    assert_eq!(
                        cpus.running[usize::from(v)],
                        !vmi.is_paused(v),
                        "round {round}: vCPU {v} hook state and bookkeeping differ"
                    );
                }
            }
            // Drain everything.
            for _ in 0..1000 {
                vmi.serve(&mut vmm_rx, &mut vmm_tx, &mut cpus);
                loop {
                    match monitor_rx.recv() {
                        Ok(VmmToMonitor::Reply { tag, .. }) => answered.push(tag),
                        Ok(VmmToMonitor::Event { vcpu, event, .. }) => {
                            delivered.push((vcpu, event))
                        }
                        Err(_) => break,
                    }
                }
            }
            assert_eq!(
                delivered, reported,
                "round {round}: events lost or reordered"
            );
            // Every well-formed request answered once, in order; a garbled
            // one that still decoded is answered too, under its own tag.
            let only_asked: StdVec<u32> = answered
                .iter()
                .copied()
                .filter(|t| asked.contains(t))
                .collect();
            assert_eq!(
                only_asked, asked,
                "round {round}: replies lost or reordered"
            );
            assert_eq!(vmi.stats().lost, 0);
        }
    }
}
