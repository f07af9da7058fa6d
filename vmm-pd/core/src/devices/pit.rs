//! The i8254 programmable interval timer (0x40-0x43) and the PIT-related
//! bits of port 0x61 (channel 2 gate, speaker data enable, channel 2
//! output, refresh toggle).
//!
//! Design rules: counters are not stepped; each one keeps the clock tick
//! at which its current count started, and its value and output are
//! computed from the tick the caller gives (1.193182 MHz ticks, derived
//! from the VMM's nanosecond clock by [`ns_to_ticks`]). That makes every
//! read exact at any time and costs nothing while the guest is not looking.
//! Channel 0's output drives IRQ 0: [`Pit::next_irq_tick`] says when its
//! next rising edge is, and [`Pit::advance`] reports whether edges happened,
//! coalescing any number of missed periods into one.
//!
//! Modes 0-5 follow the 8254 datasheet: a count written is loaded on the
//! next clock; mode 0 raises OUT at terminal count, mode 1 is a gate-
//! triggered one-shot, modes 2 and 3 are periodic (a one-clock low pulse,
//! a square wave), modes 4 and 5 strobe OUT low for one clock (software or
//! gate triggered). Gates of channels 0 and 1 are tied high; channel 2's is
//! bit 0 of port 0x61.
//!
//! Deviations (documented in docs/vmm-devices.md): a new count written to a
//! running mode 2/3 counter restarts it at once rather than at the end of
//! the current period (Linux always writes a control word first, which
//! stops the counter anyway); counters hold their value until the first
//! count is written after a control word.

/// The PIT's input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;
const NS_PER_S: u128 = 1_000_000_000;

/// The tick (of the 1.193182 MHz clock) current at `ns`.
pub fn ns_to_ticks(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(PIT_HZ) / NS_PER_S) as u64
}

/// The first nanosecond at which tick `tick` is current (saturating).
pub fn ticks_to_ns(tick: u64) -> u64 {
    let ns = (u128::from(tick) * NS_PER_S).div_ceil(u128::from(PIT_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Where a counter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// No count since the control word, or waiting for a gate trigger.
    Idle,
    /// Counting from `start` since tick `base`.
    Counting { base: u64, start: u32 },
    /// Stopped by its gate with `value` and output `out`.
    Paused { value: u32, out: bool },
}

/// Which bytes a read or write of the counter port moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Lsb,
    Msb,
    Word,
}

#[derive(Clone, Debug)]
struct Channel {
    /// Mode bits as written (status byte); `mode` is the effective 0-5.
    mode_bits: u8,
    mode: u8,
    access: Access,
    bcd: bool,
    /// The count register as written (BCD encoded in BCD mode).
    count_reg: u16,
    has_count: bool,
    write_lsb: Option<u8>,
    read_msb_next: bool,
    latch: Option<u16>,
    latch_msb_next: bool,
    status: Option<u8>,
    null_count: bool,
    gate: bool,
    run: Run,
    /// A one-shot's edge already happened before its current `base`.
    done: bool,
    idle_value: u32,
    idle_out: bool,
}

impl Channel {
    fn new() -> Self {
        Channel {
            mode_bits: 0,
            mode: 0,
            access: Access::Word,
            bcd: false,
            count_reg: 0,
            has_count: false,
            write_lsb: None,
            read_msb_next: false,
            latch: None,
            latch_msb_next: false,
            status: None,
            null_count: true,
            gate: true,
            run: Run::Idle,
            done: false,
            idle_value: 0,
            idle_out: true,
        }
    }

    fn modulus(&self) -> u32 {
        if self.bcd {
            10_000
        } else {
            65_536
        }
    }

    /// The initial count in binary, 1..=modulus (0 means the maximum).
    fn initial(&self) -> u32 {
        let raw = if self.bcd {
            let r = u32::from(self.count_reg);
            ((r >> 12) & 15) * 1000 + ((r >> 8) & 15) * 100 + ((r >> 4) & 15) * 10 + (r & 15)
        } else {
            u32::from(self.count_reg)
        } % self.modulus();
        if raw == 0 {
            self.modulus()
        } else {
            raw
        }
    }

    /// The counter's value (binary, below the modulus) at tick `t`.
    fn value(&self, t: u64) -> u32 {
        let m = self.modulus();
        match self.run {
            Run::Idle => self.idle_value % m,
            Run::Paused { value, .. } => value % m,
            Run::Counting { base, start } => {
                let e = t.saturating_sub(base);
                match self.mode {
                    2 => {
                        let p = u64::from(start.max(1));
                        (start - (e % p) as u32) % m
                    }
                    3 => {
                        let p = u64::from(start.max(2));
                        let h = e % p;
                        let high = p.div_ceil(2);
                        // Even counts decrement by two from N; odd ones from
                        // N-1, with the high half one clock longer.
                        let top = if p % 2 == 0 { p } else { p - 1 };
                        let k = if h < high { h } else { h - high };
                        (top.saturating_sub(2 * k) as u32) % m
                    }
                    _ => {
                        let em = (e % u64::from(m)) as u32;
                        (start % m + m - em) % m
                    }
                }
            }
        }
    }

    /// The OUT pin at tick `t`.
    fn out(&self, t: u64) -> bool {
        match self.run {
            Run::Idle => self.idle_out,
            Run::Paused { out, .. } => out,
            Run::Counting { base, start } => {
                let e = t.saturating_sub(base);
                let s = u64::from(start);
                match self.mode {
                    0 | 1 => self.done || e >= s,
                    2 => s < 2 || e % s != s - 1,
                    3 => {
                        let p = s.max(2);
                        e % p < p.div_ceil(2)
                    }
                    _ => self.done || e != s,
                }
            }
        }
    }

    /// The first rising edge of OUT strictly after tick `t`.
    fn next_edge(&self, t: u64) -> Option<u64> {
        let Run::Counting { base, start } = self.run else {
            return None;
        };
        let s = u64::from(start);
        let edge = match self.mode {
            0 | 1 if !self.done => base.saturating_add(s),
            4 | 5 if !self.done => base.saturating_add(s).saturating_add(1),
            2 | 3 => {
                let p = if self.mode == 3 { s.max(2) } else { s.max(1) };
                let k = if t < base { 1 } else { (t - base) / p + 1 };
                base.saturating_add(k.saturating_mul(p))
            }
            _ => return None,
        };
        (edge > t).then_some(edge)
    }

    /// Rising edges of OUT in the ticks (from, to].
    fn edges_between(&self, from: u64, to: u64) -> u64 {
        let Run::Counting { base, start } = self.run else {
            return 0;
        };
        match self.mode {
            2 | 3 => {
                let p = u64::from(if self.mode == 3 {
                    start.max(2)
                } else {
                    start.max(1)
                });
                let upto = |x: u64| if x < base { 0 } else { (x - base) / p };
                upto(to).saturating_sub(upto(from))
            }
            _ => match self.next_edge(from) {
                Some(e) if e <= to => 1,
                _ => 0,
            },
        }
    }

    fn encode(&self, value: u32) -> u16 {
        if self.bcd {
            let v = value % 10_000;
            ((v / 1000) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | (v % 10)) as u16
        } else {
            value as u16
        }
    }

    fn status_byte(&self, t: u64) -> u8 {
        let access = match self.access {
            Access::Lsb => 1,
            Access::Msb => 2,
            Access::Word => 3,
        };
        (u8::from(self.out(t)) << 7)
            | (u8::from(self.null_count) << 6)
            | (access << 4)
            | (self.mode_bits << 1)
            | u8::from(self.bcd)
    }

    fn control(&mut self, value: u8, t: u64) {
        let rw = (value >> 4) & 3;
        if rw == 0 {
            self.latch_count(t);
            return;
        }
        self.idle_value = self.value(t);
        self.access = match rw {
            1 => Access::Lsb,
            2 => Access::Msb,
            _ => Access::Word,
        };
        self.mode_bits = (value >> 1) & 7;
        self.mode = if self.mode_bits > 5 {
            self.mode_bits & 3
        } else {
            self.mode_bits
        };
        self.bcd = value & 1 != 0;
        self.has_count = false;
        self.write_lsb = None;
        self.read_msb_next = false;
        self.latch = None;
        self.latch_msb_next = false;
        self.status = None;
        self.null_count = true;
        self.done = false;
        self.run = Run::Idle;
        self.idle_out = self.mode != 0;
    }

    fn latch_count(&mut self, t: u64) {
        // A second latch before the first is read is ignored.
        if self.latch.is_none() {
            self.latch = Some(self.encode(self.value(t)));
            self.latch_msb_next = false;
        }
    }

    fn latch_status(&mut self, t: u64) {
        if self.status.is_none() {
            self.status = Some(self.status_byte(t));
        }
    }

    fn read(&mut self, t: u64) -> u8 {
        if let Some(s) = self.status.take() {
            return s;
        }
        let [lsb, msb] = match self.latch {
            Some(l) => {
                let bytes = l.to_le_bytes();
                let done = match self.access {
                    Access::Word => self.latch_msb_next,
                    _ => true,
                };
                let byte = match self.access {
                    Access::Lsb => bytes[0],
                    Access::Msb => bytes[1],
                    Access::Word if self.latch_msb_next => bytes[1],
                    Access::Word => bytes[0],
                };
                self.latch_msb_next = !self.latch_msb_next;
                if done {
                    self.latch = None;
                    self.latch_msb_next = false;
                }
                return byte;
            }
            None => self.encode(self.value(t)).to_le_bytes(),
        };
        match self.access {
            Access::Lsb => lsb,
            Access::Msb => msb,
            Access::Word => {
                self.read_msb_next = !self.read_msb_next;
                if self.read_msb_next {
                    lsb
                } else {
                    msb
                }
            }
        }
    }

    fn write(&mut self, value: u8, t: u64) {
        match self.access {
            Access::Lsb => self.count_reg = u16::from(value),
            Access::Msb => self.count_reg = u16::from(value) << 8,
            Access::Word => match self.write_lsb.take() {
                None => {
                    self.write_lsb = Some(value);
                    // Mode 0: writing the first byte stops the count and
                    // drops OUT.
                    if self.mode == 0 && matches!(self.run, Run::Counting { .. }) {
                        self.run = Run::Paused {
                            value: self.value(t),
                            out: false,
                        };
                        self.done = false;
                    }
                    return;
                }
                Some(lsb) => self.count_reg = u16::from_le_bytes([lsb, value]),
            },
        }
        self.load(t);
    }

    /// A complete count was written at tick `t`.
    fn load(&mut self, t: u64) {
        self.has_count = true;
        self.null_count = false;
        let n = self.initial();
        match self.mode {
            0 | 4 => {
                self.done = false;
                self.run = if self.gate {
                    Run::Counting {
                        base: t + 1,
                        start: n,
                    }
                } else {
                    Run::Paused {
                        value: n,
                        out: self.mode == 4,
                    }
                };
            }
            2 | 3 => {
                self.run = if self.gate {
                    Run::Counting {
                        base: t + 1,
                        start: n,
                    }
                } else {
                    Run::Paused {
                        value: n,
                        out: true,
                    }
                };
            }
            // Modes 1 and 5 wait for a gate trigger.
            _ => {}
        }
    }

    fn set_gate(&mut self, high: bool, t: u64) {
        if high == self.gate {
            return;
        }
        self.gate = high;
        let m = self.modulus();
        if high {
            match (self.mode, self.run) {
                (1 | 5, _) | (2 | 3, _) if self.has_count => {
                    self.done = false;
                    self.run = Run::Counting {
                        base: t + 1,
                        start: self.initial(),
                    };
                }
                (0 | 4, Run::Paused { value, .. }) => {
                    self.run = Run::Counting {
                        base: t,
                        start: if value == 0 { m } else { value },
                    };
                }
                _ => {}
            }
        } else if let Run::Counting { base, start } = self.run {
            let e = t.saturating_sub(base);
            match self.mode {
                0 | 4 => {
                    let passed = if self.mode == 0 {
                        e >= u64::from(start)
                    } else {
                        e > u64::from(start)
                    };
                    let out = self.out(t);
                    self.done = self.done || passed;
                    self.run = Run::Paused {
                        value: self.value(t),
                        out,
                    };
                }
                // Gate low stops modes 2 and 3 with OUT high.
                2 | 3 => {
                    self.run = Run::Paused {
                        value: self.value(t),
                        out: true,
                    }
                }
                _ => {}
            }
        }
    }
}

/// The three counters and port 0x61's PIT bits.
#[derive(Clone, Debug)]
pub struct Pit {
    channels: [Channel; 3],
    /// Port 0x61 bits 0-3 as written.
    port61: u8,
    /// Ticks up to which channel 0's edges were reported.
    reported: u64,
    irq_edges: u64,
    coalesced: u64,
}

impl Pit {
    /// The PIT at tick `now`, all counters unprogrammed (no BIOS ran).
    pub fn new(now: u64) -> Self {
        let mut pit = Pit {
            channels: [Channel::new(), Channel::new(), Channel::new()],
            port61: 0,
            reported: now,
            irq_edges: 0,
            coalesced: 0,
        };
        pit.channels[2].gate = false;
        pit
    }

    /// Reads counter port 0x40 + `offset` (offsets 0-2; 3, the control
    /// word register, reads as 0xff).
    pub fn read(&mut self, offset: u8, now: u64) -> u8 {
        match self.channels.get_mut(usize::from(offset)) {
            Some(ch) => ch.read(now),
            None => 0xff,
        }
    }

    /// Writes port 0x40 + `offset`: a count (0-2) or a control word (3).
    pub fn write(&mut self, offset: u8, value: u8, now: u64) {
        match offset {
            0..=2 => self.channels[usize::from(offset)].write(value, now),
            3 => {
                let select = value >> 6;
                if select == 3 {
                    // Read-back: bit 5 low latches counts, bit 4 low latches
                    // status, bits 1-3 select the counters.
                    for (i, ch) in self.channels.iter_mut().enumerate() {
                        if value & (2 << i) == 0 {
                            continue;
                        }
                        if value & 0x10 == 0 {
                            ch.latch_status(now);
                        }
                        if value & 0x20 == 0 {
                            ch.latch_count(now);
                        }
                    }
                } else {
                    self.channels[usize::from(select)].control(value, now);
                }
            }
            _ => {}
        }
    }

    /// Port 0x61 as read: bits 0-3 as written, bit 4 the refresh toggle
    /// (every 15.085 µs), bit 5 channel 2's output.
    pub fn read_port61(&self, now: u64, now_ns: u64) -> u8 {
        let refresh = ((now_ns / 15_085) & 1) as u8;
        self.port61 | (refresh << 4) | (u8::from(self.channels[2].out(now)) << 5)
    }

    /// Port 0x61 written: bit 0 gates channel 2, bit 1 enables the speaker
    /// (not emulated), bits 2-3 are stored.
    pub fn write_port61(&mut self, value: u8, now: u64) {
        self.port61 = value & 0x0f;
        self.channels[2].set_gate(value & 1 != 0, now);
    }

    /// The tick of channel 0's next rising edge not yet reported.
    pub fn next_irq_tick(&self) -> Option<u64> {
        self.channels[0].next_edge(self.reported)
    }

    /// Reports channel 0's rising edges up to tick `now`: true if there was
    /// at least one (missed periods are coalesced into that one).
    pub fn advance(&mut self, now: u64) -> bool {
        if now <= self.reported {
            return false;
        }
        let edges = self.channels[0].edges_between(self.reported, now);
        self.reported = now;
        if edges == 0 {
            return false;
        }
        self.irq_edges = self.irq_edges.saturating_add(1);
        self.coalesced = self.coalesced.saturating_add(edges - 1);
        true
    }

    /// IRQ 0 edges reported so far.
    pub fn irq_edges(&self) -> u64 {
        self.irq_edges
    }

    /// Channel 0 periods that passed unreported and were merged.
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// Channel `ch`'s OUT pin at tick `now` (false for a channel above 2).
    pub fn output(&self, ch: usize, now: u64) -> bool {
        self.channels.get(ch).is_some_and(|c| c.out(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(pit: &mut Pit, ch: u8, control_low: u8, count: u16, t: u64) {
        pit.write(3, (ch << 6) | 0x30 | control_low, t);
        let [lo, hi] = count.to_le_bytes();
        pit.write(ch, lo, t);
        pit.write(ch, hi, t);
    }

    fn read_word(pit: &mut Pit, ch: u8, t: u64) -> u16 {
        let lo = pit.read(ch, t);
        let hi = pit.read(ch, t);
        u16::from_le_bytes([lo, hi])
    }

    #[test]
    fn tick_conversion_round_trips() {
        for t in [0u64, 1, 2, 1_193_181, 1_193_182, 123_456_789_012, 1 << 40] {
            assert_eq!(ns_to_ticks(ticks_to_ns(t)), t, "tick {t}");
            if t > 0 {
                assert_eq!(ns_to_ticks(ticks_to_ns(t) - 1), t - 1);
            }
        }
        assert_eq!(ns_to_ticks(1_000_000_000), PIT_HZ);
        assert_eq!(ticks_to_ns(u64::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn mode2_period_and_counting() {
        // Linux's periodic clockevent: control 0x34, LATCH = 1193 (1 kHz).
        let mut pit = Pit::new(1000);
        program(&mut pit, 0, 0x04, 1193, 1000);
        // Loaded on the next clock: edges at 1001 + k*1193.
        assert_eq!(pit.next_irq_tick(), Some(1001 + 1193));
        assert_eq!(read_word(&mut pit, 0, 1001), 1193);
        assert_eq!(read_word(&mut pit, 0, 1001 + 1192), 1);
        assert!(!pit.output(0, 1001 + 1192), "low for one clock at 1");
        assert!(pit.output(0, 1001 + 1193));
        assert!(!pit.advance(1001 + 1192));
        assert!(pit.advance(1001 + 1193));
        assert_eq!(pit.next_irq_tick(), Some(1001 + 2 * 1193));
        // Eleven more periods passed: one edge reported, ten coalesced.
        assert!(pit.advance(1001 + 12 * 1193));
        assert_eq!(pit.irq_edges(), 2);
        assert_eq!(pit.coalesced(), 10);
        assert_eq!(pit.next_irq_tick(), Some(1001 + 13 * 1193));
    }

    #[test]
    fn mode3_square_wave() {
        let mut pit = Pit::new(0);
        program(&mut pit, 0, 0x06, 10, 0);
        // Base 1, period 10: high for 5 clocks, low for 5.
        assert!(pit.output(0, 1) && pit.output(0, 5));
        assert!(!pit.output(0, 6) && !pit.output(0, 10));
        assert!(pit.output(0, 11));
        assert_eq!(read_word(&mut pit, 0, 1), 10);
        assert_eq!(read_word(&mut pit, 0, 2), 8, "counts by two");
        assert_eq!(read_word(&mut pit, 0, 6), 10, "reloads for the low half");
        assert_eq!(pit.next_irq_tick(), Some(11));
        // Odd count: high (N+1)/2, low (N-1)/2.
        program(&mut pit, 0, 0x06, 5, 100);
        let highs = (101..106).filter(|&t| pit.output(0, t)).count();
        assert_eq!(highs, 3);
    }

    #[test]
    fn mode0_oneshot_and_mode4_strobe() {
        let mut pit = Pit::new(0);
        // Linux's oneshot clockevent uses mode 4 (0x38); shutdown uses 0x30.
        pit.write(3, 0x30, 0);
        assert!(!pit.output(0, 0), "mode 0: OUT low after the control word");
        pit.write(0, 100, 0);
        pit.write(0, 0, 0);
        assert_eq!(pit.next_irq_tick(), Some(101), "N+1 clocks after the write");
        assert!(pit.advance(200));
        assert_eq!(pit.next_irq_tick(), None, "one shot");
        assert!(pit.output(0, 500));
        assert_eq!(
            read_word(&mut pit, 0, 101 + 100),
            0x10000u32.wrapping_sub(100) as u16,
            "wraps on"
        );
        program(&mut pit, 0, 0x08, 50, 1000);
        assert!(pit.output(0, 1000), "mode 4: OUT high");
        assert!(!pit.output(0, 1051), "strobe low one clock");
        assert!(pit.output(0, 1052));
        assert_eq!(pit.next_irq_tick(), Some(1052));
        assert!(!pit.advance(1051));
        assert!(pit.advance(1052));
        assert_eq!(pit.next_irq_tick(), None);
    }

    #[test]
    fn linux_oneshot_clockevent_reprograms_with_counts_only() {
        // pit_set_oneshot writes 0x38 once; pit_next_event then writes only
        // LSB and MSB of each delta, loaded on the next clock.
        let mut pit = Pit::new(0);
        pit.write(3, 0x38, 0);
        assert_eq!(pit.next_irq_tick(), None, "no count yet");
        pit.write(0, 100, 10);
        pit.write(0, 0, 10);
        assert_eq!(pit.next_irq_tick(), Some(10 + 1 + 100 + 1));
        assert!(pit.advance(112));
        assert_eq!(pit.next_irq_tick(), None);
        // Next event, and a re-arm before it fires replaces it.
        pit.write(0, 50, 200);
        pit.write(0, 0, 200);
        assert_eq!(pit.next_irq_tick(), Some(252));
        pit.write(0, 30, 230);
        pit.write(0, 0, 230);
        assert_eq!(pit.next_irq_tick(), Some(262), "230 + 1 + 30 + 1");
        pit.write(0, 5, 240);
        pit.write(0, 0, 240);
        assert_eq!(pit.next_irq_tick(), Some(247));
        assert!(pit.advance(260));
        assert_eq!(pit.irq_edges(), 2, "the replaced deadlines never fired");
        // pit_shutdown: mode 0 with a zero count fires once, 65536 later.
        pit.write(3, 0x30, 300);
        pit.write(0, 0, 300);
        pit.write(0, 0, 300);
        assert_eq!(pit.next_irq_tick(), Some(301 + 65_536));
    }

    #[test]
    fn lsb_msb_access_modes() {
        let mut pit = Pit::new(0);
        // LSB only: MSB is zero.
        pit.write(3, 0x14, 0);
        pit.write(0, 0x80, 0);
        assert_eq!(pit.read(0, 1), 0x80);
        assert_eq!(pit.next_irq_tick(), Some(1 + 0x80));
        // MSB only: LSB is zero.
        pit.write(3, 0x24, 10);
        pit.write(0, 0x02, 10);
        assert_eq!(pit.read(0, 11), 0x02);
        assert_eq!(pit.next_irq_tick(), Some(11 + 0x200));
        // Word access needs both bytes before it loads.
        pit.write(3, 0x34, 20);
        pit.write(0, 0x00, 20);
        assert_eq!(pit.next_irq_tick(), None, "half a count loads nothing");
        pit.write(0, 0x01, 21);
        assert_eq!(pit.next_irq_tick(), Some(22 + 0x100));
    }

    #[test]
    fn latch_freezes_value_until_read() {
        let mut pit = Pit::new(0);
        program(&mut pit, 0, 0x04, 1000, 0);
        pit.write(3, 0x00, 101); // latch counter 0: value 900
        pit.write(3, 0x00, 300); // ignored: the first latch is unread
        assert_eq!(read_word(&mut pit, 0, 500), 900);
        assert_eq!(read_word(&mut pit, 0, 501), 500, "live again");
        // Latching between the two byte reads of a live value keeps order.
        pit.write(3, 0x00, 601);
        assert_eq!(pit.read(0, 700), (400u16 & 0xff) as u8);
        assert_eq!(pit.read(0, 800), (400u16 >> 8) as u8);
    }

    #[test]
    fn read_back_status_and_count() {
        let mut pit = Pit::new(0);
        pit.write(3, 0xb0, 0); // channel 2, word, mode 0
                               // Read-back status of counter 2 before a count: null count set,
                               // OUT low.
        pit.write(3, 0xe8, 0);
        assert_eq!(pit.read(2, 0), 0x40 | 0x30);
        pit.write_port61(0x01, 0);
        pit.write(2, 0x10, 0);
        pit.write(2, 0x00, 0);
        // Both status and count: status first, then the count.
        pit.write(3, 0xc8, 5);
        assert_eq!(pit.read(2, 9), 0x30, "OUT low, count valid");
        assert_eq!(read_word(&mut pit, 2, 9), 0x10 - 4);
        // Status already latched: a second status latch is ignored.
        pit.write(3, 0xe8, 20);
        pit.write(3, 0xe8, 30);
        assert_eq!(pit.read(2, 40), 0xb0, "OUT high from tick 17");
    }

    #[test]
    fn bcd_counting() {
        let mut pit = Pit::new(0);
        pit.write(3, 0x35, 0); // mode 2, BCD
        pit.write(0, 0x00, 0);
        pit.write(0, 0x10, 0); // 1000 decimal
        assert_eq!(pit.next_irq_tick(), Some(1001));
        assert_eq!(read_word(&mut pit, 0, 1 + 1), 0x0999);
        // Count 0 in BCD is 10000.
        pit.write(3, 0x35, 0);
        pit.write(0, 0, 0);
        pit.write(0, 0, 0);
        assert_eq!(pit.next_irq_tick(), Some(10_001));
    }

    #[test]
    fn linux_pit_calibration_through_port61() {
        // pit_calibrate_tsc: gate on, speaker off, channel 2 mode 0, then
        // poll port 0x61 bit 5 for terminal count.
        let mut pit = Pit::new(0);
        let p = pit.read_port61(0, 0);
        pit.write_port61((p & !0x02) | 0x01, 0);
        pit.write(3, 0xb0, 0);
        let latch = (PIT_HZ / 100) as u16; // 10 ms, as Linux computes it
        pit.write(2, latch as u8, 0);
        pit.write(2, (latch >> 8) as u8, 0);
        let end = ns_to_ticks(10_000_000);
        assert_eq!(pit.read_port61(end, 10_000_000) & 0x20, 0);
        let t = u64::from(latch) + 1;
        assert_eq!(pit.read_port61(t, ticks_to_ns(t)) & 0x20, 0x20);
        assert_eq!(pit.read_port61(t, 0) & 0x0f, 0x01);
        // quick_pit_calibrate reads the MSB of a free-running 0xffff count.
        pit.write(3, 0xb0, 0);
        pit.write(2, 0xff, 0);
        pit.write(2, 0xff, 0);
        pit.read(2, 1 + 256 * 3);
        assert_eq!(pit.read(2, 1 + 256 * 3), 0xfc);
    }

    #[test]
    fn channel2_gate_pauses_mode0_and_restarts_mode2() {
        let mut pit = Pit::new(0);
        pit.write_port61(0x01, 0);
        program(&mut pit, 2, 0x00, 100, 0);
        pit.write_port61(0x00, 51); // pause at value 50
        assert_eq!(read_word(&mut pit, 2, 500), 50);
        assert_eq!(pit.read_port61(500, 0) & 0x20, 0);
        pit.write_port61(0x01, 1000);
        assert_eq!(pit.read_port61(1049, 0) & 0x20, 0);
        assert_eq!(pit.read_port61(1050, 0) & 0x20, 0x20);
        // Mode 2: gate low holds OUT high, gate high reloads.
        program(&mut pit, 2, 0x04, 10, 2000);
        pit.write_port61(0x00, 2005);
        assert!(pit.output(2, 2010));
        pit.write_port61(0x01, 3000);
        assert_eq!(read_word(&mut pit, 2, 3001), 10);
    }

    #[test]
    fn mode1_and_mode5_wait_for_a_gate_trigger() {
        let mut pit = Pit::new(0);
        program(&mut pit, 2, 0x02, 20, 0); // mode 1
        assert!(pit.output(2, 100), "no trigger yet: OUT high");
        pit.write_port61(0x01, 100);
        assert!(!pit.output(2, 110));
        assert!(pit.output(2, 121));
        program(&mut pit, 2, 0x0a, 5, 200); // mode 5, gate already high
        assert!(pit.output(2, 210));
        pit.write_port61(0x00, 300);
        pit.write_port61(0x01, 301);
        assert!(!pit.output(2, 307), "strobe at base + N");
        assert!(pit.output(2, 308));
        // Channel 0 in mode 1: gate tied high, never triggered, never fires.
        program(&mut pit, 0, 0x02, 5, 400);
        assert_eq!(pit.next_irq_tick(), None);
    }

    #[test]
    fn unprogrammed_pit_raises_nothing() {
        let mut pit = Pit::new(0);
        assert_eq!(pit.next_irq_tick(), None);
        assert!(!pit.advance(u64::MAX));
        assert_eq!(pit.read(3, 0), 0xff);
    }
}
