//! The monitor PD, run on the host by the component harness against the
//! reference `system.xml`: the harness plays the kernel, the tests play the
//! VMM (the other end of `vmi_requests` and `vmi_events`, by hand or with
//! the VMM's real `VmiService`) and the supervisor (the `alerts` ring and
//! the up call).

use std::cell::RefCell;
use std::rc::Rc;

use bulkhead_channel::{NoNotify, Producer, Receiver, RecvError, Sender};
use bulkhead_harness::{Call, Harness};
use bulkhead_microkit::MessageInfo;
use bulkhead_protocols::supervisor::{AlertKind, Report, Severity, REPORT_SLOT};
use bulkhead_protocols::vmi::{
    Answer, Event, EventMask, MonitorToVmm, Reg, VmiError, VmmToMonitor, EVENT_SLOT, REQUEST_SLOT,
};
use monitor_pd::{init, Counters, Monitor, LABEL_UP, MSR_LSTAR, STATE_REGS, SUBSCRIPTION};
use vmm_core::vmi::{Vcpus, VmiService};

// The monitor's channel ids in system.xml.
const CH_SUPERVISOR: usize = 0;
const CH_VMM: usize = 1;

// A clean Debian guest: entry_SYSCALL_64 in the (KASLR-moved) image, the
// IDT and GDT in the CPU entry area.
const CR3: u64 = 0x0b41_0000;
const LSTAR: u64 = 0xffff_ffff_a120_0040;
const IDT: u64 = 0xffff_fe00_0000_0000;
const GDT: u64 = 0xffff_fe00_0000_1000;
const MODULE: u64 = 0xffff_ffff_c07a_1000;

fn reference() -> Harness {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../system.xml");
    let text = std::fs::read_to_string(path).expect("reference system.xml");
    Harness::load(path, &text, "monitor").expect("reference system.xml loads")
}

/// Everything the test plays: the VMM's ring ends and the supervisor's.
struct Peers {
    requests: Receiver<'static, MonitorToVmm, REQUEST_SLOT>,
    events: Sender<'static, VmmToMonitor, EVENT_SLOT>,
    alerts: Receiver<'static, Report, REPORT_SLOT>,
    up_calls: Rc<RefCell<Vec<u64>>>,
}

fn start(h: &Harness) -> (bulkhead_harness::Pd<Monitor>, Peers) {
    let up_calls = Rc::new(RefCell::new(Vec::new()));
    let seen = up_calls.clone();
    h.on_pp_call(CH_SUPERVISOR, move |info, _| {
        seen.borrow_mut().push(info.label());
        Ok(MessageInfo::new(0, 0))
    });
    let pd = h.start(init);
    let peers = Peers {
        requests: Receiver::new(h.ring("vmi_requests").unwrap(), NoNotify).unwrap(),
        events: Sender::new(h.ring("vmi_events").unwrap(), NoNotify).unwrap(),
        alerts: Receiver::new(h.ring("alerts").unwrap(), NoNotify).unwrap(),
        up_calls,
    };
    (pd, peers)
}

fn drain(rx: &mut Receiver<'static, MonitorToVmm, REQUEST_SLOT>) -> Vec<MonitorToVmm> {
    let mut out = Vec::new();
    loop {
        match rx.recv() {
            Ok(m) => out.push(m),
            Err(RecvError::Empty) => return out,
            Err(e) => panic!("the monitor sent a bad record: {e:?}"),
        }
    }
}

fn alerts(rx: &mut Receiver<'static, Report, REPORT_SLOT>) -> Vec<Report> {
    let mut out = Vec::new();
    loop {
        match rx.recv() {
            Ok(m) => out.push(m),
            Err(RecvError::Empty) => return out,
            Err(e) => panic!("the monitor sent a bad alert: {e:?}"),
        }
    }
}

fn tag_of(req: &MonitorToVmm) -> u32 {
    match req {
        MonitorToVmm::ReadRegs { tag, .. }
        | MonitorToVmm::Pause { tag, .. }
        | MonitorToVmm::Resume { tag, .. }
        | MonitorToVmm::Subscribe { tag, .. } => *tag,
    }
}

fn event(vcpu: u8, event: Event) -> VmmToMonitor {
    VmmToMonitor::Event {
        vcpu,
        paused: false,
        event,
    }
}

fn regs(values: [u64; 5]) -> Answer {
    Answer::Regs(heapless::Vec::from_slice(&values).unwrap())
}

/// Init, the subscription answered, the guest up: returns the tag of the
/// monitor's register read, which the test answers.
fn up_to_the_register_read(pd: &mut bulkhead_harness::Pd<Monitor>, p: &mut Peers) -> (u32, u8) {
    let sub = drain(&mut p.requests);
    assert_eq!(sub.len(), 1);
    p.events
        .send(&VmmToMonitor::Reply {
            tag: tag_of(&sub[0]),
            answer: Answer::Ok,
        })
        .unwrap();
    p.events.send(&event(0, Event::GuestUp)).unwrap();
    pd.notify(&[CH_VMM]).unwrap();
    let read = drain(&mut p.requests);
    match read.as_slice() {
        [MonitorToVmm::ReadRegs { tag, vcpu, regs }] => {
            assert_eq!(regs.as_slice(), STATE_REGS);
            (*tag, *vcpu)
        }
        other => panic!("expected one register read, got {other:?}"),
    }
}

#[test]
fn init_takes_its_rings_subscribes_and_tells_the_supervisor() {
    let h = reference();
    let (_pd, mut p) = start(&h);
    let console = h.console();
    assert!(
        console[0].contains("requests ring ready, events ring ready, alerts ring ready")
            && console[0].contains("guest RAM view 256 MiB"),
        "{console:?}"
    );
    assert_eq!(*p.up_calls.borrow(), [LABEL_UP]);
    let sub = drain(&mut p.requests);
    assert!(
        matches!(
            sub.as_slice(),
            [MonitorToVmm::Subscribe { tag, events }] if *tag != 0 && *events == SUBSCRIPTION
        ),
        "{sub:?}"
    );
    // The request woke the VMM; the up call went to the supervisor.
    let calls = h.take_calls();
    assert!(calls.contains(&Call::Notify(CH_VMM)), "{calls:?}");
    assert!(
        calls.contains(&Call::PpCall(CH_SUPERVISOR, LABEL_UP, 0)),
        "{calls:?}"
    );
}

#[test]
fn a_clean_guest_is_read_printed_and_passes() {
    let h = reference();
    let (mut pd, mut p) = start(&h);
    let (tag, vcpu) = up_to_the_register_read(&mut pd, &mut p);
    assert_eq!(vcpu, 0);
    p.events
        .send(&VmmToMonitor::Reply {
            tag,
            answer: regs([CR3, LSTAR, IDT, 0xfff, GDT]),
        })
        .unwrap();
    pd.notify(&[CH_VMM]).unwrap();
    let console = h.console();
    assert!(
        console.iter().any(|l| l.starts_with(
            "guest: CR3=0xb410000 LSTAR=0xffffffffa1200040 IDT=0xfffffe0000000000 (limit 0xfff) GDT=0xfffffe0000001000"
        )),
        "{console:?}"
    );
    assert!(console.iter().any(|l| l.contains("subscribed to CR, MSR")));
    assert!(console.iter().any(|l| l.ends_with(": OK")), "{console:?}");
    assert!(alerts(&mut p.alerts).is_empty());
    let m = pd.handler();
    assert!(m.guest_is_up());
    assert_eq!(m.guest().map(|g| g.lstar), Some(LSTAR));
    assert_eq!(
        m.counters(),
        Counters {
            events: 1,
            replies: 2,
            ..Counters::default()
        }
    );
}

#[test]
fn a_hooked_syscall_entry_and_a_foreign_idt_raise_critical_alerts() {
    let h = reference();
    let (mut pd, mut p) = start(&h);
    let (tag, _) = up_to_the_register_read(&mut pd, &mut p);
    let heap_idt = 0xffff_8880_0400_0000;
    p.events
        .send(&VmmToMonitor::Reply {
            tag,
            answer: regs([CR3, MODULE, heap_idt, 0xfff, GDT]),
        })
        .unwrap();
    h.take_calls();
    pd.notify(&[CH_VMM]).unwrap();
    let got = alerts(&mut p.alerts);
    let summary: Vec<_> = got
        .iter()
        .map(|r| match r {
            Report::Alert(a) => (a.severity, a.kind, a.subject),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Severity::Critical, AlertKind::SyscallHook, MODULE),
            (Severity::Critical, AlertKind::IntegrityViolation, heap_idt),
        ]
    );
    // The supervisor was woken for them.
    assert!(h.take_calls().contains(&Call::Notify(CH_SUPERVISOR)));
    assert_eq!(pd.handler().counters().alerts, 2);
}

#[test]
fn every_event_is_logged_and_checked_once_the_guest_is_up() {
    let h = reference();
    let (mut pd, mut p) = start(&h);
    drain(&mut p.requests);
    // Before the guest is up: Linux's bring-up IDT at a physical address
    // is logged, not an alert.
    p.events
        .send(&event(
            0,
            Event::DescriptorTable {
                idt: true,
                base: 0x0100_2000,
            },
        ))
        .unwrap();
    p.events
        .send(&event(
            0,
            Event::CrWrite {
                cr: 3,
                old: 0x1000,
                new: CR3,
            },
        ))
        .unwrap();
    pd.notify(&[CH_VMM]).unwrap();
    assert!(alerts(&mut p.alerts).is_empty());
    p.events.send(&event(0, Event::GuestUp)).unwrap();
    p.events
        .send(&event(
            0,
            Event::MsrWrite {
                msr: MSR_LSTAR,
                value: LSTAR,
            },
        ))
        .unwrap();
    p.events
        .send(&event(
            0,
            Event::MsrWrite {
                msr: MSR_LSTAR,
                value: MODULE,
            },
        ))
        .unwrap();
    p.events
        .send(&event(
            0,
            Event::DescriptorTable {
                idt: false,
                base: 0x1234,
            },
        ))
        .unwrap();
    p.events
        .send(&VmmToMonitor::Event {
            vcpu: 0,
            paused: true,
            event: Event::DescriptorTable {
                idt: true,
                base: 0x7000_0000,
            },
        })
        .unwrap();
    pd.notify(&[CH_VMM]).unwrap();
    let console = h.console();
    for line in [
        "event vCPU 0: IDT loaded at 0x1002000",
        "event vCPU 0: CR3 0x1000 -> 0xb410000",
        "event vCPU 0: the guest is up",
        "event vCPU 0: wrmsr LSTAR (0xc0000082) = 0xffffffffa1200040",
        "event vCPU 0: wrmsr LSTAR (0xc0000082) = 0xffffffffc07a1000",
        "event vCPU 0: GDT loaded at 0x1234",
        "event vCPU 0: IDT loaded at 0x70000000 (paused)",
    ] {
        assert!(
            console.iter().any(|l| l.starts_with(line)),
            "{line} not in {console:?}"
        );
    }
    // The good LSTAR and the GDT pass; the module LSTAR and the IDT at a
    // user address after boot do not.
    let subjects: Vec<u64> = alerts(&mut p.alerts)
        .iter()
        .map(|r| match r {
            Report::Alert(a) => a.subject,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(subjects, [MODULE, 0x7000_0000]);
    assert_eq!(pd.handler().counters().events, 7);
}

#[test]
fn garbage_from_the_vmm_is_skipped_counted_and_reported() {
    let h = reference();
    let (mut pd, mut p) = start(&h);
    drain(&mut p.requests);
    // The test writes raw records instead of the typed sender.
    let mut raw = Producer::<EVENT_SLOT>::new(h.ring("vmi_events").unwrap(), NoNotify).unwrap();
    raw.try_send(&[1, 2, 3]).unwrap();
    let mut buf = [0u8; 128];
    let n = bulkhead_protocols::encode(
        &event(
            0,
            Event::CrWrite {
                cr: 4,
                old: 1,
                new: 2,
            },
        ),
        &mut buf,
    )
    .unwrap();
    raw.try_send(&buf[..n - 1]).unwrap();
    // A reply to a request it never made.
    let n = bulkhead_protocols::encode(
        &VmmToMonitor::Reply {
            tag: 9999,
            answer: Answer::Err(VmiError::NoSuchVcpu),
        },
        &mut buf,
    )
    .unwrap();
    raw.try_send(&buf[..n]).unwrap();
    raw.try_send(&buf[..0]).unwrap();
    let n = bulkhead_protocols::encode(
        &event(
            1,
            Event::CrWrite {
                cr: 0,
                old: 1,
                new: 2,
            },
        ),
        &mut buf,
    )
    .unwrap();
    raw.try_send(&buf[..n]).unwrap();
    pd.notify(&[CH_VMM]).unwrap();
    let c = pd.handler().counters();
    assert_eq!((c.rejected, c.events, c.unexpected_replies), (3, 1, 1));
    let console = h.console();
    assert!(console
        .iter()
        .any(|l| l.starts_with("event vCPU 1: CR0 0x1 -> 0x2")));
    assert!(console
        .iter()
        .any(|l| l.contains("tag 9999, which no request had")));
    let got = alerts(&mut p.alerts);
    assert!(
        matches!(got.as_slice(), [Report::Alert(a)]
            if a.kind == AlertKind::ChannelGarbage && a.severity == Severity::Warning && a.subject == 3),
        "{got:?}"
    );
}

#[test]
fn a_full_alerts_ring_queues_then_flushes_when_the_supervisor_makes_room() {
    let h = reference();
    let (mut pd, mut p) = start(&h);
    drain(&mut p.requests);
    p.events.send(&event(0, Event::GuestUp)).unwrap();
    pd.notify(&[CH_VMM]).unwrap();
    drain(&mut p.requests);
    let room = 64 * 1024 / REPORT_SLOT;
    // One alert per bad LSTAR write: fill the ring, then 4 more queue.
    let mut sent = 0;
    while sent < room + 4 {
        for _ in 0..100.min(room + 4 - sent) {
            p.events
                .send(&event(
                    0,
                    Event::MsrWrite {
                        msr: MSR_LSTAR,
                        value: sent as u64,
                    },
                ))
                .unwrap();
            sent += 1;
        }
        pd.notify(&[CH_VMM]).unwrap();
    }
    assert_eq!(pd.handler().counters().dropped, 0);
    let first = alerts(&mut p.alerts);
    assert_eq!(first.len(), room);
    // The supervisor drained the ring and notifies: the queue goes out, in order.
    pd.notify(&[CH_SUPERVISOR]).unwrap();
    let rest = alerts(&mut p.alerts);
    let subjects: Vec<u64> = first
        .iter()
        .chain(&rest)
        .map(|r| match r {
            Report::Alert(a) => a.subject,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(subjects, (0..(room + 4) as u64).collect::<Vec<_>>());
}

/// The VMM's side as the VMM PD runs it: `vmm_core::vmi::VmiService`
/// over the same rings, with a vCPU that holds a Linux guest's state.
struct LinuxVcpu {
    lstar: u64,
}

impl Vcpus for LinuxVcpu {
    fn count(&self) -> u8 {
        1
    }
    fn read(&mut self, _vcpu: u8, reg: Reg) -> Result<u64, VmiError> {
        Ok(match reg {
            Reg::Cr3 => CR3,
            Reg::Lstar => self.lstar,
            Reg::IdtrBase => IDT,
            Reg::IdtrLimit => 0xfff,
            Reg::GdtrBase => GDT,
            _ => return Err(VmiError::Unreadable),
        })
    }
    fn pause(&mut self, _vcpu: u8) {}
    fn resume(&mut self, _vcpu: u8) {}
}

#[test]
fn with_the_vmms_real_service_the_guest_state_round_trips() {
    let h = reference();
    let (mut pd, mut p) = start(&h);
    let mut vmi = VmiService::new(EventMask(
        EventMask::CR_WRITE.0 | EventMask::MSR_WRITE.0 | EventMask::DESCRIPTOR_TABLE.0,
    ));
    let mut cpu = LinuxVcpu { lstar: LSTAR };
    // The monitor's subscription reaches the service.
    let served = vmi.serve(&mut p.requests, &mut p.events, &mut cpu);
    assert!(served.subscription_changed);
    assert_eq!(vmi.subscription(), SUBSCRIPTION);
    // The guest comes up: the VMM says so; the monitor asks; the VMM answers.
    vmi.guest_up(0, &mut p.events, &mut cpu);
    pd.notify(&[CH_VMM]).unwrap();
    vmi.serve(&mut p.requests, &mut p.events, &mut cpu);
    pd.notify(&[CH_VMM]).unwrap();
    assert!(
        h.console().iter().any(|l| l.starts_with(&format!(
            "guest: CR3={CR3:#x} LSTAR={LSTAR:#x} IDT={IDT:#x}"
        ))),
        "{:?}",
        h.console()
    );
    assert!(alerts(&mut p.alerts).is_empty());
    // A rootkit rewrites LSTAR: the VMM reports the write, the monitor alerts.
    cpu.lstar = MODULE;
    let wrmsr = Event::MsrWrite {
        msr: MSR_LSTAR,
        value: MODULE,
    };
    assert!(vmi.wants(&wrmsr));
    vmi.report(0, wrmsr, &mut p.events, &mut cpu);
    pd.notify(&[CH_VMM]).unwrap();
    let got = alerts(&mut p.alerts);
    assert!(
        matches!(got.as_slice(), [Report::Alert(a)] if a.kind == AlertKind::SyscallHook && a.subject == MODULE),
        "{got:?}"
    );
    assert_eq!(pd.handler().counters().rejected, 0);
}
