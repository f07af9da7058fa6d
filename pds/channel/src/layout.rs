//! The ring's layout in shared memory: header words, slot format, and the
//! per-slot check word. Pure data and arithmetic, no memory access.
//!
//! ```text
//! header (24 words = 192 bytes, three 64-byte cache lines)
//!   word  0  magic "BHRG" (u32) | layout version (u32) << 32   producer, at init
//!   word  1  slot bytes (u32) | slot count (u32) << 32         producer, at init
//!   word  8  produced: records ever published (u64, wrapping)  producer
//!   word  9  producer-wants-space flag                         producer sets, consumer clears
//!   word 16  consumed: records ever consumed (u64, wrapping)   consumer
//!   word 17  consumer-wants-notify flag                        consumer sets, producer clears
//!   (other words reserved, zero)
//! data: `slot count` slots of `SLOT` bytes each; record i lives in slot i % count
//!   word 0   payload length in bytes (u32) | sequence (low 32 bits of i) << 32
//!   word 1   check word over word 0 and the payload words
//!   word 2.. payload, little-endian bytes packed into words, zero padded
//! ```
//!
//! Each index has its own cache line so the two sides do not false-share.
//! Geometry in the header is informational: each side uses its own
//! configured geometry (from `system.xml`), and the consumer refuses a ring
//! whose header disagrees with it.
#![forbid(unsafe_code)]

/// Words in the header.
pub const HEADER_WORDS: usize = 24;
/// Bytes in the header.
pub const HEADER_BYTES: usize = HEADER_WORDS * 8;
/// Bytes of per-slot header (length/sequence word and check word).
pub const SLOT_HEADER_BYTES: usize = 16;
/// `"BHRG"` little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"BHRG");
/// Version of this layout; bumped on any change above.
pub const LAYOUT_VERSION: u32 = 1;

pub(crate) const W_MAGIC: usize = 0;
pub(crate) const W_GEOMETRY: usize = 1;
pub(crate) const W_PRODUCED: usize = 8;
pub(crate) const W_PRODUCER_WANTS_SPACE: usize = 9;
pub(crate) const W_CONSUMED: usize = 16;
pub(crate) const W_CONSUMER_WANTS_NOTIFY: usize = 17;

/// Header word 0 for this layout.
pub(crate) const fn magic_word() -> u64 {
    MAGIC as u64 | (LAYOUT_VERSION as u64) << 32
}

/// Header word 1 for a geometry.
pub(crate) const fn geometry_word(slot_bytes: usize, slots: usize) -> u64 {
    slot_bytes as u64 | (slots as u64) << 32
}

/// Slot word 0 for a record.
pub(crate) const fn slot_word(len: usize, index: u64) -> u64 {
    len as u64 | (index & 0xffff_ffff) << 32
}

/// Splits slot word 0 into (length, sequence).
pub(crate) const fn split_slot_word(word: u64) -> (u64, u32) {
    (word & 0xffff_ffff, (word >> 32) as u32)
}

/// The running state of the check word.
///
/// Each step is `h' = rotl((h ^ w) * K, 29)` with `K` odd: for a fixed `w`
/// it is a bijection of `h`, and for a fixed `h` a bijection of `w`. So any
/// change confined to one word (any number of bits in it) always changes
/// the result; wider corruption goes unnoticed with probability about 2^-64.
/// It catches torn, stale and garbage records; it is not authentication (a
/// hostile producer can compute it too, which is why decoding is defensive
/// as well).
#[derive(Clone, Copy)]
pub(crate) struct Check(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED: u64 = 0x4248_5247_5f63_6b31;

impl Check {
    pub(crate) const fn new(word0: u64) -> Self {
        Check(SEED).add(word0)
    }
    #[inline]
    pub(crate) const fn add(self, word: u64) -> Self {
        Check((self.0 ^ word).wrapping_mul(K).rotate_left(29))
    }
    pub(crate) const fn finish(self) -> u64 {
        self.0
    }
}

/// Payload words for a length in bytes.
pub(crate) const fn words_for(len: usize) -> usize {
    len.div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_detects_any_single_word_change() {
        let words = [1u64, 2, 3, 0xdead_beef];
        let sum = |ws: &[u64]| {
            ws.iter()
                .fold(Check::new(slot_word(32, 7)), |c, w| c.add(*w))
                .finish()
        };
        let good = sum(&words);
        for i in 0..words.len() {
            for bit in 0..64 {
                let mut bad = words;
                bad[i] ^= 1 << bit;
                assert_ne!(
                    sum(&bad),
                    good,
                    "flip of bit {bit} in word {i} went unnoticed"
                );
            }
        }
        let other_header = words
            .iter()
            .fold(Check::new(slot_word(32, 8)), |c, w| c.add(*w))
            .finish();
        assert_ne!(other_header, good);
    }

    #[test]
    fn slot_word_round_trips() {
        assert_eq!(
            split_slot_word(slot_word(240, 0x1_2345_6789)),
            (240, 0x2345_6789)
        );
    }
}
