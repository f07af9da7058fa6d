//! The VMM PD: owns the `linux` VM of the reference system. When the
//! firmware PD says the POST is done it loads Debian's kernel and the
//! initramfs (prefilled regions) into guest RAM by the Linux boot protocol
//! and starts the vCPU; from then on it serves the vCPU's exits (the
//! kernel delivers them to `vcpu_exit`, Microkit style), ticks the device
//! models' timers on its kernel timer, prints the guest's console, and
//! answers the VMI monitor.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_abi::vcpu::Vendor;
use bulkhead_abi::vcpu::{ExitMessage, Register, Segment, SegmentField};
use bulkhead_channel::{Receiver, RingMemory, Sender};
use bulkhead_microkit::bytes::SharedBytes;
use bulkhead_microkit::vcpu::Vcpu;
use bulkhead_microkit::{
    debug_println, protection_domain, set_timeout, setvar, shared_words, Channel, ChannelSet,
    Handler, Infallible, MessageInfo,
};
use bulkhead_protocols::console::{ConsoleInput, CONSOLE_CHUNK, CONSOLE_SLOT};
use bulkhead_protocols::vmi::{
    EventMask, MonitorToVmm, Reg, VmiError, VmmToMonitor, EVENT_SLOT, REQUEST_SLOT,
};
use bulkhead_vmm::board::{host_vendor, PcBoard};
use bulkhead_vmm::exits::{Board, StopReason};
use bulkhead_vmm::guest::{self, GuestImages};
use bulkhead_vmm::{Machine, Verdict};
use vmm_core::vmi::{Vcpus, VmiService};

setvar!(guest_ram);
setvar!(guest_ram_size);
setvar!(guest_kernel);
setvar!(guest_kernel_size);
setvar!(guest_initrd);
setvar!(guest_initrd_size);
setvar!(vcpu);
setvar!(ch_supervisor);
setvar!(ch_firmware);
setvar!(ch_monitor);
setvar!(ch_gateway);
setvar!(rx_vmi_requests_header);
setvar!(rx_vmi_requests_header_size);
setvar!(rx_vmi_requests_data);
setvar!(rx_vmi_requests_data_size);
setvar!(tx_vmi_events_header);
setvar!(tx_vmi_events_header_size);
setvar!(tx_vmi_events_data);
setvar!(tx_vmi_events_data_size);
// The gateway rings: declared so the tool patches them; the guest's CAN
// device model that would use them is not written yet.
setvar!(rx_console_in_header);
setvar!(rx_console_in_header_size);
setvar!(rx_console_in_data);
setvar!(rx_console_in_data_size);
setvar!(tx_gateway_tx_header);
setvar!(tx_gateway_tx_header_size);
setvar!(tx_gateway_tx_data);
setvar!(tx_gateway_tx_data_size);
setvar!(rx_gateway_rx_header);
setvar!(rx_gateway_rx_header_size);
setvar!(rx_gateway_rx_data);
setvar!(rx_gateway_rx_data_size);

use bulkhead_protocols::supervisor::calls::{LABEL_GUEST_START, LABEL_UP, REPLY_START_GUEST};

/// Reboots after a guest crash (a triple fault or a reset request) before
/// the VMM stops the guest for good: a guest that crashes at every boot
/// must not keep the CPU busy rebooting.
const MAX_REBOOTS: u32 = 3;

/// FS.base, GS.base, KernelGSbase.
const PASSED_MSRS: [u32; 3] = [0xc000_0100, 0xc000_0101, 0xc000_0102];

/// The VM's name, prefixed to its console lines.
const VM_NAME: &str = "linux";

/// Where the guest is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GuestState {
    /// Waiting for the firmware's go.
    NotStarted,
    /// The vCPU runs (or its exit is being handled).
    Running,
    /// Held by the monitor's pause.
    Paused,
    /// Stopped for good, with a report.
    Stopped,
}

/// The VMI service's view of the vCPU.
struct VmiVcpus<'a> {
    cpu: Vcpu,
    state: &'a mut GuestState,
}

fn register(reg: Reg) -> Register {
    use bulkhead_abi::vcpu::Msr;
    match reg {
        Reg::Rip => Register::Rip,
        Reg::Rsp => Register::Gpr(bulkhead_abi::vcpu::Gpr::Rsp),
        Reg::Rflags => Register::Rflags,
        Reg::Cr0 => Register::Cr0,
        Reg::Cr3 => Register::Cr3,
        Reg::Cr4 => Register::Cr4,
        Reg::Efer => Register::Efer,
        Reg::Lstar => Register::Msr(Msr::Lstar),
        Reg::Star => Register::Msr(Msr::Star),
        Reg::SysenterEip => Register::Msr(Msr::SysenterEip),
        Reg::IdtrBase => Register::Idtr(false),
        Reg::IdtrLimit => Register::Idtr(true),
        Reg::GdtrBase => Register::Gdtr(false),
        Reg::FsBase => Register::Segment(Segment::Fs, SegmentField::Base),
        Reg::GsBase => Register::Segment(Segment::Gs, SegmentField::Base),
        Reg::KernelGsBase => Register::Msr(Msr::KernelGsBase),
    }
}

impl Vcpus for VmiVcpus<'_> {
    fn count(&self) -> u8 {
        1
    }
    fn read(&mut self, _vcpu: u8, reg: Reg) -> Result<u64, VmiError> {
        self.cpu
            .read(register(reg))
            .map_err(|_| VmiError::Unreadable)
    }
    fn pause(&mut self, _vcpu: u8) {
        if *self.state == GuestState::Running {
            let _ = self.cpu.pause();
            *self.state = GuestState::Paused;
        }
    }
    fn resume(&mut self, _vcpu: u8) {
        if *self.state == GuestState::Paused {
            *self.state = GuestState::Running;
            let _ = self.cpu.resume();
        }
    }
}

struct Vmm {
    supervisor: Channel,
    firmware: Channel,
    monitor: Option<Channel>,
    cpu: Vcpu,
    state: GuestState,
    machine: Machine<PcBoard>,
    images: Option<GuestImages>,
    tsc_hz: u64,
    vendor: Vendor,
    /// The guest's boots so far (1 after the first start).
    boots: u32,
    /// This boot's ready marker was reported.
    ready_reported: bool,
    /// TSC at the guest's start (its clock's zero).
    start_tsc: u64,
    vmi: VmiService,
    requests: Option<Receiver<'static, MonitorToVmm, REQUEST_SLOT, Channel>>,
    events: Option<Sender<'static, VmmToMonitor, EVENT_SLOT, Channel>>,
    /// Platform console input (from the supervisor), for the guest's UART.
    console_in: Option<Receiver<'static, ConsoleInput, CONSOLE_SLOT, Channel>>,
    /// Input the guest's UART had no room for yet.
    pending_input: heapless::Vec<u8, CONSOLE_CHUNK>,
    /// Console records that did not decode (skipped).
    console_rejected: u64,
}

fn channel(var: &'static bulkhead_microkit::SetVar, what: &str) -> Channel {
    match var.get() {
        Some(id) => Channel::new(id as usize),
        None => panic!("setvar {what} was not patched: check system.xml"),
    }
}

fn region(
    vaddr: &'static bulkhead_microkit::SetVar,
    size: &'static bulkhead_microkit::SetVar,
) -> Option<SharedBytes> {
    shared_words(vaddr, size).map(SharedBytes::new)
}

fn ring(
    h: &'static bulkhead_microkit::SetVar,
    hs: &'static bulkhead_microkit::SetVar,
    d: &'static bulkhead_microkit::SetVar,
    ds: &'static bulkhead_microkit::SetVar,
) -> Option<RingMemory<'static>> {
    RingMemory::new(shared_words(h, hs)?, shared_words(d, ds)?).ok()
}

fn init() -> Vmm {
    let supervisor = channel(&ch_supervisor, "ch_supervisor");
    let firmware = channel(&ch_firmware, "ch_firmware");
    let monitor = ch_monitor.get().map(|c| Channel::new(c as usize));
    let _ = ch_gateway.get();
    let _ = (
        tx_gateway_tx_header.get(),
        tx_gateway_tx_header_size.get(),
        tx_gateway_tx_data.get(),
        tx_gateway_tx_data_size.get(),
        rx_gateway_rx_header.get(),
        rx_gateway_rx_header_size.get(),
        rx_gateway_rx_data.get(),
        rx_gateway_rx_data_size.get(),
    );
    let images = match (
        region(&guest_ram, &guest_ram_size),
        region(&guest_kernel, &guest_kernel_size),
        region(&guest_initrd, &guest_initrd_size),
    ) {
        (Some(ram), Some(kernel), initrd) => Some(GuestImages {
            ram,
            kernel,
            initrd,
        }),
        _ => {
            debug_println!(
                "no guest RAM or kernel image mapped (check system.xml): no guest will run"
            );
            None
        }
    };
    let requests = monitor.and_then(|m| {
        let mem = ring(
            &rx_vmi_requests_header,
            &rx_vmi_requests_header_size,
            &rx_vmi_requests_data,
            &rx_vmi_requests_data_size,
        )?;
        Receiver::new(mem, m).ok()
    });
    let events = monitor.and_then(|m| {
        let mem = ring(
            &tx_vmi_events_header,
            &tx_vmi_events_header_size,
            &tx_vmi_events_data,
            &tx_vmi_events_data_size,
        )?;
        Sender::new(mem, m).ok()
    });
    let console_in = ring(
        &rx_console_in_header,
        &rx_console_in_header_size,
        &rx_console_in_data,
        &rx_console_in_data_size,
    )
    .and_then(|mem| Receiver::new(mem, supervisor).ok());
    let tsc_hz = bulkhead_microkit::tsc_hz();
    debug_println!(
        "VMM up: guest RAM {} MiB, kernel image {}, initramfs {}, VMI channel {}, console input {}; waiting for the firmware",
        guest_ram_size.get().unwrap_or(0) >> 20,
        if images.is_some() { "mapped" } else { "missing" },
        if images.as_ref().is_some_and(|i| i.initrd.is_some()) { "mapped" } else { "missing" },
        if requests.is_some() && events.is_some() { "up" } else { "absent" },
        if console_in.is_some() { "up" } else { "absent" },
    );
    // A restart after the guest had started: the firmware's go will not
    // come again, the supervisor says so.
    let restarted = supervisor
        .pp_call(MessageInfo::new(LABEL_UP, 0))
        .is_ok_and(|r| r.label() == REPLY_START_GUEST);
    let mut vmm = Vmm {
        supervisor,
        firmware,
        monitor,
        cpu: Vcpu(vcpu.get().unwrap_or(0) as u8),
        state: GuestState::NotStarted,
        machine: Machine::new(PcBoard::new(host_vendor(), (tsc_hz / 1000) as u32, 0)),
        images,
        tsc_hz,
        vendor: host_vendor(),
        boots: 0,
        ready_reported: false,
        start_tsc: 0,
        vmi: VmiService::new(EventMask::MSR_WRITE),
        requests,
        events,
        console_in,
        pending_input: heapless::Vec::new(),
        console_rejected: 0,
    };
    if restarted {
        debug_println!("restarted after the guest's start: starting it again");
        vmm.start_guest();
    }
    vmm
}

impl Vmm {
    fn now_ns(&self) -> u64 {
        let d = bulkhead_microkit::rdtsc().wrapping_sub(self.start_tsc) as u128;
        (d * 1_000_000_000 / self.tsc_hz.max(1) as u128) as u64
    }

    fn ns_to_tsc(&self, ns: u64) -> u64 {
        self.start_tsc
            .wrapping_add((ns as u128 * self.tsc_hz as u128 / 1_000_000_000) as u64)
    }

    /// Arms the kernel timer for the board's next timer interrupt.
    fn rearm(&mut self) {
        match self.machine.board.next_event_ns() {
            Some(ns) => set_timeout(self.ns_to_tsc(ns).max(1)),
            None => set_timeout(0),
        }
    }

    fn start_guest(&mut self) {
        let Some(images) = self.images.as_ref() else {
            return;
        };
        let tsc_khz = self.tsc_hz / 1000;
        self.boots += 1;
        self.ready_reported = false;
        let mut cpu = self.cpu;
        match guest::load(images, self.vendor, tsc_khz, self.boots, &mut cpu) {
            Ok(info) => {
                debug_println!(
                    "{VM_NAME}: starting guest: kernel {:#x}..{:#x}, initramfs {} bytes, entry {:#x}",
                    info.kernel_addr,
                    info.kernel_end,
                    info.initrd_len,
                    info.entry
                );
                self.start_tsc = bulkhead_microkit::rdtsc();
                self.machine =
                    Machine::new(PcBoard::new(self.vendor, tsc_khz as u32, self.start_tsc));
                // The segment bases Linux rewrites on every task switch are
                // switched by the hardware: no exit for them.
                for msr in PASSED_MSRS {
                    if let Err(e) = bulkhead_microkit::vcpu::set_msr_intercept(msr, false) {
                        debug_println!("{VM_NAME}: MSR {msr:#x} pass-through refused ({e:?}): its accesses exit");
                    }
                }
                match self.cpu.resume() {
                    Ok(()) => {
                        self.state = GuestState::Running;
                        self.rearm();
                    }
                    Err(e) => {
                        debug_println!("{VM_NAME}: the kernel refused to run the vCPU: {e:?}")
                    }
                }
            }
            Err(e) => {
                self.state = GuestState::Stopped;
                debug_println!("{VM_NAME}: guest not started: {e}");
            }
        }
    }

    /// The guest crashed or asked for a reset: start it afresh, or stop it
    /// once it has used up its reboots.
    fn reboot(&mut self, why: StopReason) {
        self.report_misbehaviour();
        if self.boots > MAX_REBOOTS {
            debug_println!(
                "{VM_NAME}: {why} after {} reboots: not rebooting again",
                MAX_REBOOTS
            );
            return self.stop(why);
        }
        debug_println!(
            "{VM_NAME}: {why}: rebooting the guest (reboot {} of at most {MAX_REBOOTS})",
            self.boots
        );
        set_timeout(0);
        if let Err(e) = self.cpu.pause().and_then(|()| self.cpu.reset()) {
            debug_println!("{VM_NAME}: the kernel refused to reset the vCPU: {e:?}");
            return self.stop(why);
        }
        self.state = GuestState::NotStarted;
        self.start_guest();
    }

    /// What the guest did that the VMM absorbed, for the record.
    fn report_misbehaviour(&self) {
        let p = &self.machine.board.platform;
        debug_println!(
            "{VM_NAME}: this boot: {} exits; {} accesses to ports no device answers; {} console bytes dropped; {} MSR accesses refused; {} string I/O refused",
            self.machine.stats.total(),
            p.unknown_ports().total(),
            p.uart().output_dropped(),
            self.machine.refused_msrs,
            self.machine.string_io
        );
    }

    fn emit_line(line: &[u8]) {
        match core::str::from_utf8(line) {
            Ok(s) => debug_println!("{VM_NAME}| {s}"),
            Err(_) => debug_println!("{VM_NAME}| {}", bulkhead_vmm::console::Lossy(line)),
        }
    }

    fn guest_ready(&mut self) {
        let ms = self.now_ns() / 1_000_000;
        debug_println!(
            "{VM_NAME}: guest ready {ms} ms after its start, {} VM exits:",
            self.machine.stats.total()
        );
        for (kind, n) in self.machine.stats.nonzero() {
            debug_println!("{VM_NAME}:   exits {kind:<14} {n}");
        }
        if let (Some(events), true) = (self.events.as_mut(), self.monitor.is_some()) {
            let mut v = VmiVcpus {
                cpu: self.cpu,
                state: &mut self.state,
            };
            self.vmi.guest_up(self.cpu.0, events, &mut v);
        }
    }

    fn stop(&mut self, why: StopReason) {
        self.state = GuestState::Stopped;
        set_timeout(0);
        debug_println!(
            "{VM_NAME}: guest stopped: {why}; {} exits, {} console lines; the rest of the system runs on",
            self.machine.stats.total(),
            self.machine.console.lines
        );
    }

    /// Moves platform console input into the guest's UART, as far as its
    /// receive queue takes it; the rest waits (in the ring, and a chunk
    /// here) for the next chance.
    fn feed_console(&mut self) {
        if self.state != GuestState::Running {
            return;
        }
        let Some(rx) = self.console_in.as_mut() else {
            return;
        };
        loop {
            if !self.pending_input.is_empty() {
                let taken = self.machine.board.platform.push_input(&self.pending_input);
                let rest =
                    heapless::Vec::from_slice(&self.pending_input[taken..]).unwrap_or_default();
                self.pending_input = rest;
                if !self.pending_input.is_empty() {
                    break;
                }
            }
            match rx.recv() {
                Ok(input) => self.pending_input = input.bytes,
                Err(bulkhead_channel::RecvError::Empty) => break,
                Err(_) => self.console_rejected += 1,
            }
        }
        let mut cpu = self.cpu;
        self.machine.deliver_interrupt(&mut cpu);
    }

    fn serve_monitor(&mut self) {
        let (Some(requests), Some(events)) = (self.requests.as_mut(), self.events.as_mut()) else {
            return;
        };
        let mut v = VmiVcpus {
            cpu: self.cpu,
            state: &mut self.state,
        };
        let served = self.vmi.serve(requests, events, &mut v);
        if served.rejected > 0 {
            debug_println!(
                "VMI: {} malformed request(s) from the monitor skipped (last: {:?})",
                served.rejected,
                served.last_rejection
            );
        }
    }
}

impl Handler for Vmm {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(self.firmware) && self.state == GuestState::NotStarted {
            debug_println!("firmware says: start the guest");
            let _ = self
                .supervisor
                .pp_call(MessageInfo::new(LABEL_GUEST_START, 0));
            self.start_guest();
        }
        if channels.contains(Channel::TIMER) && self.state != GuestState::NotStarted {
            let now = self.now_ns();
            self.machine.board.advance(now);
            let mut cpu = self.cpu;
            self.machine.deliver_interrupt(&mut cpu);
            if self.state != GuestState::Stopped {
                self.rearm();
            }
        }
        if self.monitor.is_some_and(|m| channels.contains(m)) {
            self.serve_monitor();
        }
        if channels.contains(self.supervisor) || channels.contains(Channel::TIMER) {
            self.feed_console();
        }
        Ok(())
    }

    fn vcpu_exit(&mut self, _vcpu: Vcpu, exit: ExitMessage) -> Result<bool, Self::Error> {
        let now = self.now_ns();
        let mut cpu = self.cpu;
        let verdict = self
            .machine
            .handle_exit(&mut cpu, &exit, now, Self::emit_line);
        if self.machine.console.ready && !self.ready_reported {
            self.ready_reported = true;
            self.guest_ready();
        }
        if let bulkhead_abi::vcpu::ExitReason::MsrWrite { msr, value } = exit.reason {
            let event = bulkhead_protocols::vmi::Event::MsrWrite { msr, value };
            if let (true, Some(events)) = (self.vmi.wants(&event), self.events.as_mut()) {
                let mut v = VmiVcpus {
                    cpu: self.cpu,
                    state: &mut self.state,
                };
                self.vmi.report(exit.vcpu, event, events, &mut v);
            }
        }
        if self.machine.board.platform.take_reset_request() {
            self.reboot(StopReason::ResetRequested);
            return Ok(false);
        }
        match verdict {
            Verdict::Resume => {
                self.machine.deliver_interrupt(&mut cpu);
                // Paused by the monitor meanwhile: hold it (no reply).
                Ok(self.state == GuestState::Running)
            }
            Verdict::Stop(StopReason::TripleFault) => {
                self.reboot(StopReason::TripleFault);
                Ok(false)
            }
            Verdict::Stop(why) => {
                self.report_misbehaviour();
                self.stop(why);
                Ok(false)
            }
        }
    }
}

protection_domain!(init);
