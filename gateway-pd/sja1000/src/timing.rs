//! Bit timing: BTR0/BTR1 from the oscillator frequency and a bit rate.
//!
//! The SJA1000's time quantum is `2 * BRP / f_osc`; a bit is
//! `1 + TSEG1 + TSEG2` quanta (TSEG1 1..=16, TSEG2 1..=8). We pick the
//! smallest prescaler giving an exact bit rate with 8..=25 quanta and a
//! sample point near 87.5% (CiA's recommendation), SJW 1.

/// A bit timing the chip can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitTiming {
    /// Baud rate prescaler, 1..=64.
    pub brp: u8,
    /// Time segment 1 (propagation + phase 1), 1..=16 quanta.
    pub tseg1: u8,
    /// Time segment 2, 1..=8 quanta.
    pub tseg2: u8,
    /// Synchronisation jump width, 1..=4.
    pub sjw: u8,
    /// Sample three times (slow buses only).
    pub triple: bool,
}

/// No exact timing exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingError {
    /// The bit rate is zero or not reachable exactly from this clock.
    Unreachable,
}

impl BitTiming {
    /// Timing for `bitrate` with an `osc_hz` oscillator (16 MHz on Kvaser boards).
    pub fn for_bitrate(osc_hz: u32, bitrate: u32) -> Result<BitTiming, TimingError> {
        if bitrate == 0 {
            return Err(TimingError::Unreachable);
        }
        for brp in 1u32..=64 {
            let per_bit = 2 * brp * bitrate;
            if !osc_hz.is_multiple_of(per_bit) {
                continue;
            }
            let quanta = osc_hz / per_bit;
            if !(8..=25).contains(&quanta) {
                continue;
            }
            // Sample point at 87.5%: TSEG2 = 1/8 of the bit, at least 2.
            let tseg2 = ((quanta + 4) / 8).clamp(2, 8);
            let tseg1 = quanta - 1 - tseg2;
            if !(1..=16).contains(&tseg1) {
                continue;
            }
            return Ok(BitTiming {
                brp: brp as u8,
                tseg1: tseg1 as u8,
                tseg2: tseg2 as u8,
                sjw: 1,
                triple: false,
            });
        }
        Err(TimingError::Unreachable)
    }

    /// BTR0: SJW and BRP.
    pub fn btr0(&self) -> u8 {
        ((self.sjw.clamp(1, 4) - 1) << 6) | (self.brp.clamp(1, 64) - 1)
    }

    /// BTR1: sampling, TSEG2 and TSEG1.
    pub fn btr1(&self) -> u8 {
        (u8::from(self.triple) << 7)
            | ((self.tseg2.clamp(1, 8) - 1) << 4)
            | (self.tseg1.clamp(1, 16) - 1)
    }

    /// The bit rate this timing gives with `osc_hz`.
    pub fn bitrate(&self, osc_hz: u32) -> u32 {
        osc_hz / (2 * u32::from(self.brp) * (1 + u32::from(self.tseg1) + u32::from(self.tseg2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_rates_at_16_mhz() {
        // The values every SJA1000 driver uses for a 16 MHz crystal.
        let t = |r| BitTiming::for_bitrate(16_000_000, r).map(|t| (t.btr0(), t.btr1()));
        assert_eq!(t(1_000_000), Ok((0x00, 0x14)));
        assert_eq!(t(500_000), Ok((0x00, 0x1C)));
        assert_eq!(t(250_000), Ok((0x01, 0x1C)));
        assert_eq!(t(125_000), Ok((0x03, 0x1C)));
        assert_eq!(t(0), Err(TimingError::Unreachable));
        assert_eq!(t(3_000_000), Err(TimingError::Unreachable));
        for r in [
            10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000,
        ] {
            let b = BitTiming::for_bitrate(16_000_000, r).unwrap();
            assert_eq!(b.bitrate(16_000_000), r);
        }
    }
}
