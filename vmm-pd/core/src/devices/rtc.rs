//! The MC146818 real-time clock and its CMOS RAM (index port 0x70, data
//! port 0x71, IRQ 8). Bit 7 of a write to the index port is the PC's NMI
//! mask, kept here so the VMM can ask for it.
//!
//! Design rules: the ten time and alarm registers are stored as the guest
//! wrote them (BCD or binary, 12 or 24 hour, per status register B), as on
//! the chip: changing the data mode does not convert them. Once a second
//! (while SET is clear and the divider runs) the update cycle decodes the
//! stored time, adds the elapsed seconds and encodes it back, setting UF,
//! and AF when the alarm matched a second it passed through. Status A's UIP
//! bit reads as set during the 244 µs before each update. The periodic
//! interrupt flag (PF) follows the rate in status A. IRQ 8 is asserted while
//! status C's IRQF is set and is released when the guest reads status C.
//!
//! The wall-clock base is the caller's: the clock starts at the Unix time
//! it is given (as UTC), the century byte (CMOS 0x32) follows it.
//!
//! Not modelled: daylight saving (DSE is stored only), the square-wave
//! output, the 500 ms delay before the first update after the divider
//! leaves reset, and the chip's exact behaviour with out-of-range time
//! bytes (they are clamped into range when the clock advances).

/// The RTC's ISA interrupt line.
pub const RTC_IRQ: u8 = 8;

const REG_A: usize = 0x0a;
const REG_B: usize = 0x0b;
const REG_C: usize = 0x0c;
const REG_D: usize = 0x0d;
/// The century byte, by PC convention (BCD).
const CENTURY: usize = 0x32;

const A_UIP: u8 = 0x80;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_DM_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;
const D_VRT: u8 = 0x80;

const NS_PER_S: u64 = 1_000_000_000;
/// UIP is set this long before each update.
const UIP_NS: u64 = 244_000;
/// The time base: the 32.768 kHz crystal the divider chain counts.
const OSC_HZ: u128 = 32_768;

/// Calendar time in binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DateTime {
    year: u32, // full year
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl DateTime {
    fn from_unix(secs: u64) -> Self {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year: year.clamp(0, 9999) as u32,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    fn to_unix(self) -> u64 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day).max(0) as u64;
        days * 86_400
            + u64::from(self.hour) * 3600
            + u64::from(self.minute) * 60
            + u64::from(self.second)
    }
}

/// The MC146818 with its 128 bytes of CMOS.
#[derive(Clone, Debug)]
pub struct Rtc {
    index: u8,
    nmi_masked: bool,
    /// Registers 0x00-0x0d and RAM 0x0e-0x7f. Register C is kept in `flags`.
    ram: [u8; 128],
    flags: u8,
    /// Monotonic ns at which the current second began.
    second_start: u64,
    /// Monotonic ns up to which periodic flags were computed.
    periodic_seen: u64,
    now: u64,
}

impl Rtc {
    /// The RTC at monotonic time `now_ns`, reading `unix_secs` (UTC), in
    /// BCD and 24-hour mode as a PC BIOS leaves it.
    pub fn new(now_ns: u64, unix_secs: u64) -> Self {
        let mut rtc = Rtc {
            index: 0,
            nmi_masked: false,
            ram: [0; 128],
            flags: 0,
            second_start: now_ns,
            periodic_seen: now_ns,
            now: now_ns,
        };
        rtc.ram[REG_A] = 0x26; // divider running at 32.768 kHz, 1024 Hz rate
        rtc.ram[REG_B] = B_24H;
        rtc.store_time(DateTime::from_unix(unix_secs));
        let century = (DateTime::from_unix(unix_secs).year / 100) % 100;
        rtc.ram[CENTURY] = to_bcd(century as u8);
        rtc
    }

    fn binary(&self) -> bool {
        self.ram[REG_B] & B_DM_BINARY != 0
    }

    fn h24(&self) -> bool {
        self.ram[REG_B] & B_24H != 0
    }

    fn running(&self) -> bool {
        self.ram[REG_B] & B_SET == 0 && (self.ram[REG_A] >> 4) & 7 == 2
    }

    fn enc(&self, v: u32) -> u8 {
        if self.binary() {
            v as u8
        } else {
            to_bcd((v % 100) as u8)
        }
    }

    fn dec(&self, b: u8) -> u32 {
        if self.binary() {
            u32::from(b)
        } else {
            u32::from(b >> 4) * 10 + u32::from(b & 15)
        }
    }

    fn enc_hour(&self, h: u32) -> u8 {
        if self.h24() {
            self.enc(h)
        } else {
            let h12 = if h.is_multiple_of(12) { 12 } else { h % 12 };
            self.enc(h12) | if h >= 12 { 0x80 } else { 0 }
        }
    }

    fn dec_hour(&self, b: u8) -> u32 {
        if self.h24() {
            self.dec(b) % 24
        } else {
            let h = self.dec(b & 0x7f) % 12;
            h + if b & 0x80 != 0 { 12 } else { 0 }
        }
    }

    /// The stored time, clamped into range.
    fn load_time(&self) -> DateTime {
        let year = self.dec(self.ram[9]) % 100;
        let century = u32::from(self.ram[CENTURY] >> 4) * 10 + u32::from(self.ram[CENTURY] & 15);
        let century = if (19..=99).contains(&century) {
            century
        } else {
            20
        };
        DateTime {
            year: century * 100 + year,
            month: self.dec(self.ram[8]).clamp(1, 12),
            day: self.dec(self.ram[7]).clamp(1, 31),
            hour: self.dec_hour(self.ram[4]),
            minute: self.dec(self.ram[2]) % 60,
            second: self.dec(self.ram[0]) % 60,
        }
    }

    fn store_time(&mut self, t: DateTime) {
        self.ram[0] = self.enc(t.second);
        self.ram[2] = self.enc(t.minute);
        self.ram[4] = self.enc_hour(t.hour);
        // Day of week 1-7, Sunday = 1; 1970-01-01 was a Thursday.
        let days = days_from_civil(i64::from(t.year), t.month, t.day);
        self.ram[6] = self.enc(((days + 4).rem_euclid(7) + 1) as u32);
        self.ram[7] = self.enc(t.day);
        self.ram[8] = self.enc(t.month);
        self.ram[9] = self.enc(t.year % 100);
    }

    /// Whether the alarm matched any second in `first..=last` (Unix
    /// seconds, less than a day apart). Each alarm byte is compared with the
    /// encoded time field, 0xc0-0xff matching anything; the walk goes a
    /// minute at a time, so it is short whatever the alarm holds.
    fn alarm_in(&self, first: u64, last: u64) -> bool {
        let field = |alarm: u8, now: u8| alarm & 0xc0 == 0xc0 || alarm == now;
        let mut sec_ok = [false; 60];
        let mut min_ok = [false; 60];
        let mut hour_ok = [false; 24];
        for v in 0..60u32 {
            sec_ok[v as usize] = field(self.ram[1], self.enc(v));
            min_ok[v as usize] = field(self.ram[3], self.enc(v));
        }
        for (h, ok) in hour_ok.iter_mut().enumerate() {
            *ok = field(self.ram[5], self.enc_hour(h as u32));
        }
        if !(sec_ok.contains(&true) && min_ok.contains(&true) && hour_ok.contains(&true)) {
            return false;
        }
        let mut t = first;
        while t <= last {
            let sod = t % 86_400;
            let (h, m, s) = (
                (sod / 3600) as usize,
                (sod / 60 % 60) as usize,
                (sod % 60) as usize,
            );
            let minute_last = last.min(t + (59 - s as u64));
            let s_last = s + (minute_last - t) as usize;
            if hour_ok[h] && min_ok[m] && sec_ok[s..=s_last].contains(&true) {
                return true;
            }
            t = minute_last + 1;
        }
        false
    }

    /// The periodic interrupt's divisor of the 32.768 kHz base, if enabled.
    fn periodic_divisor(&self) -> Option<u128> {
        if (self.ram[REG_A] >> 4) & 7 != 2 {
            return None;
        }
        match self.ram[REG_A] & 15 {
            0 => None,
            1 => Some(128),
            2 => Some(256),
            rs => Some(1 << (rs - 1)),
        }
    }

    /// Brings flags and time up to `now_ns` (never backwards).
    pub fn advance(&mut self, now_ns: u64) {
        if now_ns <= self.now {
            return;
        }
        self.now = now_ns;
        if let Some(div) = self.periodic_divisor() {
            let period = |ns: u64| u128::from(ns) * OSC_HZ / (u128::from(NS_PER_S) * div);
            if period(now_ns) > period(self.periodic_seen) {
                self.flags |= C_PF;
            }
        }
        self.periodic_seen = now_ns;
        if !self.running() {
            self.second_start = now_ns;
            return;
        }
        let elapsed = (now_ns - self.second_start) / NS_PER_S;
        if elapsed == 0 {
            return;
        }
        self.second_start += elapsed * NS_PER_S;
        let before = self.load_time().to_unix();
        // The alarm is checked at every second passed; a day covers every
        // time of day, so longer gaps need not be walked.
        let first = before + 1 + elapsed.saturating_sub(86_400);
        if self.alarm_in(first, before + elapsed) {
            self.flags |= C_AF;
        }
        self.store_time(DateTime::from_unix(before + elapsed));
        self.flags |= C_UF;
    }

    fn irqf(&self) -> bool {
        self.flags & self.ram[REG_B] & (C_PF | C_AF | C_UF) != 0
    }

    /// Whether IRQ 8 is asserted.
    pub fn irq_line(&self) -> bool {
        self.irqf()
    }

    /// The next time an enabled interrupt source can fire, while IRQ 8 is
    /// not already asserted.
    pub fn next_event_ns(&self) -> Option<u64> {
        if self.irqf() {
            return None;
        }
        let b = self.ram[REG_B];
        let mut next: Option<u64> = None;
        if b & B_PIE != 0 {
            if let Some(div) = self.periodic_divisor() {
                let k = u128::from(self.now) * OSC_HZ / (u128::from(NS_PER_S) * div) + 1;
                let ns = (k * div * u128::from(NS_PER_S)).div_ceil(OSC_HZ);
                next = Some(u64::try_from(ns).unwrap_or(u64::MAX));
            }
        }
        if b & (B_UIE | B_AIE) != 0 && self.running() {
            let update = self.second_start.saturating_add(NS_PER_S);
            next = Some(next.map_or(update, |n| n.min(update)));
        }
        next
    }

    /// Reads the index port (write-only on the chip: reads as 0xff).
    pub fn read_index(&self) -> u8 {
        0xff
    }

    /// Writes the index port: bits 0-6 select the register, bit 7 masks NMI.
    pub fn write_index(&mut self, value: u8) {
        self.index = value & 0x7f;
        self.nmi_masked = value & 0x80 != 0;
    }

    /// Reads the selected register.
    pub fn read_data(&mut self) -> u8 {
        let i = usize::from(self.index);
        match i {
            REG_A => {
                let uip = self.running()
                    && self.now.saturating_sub(self.second_start) >= NS_PER_S - UIP_NS;
                (self.ram[REG_A] & 0x7f) | if uip { A_UIP } else { 0 }
            }
            REG_C => {
                let c = self.flags | if self.irqf() { C_IRQF } else { 0 };
                self.flags = 0;
                c
            }
            REG_D => D_VRT,
            _ => self.ram[i & 0x7f],
        }
    }

    /// Writes the selected register.
    pub fn write_data(&mut self, value: u8) {
        let i = usize::from(self.index & 0x7f);
        match i {
            REG_A => {
                let was = self.running();
                self.ram[REG_A] = value & 0x7f;
                if !was && self.running() {
                    self.second_start = self.now;
                }
            }
            REG_B => {
                let was = self.running();
                // Setting SET clears UIE.
                self.ram[REG_B] = if value & B_SET != 0 {
                    value & !B_UIE
                } else {
                    value
                };
                if !was && self.running() {
                    // The first update comes a second after SET is cleared.
                    self.second_start = self.now;
                }
            }
            REG_C | REG_D => {}
            _ => self.ram[i] = value,
        }
    }

    /// Whether the guest masked NMIs (bit 7 of the last index write).
    pub fn nmi_masked(&self) -> bool {
        self.nmi_masked
    }

    /// The RTC's current time as Unix seconds (taking the stored time as
    /// UTC and the century from CMOS 0x32).
    pub fn unix_time(&self) -> u64 {
        self.load_time().to_unix()
    }
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC, a Tuesday

    fn read(rtc: &mut Rtc, reg: u8) -> u8 {
        rtc.write_index(reg);
        rtc.read_data()
    }

    fn write(rtc: &mut Rtc, reg: u8, v: u8) {
        rtc.write_index(reg);
        rtc.write_data(v);
    }

    #[test]
    fn calendar_conversion_matches_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let t = DateTime::from_unix(T0);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(t.to_unix(), T0);
    }

    #[test]
    fn bcd_24h_time_as_a_bios_leaves_it() {
        let mut rtc = Rtc::new(0, T0);
        assert_eq!(read(&mut rtc, 0), 0x20);
        assert_eq!(read(&mut rtc, 2), 0x13);
        assert_eq!(read(&mut rtc, 4), 0x22);
        assert_eq!(read(&mut rtc, 6), 0x03, "Tuesday");
        assert_eq!(read(&mut rtc, 7), 0x14);
        assert_eq!(read(&mut rtc, 8), 0x11);
        assert_eq!(read(&mut rtc, 9), 0x23);
        assert_eq!(read(&mut rtc, 0x32), 0x20);
        assert_eq!(read(&mut rtc, 0x0d), 0x80, "VRT: valid RAM and time");
        assert_eq!(rtc.unix_time(), T0);
    }

    #[test]
    fn binary_and_12h_modes() {
        let mut rtc = Rtc::new(0, T0);
        // Set the clock in binary 12-hour mode, as the datasheet says:
        // SET, write the registers, clear SET.
        write(&mut rtc, 0x0b, B_SET | B_DM_BINARY);
        write(&mut rtc, 4, 0x80 | 10); // 10 PM
        write(&mut rtc, 2, 13);
        write(&mut rtc, 0, 59);
        write(&mut rtc, 0x0b, B_DM_BINARY);
        assert_eq!(read(&mut rtc, 4), 0x8a);
        rtc.advance(NS_PER_S);
        assert_eq!(read(&mut rtc, 0), 0);
        assert_eq!(read(&mut rtc, 2), 14);
        // 12 AM is midnight, 12 PM noon.
        write(&mut rtc, 0x0b, B_SET | B_DM_BINARY);
        write(&mut rtc, 4, 0x80 | 11);
        write(&mut rtc, 2, 59);
        write(&mut rtc, 0, 59);
        write(&mut rtc, 7, 14);
        write(&mut rtc, 8, 11);
        write(&mut rtc, 9, 23);
        write(&mut rtc, 0x0b, B_DM_BINARY);
        rtc.advance(2 * NS_PER_S);
        assert_eq!(read(&mut rtc, 4), 12, "11:59:59 PM + 1 s = 12 AM");
        assert_eq!(read(&mut rtc, 7), 15, "next day");
    }

    #[test]
    fn changing_data_mode_does_not_convert() {
        let mut rtc = Rtc::new(0, T0);
        write(&mut rtc, 0x0b, B_24H | B_DM_BINARY);
        assert_eq!(read(&mut rtc, 0), 0x20, "still the BCD bytes");
    }

    #[test]
    fn set_bit_stops_the_clock() {
        let mut rtc = Rtc::new(0, T0);
        write(&mut rtc, 0x0b, B_SET | B_24H);
        rtc.advance(5 * NS_PER_S);
        assert_eq!(read(&mut rtc, 0), 0x20);
        write(&mut rtc, 0x0b, B_24H);
        rtc.advance(5 * NS_PER_S + NS_PER_S - 1);
        assert_eq!(
            read(&mut rtc, 0),
            0x20,
            "first update a second after SET clears"
        );
        rtc.advance(6 * NS_PER_S);
        assert_eq!(read(&mut rtc, 0), 0x21);
    }

    #[test]
    fn uip_before_each_update() {
        let mut rtc = Rtc::new(0, T0);
        rtc.advance(NS_PER_S - UIP_NS - 1);
        assert_eq!(read(&mut rtc, 0x0a), 0x26);
        rtc.advance(NS_PER_S - UIP_NS);
        assert_eq!(read(&mut rtc, 0x0a), 0xa6);
        rtc.advance(NS_PER_S);
        assert_eq!(read(&mut rtc, 0x0a), 0x26);
        assert_eq!(read(&mut rtc, 0), 0x21);
    }

    #[test]
    fn update_and_alarm_interrupts() {
        let mut rtc = Rtc::new(0, T0);
        // Alarm at 22:13:25, don't-care hour.
        write(&mut rtc, 1, 0x25);
        write(&mut rtc, 3, 0x13);
        write(&mut rtc, 5, 0xc0);
        write(&mut rtc, 0x0b, B_24H | B_AIE);
        assert_eq!(rtc.next_event_ns(), Some(NS_PER_S));
        rtc.advance(4 * NS_PER_S);
        assert!(!rtc.irq_line());
        // Flags are set whether or not their interrupt is enabled (PF too:
        // the 1024 Hz rate runs).
        assert_eq!(read(&mut rtc, 0x0c), C_UF | C_PF);
        rtc.advance(10 * NS_PER_S); // passes 22:13:25 on the way
        assert!(rtc.irq_line());
        assert_eq!(rtc.next_event_ns(), None, "already asserted");
        assert_eq!(read(&mut rtc, 0x0c), C_IRQF | C_PF | C_AF | C_UF);
        assert!(!rtc.irq_line(), "reading C releases IRQ 8");
        assert_eq!(read(&mut rtc, 0x0c), 0);
        write(&mut rtc, 0x0b, B_24H | B_UIE);
        rtc.advance(11 * NS_PER_S);
        assert!(rtc.irq_line());
    }

    #[test]
    fn alarm_walk_agrees_with_checking_every_second() {
        let mut rtc = Rtc::new(0, T0);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut outcomes = [0u32; 2];
        for round in 0..400 {
            // Mostly valid alarm bytes, some don't-care and some garbage.
            let pick = |r: u64, max: u64| match r % 8 {
                0 => 0xc0 | (r >> 8) as u8,
                1 => (r >> 8) as u8,
                _ => to_bcd(((r >> 8) % max) as u8),
            };
            let (a, b, c) = (next(), next(), next());
            rtc.ram[1] = pick(a, 60);
            rtc.ram[3] = pick(b, 60);
            rtc.ram[5] = pick(c, 24);
            rtc.ram[REG_B] = if round % 3 == 0 { 0 } else { B_24H };
            let first = T0 + next() % 200_000;
            let len = next() % if round % 2 == 0 { 200 } else { 86_400 };
            let brute = (first..=first + len).any(|t| {
                let sod = t % 86_400;
                let f = |alarm: u8, now: u8| alarm & 0xc0 == 0xc0 || alarm == now;
                f(rtc.ram[1], rtc.enc((sod % 60) as u32))
                    && f(rtc.ram[3], rtc.enc((sod / 60 % 60) as u32))
                    && f(rtc.ram[5], rtc.enc_hour((sod / 3600) as u32))
            });
            assert_eq!(rtc.alarm_in(first, first + len), brute, "round {round}");
            outcomes[usize::from(brute)] += 1;
        }
        assert!(outcomes[0] > 50 && outcomes[1] > 50, "{outcomes:?}");
    }

    #[test]
    fn periodic_interrupt_rate() {
        let mut rtc = Rtc::new(0, T0);
        write(&mut rtc, 0x0a, 0x26); // 1024 Hz
        write(&mut rtc, 0x0b, B_24H | B_PIE);
        let next = rtc.next_event_ns().unwrap();
        assert_eq!(next, 976_563, "1/1024 s, rounded up");
        rtc.advance(next - 1);
        assert!(!rtc.irq_line());
        rtc.advance(next);
        assert!(rtc.irq_line());
        assert_eq!(read(&mut rtc, 0x0c), C_IRQF | C_PF);
        write(&mut rtc, 0x0a, 0x2f); // 2 Hz
        assert_eq!(rtc.next_event_ns(), Some(500_000_000));
        write(&mut rtc, 0x0a, 0x20); // rate 0: off
        assert_eq!(rtc.next_event_ns(), None);
    }

    #[test]
    fn ram_and_nmi_mask() {
        let mut rtc = Rtc::new(0, T0);
        for i in 0x0e..0x80u8 {
            write(&mut rtc, i, i ^ 0x5a);
        }
        for i in 0x0e..0x80u8 {
            assert_eq!(read(&mut rtc, i), i ^ 0x5a);
        }
        rtc.write_index(0x8f);
        assert!(rtc.nmi_masked());
        assert_eq!(
            rtc.read_data(),
            0x0f ^ 0x5a,
            "index bit 7 is not an address bit"
        );
        rtc.write_index(0x0f);
        assert!(!rtc.nmi_masked());
        write(&mut rtc, 0x0d, 0);
        assert_eq!(read(&mut rtc, 0x0d), 0x80, "D is read-only");
    }

    #[test]
    fn long_gaps_and_garbage_bytes_do_not_panic() {
        let mut rtc = Rtc::new(0, T0);
        write(&mut rtc, 0x0b, B_24H | B_AIE);
        write(&mut rtc, 1, 0xff);
        write(&mut rtc, 3, 0xff);
        write(&mut rtc, 5, 0x77); // never matches in BCD 24 h
        for reg in [0u8, 2, 4, 7, 8, 9] {
            write(&mut rtc, reg, 0xff);
        }
        rtc.advance(u64::MAX / 2);
        assert_eq!(read(&mut rtc, 0x0c) & C_AF, 0);
        rtc.advance(u64::MAX);
        assert!(rtc.unix_time() > 0);
    }
}
