//! The supervisor: root of the reference system's PD tree (`system.xml`).
//!
//! - **Faults of children** reach it from the kernel. Policy
//!   ([`RestartPolicy`]): restart a faulted child, at most
//!   [`MAX_RESTARTS`] times in its life; after that, stop it for good and
//!   raise a critical log line. A restart loop cannot starve the system.
//! - **Reports** arrive on a typed ring (`bulkhead-channel`): the monitor's
//!   alerts (`supervisor::Report`). On the monitor's notification it drains
//!   the ring. Rejected records are counted (the ring does it) and the
//!   count is logged, never trusted.
//! - **The firmware's POST** arrives once, at boot: its summary
//!   (`post::PostSummary`) in the message registers of a protected call
//!   (label `regs::label::<PostSummary>()`, framed by
//!   `bulkhead_protocols::regs`), which also counts as the firmware's "up";
//!   the full report is a frame (little-endian `u32` length, then the
//!   bytes) in the `firmware_report` region the supervisor maps read-only.
//!   A summary that says `Halt` ends the boot with
//!   [`REFERENCE_HALTED_MARKER`] instead of [`REFERENCE_MARKER`].
//! - **Small calls** over PPC: the boot handshake (label [`LABEL_UP`]: a
//!   child is up; [`LABEL_GUEST_START`]: the VMM was told to start the
//!   guest), and a `Report` in message registers ([`LABEL_REPORT`],
//!   framed by `bulkhead_protocols::regs`) for PDs without a ring.
//! - **Logs** go to the kernel console, one line per event, prefixed by the
//!   kernel with the PD's name.
//!
//! Ids and addresses come from `system.xml` setvars only. A ring whose
//! setvars are missing is simply not read (and said so at init), so the
//! same code runs in smaller systems.

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

use core::sync::atomic::{AtomicU64, Ordering};

use bulkhead_channel::{Receiver, RecvError, RingMemory, Sender};
use bulkhead_microkit::{
    debug_println, get_mr, io, setvar, shared_words, Channel, ChannelSet, Child, FaultInfo,
    Handler, MessageInfo, SetVar, MAX_MESSAGE_REGISTERS,
};
use bulkhead_protocols::console::{ConsoleInput, CONSOLE_CHUNK, CONSOLE_SLOT};
use bulkhead_protocols::post::{Decision, Outcome, PostSummary};
use bulkhead_protocols::regs;
use bulkhead_protocols::supervisor::{Report, Severity};

pub use bulkhead_protocols::supervisor::calls::*;
/// Restarts a child gets in its life before it is stopped for good.
pub const MAX_RESTARTS: u8 = 3;
/// The line printed once every child is up and the guest start was asked
/// for (the reference boot test waits for it).
pub const REFERENCE_MARKER: &str = "REFERENCE_SYSTEM_UP";
/// The line printed instead once every child is up but the firmware's POST
/// stopped the boot (e.g. a board its policy is not written for).
pub const REFERENCE_HALTED_MARKER: &str = "REFERENCE_SYSTEM_HALTED";

/// Slot size of the alerts ring (`Report::MAX_SIZE` 103 + 16, rounded up),
/// shared with its producer through the protocol crate.
pub const ALERT_SLOT: usize = bulkhead_protocols::supervisor::REPORT_SLOT;

setvar!(ch_firmware);
setvar!(ch_vmm);
setvar!(ch_monitor);
setvar!(ch_gateway);
setvar!(child_firmware);
setvar!(child_vmm);
setvar!(child_monitor);
setvar!(child_gateway);
setvar!(com1_ioport);
setvar!(com1_port);
setvar!(com1_irq);
setvar!(tx_console_in_header);
setvar!(tx_console_in_header_size);
setvar!(tx_console_in_data);
setvar!(tx_console_in_data_size);
setvar!(rx_alerts_header);
setvar!(rx_alerts_header_size);
setvar!(rx_alerts_data);
setvar!(rx_alerts_data_size);
setvar!(post_report);
setvar!(post_report_size);

/// What the policy says to do with a faulted child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Restart it; this is restart number `.0` (1-based).
    Restart(u8),
    /// Stop it: it used up its restarts.
    Stop,
}

/// The restart policy: a bounded number of restarts per child.
#[derive(Clone, Debug)]
pub struct RestartPolicy {
    restarts: [u8; 64],
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self { restarts: [0; 64] }
    }
}

impl RestartPolicy {
    /// Decides for child `child` (ids outside 0..64 are always stopped).
    pub fn on_fault(&mut self, child: usize) -> Verdict {
        match self.restarts.get_mut(child) {
            Some(n) if *n < MAX_RESTARTS => {
                *n += 1;
                Verdict::Restart(*n)
            }
            _ => Verdict::Stop,
        }
    }
    /// Restarts child `child` has had.
    pub fn restarts(&self, child: usize) -> u8 {
        self.restarts.get(child).copied().unwrap_or(0)
    }
}

/// What the supervisor has seen (for its logs and its tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Alerts received (ring or PPC).
    pub alerts: u64,
    /// Critical alerts among them.
    pub critical: u64,
    /// Faults reported by children about what they run.
    pub faults: u64,
    /// Log records received.
    pub logs: u64,
    /// POST summaries received.
    pub posts: u64,
    /// Of them, summaries that stopped the boot.
    pub halts: u64,
    /// Console input chunks dropped because the VMM's ring was full.
    pub console_dropped: u64,
    /// Records and calls rejected (malformed, wrong protocol, ...).
    pub rejected: u64,
    /// Children stopped by the policy.
    pub stopped: u64,
}

/// One child as the supervisor knows it.
#[derive(Clone, Copy, Debug)]
struct Known {
    name: &'static str,
    channel: Option<Channel>,
    child: Option<Child>,
}

/// The supervisor's state.
pub struct Supervisor {
    children: [Known; 4],
    up: u32,
    guest_started: bool,
    post_halted: bool,
    announced: bool,
    policy: RestartPolicy,
    counters: Counters,
    alerts: Option<Receiver<'static, Report, ALERT_SLOT, Option<Channel>>>,
    post_report: Option<&'static [AtomicU64]>,
    com1_irq: Option<Channel>,
    /// COM1's base port, when the supervisor forwards what is typed on it.
    com1: Option<u16>,
    /// Console input to the VMM (its guest's UART).
    console: Option<Sender<'static, ConsoleInput, CONSOLE_SLOT, Option<Channel>>>,
}

/// 16550 registers, from the base port.
mod uart {
    pub const RBR: u16 = 0;
    pub const IER: u16 = 1;
    pub const MCR: u16 = 4;
    pub const LSR: u16 = 5;
    /// IER: received data available.
    pub const IER_RDA: u8 = 1;
    /// MCR: DTR, RTS and OUT2 (which gates the IRQ line on a PC).
    pub const MCR_IRQ: u8 = 0x0b;
    /// LSR: data ready.
    pub const LSR_DR: u8 = 1;
    /// Bytes read per interrupt at most: the 16550's FIFO depth.
    pub const FIFO: usize = 16;
}

fn ring(
    header: &'static SetVar,
    header_size: &'static SetVar,
    data: &'static SetVar,
    data_size: &'static SetVar,
) -> Option<RingMemory<'static>> {
    let h = shared_words(header, header_size)?;
    let d = shared_words(data, data_size)?;
    RingMemory::new(h, d).ok()
}

fn channel(v: &'static SetVar) -> Option<Channel> {
    v.get().map(|id| Channel::new(id as usize))
}

fn child(v: &'static SetVar) -> Option<Child> {
    v.get().map(|id| Child::new(id as usize))
}

/// The PD's init: reads its setvars, takes the consumer side of its rings.
pub fn init() -> Supervisor {
    let children = [
        Known {
            name: "firmware",
            channel: channel(&ch_firmware),
            child: child(&child_firmware),
        },
        Known {
            name: "vmm",
            channel: channel(&ch_vmm),
            child: child(&child_vmm),
        },
        Known {
            name: "monitor",
            channel: channel(&ch_monitor),
            child: child(&child_monitor),
        },
        Known {
            name: "gateway",
            channel: channel(&ch_gateway),
            child: child(&child_gateway),
        },
    ];
    let alerts = ring(
        &rx_alerts_header,
        &rx_alerts_header_size,
        &rx_alerts_data,
        &rx_alerts_data_size,
    )
    .and_then(|m| Receiver::new(m, children[2].channel).ok());
    let report_region = shared_words(&post_report, &post_report_size);
    debug_println!(
        "supervisor: up; alerts ring {}, POST report region {}; restart policy: {} restarts per child",
        if alerts.is_some() {
            "ready"
        } else {
            "not mapped"
        },
        if report_region.is_some() {
            "mapped"
        } else {
            "not mapped"
        },
        MAX_RESTARTS
    );
    let irq = channel(&com1_irq);
    debug_println!(
        "supervisor: COM1 at port {:#x} (I/O grant {}), its IRQ on channel {}",
        com1_port.get().unwrap_or(0),
        com1_ioport.get().unwrap_or(u64::MAX),
        irq.map_or(u64::MAX, |c| c.index() as u64)
    );
    // Console input for the guest: with the ring and the UART's IRQ, the
    // UART interrupts on received data and the bytes go to the VMM.
    let console = ring(
        &tx_console_in_header,
        &tx_console_in_header_size,
        &tx_console_in_data,
        &tx_console_in_data_size,
    )
    .and_then(|m| Sender::new(m, children[1].channel).ok());
    let com1 = match (com1_port.get(), irq, &console) {
        (Some(port), Some(_), Some(_)) => {
            let port = port as u16;
            io::outb(port + uart::IER, uart::IER_RDA);
            io::outb(port + uart::MCR, uart::MCR_IRQ);
            debug_println!("supervisor: console input goes to the VMM's guest");
            Some(port)
        }
        _ => None,
    };
    Supervisor {
        com1_irq: irq,
        com1,
        console,
        children,
        up: 0,
        guest_started: false,
        post_halted: false,
        announced: false,
        policy: RestartPolicy::default(),
        counters: Counters::default(),
        alerts,
        post_report: report_region,
    }
}

/// The length of the report frame at the start of `region` (a
/// little-endian `u32`, then that many bytes), if one is there and fits
/// the region. 0 (the firmware's "did not fit") and any length past the
/// region's end are `None`: the supervisor never reads beyond what the
/// frame can hold.
pub fn report_frame_len(region: &[AtomicU64]) -> Option<usize> {
    let first = region.first()?.load(Ordering::Acquire);
    let len = (first & 0xffff_ffff) as usize;
    let room = (region.len() * 8).checked_sub(4)?;
    (len > 0 && len <= room).then_some(len)
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "CRITICAL",
    }
}

impl Supervisor {
    /// What it has seen so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The restart policy's state.
    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    fn name_of_channel(&self, ch: Channel) -> &'static str {
        self.children
            .iter()
            .find(|k| k.channel == Some(ch))
            .map_or("unknown channel", |k| k.name)
    }

    fn name_of_child(&self, c: Child) -> &'static str {
        self.children
            .iter()
            .find(|k| k.child == Some(c))
            .map_or("unknown child", |k| k.name)
    }

    fn report(&mut self, from: &str, r: &Report) {
        match r {
            Report::Alert(a) => {
                self.counters.alerts += 1;
                if a.severity == Severity::Critical {
                    self.counters.critical += 1;
                }
                debug_println!(
                    "alert from {from}: {} {:?} subject {:#x}: {}",
                    severity(a.severity),
                    a.kind,
                    a.subject,
                    a.detail.as_str()
                );
            }
            Report::Fault(f) => {
                self.counters.faults += 1;
                debug_println!(
                    "fault reported by {from}: unit {} {:?}{}",
                    f.unit,
                    f.kind,
                    if f.restarted { ", restarted" } else { "" }
                );
            }
            Report::Log(l) => {
                self.counters.logs += 1;
                debug_println!("log from {from}: {:?}: {}", l.level, l.text.as_str());
            }
        }
    }

    fn post_summary(&mut self, p: &PostSummary) {
        self.counters.posts += 1;
        if p.decision == Decision::Halt {
            self.counters.halts += 1;
            self.post_halted = true;
        }
        let failed = p
            .entries
            .iter()
            .filter(|e| e.outcome != Outcome::Passed)
            .count();
        debug_println!(
            "POST: {} containers ({} omitted), {} not passed, decision: {}",
            p.entries.len(),
            p.omitted,
            failed,
            match p.decision {
                Decision::StartGuest => "start guest",
                Decision::Halt => "HALT",
            }
        );
        for e in &p.entries {
            if e.outcome != Outcome::Passed {
                debug_println!(
                    "POST: {}{}: {:?}",
                    e.name.as_str(),
                    if e.critical { " (critical)" } else { "" },
                    e.outcome
                );
            }
        }
        match self.post_report.map(report_frame_len) {
            Some(Some(n)) => debug_println!("POST: full report, {n} bytes, in the report region"),
            Some(None) => debug_println!(
                "POST: no full report in the report region (it did not fit, or was not written)"
            ),
            None => debug_println!("POST: the report region is not mapped"),
        }
    }

    /// Reads what arrived on COM1 (at most a FIFO's worth) and sends it to
    /// the VMM; with the ring full it is dropped and counted. An LSR of all
    /// ones is no UART at all (a floating bus), not endless data.
    fn forward_console_input(&mut self) {
        let (Some(port), Some(tx)) = (self.com1, self.console.as_mut()) else {
            return;
        };
        let mut bytes = heapless::Vec::<u8, CONSOLE_CHUNK>::new();
        for _ in 0..uart::FIFO {
            let lsr = io::inb(port + uart::LSR);
            if lsr == 0xff || lsr & uart::LSR_DR == 0 {
                break;
            }
            let _ = bytes.push(io::inb(port + uart::RBR));
        }
        if !bytes.is_empty() && tx.send(&ConsoleInput { bytes }).is_err() {
            self.counters.console_dropped += 1;
        }
    }

    /// Drains the alerts ring; returns how many records it rejected.
    fn drain_alerts(&mut self) -> u64 {
        let mut rejected = 0;
        // Bounded: at most one ring's worth per notification, so a producer
        // that keeps writing cannot keep the supervisor here.
        for _ in 0..1024 {
            let Some(rx) = self.alerts.as_mut() else {
                break;
            };
            match rx.recv() {
                Ok(r) => self.report("monitor", &r),
                Err(RecvError::Empty) => break,
                Err(_) => rejected += 1,
            }
        }
        rejected
    }

    fn check_up(&mut self) {
        if self.up < 4 || self.announced {
            return;
        }
        if self.post_halted {
            self.announced = true;
            debug_println!(
                "{REFERENCE_HALTED_MARKER}: every PD started; the firmware's POST stopped the boot"
            );
        } else if self.guest_started {
            self.announced = true;
            debug_println!(
                "{REFERENCE_MARKER}: every PD started and the firmware->vmm notification arrived"
            );
        }
    }
}

/// The supervisor handles no error of its own: bad input is counted and
/// logged, never a reason to fault.
#[derive(Debug)]
pub enum Never {}

impl core::fmt::Display for Never {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {}
    }
}

impl Handler for Supervisor {
    type Error = Never;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        for ch in channels.iter() {
            let rejected = if Some(ch) == self.com1_irq {
                // The log goes out through the kernel console; what comes
                // in is the guest's console input.
                self.forward_console_input();
                ch.irq_ack();
                0
            } else if Some(ch) == self.children[2].channel {
                self.drain_alerts()
            } else {
                debug_println!(
                    "notification from {} (nothing to read)",
                    self.name_of_channel(ch)
                );
                0
            };
            if rejected > 0 {
                self.counters.rejected += rejected;
                debug_println!(
                    "rejected {rejected} bad records from {} ({} in total)",
                    self.name_of_channel(ch),
                    self.counters.rejected
                );
            }
        }
        Ok(())
    }

    fn protected(&mut self, ch: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        let who = self.name_of_channel(ch);
        let reply = match info.label() {
            LABEL_UP => {
                self.up += 1;
                debug_println!("{who} is up ({}/4)", self.up);
                if self.guest_started && Some(ch) == self.children[1].channel {
                    debug_println!(
                        "{who} restarted after the guest's start: it starts the guest again"
                    );
                    REPLY_START_GUEST
                } else {
                    REPLY_OK
                }
            }
            LABEL_GUEST_START => {
                debug_println!("{who}: firmware done, guest start requested");
                self.guest_started = true;
                REPLY_OK
            }
            LABEL_REPORT => {
                let mut mrs = [0u64; MAX_MESSAGE_REGISTERS];
                let n = info.count().min(MAX_MESSAGE_REGISTERS);
                for (i, m) in mrs.iter_mut().enumerate().take(n) {
                    *m = get_mr(i);
                }
                match regs::from_words::<Report>(&mrs[..n]) {
                    Ok(r) => {
                        self.report(who, &r);
                        REPLY_OK
                    }
                    Err(e) => {
                        self.counters.rejected += 1;
                        debug_println!("{who}: rejected a malformed report ({e:?})");
                        REPLY_REJECTED
                    }
                }
            }
            l if l == regs::label::<PostSummary>() => {
                let mut mrs = [0u64; MAX_MESSAGE_REGISTERS];
                let n = info.count().min(MAX_MESSAGE_REGISTERS);
                for (i, m) in mrs.iter_mut().enumerate().take(n) {
                    *m = get_mr(i);
                }
                match regs::from_words::<PostSummary>(&mrs[..n]) {
                    Ok(p) => {
                        // The summary is the firmware's "up": it is sent
                        // once the POST is over.
                        self.up += 1;
                        debug_println!("{who}: POST summary ({}/4 up)", self.up);
                        self.post_summary(&p);
                        REPLY_OK
                    }
                    Err(e) => {
                        self.counters.rejected += 1;
                        debug_println!("{who}: rejected a malformed POST summary ({e:?})");
                        REPLY_REJECTED
                    }
                }
            }
            other => {
                self.counters.rejected += 1;
                debug_println!("{who}: unknown request {other}");
                REPLY_REJECTED
            }
        };
        self.check_up();
        Ok(MessageInfo::new(reply, 0))
    }

    fn fault(&mut self, child: Child, info: FaultInfo) -> Result<(), Self::Error> {
        let name = self.name_of_child(child);
        match self.policy.on_fault(child.index()) {
            Verdict::Restart(n) => {
                debug_println!(
                    "child {name} faulted ({:?} at {:#x}, ip {:#x}); restart {n}/{MAX_RESTARTS}",
                    info.kind,
                    info.address,
                    info.ip
                );
                if let Err(e) = child.restart() {
                    debug_println!("restart of {name} failed: {e:?}");
                }
            }
            Verdict::Stop => {
                self.counters.stopped += 1;
                debug_println!(
                    "CRITICAL: child {name} faulted ({:?} at {:#x}) after {MAX_RESTARTS} restarts; stopped for good",
                    info.kind,
                    info.address
                );
                if let Err(e) = child.stop() {
                    debug_println!("stop of {name} failed: {e:?}");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_restarts_a_bounded_number_of_times_per_child() {
        let mut p = RestartPolicy::default();
        assert_eq!(p.on_fault(2), Verdict::Restart(1));
        assert_eq!(p.on_fault(2), Verdict::Restart(2));
        assert_eq!(p.on_fault(1), Verdict::Restart(1));
        assert_eq!(p.on_fault(2), Verdict::Restart(3));
        assert_eq!(p.on_fault(2), Verdict::Stop);
        assert_eq!(p.on_fault(2), Verdict::Stop);
        assert_eq!((p.restarts(2), p.restarts(1), p.restarts(0)), (3, 1, 0));
        assert_eq!(p.on_fault(64), Verdict::Stop);
    }
}
