//! firmware-critical/judge: the firmware PD's parent and supervisor. Checks
//! the POST summary the firmware sends (Halt; memtest refused for its hash;
//! the other containers passed) and the report frame in the shared region,
//! fails on a firmware fault or a guest-start from the VMM stand-in, and
//! passes when the idle PD checks in (every other PD is then blocked, so a
//! notification to the VMM can no longer be on its way).

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, get_mr, protection_domain, setvar, Channel, Child, FaultInfo, Handler,
    Infallible, MessageInfo,
};
use bulkhead_protocols::post::{Decision, Outcome, PostSummary, Refusal};
use bulkhead_protocols::regs;
use bulkhead_test_pds::{check, fail, pass, Shared};

const FIRMWARE: Channel = Channel::new(0);
const VMM: Channel = Channel::new(1);
const IDLE: Channel = Channel::new(2);
use bulkhead_protocols::supervisor::calls::LABEL_GUEST_START;
/// The idle PD's check-in.
const LABEL_IDLE: u64 = 3;
const T: &str = "firmware-critical";

setvar!(firmware_report);

struct Judge {
    summary_ok: bool,
    done: bool,
}

fn init() -> Judge {
    debug_println!("judge: waiting for the firmware's POST summary");
    Judge {
        summary_ok: false,
        done: false,
    }
}

fn check_summary(s: &PostSummary) -> bool {
    debug_println!("judge: summary {:?}", s);
    let outcome = |name: &str| {
        s.entries
            .iter()
            .find(|e| e.name.as_str() == name)
            .map(|e| (e.critical, e.outcome))
    };
    check(
        T,
        s.decision == Decision::Halt,
        format_args!("decision is not Halt"),
    ) && check(
        T,
        outcome("memtest") == Some((true, Outcome::Refused(Refusal::HashMismatch))),
        format_args!("memtest is not a critical container refused for its hash"),
    ) && ["pci-inventory", "timer-rtc", "serial-loopback"]
        .iter()
        .all(|n| {
            check(
                T,
                outcome(n).map(|o| o.1) == Some(Outcome::Passed),
                format_args!("{n} did not pass"),
            )
        })
        && check(
            T,
            s.entries.len() == 4 && s.omitted == 0,
            format_args!("not 4 entries"),
        )
}

fn check_report_frame() -> bool {
    let region = Shared::new(firmware_report.get());
    let head = region.read(0);
    let len = head & 0xffff_ffff;
    let magic = (head >> 32) as u32;
    check(
        T,
        len > 8 && len <= 4092 && magic == u32::from_le_bytes(*b"BHPR"),
        format_args!("no report frame in the report region (len {len}, magic {magic:#x})"),
    )
}

impl Handler for Judge {
    type Error = Infallible;

    fn protected(&mut self, ch: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        if self.done {
            return Ok(MessageInfo::new(0, 0));
        }
        if ch == FIRMWARE && info.label() == regs::label::<PostSummary>() {
            let words: [u64; regs::MAX_WORDS] = core::array::from_fn(get_mr);
            match regs::from_words::<PostSummary>(&words[..info.count().min(regs::MAX_WORDS)]) {
                Ok(s) => {
                    self.summary_ok = check_summary(&s) && check_report_frame();
                    self.done = !self.summary_ok;
                }
                Err(e) => {
                    fail(T, format_args!("malformed summary: {e:?}"));
                    self.done = true;
                }
            }
        } else if ch == VMM && info.label() == LABEL_GUEST_START {
            fail(T, format_args!("the VMM was told to start the guest"));
            self.done = true;
        } else if ch == IDLE && info.label() == LABEL_IDLE {
            if check(
                T,
                self.summary_ok,
                format_args!("every PD went idle without a POST summary"),
            ) {
                debug_println!("judge: boot stopped, the VMM was never notified");
                pass(T);
            }
            self.done = true;
        } else {
            fail(
                T,
                format_args!(
                    "unexpected call label {} on channel {}",
                    info.label(),
                    ch.index()
                ),
            );
            self.done = true;
        }
        Ok(MessageInfo::new(0, 0))
    }

    fn fault(&mut self, child: Child, info: FaultInfo) -> Result<(), Self::Error> {
        fail(
            T,
            format_args!(
                "firmware PD (child {}) faulted: {:?} at {:#x}, RIP {:#x}",
                child.index(),
                info.kind,
                info.address,
                info.ip
            ),
        );
        self.done = true;
        Ok(())
    }
}

protection_domain!(init);
