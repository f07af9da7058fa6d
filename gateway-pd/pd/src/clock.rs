//! A microsecond clock for the engine (token buckets, state staleness): the
//! TSC, at the rate the kernel calibrated at boot (`tsc_hz`, a syscall). The
//! PIT stays the kernel's: this PD needs no port for its clock, and every PD
//! that asks gets the same rate, so their time bases agree.

use bulkhead_microkit::{rdtsc, tsc_hz};

/// The rate assumed if the kernel reports less than 1 MHz (it never should:
/// it calibrates at boot and refuses to start without a TSC): 1 GHz.
const FALLBACK_PER_US: u64 = 1_000;

/// TSC ticks per microsecond for a TSC of `hz`; [`FALLBACK_PER_US`] for a
/// rate below 1 MHz (a zero divisor, or a clock too coarse to be real).
pub fn per_us_from_hz(hz: u64) -> u64 {
    match hz / 1_000_000 {
        0 => FALLBACK_PER_US,
        n => n,
    }
}

/// TSC ticks per microsecond, and the TSC at calibration (time zero).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    per_us: u64,
    t0: u64,
}

impl Clock {
    /// A clock at the kernel's calibrated TSC rate; time zero is now.
    pub fn from_kernel() -> Clock {
        Clock {
            per_us: per_us_from_hz(tsc_hz()),
            t0: rdtsc(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_from_the_kernel() {
        assert_eq!(per_us_from_hz(2_400_000_000), 2_400);
        assert_eq!(per_us_from_hz(1_999_999), 1);
        assert_eq!(per_us_from_hz(999_999), FALLBACK_PER_US);
        assert_eq!(per_us_from_hz(0), FALLBACK_PER_US);
        // The host kernel's default rate (1 GHz) reaches the clock.
        assert_eq!(Clock::from_kernel().ticks_per_us(), 1_000);
    }
}
