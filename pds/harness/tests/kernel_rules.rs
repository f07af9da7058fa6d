//! The harness plays the kernel's capability checks: a small system with
//! one PD under test, a peer, a child, an IRQ and an I/O port.

use bulkhead_harness::{Call, Harness, HarnessError};
use bulkhead_microkit::{
    get_mr, io, set_mr, setvar, Channel, ChannelSet, Child, FaultInfo, Handler, MessageInfo,
};
use std::sync::atomic::Ordering;

const SDF: &str = r#"<system>
    <memory_region name="shared" size="0x1000" />
    <protection_domain name="pd" priority="20">
        <program_image path="pd.elf" />
        <map mr="shared" vaddr="0x2000_0000" perms="rw" setvar_vaddr="shared" setvar_size="shared_size" />
        <ioport id="0" addr="0x3f8" size="8" setvar_addr="uart" />
        <irq id="5" pin="4" vector="4" setvar_id="uart_irq" />
        <protection_domain name="kid" id="1" priority="10">
            <program_image path="kid.elf" />
        </protection_domain>
    </protection_domain>
    <protection_domain name="peer" priority="30">
        <program_image path="peer.elf" />
        <map mr="shared" vaddr="0x2000_0000" perms="r" />
    </protection_domain>
    <protection_domain name="quiet" priority="5">
        <program_image path="quiet.elf" />
    </protection_domain>
    <channel>
        <end pd="pd" id="2" pp="true" setvar_id="ch_peer" />
        <end pd="peer" id="0" />
    </channel>
    <channel>
        <end pd="pd" id="3" notify="false" />
        <end pd="quiet" id="0" pp="true" />
    </channel>
</system>"#;

setvar!(shared);
setvar!(shared_size);
setvar!(uart);
setvar!(uart_irq);
setvar!(ch_peer);

/// Does, for each event, what the test asks it to.
struct Pd {
    seen: Vec<String>,
}

impl Handler for Pd {
    type Error = core::convert::Infallible;
    fn notified(&mut self, chs: ChannelSet) -> Result<(), Self::Error> {
        for ch in chs.iter() {
            self.seen.push(format!("notified {}", ch.index()));
            match ch.index() {
                5 => {
                    io::outb(uart.get().unwrap() as u16, b'!');
                    Channel::new(5).irq_ack();
                }
                2 => Channel::new(3).notify(), // notify="false": a fault
                _ => {}
            }
        }
        Ok(())
    }
    fn protected(&mut self, ch: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        self.seen
            .push(format!("called on {} label {}", ch.index(), info.label()));
        // Forward to the peer and return its answer doubled.
        set_mr(0, get_mr(0) + 1);
        let r = Channel::new(ch_peer.get().unwrap() as usize)
            .pp_call(MessageInfo::new(1, 1))
            .unwrap();
        set_mr(0, get_mr(0) * 2);
        Ok(MessageInfo::new(r.label(), 1))
    }
    fn fault(&mut self, child: Child, _info: FaultInfo) -> Result<(), Self::Error> {
        child.restart().unwrap();
        Ok(())
    }
}

fn load() -> Harness {
    Harness::load("test.xml", SDF, "pd").unwrap()
}

#[test]
fn setvars_resolve_from_the_file_and_regions_are_shared() {
    let h = load();
    let _pd = h.start(|| Pd { seen: vec![] });
    assert_eq!(
        (uart.get(), uart_irq.get(), ch_peer.get()),
        (Some(0x3f8), Some(5), Some(2))
    );
    let words = bulkhead_microkit::shared_words(&shared, &shared_size).unwrap();
    assert_eq!(words.len(), 512);
    words[3].store(99, Ordering::Relaxed);
    assert_eq!(h.region("shared").unwrap()[3].load(Ordering::Relaxed), 99);
}

#[test]
fn irqs_are_masked_until_acknowledged_and_ports_are_checked() {
    let h = load();
    let mut pd = h.start(|| Pd { seen: vec![] });
    pd.irq(5).unwrap();
    assert!(!pd.irq_masked(5));
    assert_eq!(h.port(0x3f8), Some(b'!'));
    assert_eq!(h.take_calls(), vec![Call::IrqAck(5)]);
    assert!(matches!(pd.irq(4), Err(HarnessError::NotGranted(_))));
}

#[test]
fn calls_go_to_the_test_stand_in_with_registers() {
    let h = load();
    let mut pd = h.start(|| Pd { seen: vec![] });
    h.on_pp_call(2, |info, mrs| {
        assert_eq!(info.label(), 1);
        mrs[0] += 10;
        Ok(MessageInfo::new(7, 1))
    });
    let (reply, mrs) = pd.pp_call(3, 4, &[5]).unwrap();
    assert_eq!((reply.label(), mrs), (7, vec![(5 + 1 + 10) * 2]));
    assert_eq!(h.take_calls(), vec![Call::PpCall(2, 1, 1)]);
    assert_eq!(pd.handler().seen, ["called on 3 label 4"]);
    // The peer on channel 2 may not call in (pp is only on our end).
    assert!(matches!(
        pd.pp_call(2, 0, &[]),
        Err(HarnessError::NotGranted(_))
    ));
}

#[test]
fn faults_of_children_reach_the_parent() {
    let h = load();
    let mut pd = h.start(|| Pd { seen: vec![] });
    pd.fault(1, bulkhead_microkit::FaultKind::WriteFault, 8, 0)
        .unwrap();
    assert_eq!(h.take_calls(), vec![Call::Restart(1)]);
    assert!(!h.child_stopped(1));
    assert!(pd
        .fault(2, bulkhead_microkit::FaultKind::WriteFault, 8, 0)
        .is_err());
}

#[test]
#[should_panic(expected = "notified channel 3, but its <end> says notify=\"false\"")]
fn notifying_without_the_right_is_a_fault() {
    let h = load();
    let mut pd = h.start(|| Pd { seen: vec![] });
    // The peer notifies on 2; the handler answers on 3, where it may not.
    assert!(matches!(pd.notify(&[0]), Err(HarnessError::NotGranted(_))));
    let _ = pd.notify(&[2]);
}

#[test]
fn bad_files_and_names_are_errors_that_say_what() {
    let e = Harness::load("bad.xml", "<system><protection_domain/></system>", "pd")
        .err()
        .unwrap();
    assert!(
        matches!(e, HarnessError::Sdf(ref d) if d.contains("bad.xml")),
        "{e}"
    );
    let e = Harness::load("test.xml", SDF, "nope").err().unwrap();
    assert_eq!(
        e.to_string(),
        "no protection_domain named \"nope\" in system.xml"
    );
    let h = load();
    assert!(h
        .ring("x")
        .err()
        .unwrap()
        .to_string()
        .contains("tx_x_header"));
}
