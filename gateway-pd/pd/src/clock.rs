//! A microsecond clock for the engine (token buckets, state staleness): the
//! TSC, calibrated once at init over 1 ms of PIT channel 2 (the speaker channel,
//! which the kernel does not use after boot). Needs ports 0x42-0x43 and
//! 0x61 granted in `system.xml`.

use bulkhead_microkit::{io, rdtsc};

const PIT_HZ: u64 = 1_193_182;
/// 1 ms of PIT ticks: short enough to fit in one budget slice of the PD
/// (a preemption inside the window would inflate the measured rate).
const COUNT: u16 = 1_193;

/// TSC ticks per microsecond, and the TSC at calibration (time zero).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    per_us: u64,
    t0: u64,
}

impl Clock {
    /// Measures the TSC over 1 ms of PIT channel 2 (mode 0, gate via port
    /// 0x61). Falls back to 1 GHz if the PIT never counts down.
    pub fn calibrate() -> Clock {
        let gate = io::inb(0x61);
        io::outb(0x61, gate & !0x03); // gate low, speaker off
        io::outb(0x43, 0b1011_0000); // channel 2, lo/hi byte, mode 0, binary
        io::outb(0x42, COUNT as u8);
        io::outb(0x42, (COUNT >> 8) as u8);
        io::outb(0x61, (gate & !0x02) | 0x01); // gate high: count
        let start = rdtsc();
        let mut end = start;
        let mut done = false;
        // OUT2 (port 0x61 bit 5) goes high at terminal count.
        while end.wrapping_sub(start) < 20_000_000_000 {
            end = rdtsc();
            if io::inb(0x61) & 0x20 != 0 {
                done = true;
                break;
            }
        }
        io::outb(0x61, gate);
        let us = u64::from(COUNT) * 1_000_000 / PIT_HZ;
        let per_us = if done {
            (end.wrapping_sub(start) / us).max(1)
        } else {
            1_000
        };
        Clock { per_us, t0: start }
    }

    /// A clock with a known rate (tests, or a board that knows its TSC).
    pub fn with_rate(per_us: u64) -> Clock {
        Clock {
            per_us: per_us.max(1),
            t0: rdtsc(),
        }
    }

    /// Microseconds since calibration.
    pub fn now_us(&self) -> u64 {
        rdtsc().wrapping_sub(self.t0) / self.per_us
    }

    /// TSC ticks per microsecond.
    pub fn ticks_per_us(&self) -> u64 {
        self.per_us
    }
}
