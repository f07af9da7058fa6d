//! The supervisor PD, run on the host by the component harness against the
//! reference `system.xml`: the harness plays the kernel, the tests play the
//! monitor, the firmware and the other children.

use bulkhead_channel::adversary::{Adversary, Attack};
use std::sync::atomic::Ordering;

use bulkhead_channel::{NoNotify, SendError, Sender};
use bulkhead_harness::{Call, Harness, HarnessError};
use bulkhead_microkit::FaultKind;
use bulkhead_protocols::post::{Decision, Entry, Outcome, PostSummary, Refusal};
use bulkhead_protocols::regs;
use bulkhead_protocols::supervisor::{Alert, AlertKind, Level, Log, Report, Severity};
use bulkhead_supervisor::{
    init, report_frame_len, Counters, ALERT_SLOT, LABEL_GUEST_START, LABEL_REPORT, LABEL_UP,
    MAX_RESTARTS, REFERENCE_HALTED_MARKER, REFERENCE_MARKER, REPLY_OK, REPLY_REJECTED,
    REPLY_START_GUEST,
};

// The supervisor's channel ids and its children's ids in system.xml.
const CH_FIRMWARE: usize = 0;
const CH_VMM: usize = 1;
const CH_MONITOR: usize = 2;
const CH_GATEWAY: usize = 3;
const CHILD_MONITOR: usize = 2;
const CHILD_GATEWAY: usize = 3;

fn reference() -> Harness {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../system.xml");
    let text = std::fs::read_to_string(path).expect("reference system.xml");
    Harness::load(path, &text, "supervisor").expect("reference system.xml loads")
}

fn alert(subject: u64, severity: Severity) -> Report {
    Report::Alert(Alert {
        severity,
        kind: AlertKind::SyscallHook,
        subject,
        detail: heapless::String::try_from("LSTAR outside the kernel").unwrap(),
    })
}

#[test]
fn init_finds_its_ring_and_the_report_region_from_system_xml() {
    let h = reference();
    let _sup = h.start(init);
    let console = h.console();
    assert!(
        console[0].contains("alerts ring ready")
            && console[0].contains("POST report region mapped"),
        "{console:?}"
    );
    assert!(h.take_calls().is_empty(), "init made kernel calls");
}

#[test]
fn alerts_from_the_monitor_ring_are_logged_and_counted() {
    let h = reference();
    let mut sup = h.start(init);
    let mut monitor =
        Sender::<Report, ALERT_SLOT, _>::new(h.ring("alerts").unwrap(), NoNotify).unwrap();
    monitor
        .send(&alert(0xffff_8000_0000_1000, Severity::Critical))
        .unwrap();
    monitor.send(&alert(7, Severity::Warning)).unwrap();
    monitor
        .send(&Report::Log(Log {
            level: Level::Info,
            text: heapless::String::try_from("profile loaded").unwrap(),
        }))
        .unwrap();
    sup.notify(&[CH_MONITOR]).unwrap();
    let c = sup.handler().counters();
    assert_eq!((c.alerts, c.critical, c.logs, c.rejected), (2, 1, 1, 0));
    let console = h.console();
    assert!(
        console
            .iter()
            .any(|l| l
                .contains("alert from monitor: CRITICAL SyscallHook subject 0xffff800000001000")),
        "{console:?}"
    );
    assert!(console
        .iter()
        .any(|l| l.contains("log from monitor: Info: profile loaded")));
    // A notification with nothing new reads nothing.
    sup.notify(&[CH_MONITOR]).unwrap();
    assert_eq!(sup.handler().counters(), c);
}

#[test]
fn a_full_alerts_ring_gets_its_producer_woken_when_drained() {
    let h = reference();
    let mut sup = h.start(init);
    let mut monitor =
        Sender::<Report, ALERT_SLOT, _>::new(h.ring("alerts").unwrap(), NoNotify).unwrap();
    let mut sent = 0;
    loop {
        match monitor.send(&alert(sent, Severity::Info)) {
            Ok(()) => sent += 1,
            Err(SendError::Full) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(sent > 100, "ring of 64 KiB holds {sent} records");
    h.take_calls();
    sup.notify(&[CH_MONITOR]).unwrap();
    assert_eq!(sup.handler().counters().alerts, sent);
    // The monitor asked for space; the supervisor's ring hook notifies it.
    assert_eq!(h.take_calls(), vec![Call::Notify(CH_MONITOR)]);
}

#[test]
fn hostile_records_on_the_alerts_ring_are_rejected_and_counted() {
    let h = reference();
    let mut sup = h.start(init);
    let mut adversary = Adversary::<Report, ALERT_SLOT>::new(h.ring("alerts").unwrap(), 42);
    let mut records = 0;
    for _ in 0..Attack::ALL.len() - 1 {
        let a = adversary.strike().expect("ring has room");
        assert_ne!(a, Attack::IndexJump);
        records += 1;
    }
    sup.notify(&[CH_MONITOR]).unwrap();
    let c = sup.handler().counters();
    assert_eq!((c.rejected, c.alerts, c.logs), (records, 0, 0));
    assert!(h
        .console()
        .iter()
        .any(|l| l.contains(&format!("rejected {records} bad records from monitor"))));
}

fn summary(decision: Decision) -> PostSummary {
    let mut entries = heapless::Vec::new();
    for (name, outcome) in [
        ("memtest", Outcome::Passed),
        ("pci-inventory", Outcome::Refused(Refusal::BadSignature)),
    ] {
        let _ = entries.push(Entry {
            name: heapless::String::try_from(name).unwrap(),
            critical: name == "pci-inventory",
            outcome,
        });
    }
    PostSummary {
        entries,
        omitted: 0,
        decision,
    }
}

/// What the firmware PD does: the full report's frame in the region (here
/// `len` bytes of filler), the summary in a protected call.
fn firmware_reports(
    h: &Harness,
    sup: &mut bulkhead_harness::Pd<bulkhead_supervisor::Supervisor>,
    frame_len: u32,
    decision: Decision,
) -> u64 {
    let region = h.region("firmware_report").expect("firmware_report mapped");
    region[0].store(u64::from(frame_len) | 0x5a5a_5a5a << 32, Ordering::Release);
    let mut words = [0u64; regs::MAX_WORDS];
    let n = regs::to_words(&summary(decision), &mut words).unwrap();
    let (reply, _) = sup
        .pp_call(CH_FIRMWARE, regs::label::<PostSummary>(), &words[..n])
        .unwrap();
    reply.label()
}

#[test]
fn the_post_summary_arrives_in_registers_and_the_report_in_the_region() {
    let h = reference();
    let mut sup = h.start(init);
    assert_eq!(
        firmware_reports(&h, &mut sup, 700, Decision::Halt),
        REPLY_OK
    );
    let c = sup.handler().counters();
    assert_eq!((c.posts, c.halts, c.rejected), (1, 1, 0));
    let console = h.console();
    for want in [
        "firmware: POST summary (1/4 up)",
        "POST: 2 containers (0 omitted), 1 not passed, decision: HALT",
        "POST: pci-inventory (critical): Refused(BadSignature)",
        "POST: full report, 700 bytes, in the report region",
    ] {
        assert!(console.iter().any(|l| l == want), "{want:?} in {console:?}");
    }
}

#[test]
fn a_report_frame_that_does_not_fit_its_region_is_not_read() {
    let h = reference();
    let region = h.region("firmware_report").unwrap();
    // One page: 4 bytes of length, 4092 of report at most.
    assert_eq!(region.len() * 8, 0x1000);
    region[0].store(4092, Ordering::Relaxed);
    assert_eq!(report_frame_len(region), Some(4092));
    region[0].store(4093, Ordering::Relaxed);
    assert_eq!(report_frame_len(region), None);
    region[0].store(0, Ordering::Relaxed);
    assert_eq!(report_frame_len(region), None);
    assert_eq!(report_frame_len(&[]), None);
    let mut sup = h.start(init);
    assert_eq!(
        firmware_reports(&h, &mut sup, u32::MAX, Decision::StartGuest),
        REPLY_OK
    );
    assert!(h
        .console()
        .iter()
        .any(|l| l
            == "POST: no full report in the report region (it did not fit, or was not written)"));
}

#[test]
fn a_malformed_post_summary_is_rejected_and_does_not_count_as_up() {
    let h = reference();
    let mut sup = h.start(init);
    let mut words = [0u64; regs::MAX_WORDS];
    let n = regs::to_words(&summary(Decision::StartGuest), &mut words).unwrap();
    // One register short of the length it claims.
    let (reply, _) = sup
        .pp_call(CH_FIRMWARE, regs::label::<PostSummary>(), &words[..n - 1])
        .unwrap();
    assert_eq!(reply.label(), REPLY_REJECTED);
    let c = sup.handler().counters();
    assert_eq!((c.posts, c.rejected), (0, 1));
    for ch in [CH_VMM, CH_MONITOR, CH_GATEWAY] {
        sup.pp_call(ch, LABEL_UP, &[]).unwrap();
    }
    sup.pp_call(CH_VMM, LABEL_GUEST_START, &[]).unwrap();
    // 3/4 up: no marker of either kind.
    assert!(!h
        .console()
        .iter()
        .any(|l| l.starts_with("REFERENCE_SYSTEM")));
}

#[test]
fn a_halting_post_ends_the_boot_with_the_halted_marker() {
    let h = reference();
    let mut sup = h.start(init);
    firmware_reports(&h, &mut sup, 100, Decision::Halt);
    for ch in [CH_VMM, CH_MONITOR] {
        sup.pp_call(ch, LABEL_UP, &[]).unwrap();
    }
    assert!(!h
        .console()
        .iter()
        .any(|l| l.starts_with("REFERENCE_SYSTEM")));
    sup.pp_call(CH_GATEWAY, LABEL_UP, &[]).unwrap();
    let console = h.console();
    assert_eq!(
        console
            .iter()
            .filter(|l| l.starts_with(REFERENCE_HALTED_MARKER))
            .count(),
        1,
        "{console:?}"
    );
    assert!(!console.iter().any(|l| l.starts_with(REFERENCE_MARKER)));
}

#[test]
fn a_passing_post_and_the_guest_start_announce_the_reference_system() {
    let h = reference();
    let mut sup = h.start(init);
    firmware_reports(&h, &mut sup, 100, Decision::StartGuest);
    for ch in [CH_VMM, CH_MONITOR, CH_GATEWAY] {
        sup.pp_call(ch, LABEL_UP, &[]).unwrap();
    }
    assert!(!h
        .console()
        .iter()
        .any(|l| l.starts_with("REFERENCE_SYSTEM")));
    sup.pp_call(CH_VMM, LABEL_GUEST_START, &[]).unwrap();
    let console = h.console();
    assert_eq!(
        console
            .iter()
            .filter(|l| l.starts_with(REFERENCE_MARKER))
            .count(),
        1
    );
    assert!(!console
        .iter()
        .any(|l| l.starts_with(REFERENCE_HALTED_MARKER)));
}

#[test]
fn faulted_children_are_restarted_then_stopped_by_the_policy() {
    let h = reference();
    let mut sup = h.start(init);
    for _ in 0..MAX_RESTARTS {
        sup.fault(CHILD_MONITOR, FaultKind::WriteFault, 0x8, 0x40_1000)
            .unwrap();
        assert!(!h.child_stopped(CHILD_MONITOR));
    }
    sup.fault(CHILD_GATEWAY, FaultKind::ReadFault, 0, 0x40_2000)
        .unwrap();
    sup.fault(CHILD_MONITOR, FaultKind::WriteFault, 0x8, 0x40_1000)
        .unwrap();
    assert!(h.child_stopped(CHILD_MONITOR));
    assert!(!h.child_stopped(CHILD_GATEWAY));
    let mut want = vec![Call::Restart(CHILD_MONITOR); MAX_RESTARTS as usize];
    want.push(Call::Restart(CHILD_GATEWAY));
    want.push(Call::Stop(CHILD_MONITOR));
    assert_eq!(h.take_calls(), want);
    assert_eq!(sup.handler().counters().stopped, 1);
    assert!(h.console().iter().any(|l| l.contains(
        "child monitor faulted (Some(WriteFault) at 0x8) after 3 restarts; stopped for good"
    )));
}

#[test]
fn boot_handshake_over_ppc_announces_the_reference_system() {
    let h = reference();
    let mut sup = h.start(init);
    for ch in [CH_FIRMWARE, CH_VMM, CH_MONITOR, CH_GATEWAY] {
        let (reply, _) = sup.pp_call(ch, LABEL_UP, &[]).unwrap();
        assert_eq!(reply.label(), REPLY_OK);
    }
    assert!(!h.console().iter().any(|l| l.contains(REFERENCE_MARKER)));
    sup.pp_call(CH_VMM, LABEL_GUEST_START, &[]).unwrap();
    assert_eq!(
        h.console()
            .iter()
            .filter(|l| l.starts_with(REFERENCE_MARKER))
            .count(),
        1
    );
}

#[test]
fn reports_in_message_registers_are_decoded_strictly() {
    let h = reference();
    let mut sup = h.start(init);
    let mut mrs = [0u64; regs::MAX_WORDS];
    let n = regs::to_words(&alert(1, Severity::Critical), &mut mrs).unwrap();
    let (reply, _) = sup.pp_call(CH_GATEWAY, LABEL_REPORT, &mrs[..n]).unwrap();
    assert_eq!(reply.label(), REPLY_OK);
    assert!(h
        .console()
        .iter()
        .any(|l| l.starts_with("alert from gateway: CRITICAL")));
    // One register short of the length it claims: rejected, counted.
    let (reply, _) = sup
        .pp_call(CH_GATEWAY, LABEL_REPORT, &mrs[..n - 1])
        .unwrap();
    assert_eq!(reply.label(), REPLY_REJECTED);
    let (reply, _) = sup.pp_call(CH_GATEWAY, 99, &[]).unwrap();
    assert_eq!(reply.label(), REPLY_REJECTED);
    assert_eq!(
        sup.handler().counters(),
        Counters {
            alerts: 1,
            critical: 1,
            rejected: 2,
            ..Counters::default()
        }
    );
}

#[test]
fn the_harness_refuses_events_system_xml_does_not_allow() {
    let h = reference();
    let mut sup = h.start(init);
    // The supervisor holds channels 0..=3 only, and children 0..=3.
    assert!(matches!(sup.notify(&[9]), Err(HarnessError::NotGranted(_))));
    assert!(matches!(
        sup.pp_call(9, LABEL_UP, &[]),
        Err(HarnessError::NotGranted(_))
    ));
    assert!(matches!(
        sup.fault(7, FaultKind::ReadFault, 0, 0),
        Err(HarnessError::NotGranted(_))
    ));
    assert!(sup.irq(5).is_err());
}

#[test]
fn the_com1_irq_is_acknowledged() {
    let h = reference();
    let mut sup = h.start(init);
    assert!(
        h.console()[1].contains("COM1 at port 0x3f8"),
        "{:?}",
        h.console()
    );
    sup.irq(4).unwrap();
    assert!(!sup.irq_masked(4));
    assert_eq!(h.take_calls(), vec![Call::IrqAck(4)]);
    sup.irq(4).unwrap();
}

#[test]
fn console_input_goes_to_the_vmm_a_fifo_at_a_time() {
    use bulkhead_channel::Receiver;
    use bulkhead_protocols::console::{ConsoleInput, CONSOLE_SLOT};
    let h = reference();
    let mut sup = h.start(init);
    // Init enabled the UART's receive interrupt and its IRQ line.
    assert_eq!(h.port(0x3f9), Some(0x01));
    assert_eq!(h.port(0x3fc), Some(0x0b));
    let mut vmm =
        Receiver::<ConsoleInput, CONSOLE_SLOT, _>::new(h.ring("console_in").unwrap(), NoNotify)
            .unwrap();
    // A UART that always has data (LSR.DR set): one FIFO's worth per IRQ.
    h.set_port(0x3fd, 0x01);
    h.set_port(0x3f8, b'x');
    h.take_calls();
    sup.irq(4).unwrap();
    let got = vmm.recv().expect("a record");
    assert_eq!(&got.bytes[..], &[b'x'; 16]);
    assert!(matches!(
        vmm.recv(),
        Err(bulkhead_channel::RecvError::Empty)
    ));
    assert_eq!(h.take_calls(), vec![Call::Notify(CH_VMM), Call::IrqAck(4)]);
    // No UART at all (the bus reads all ones): nothing is forwarded.
    h.set_port(0x3fd, 0xff);
    sup.irq(4).unwrap();
    assert!(matches!(
        vmm.recv(),
        Err(bulkhead_channel::RecvError::Empty)
    ));
}

#[test]
fn a_vmm_restarted_after_the_guest_start_is_told_to_start_it_again() {
    let h = reference();
    let mut sup = h.start(init);
    let mut up = |ch| sup.pp_call(ch, LABEL_UP, &[]).unwrap().0.label();
    assert_eq!(up(CH_VMM), REPLY_OK, "before the firmware's go");
    sup.pp_call(CH_VMM, LABEL_GUEST_START, &[]).unwrap();
    let mut up = |ch| sup.pp_call(ch, LABEL_UP, &[]).unwrap().0.label();
    assert_eq!(up(CH_VMM), REPLY_START_GUEST, "a restarted VMM");
    assert_eq!(up(CH_MONITOR), REPLY_OK, "only the VMM has a guest");
}
