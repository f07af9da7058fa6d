//! The legacy PC devices a Linux guest booted with `console=ttyS0 pci=off
//! acpi=off nolapic` talks to, and the port bus that owns them.
//!
//! [`Platform`] is what the VMM PD holds: it routes port I/O to the models
//! (16550A UART on COM1, the i8259A pair with its ELCR, the i8254 PIT with
//! port 0x61, the MC146818 RTC/CMOS, port 0x80 and friends), wires their
//! interrupt outputs to the PIC, and answers every other port as an empty
//! ISA bus does (reads all ones, writes ignored), counting such accesses per
//! 256-port range so the VMM can report a guest hammering them.
//!
//! Design rules: no allocation, no panics on any input, every buffer
//! bounded. Time is the caller's monotonic nanosecond clock: the VMM calls
//! [`Platform::advance`] with the current time when it handles an exit (and
//! when the timer it armed from [`Platform::next_event_ns`] fires); port I/O
//! is served at the time of the latest `advance`, so the VMM advances
//! before it forwards an I/O exit. Time never goes backwards here: an older
//! time is treated as the latest one seen.
//!
//! Wider accesses are split as the ISA bus does for 8-bit devices: a 16- or
//! 32-bit access to port `p` is byte accesses to `p`, `p + 1`, ... (port
//! numbers wrap at 0xffff), little-endian. An access size other than 1, 2
//! or 4 reads as all ones and writes nothing, and is counted.

pub mod pic;
pub mod pit;
pub mod rtc;
pub mod uart;

pub use pic::{ChipState, PicPair};
pub use pit::{ns_to_ticks, ticks_to_ns, Pit, PIT_HZ};
pub use rtc::Rtc;
pub use uart::{Uart, INPUT_CAPACITY, OUTPUT_CAPACITY};

/// The PIT's channel 0 output is wired to this IRQ.
pub const PIT_IRQ: u8 = 0;

/// Unknown-port accesses are counted per range of this many ports.
pub const UNKNOWN_RANGE: u16 = 256;
const RANGES: usize = 65_536 / UNKNOWN_RANGE as usize;

/// RAX after an `in` of `size` bytes returned `value`: `in al`/`in ax`
/// replace only the low byte or word, `in eax` writes EAX, which in 64-bit
/// mode clears the upper half of RAX. Any other size leaves RAX unchanged.
pub fn rax_after_in(rax: u64, size: u8, value: u32) -> u64 {
    match size {
        1 => (rax & !0xff) | u64::from(value & 0xff),
        2 => (rax & !0xffff) | u64::from(value & 0xffff),
        4 => u64::from(value),
        _ => rax,
    }
}

/// Counts of accesses to ports no model answers.
#[derive(Clone, Debug)]
pub struct UnknownPorts {
    counts: [u32; RANGES],
    total: u64,
    last: Option<u16>,
}

impl UnknownPorts {
    fn new() -> Self {
        UnknownPorts {
            counts: [0; RANGES],
            total: 0,
            last: None,
        }
    }

    fn hit(&mut self, port: u16) {
        let slot = usize::from(port / UNKNOWN_RANGE);
        if let Some(c) = self.counts.get_mut(slot) {
            *c = c.saturating_add(1);
        }
        self.total = self.total.saturating_add(1);
        self.last = Some(port);
    }

    /// Byte accesses to unknown ports in the range that holds `port`
    /// (ports `port & !0xff` to `port | 0xff`), saturating.
    pub fn in_range_of(&self, port: u16) -> u32 {
        self.counts
            .get(usize::from(port / UNKNOWN_RANGE))
            .copied()
            .unwrap_or(0)
    }

    /// Every range's count, indexed by `port / UNKNOWN_RANGE`.
    pub fn ranges(&self) -> &[u32] {
        &self.counts
    }

    /// Byte accesses to unknown ports in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The last unknown port accessed.
    pub fn last(&self) -> Option<u16> {
        self.last
    }
}

/// The machine's legacy devices on one port bus.
#[derive(Clone, Debug)]
pub struct Platform {
    pic: PicPair,
    pit: Pit,
    rtc: Rtc,
    uart: Uart,
    now_ns: u64,
    a20: bool,
    post_code: u8,
    reset_requested: bool,
    unknown: UnknownPorts,
    bad_size: u64,
}

impl Platform {
    /// The devices at monotonic time `now_ns`, with the RTC reading
    /// `unix_secs` (Unix time, UTC) at that moment.
    pub fn new(now_ns: u64, unix_secs: u64) -> Self {
        Platform {
            pic: PicPair::new(),
            pit: Pit::new(ns_to_ticks(now_ns)),
            rtc: Rtc::new(now_ns, unix_secs),
            uart: Uart::new(),
            now_ns,
            a20: true,
            post_code: 0,
            reset_requested: false,
            unknown: UnknownPorts::new(),
            bad_size: 0,
        }
    }

    /// A port read of `size` bytes (1, 2 or 4), zero-extended.
    pub fn io_in(&mut self, port: u16, size: u8) -> u32 {
        if !matches!(size, 1 | 2 | 4) {
            self.bad_size = self.bad_size.saturating_add(1);
            return u32::MAX;
        }
        let mut value = 0u32;
        for i in 0..size {
            let byte = self.read_byte(port.wrapping_add(u16::from(i)));
            value |= u32::from(byte) << (8 * u32::from(i));
        }
        self.sync_lines();
        value
    }

    /// A port write of the low `size` bytes (1, 2 or 4) of `value`.
    pub fn io_out(&mut self, port: u16, size: u8, value: u32) {
        if !matches!(size, 1 | 2 | 4) {
            self.bad_size = self.bad_size.saturating_add(1);
            return;
        }
        for (i, byte) in value
            .to_le_bytes()
            .into_iter()
            .take(usize::from(size))
            .enumerate()
        {
            self.write_byte(port.wrapping_add(i as u16), byte);
        }
        self.sync_lines();
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        let tick = ns_to_ticks(self.now_ns);
        match port {
            p if PicPair::owns(p) => self.pic.read(p),
            0x40..=0x43 => self.pit.read((port - 0x40) as u8, tick),
            0x61 => self.pit.read_port61(tick, self.now_ns),
            0x70 => self.rtc.read_index(),
            0x71 => self.rtc.read_data(),
            0x80 | 0xed => 0xff,
            0x92 => u8::from(self.a20) << 1,
            0x3f8..=0x3ff => self.uart.read((port - 0x3f8) as u8),
            _ => {
                self.unknown.hit(port);
                0xff
            }
        }
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        let tick = ns_to_ticks(self.now_ns);
        match port {
            p if PicPair::owns(p) => self.pic.write(p, value),
            0x40..=0x43 => self.pit.write((port - 0x40) as u8, value, tick),
            0x61 => self.pit.write_port61(value, tick),
            0x70 => self.rtc.write_index(value),
            0x71 => self.rtc.write_data(value),
            // POST codes, and the alternative I/O delay port.
            0x80 => self.post_code = value,
            0xed => {}
            0x92 => {
                self.a20 = value & 0x02 != 0;
                if value & 0x01 != 0 {
                    self.reset_requested = true;
                }
            }
            0x3f8..=0x3ff => self.uart.write((port - 0x3f8) as u8, value),
            _ => {
                // The keyboard controller's pulse-reset command and the
                // chipset reset register are how Linux reboots without
                // ACPI; nothing else behind them is modelled.
                if (port == 0x64 && value == 0xfe) || (port == 0xcf9 && value & 0x04 != 0) {
                    self.reset_requested = true;
                }
                self.unknown.hit(port);
            }
        }
    }

    /// Carries the UART's and the RTC's interrupt outputs to the PIC.
    fn sync_lines(&mut self) {
        self.pic.set_irq(uart::COM1_IRQ, self.uart.irq_line());
        self.pic.set_irq(rtc::RTC_IRQ, self.rtc.irq_line());
    }

    /// Brings the timers up to `now_ns`: channel 0 edges since the last
    /// call raise IRQ 0 once (missed periods are coalesced), RTC flags and
    /// time are updated.
    pub fn advance(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        if self.pit.advance(ns_to_ticks(self.now_ns)) {
            self.pic.pulse_irq(PIT_IRQ);
        }
        self.rtc.advance(self.now_ns);
        self.sync_lines();
    }

    /// When the VMM should next call [`Platform::advance`] for a device to
    /// raise an interrupt (always later than the latest `advance`), or
    /// `None` when no timer is armed.
    pub fn next_event_ns(&self) -> Option<u64> {
        let pit = self.pit.next_irq_tick().map(ticks_to_ns);
        let rtc = self.rtc.next_event_ns();
        match (pit, rtc) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The vector the PIC presents on INTR, if any.
    pub fn pending_interrupt(&self) -> Option<u8> {
        self.pic.pending()
    }

    /// The CPU takes the interrupt: returns the vector to inject (the
    /// spurious vector if the request went away since `pending_interrupt`).
    pub fn acknowledge(&mut self) -> u8 {
        let vector = self.pic.acknowledge();
        self.sync_lines();
        vector
    }

    /// Sets an ISA IRQ line for a device the VMM models elsewhere. Lines 0,
    /// 4 and 8 are driven by the PIT, the UART and the RTC.
    pub fn set_irq(&mut self, irq: u8, high: bool) {
        if !matches!(irq, PIT_IRQ | uart::COM1_IRQ | rtc::RTC_IRQ) {
            self.pic.set_irq(irq, high);
        }
    }

    /// Moves the guest's serial output into `buf`; returns how many bytes.
    pub fn drain_output(&mut self, buf: &mut [u8]) -> usize {
        self.uart.drain_output(buf)
    }

    /// Offers console input to the guest; returns how many bytes were
    /// taken (offer the rest again later).
    pub fn push_input(&mut self, bytes: &[u8]) -> usize {
        let n = self.uart.push_input(bytes);
        self.sync_lines();
        n
    }

    /// Whether the guest asked for a reset (keyboard controller 0xfe,
    /// port 0x92 bit 0, or port 0xcf9); clears the request.
    pub fn take_reset_request(&mut self) -> bool {
        core::mem::take(&mut self.reset_requested)
    }

    /// The time of the latest `advance`.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The last POST code written to port 0x80.
    pub fn post_code(&self) -> u8 {
        self.post_code
    }

    /// The A20 gate as set through port 0x92 (not enforced: the guest runs
    /// in long mode with paging, where A20 masking does not matter).
    pub fn a20(&self) -> bool {
        self.a20
    }

    /// Accesses to ports no model answers.
    pub fn unknown_ports(&self) -> &UnknownPorts {
        &self.unknown
    }

    /// Port accesses with a size other than 1, 2 or 4.
    pub fn bad_size_accesses(&self) -> u64 {
        self.bad_size
    }

    /// The interrupt controllers.
    pub fn pic(&self) -> &PicPair {
        &self.pic
    }

    /// The interval timer.
    pub fn pit(&self) -> &Pit {
        &self.pit
    }

    /// The real-time clock.
    pub fn rtc(&self) -> &Rtc {
        &self.rtc
    }

    /// The serial port.
    pub fn uart(&self) -> &Uart {
        &self.uart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's PIC setup (init_8259A) followed by unmasking IRQ 0 and the
    /// cascade, as the boot leaves it with the timer and serial running.
    fn linux_pic(p: &mut Platform) {
        for (port, v) in [
            (0x21, 0xff),
            (0xa1, 0xff),
            (0x20, 0x11),
            (0x21, 0x30),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xa0, 0x11),
            (0xa1, 0x38),
            (0xa1, 0x02),
            (0xa1, 0x01),
            (0x21, 0xea), // IRQ 0, 2, 4 unmasked
            (0xa1, 0xfe), // IRQ 8 unmasked
        ] {
            p.io_out(port, 1, v);
        }
    }

    #[test]
    fn pit_drives_irq0_through_the_pic() {
        let mut p = Platform::new(1_000_000, 0);
        linux_pic(&mut p);
        // Periodic 1 kHz clockevent.
        p.io_out(0x43, 1, 0x34);
        p.io_out(0x40, 1, 0xa9);
        p.io_out(0x40, 1, 0x04);
        let next = p.next_event_ns().expect("timer armed");
        assert!(next > 1_000_000 && next < 2_100_000, "{next}");
        p.advance(next - 1);
        assert_eq!(p.pending_interrupt(), None);
        p.advance(next);
        assert_eq!(p.pending_interrupt(), Some(0x30));
        assert_eq!(p.acknowledge(), 0x30);
        // Not EOIed yet: the next tick latches IRR but stays blocked.
        p.advance(next + 1_000_000);
        assert_eq!(p.pending_interrupt(), None);
        p.io_out(0x20, 1, 0x60);
        assert_eq!(p.pending_interrupt(), Some(0x30));
        // A long stall raises one interrupt, not one per missed period.
        assert_eq!(p.acknowledge(), 0x30);
        p.io_out(0x20, 1, 0x20);
        p.advance(next + 500_000_000);
        assert_eq!(p.acknowledge(), 0x30);
        p.io_out(0x20, 1, 0x20);
        assert_eq!(p.pending_interrupt(), None);
        assert!(p.pit().coalesced() > 400);
        assert!(p.next_event_ns().unwrap() > p.now_ns());
    }

    #[test]
    fn timer_and_serial_interrupts_interleave_by_priority() {
        let mut p = Platform::new(0, 0);
        linux_pic(&mut p);
        p.io_out(0x43, 1, 0x34);
        // A word write would split to ports 0x40 and 0x41 (channel 1), so
        // the count goes as two byte writes, as Linux does.
        p.io_out(0x40, 2, 1193);
        assert_eq!(p.next_event_ns(), None, "channel 0 got half a count");
        p.io_out(0x43, 1, 0x34);
        p.io_out(0x40, 1, 1193 & 0xff);
        p.io_out(0x40, 1, 1193 >> 8);
        p.io_out(0x3fc, 1, 0x0b);
        p.io_out(0x3f9, 1, 0x01);
        let mut now = 0;
        let (mut ticks, mut serial) = (0, 0);
        let mut got = Vec::new();
        for step in 0..50u64 {
            now = p.next_event_ns().unwrap();
            p.advance(now);
            if step % 10 == 0 {
                p.push_input(b"k");
            }
            // The guest takes every pending interrupt, highest first.
            while let Some(v) = p.pending_interrupt() {
                assert_eq!(p.acknowledge(), v);
                match v {
                    0x30 => {
                        ticks += 1;
                        // mask_and_ack: mask, specific EOI, handler, unmask.
                        p.io_out(0x21, 1, 0xeb);
                        p.io_out(0x20, 1, 0x60);
                        p.io_out(0x21, 1, 0xea);
                    }
                    0x34 => {
                        serial += 1;
                        p.io_out(0x21, 1, 0xfa);
                        p.io_out(0x20, 1, 0x64);
                        while p.io_in(0x3fd, 1) & 1 != 0 {
                            got.push(p.io_in(0x3f8, 1) as u8);
                        }
                        p.io_out(0x21, 1, 0xea);
                    }
                    other => panic!("unexpected vector {other:#x}"),
                }
            }
        }
        assert_eq!(ticks, 50, "one tick per period, none lost or doubled");
        assert_eq!(serial, 5);
        assert_eq!(got, b"kkkkk");
        // 50 periods of 1193 ticks (plus the load clock) at 1.193182 MHz.
        let expect = ticks_to_ns(1 + 50 * 1193);
        assert_eq!(now, expect);
        // Both pending at once: IRQ 0 goes first.
        p.push_input(b"z");
        p.advance(p.next_event_ns().unwrap());
        assert_eq!(p.acknowledge(), 0x30);
        p.io_out(0x20, 1, 0x60);
        assert_eq!(p.acknowledge(), 0x34);
    }

    #[test]
    fn uart_interrupts_reach_irq4_with_out2() {
        let mut p = Platform::new(0, 0);
        linux_pic(&mut p);
        p.io_out(0x3f9, 1, 0x01); // IER: received data
        p.push_input(b"x");
        assert_eq!(p.pending_interrupt(), None, "OUT2 off");
        p.io_out(0x3fc, 1, 0x0b); // DTR, RTS, OUT2
        assert_eq!(p.pending_interrupt(), Some(0x34));
        assert_eq!(p.acknowledge(), 0x34);
        assert_eq!(p.io_in(0x3fa, 1), 0x04);
        assert_eq!(p.io_in(0x3f8, 1), u32::from(b'x'));
        p.io_out(0x20, 1, 0x64);
        assert_eq!(p.pending_interrupt(), None);
        // Transmit with the THRE interrupt: each THR write re-arms it.
        p.io_out(0x3f9, 1, 0x02);
        assert_eq!(p.acknowledge(), 0x34);
        p.io_out(0x3f8, 1, u32::from(b'h'));
        p.io_out(0x3f8, 1, u32::from(b'i'));
        assert_eq!(p.io_in(0x3fa, 1), 0x02);
        p.io_out(0x3f9, 1, 0x00);
        p.io_out(0x20, 1, 0x64);
        let mut buf = [0u8; 8];
        let n = p.drain_output(&mut buf);
        assert_eq!(&buf[..n], b"hi");
    }

    #[test]
    fn rtc_interrupt_on_irq8_via_cascade() {
        let mut p = Platform::new(0, 1_700_000_000);
        linux_pic(&mut p);
        p.io_out(0x70, 1, 0x0b);
        p.io_out(0x71, 1, 0x12); // 24 h, UIE
        assert_eq!(p.next_event_ns(), Some(1_000_000_000));
        p.advance(1_000_000_000);
        assert_eq!(p.acknowledge(), 0x38);
        p.io_out(0x70, 1, 0x0c);
        assert_eq!(p.io_in(0x71, 1), 0xd0, "IRQF, PF (1024 Hz runs), UF");
        p.io_out(0xa0, 1, 0x20);
        p.io_out(0x20, 1, 0x20);
        assert_eq!(p.pending_interrupt(), None);
    }

    /// Linux's `mc146818_get_time`: wait for UIP to clear, read the time
    /// registers, and accept them only if UIP stayed clear and the seconds
    /// did not change; the VMM advances the clock at every exit.
    fn linux_read_rtc(p: &mut Platform, mut now: u64) -> (u64, [u8; 6]) {
        let cmos = |p: &mut Platform, now: &mut u64, reg: u8| {
            *now += 20_000; // an exit round trip
            p.advance(*now);
            p.io_out(0x70, 1, u32::from(reg));
            p.io_in(0x71, 1) as u8
        };
        for _ in 0..1000 {
            let seconds = cmos(p, &mut now, 0);
            if cmos(p, &mut now, 0x0a) & 0x80 != 0 {
                now += 1_000_000; // mdelay(1)
                continue;
            }
            let t = [0u8, 2, 4, 7, 8, 9].map(|r| cmos(p, &mut now, r));
            if cmos(p, &mut now, 0x0a) & 0x80 != 0 || cmos(p, &mut now, 0) != seconds {
                continue;
            }
            return (now, t);
        }
        panic!("UIP never cleared");
    }

    #[test]
    fn linux_reads_a_consistent_rtc_time_across_updates() {
        // 2023-11-14 23:59:59 UTC, read starting just before the update.
        let mut p = Platform::new(0, 1_700_006_399);
        let (now, t) = linux_read_rtc(&mut p, 999_700_000);
        assert!(now > 1_000_000_000, "waited out UIP and the update");
        assert_eq!(t, [0x00, 0x00, 0x00, 0x15, 0x11, 0x23]);
        let mut p = Platform::new(0, 1_700_006_399);
        let (_, t) = linux_read_rtc(&mut p, 0);
        assert_eq!(t, [0x59, 0x59, 0x23, 0x14, 0x11, 0x23]);
    }

    #[test]
    fn unknown_ports_read_all_ones_and_are_counted() {
        let mut p = Platform::new(0, 0);
        assert_eq!(p.io_in(0x2f8, 1), 0xff);
        assert_eq!(p.io_in(0x2fa, 2), 0xffff);
        assert_eq!(p.io_in(0xcfc, 4), 0xffff_ffff);
        p.io_out(0x2f9, 1, 0);
        assert_eq!(p.unknown_ports().in_range_of(0x2ff), 4);
        assert_eq!(p.unknown_ports().in_range_of(0xcf8), 4);
        assert_eq!(p.unknown_ports().total(), 8);
        assert_eq!(p.unknown_ports().last(), Some(0x2f9));
        // Known ports are not counted.
        p.io_out(0x80, 1, 0x42);
        p.io_in(0x80, 1);
        p.io_out(0xed, 1, 0);
        assert_eq!(p.post_code(), 0x42);
        assert_eq!(p.unknown_ports().total(), 8);
        // Odd sizes are defined: all ones, nothing written.
        assert_eq!(p.io_in(0x3f8, 3), u32::MAX);
        p.io_out(0x3f8, 0, 0x41);
        assert_eq!(p.uart().output_len(), 0);
        assert_eq!(p.bad_size_accesses(), 2);
    }

    #[test]
    fn wide_accesses_split_into_bytes() {
        let mut p = Platform::new(0, 0);
        // outw to the master PIC: 0x21 gets the high byte.
        p.io_out(0x20, 2, 0xab_11);
        p.io_out(0x21, 1, 0x04);
        p.io_out(0x21, 1, 0x01);
        assert_eq!(p.pic().master().vector_base, 0xa8);
        p.io_out(0x21, 1, 0x5a);
        assert_eq!(p.io_in(0x20, 2) >> 8, 0x5a, "IMR in the high byte");
        // A word at 0xffff wraps to port 0.
        assert_eq!(p.io_in(0xffff, 2), 0xffff);
        assert_eq!(p.unknown_ports().in_range_of(0), 1);
    }

    #[test]
    fn in_results_merge_into_rax_by_size() {
        let rax = 0x1122_3344_5566_7788;
        assert_eq!(rax_after_in(rax, 1, 0xffff_ffab), 0x1122_3344_5566_77ab);
        assert_eq!(rax_after_in(rax, 2, 0xffff_abcd), 0x1122_3344_5566_abcd);
        assert_eq!(rax_after_in(rax, 4, 0xdead_beef), 0xdead_beef);
        assert_eq!(rax_after_in(rax, 3, 0), rax);
    }

    #[test]
    fn reset_requests_and_a20() {
        let mut p = Platform::new(0, 0);
        assert!(!p.take_reset_request());
        p.io_out(0x64, 1, 0xfe);
        assert!(p.take_reset_request());
        assert!(!p.take_reset_request(), "taken");
        p.io_out(0x92, 1, 0x00);
        assert!(!p.a20());
        assert_eq!(p.io_in(0x92, 1), 0);
        p.io_out(0x92, 1, 0x02);
        assert!(p.a20() && !p.take_reset_request());
        p.io_out(0x92, 1, 0x03);
        assert!(p.take_reset_request());
        p.io_out(0xcf9, 1, 0x06);
        assert!(p.take_reset_request());
        p.io_out(0x64, 1, 0xd1);
        assert!(!p.take_reset_request());
    }

    #[test]
    fn platform_state_is_small_and_fixed() {
        // Everything is inline (no heap): the UART's 4 KiB output buffer
        // dominates; the PD keeps it in a static or on its stack.
        let size = core::mem::size_of::<Platform>();
        assert!(size > OUTPUT_CAPACITY && size < 8 * 1024, "{size} bytes");
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut p = Platform::new(5_000_000_000, 0);
        p.advance(1);
        assert_eq!(p.now_ns(), 5_000_000_000);
        p.io_out(0x43, 1, 0x34);
        p.io_out(0x40, 1, 0x00);
        p.io_out(0x40, 1, 0x10);
        assert!(p.next_event_ns().unwrap() > 5_000_000_000);
    }

    #[test]
    fn external_irq_lines_for_other_devices() {
        let mut p = Platform::new(0, 0);
        linux_pic(&mut p);
        p.io_out(0x21, 1, 0x00);
        p.set_irq(0, true);
        p.set_irq(3, true);
        assert_eq!(
            p.pending_interrupt(),
            Some(0x33),
            "IRQ 0 belongs to the PIT"
        );
    }
}
