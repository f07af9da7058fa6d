//! Placeholder supervisor: counts its children's "up" calls and the VMM's
//! guest-start call, then prints the REFERENCE_SYSTEM_UP marker; restarts a
//! faulting child.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, get_mr, protection_domain, setvar, Channel, Child, FaultInfo, Handler,
    Infallible, MessageInfo,
};
use bulkhead_placeholder_pds::{channel, LABEL_GUEST_START, LABEL_UP};
use bulkhead_protocols::post::{Decision, Outcome, PostSummary};
use bulkhead_protocols::regs;

setvar!(firmware_report);
setvar!(monitor_alerts);
setvar!(com1_ioport);
setvar!(com1_port);
setvar!(com1_irq);
setvar!(ch_firmware);
setvar!(ch_vmm);
setvar!(ch_monitor);
setvar!(ch_gateway);

struct Supervisor {
    up: u32,
    guest_started: bool,
    post_halted: bool,
    names: [(Channel, &'static str); 4],
}

fn init() -> Supervisor {
    debug_println!("placeholder supervisor (the real one is a later issue)");
    debug_println!(
        "COM1 at port {:#x}, its IRQ on channel {}; firmware report at {:#x}",
        com1_port.get().unwrap_or(0),
        com1_irq.get().unwrap_or(0),
        firmware_report.get().unwrap_or(0)
    );
    let _ = (monitor_alerts.get(), com1_ioport.get());
    Supervisor {
        up: 0,
        guest_started: false,
        post_halted: false,
        names: [
            (channel(&ch_firmware, "ch_firmware"), "firmware"),
            (channel(&ch_vmm, "ch_vmm"), "vmm"),
            (channel(&ch_monitor, "ch_monitor"), "monitor"),
            (channel(&ch_gateway, "ch_gateway"), "gateway"),
        ],
    }
}

impl Handler for Supervisor {
    type Error = Infallible;

    fn protected(&mut self, ch: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        let who = self
            .names
            .iter()
            .find(|(c, _)| *c == ch)
            .map_or("?", |(_, n)| n);
        match info.label() {
            LABEL_UP => {
                self.up += 1;
                debug_println!("{who} is up ({}/4)", self.up);
            }
            LABEL_GUEST_START => {
                debug_println!("{who}: firmware done, guest start requested");
                self.guest_started = true;
            }
            // The real firmware PD's report: its summary is its "up".
            l if l == regs::label::<PostSummary>() => {
                self.up += 1;
                let words: [u64; regs::MAX_WORDS] = core::array::from_fn(get_mr);
                let n = info.count().min(regs::MAX_WORDS);
                match regs::from_words::<PostSummary>(&words[..n]) {
                    Ok(s) => {
                        self.post_halted = s.decision == Decision::Halt;
                        debug_println!(
                        "{who}: POST summary: {} container(s), {} failed, decision {:?} ({}/4 up)",
                        s.entries.len(),
                        s.entries.iter().filter(|e| e.outcome != Outcome::Passed).count(),
                        s.decision,
                        self.up
                    )
                    }
                    Err(e) => debug_println!("{who}: malformed POST summary rejected: {e:?}"),
                }
            }
            other => debug_println!("{who}: unknown request {other}"),
        }
        if self.up == 4 && self.post_halted {
            // A board the POST policy does not accept (Bochs's i440FX is not
            // the q35 it is written for): up, but rightly not booting.
            debug_println!(
                "REFERENCE_SYSTEM_HALTED: every PD started; the firmware's POST stopped the boot"
            );
        }
        if self.up == 4 && self.guest_started {
            debug_println!(
                "REFERENCE_SYSTEM_UP: every PD started and the firmware->vmm notification arrived"
            );
        }
        Ok(MessageInfo::new(0, 0))
    }

    fn fault(&mut self, child: Child, info: FaultInfo) -> Result<(), Self::Error> {
        debug_println!(
            "child {} faulted ({:?} at {:#x}); restarting it",
            child.index(),
            info.kind,
            info.address
        );
        let _ = child.restart();
        Ok(())
    }
}

protection_domain!(init);
