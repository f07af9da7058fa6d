//! Real-time clock values and the timer/RTC sanity rules.
//!
//! The host API returns the RTC packed in one `i64` (year in bits 40..56,
//! then month, day, hour, minute, second a byte each) so a read is one call
//! with no guest memory involved.

/// A wall-clock time as the RTC gives it (binary, 24-hour, full year).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RtcTime {
    /// Full year, e.g. 2026.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
}

impl RtcTime {
    /// The packed form the host API uses.
    pub fn pack(&self) -> u64 {
        (self.year as u64) << 40
            | (self.month as u64) << 32
            | (self.day as u64) << 24
            | (self.hour as u64) << 16
            | (self.minute as u64) << 8
            | self.second as u64
    }

    /// Unpacks the host API's form.
    pub fn unpack(v: u64) -> RtcTime {
        RtcTime {
            year: (v >> 40) as u16,
            month: (v >> 32) as u8,
            day: (v >> 24) as u8,
            hour: (v >> 16) as u8,
            minute: (v >> 8) as u8,
            second: v as u8,
        }
    }

    /// Why the value is not a plausible time of a running board, if it is not.
    pub fn implausible(&self) -> Option<&'static str> {
        let leap = (self.year.is_multiple_of(4) && !self.year.is_multiple_of(100))
            || self.year.is_multiple_of(400);
        let days = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Some("month out of range"),
        };
        if self.year < 2020 || self.year > 2099 {
            Some("year outside 2020..=2099 (battery lost or century wrong)")
        } else if self.day == 0 || self.day > days {
            Some("day out of range for the month")
        } else if self.hour > 23 || self.minute > 59 || self.second > 59 {
            Some("time of day out of range")
        } else {
            None
        }
    }
}

/// Checks a series of timer reads taken in order: each strictly later than
/// the one before (the timer runs and never goes back).
pub fn timer_monotonic(reads: &[u64]) -> Result<(), usize> {
    match reads.windows(2).position(|w| w[1] <= w[0]) {
        Some(i) => Err(i + 1),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip_and_plausibility() {
        let t = RtcTime {
            year: 2026,
            month: 11,
            day: 22,
            hour: 1,
            minute: 2,
            second: 3,
        };
        assert_eq!(RtcTime::unpack(t.pack()), t);
        assert_eq!(t.implausible(), None);
        assert!(RtcTime { month: 13, ..t }.implausible().is_some());
        assert!(RtcTime {
            month: 2,
            day: 29,
            year: 2027,
            ..t
        }
        .implausible()
        .is_some());
        assert!(RtcTime {
            month: 2,
            day: 29,
            year: 2028,
            ..t
        }
        .implausible()
        .is_none());
        assert!(RtcTime { year: 2000, ..t }.implausible().is_some());
        assert!(RtcTime { second: 60, ..t }.implausible().is_some());
        assert!(RtcTime { second: 1, ..t } < t);
    }

    #[test]
    fn timer_must_advance() {
        assert_eq!(timer_monotonic(&[1, 2, 10]), Ok(()));
        assert_eq!(timer_monotonic(&[1, 2, 2]), Err(2));
        assert_eq!(timer_monotonic(&[5, 4]), Err(1));
    }
}
