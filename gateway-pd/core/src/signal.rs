//! Signal decoding and encoding, as a DBC file lays signals out in a frame.
//!
//! Bit numbering follows the DBC convention: bit `b` is bit `b % 8` of byte
//! `b / 8`. Intel (little-endian) signals name their least significant bit;
//! Motorola (big-endian) signals name their most significant bit and run
//! towards higher byte numbers. Both are handled by viewing the 8 payload
//! bytes as one 64-bit integer (little- or big-endian), where a signal is a
//! contiguous field, so decoding is a shift and a mask.
//!
//! Raw values are `i128` so that every unsigned and signed 64-bit raw value
//! compares correctly without special cases.

use serde::{Deserialize, Serialize};

/// Byte order of a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ByteOrder {
    /// Intel: start bit is the least significant bit.
    Intel,
    /// Motorola: start bit is the most significant bit.
    Motorola,
}

/// A multiplexed signal is present only when its multiplexor has `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuxCond {
    /// Index of the multiplexor signal in the policy's signal table.
    pub switch: u16,
    /// Multiplexor value under which the signal is present.
    pub value: u64,
}

/// Layout of one signal inside a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// DBC start bit.
    pub start: u8,
    /// Width in bits, 1..=64.
    pub size: u8,
    /// Byte order.
    pub order: ByteOrder,
    /// Two's-complement signed.
    pub signed: bool,
}

/// Why a layout is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Size 0 or over 64.
    BadSize,
    /// The field runs out of the 8-byte frame.
    OutOfFrame,
}

impl Layout {
    /// Shift of the field's least significant bit in the 64-bit view, or an
    /// error if the field does not fit.
    fn shift(&self) -> Result<u32, LayoutError> {
        let size = u32::from(self.size);
        let start = u32::from(self.start);
        if size == 0 || size > 64 || start > 63 {
            return Err(LayoutError::BadSize);
        }
        match self.order {
            ByteOrder::Intel => {
                if start + size > 64 {
                    Err(LayoutError::OutOfFrame)
                } else {
                    Ok(start)
                }
            }
            ByteOrder::Motorola => {
                // Position of the MSB when the payload is read big-endian.
                let msb = (7 - start / 8) * 8 + start % 8;
                if msb + 1 < size {
                    Err(LayoutError::OutOfFrame)
                } else {
                    Ok(msb + 1 - size)
                }
            }
        }
    }

    /// Checks the layout; the engine refuses a policy with a bad one.
    pub fn validate(&self) -> Result<(), LayoutError> {
        self.shift().map(|_| ())
    }

    /// Payload bytes a frame must carry for this signal to be present.
    pub fn bytes_needed(&self) -> Result<u8, LayoutError> {
        let shift = self.shift()?;
        let size = u32::from(self.size);
        Ok(match self.order {
            ByteOrder::Intel => ((shift + size - 1) / 8 + 1) as u8,
            // Lowest bit sits in big-endian byte 7 - shift/8.
            ByteOrder::Motorola => (7 - shift / 8 + 1) as u8,
        })
    }

    fn mask(&self) -> u64 {
        if self.size >= 64 {
            u64::MAX
        } else {
            (1u64 << self.size) - 1
        }
    }

    /// Raw value of the signal in `data` (bytes past the payload count as 0;
    /// callers check [`Layout::bytes_needed`] against the frame length).
    /// A bad layout decodes as 0; policies with one are refused at load.
    pub fn decode(&self, data: &[u8; 8]) -> i128 {
        let Ok(shift) = self.shift() else { return 0 };
        let word = match self.order {
            ByteOrder::Intel => u64::from_le_bytes(*data),
            ByteOrder::Motorola => u64::from_be_bytes(*data),
        };
        let v = (word >> shift) & self.mask();
        if self.signed && self.size < 64 && v & (1u64 << (self.size - 1)) != 0 {
            i128::from(v) - (1i128 << self.size)
        } else if self.signed {
            i128::from(v as i64)
        } else {
            i128::from(v)
        }
    }

    /// Writes `raw` (truncated to the field width) into `data`.
    pub fn encode(&self, raw: i128, data: &mut [u8; 8]) {
        let Ok(shift) = self.shift() else { return };
        let v = (raw as u64) & self.mask();
        let mut word = match self.order {
            ByteOrder::Intel => u64::from_le_bytes(*data),
            ByteOrder::Motorola => u64::from_be_bytes(*data),
        };
        word = (word & !(self.mask() << shift)) | (v << shift);
        *data = match self.order {
            ByteOrder::Intel => word.to_le_bytes(),
            ByteOrder::Motorola => word.to_be_bytes(),
        };
    }

    /// Smallest and largest raw value the field can hold.
    pub fn raw_bounds(&self) -> (i128, i128) {
        let size = u32::from(self.size.clamp(1, 64));
        if self.signed {
            (-(1i128 << (size - 1)), (1i128 << (size - 1)) - 1)
        } else {
            (0, (1i128 << size) - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn intel(start: u8, size: u8, signed: bool) -> Layout {
        Layout {
            start,
            size,
            order: ByteOrder::Intel,
            signed,
        }
    }
    fn moto(start: u8, size: u8, signed: bool) -> Layout {
        Layout {
            start,
            size,
            order: ByteOrder::Motorola,
            signed,
        }
    }

    #[test]
    fn intel_known_values() {
        // 16-bit little-endian at bit 16: bytes 2..4.
        let d = [0, 0, 0x34, 0x12, 0, 0, 0, 0];
        assert_eq!(intel(16, 16, false).decode(&d), 0x1234);
        // 4 bits at bit 4 of byte 0.
        assert_eq!(intel(4, 4, false).decode(&[0xA5, 0, 0, 0, 0, 0, 0, 0]), 0xA);
        assert_eq!(intel(0, 8, true).decode(&[0xFF, 0, 0, 0, 0, 0, 0, 0]), -1);
        assert_eq!(intel(16, 16, false).bytes_needed(), Ok(4));
    }

    #[test]
    fn motorola_known_values() {
        // Motorola 16-bit signal with MSB at bit 7 (byte 0): bytes 0..2 big-endian.
        let d = [0x12, 0x34, 0, 0, 0, 0, 0, 0];
        assert_eq!(moto(7, 16, false).decode(&d), 0x1234);
        assert_eq!(moto(7, 16, false).bytes_needed(), Ok(2));
        // 12 bits, MSB at bit 3 of byte 1 (DBC start 11): low nibble of byte 1 then byte 2.
        let d = [0, 0x0A, 0xBC, 0, 0, 0, 0, 0];
        assert_eq!(moto(11, 12, false).decode(&d), 0xABC);
        assert_eq!(moto(11, 12, false).bytes_needed(), Ok(3));
        assert_eq!(moto(11, 12, true).decode(&d), 0xABC - 0x1000);
        // A Motorola field that would run past byte 7 is refused.
        assert_eq!(moto(56, 2, false).validate(), Err(LayoutError::OutOfFrame));
        assert_eq!(moto(63, 2, false).bytes_needed(), Ok(8));
    }

    #[test]
    fn bad_layouts() {
        assert_eq!(intel(60, 8, false).validate(), Err(LayoutError::OutOfFrame));
        assert_eq!(intel(0, 0, false).validate(), Err(LayoutError::BadSize));
        assert_eq!(intel(0, 65, false).validate(), Err(LayoutError::BadSize));
        assert_eq!(intel(0, 64, false).bytes_needed(), Ok(8));
    }

    /// The DBC definition read literally, one bit at a time: Intel signals
    /// take bits start, start+1, ... (LSB first); Motorola signals start at
    /// their MSB and walk the "sawtooth": down within a byte, then to bit 7
    /// of the next byte.
    fn reference_decode(l: &Layout, data: &[u8; 8]) -> Option<i128> {
        let bit = |p: u32| -> Option<u64> {
            (p < 64).then(|| u64::from(data[(p / 8) as usize] >> (p % 8) & 1))
        };
        let mut v: u64 = 0;
        match l.order {
            ByteOrder::Intel => {
                for i in 0..u32::from(l.size) {
                    v |= bit(u32::from(l.start) + i)? << i;
                }
            }
            ByteOrder::Motorola => {
                let mut p = u32::from(l.start);
                for _ in 0..l.size {
                    v = (v << 1) | bit(p)?;
                    p = if p % 8 == 0 { p + 15 } else { p - 1 };
                }
            }
        }
        let size = u32::from(l.size);
        Some(if l.signed && size < 64 && v >> (size - 1) & 1 == 1 {
            i128::from(v) - (1i128 << size)
        } else if l.signed {
            i128::from(v as i64)
        } else {
            i128::from(v)
        })
    }

    proptest! {
        /// Decoding agrees with the bit-by-bit reading of the DBC rules,
        /// and a layout is refused exactly when that reading runs off the frame.
        #[test]
        fn decode_matches_bitwise_reference(start in 0u8..64, size in 1u8..=64, signed: bool,
                                            motorola: bool, data: [u8; 8]) {
            let l = Layout { start, size, order: if motorola { ByteOrder::Motorola } else { ByteOrder::Intel }, signed };
            // The reference walks off the frame (or below bit 0) for bad layouts.
            let reference = if motorola {
                let mut p = i64::from(start);
                let mut ok = true;
                for _ in 1..size {
                    p = if p % 8 == 0 { p + 15 } else { p - 1 };
                    if !(0..64).contains(&p) { ok = false; }
                }
                ok.then(|| reference_decode(&l, &data)).flatten()
            } else {
                reference_decode(&l, &data)
            };
            match reference {
                Some(r) => {
                    prop_assert!(l.validate().is_ok());
                    prop_assert_eq!(l.decode(&data), r);
                }
                None => prop_assert!(l.validate().is_err()),
            }
        }

        #[test]
        fn encode_then_decode(start in 0u8..64, size in 1u8..=64, signed: bool, motorola: bool,
                              raw: i64, noise: [u8; 8]) {
            let l = Layout { start, size, order: if motorola { ByteOrder::Motorola } else { ByteOrder::Intel }, signed };
            prop_assume!(l.validate().is_ok());
            let (lo, hi) = l.raw_bounds();
            let span = hi - lo + 1;
            let v = lo + (i128::from(raw) - lo).rem_euclid(span);
            let mut d = noise;
            l.encode(v, &mut d);
            prop_assert_eq!(l.decode(&d), v);
            // Bits outside the field are untouched.
            let mut clear = noise;
            l.encode(0, &mut clear);
            let mut again = d;
            l.encode(0, &mut again);
            prop_assert_eq!(clear, again);
        }
    }
}
