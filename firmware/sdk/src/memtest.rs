//! The memory test: fixed patterns written over a memory region chunk by
//! chunk, then read back and compared word by word.
//!
//! Patterns: all zeros, all ones, the two checkerboards (0x55/0xAA), each
//! word's own offset (address-in-address, finds aliased address lines), its
//! inverse, and walking ones. Generic over [`TestMemory`] so the same code
//! tests the PD's scratch region from inside a container and a plain slice
//! natively (the benchmark's reference).

/// A memory the test can write and read back.
pub trait TestMemory {
    /// Bytes available; the test covers the largest multiple of 4 below it.
    fn size(&self) -> u64;
    /// Writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
    /// Reads `buf.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, buf: &mut [u8]);
}

/// One test pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// 0x00000000.
    Zeros,
    /// 0xFFFFFFFF.
    Ones,
    /// 0x55555555.
    Checker55,
    /// 0xAAAAAAAA.
    CheckerAa,
    /// The word's byte offset.
    AddressInAddress,
    /// The inverse of the word's byte offset.
    InverseAddress,
    /// `1 << (word index % 32)`.
    WalkingOnes,
}

impl Pattern {
    /// Every pattern, in test order.
    pub const ALL: [Pattern; 7] = [
        Pattern::Zeros,
        Pattern::Ones,
        Pattern::Checker55,
        Pattern::CheckerAa,
        Pattern::AddressInAddress,
        Pattern::InverseAddress,
        Pattern::WalkingOnes,
    ];

    /// The word this pattern puts at byte `offset` (a multiple of 4).
    #[inline]
    pub fn word(self, offset: u64) -> u32 {
        match self {
            Pattern::Zeros => 0,
            Pattern::Ones => !0,
            Pattern::Checker55 => 0x5555_5555,
            Pattern::CheckerAa => 0xAAAA_AAAA,
            Pattern::AddressInAddress => offset as u32,
            Pattern::InverseAddress => !(offset as u32),
            Pattern::WalkingOnes => 1 << ((offset / 4) % 32),
        }
    }
}

/// The first mismatch found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The pattern being checked.
    pub pattern: Pattern,
    /// Byte offset of the word.
    pub offset: u64,
    /// What was written.
    pub expected: u32,
    /// What was read back.
    pub found: u32,
}

/// What the test covered and found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Bytes covered by each pattern.
    pub bytes: u64,
    /// Patterns completed.
    pub patterns: u32,
    /// The first mismatch, if any (the test stops there).
    pub failure: Option<Failure>,
}

/// Size of the chunk buffer the test moves data through.
pub const CHUNK: usize = 4096;

/// Runs every pattern over `mem`, moving data through `buf`.
pub fn run<M: TestMemory>(mem: &mut M, buf: &mut [u8; CHUNK]) -> Summary {
    let bytes = mem.size() & !3;
    let mut summary = Summary {
        bytes,
        patterns: 0,
        failure: None,
    };
    for pattern in Pattern::ALL {
        if let Some(f) = run_pattern(mem, buf, pattern, bytes) {
            summary.failure = Some(f);
            return summary;
        }
        summary.patterns += 1;
    }
    summary
}

fn run_pattern<M: TestMemory>(
    mem: &mut M,
    buf: &mut [u8; CHUNK],
    pattern: Pattern,
    bytes: u64,
) -> Option<Failure> {
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(CHUNK as u64) as usize;
        for (i, w) in buf[..n].chunks_exact_mut(4).enumerate() {
            w.copy_from_slice(&pattern.word(off + 4 * i as u64).to_le_bytes());
        }
        mem.write(off, &buf[..n]);
        off += n as u64;
    }
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(CHUNK as u64) as usize;
        mem.read(off, &mut buf[..n]);
        for (i, w) in buf[..n].chunks_exact(4).enumerate() {
            let at = off + 4 * i as u64;
            let found = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            let expected = pattern.word(at);
            if found != expected {
                return Some(Failure {
                    pattern,
                    offset: at,
                    expected,
                    found,
                });
            }
        }
        off += n as u64;
    }
    None
}

/// A plain slice as test memory (the native reference, and host tests).
pub struct SliceMemory<'a>(pub &'a mut [u8]);

impl TestMemory for SliceMemory<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        let o = offset as usize;
        self.0[o..o + data.len()].copy_from_slice(data);
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) {
        let o = offset as usize;
        buf.copy_from_slice(&self.0[o..o + buf.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory with one bit stuck at zero, or two aliased address ranges.
    struct Faulty {
        mem: std::vec::Vec<u8>,
        stuck: Option<(usize, u8)>,
        alias: Option<(usize, usize)>, // writes to .0 also land at .1 (an address line short)
    }

    impl TestMemory for Faulty {
        fn size(&self) -> u64 {
            self.mem.len() as u64
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            for (i, b) in data.iter().enumerate() {
                let a = offset as usize + i;
                self.mem[a] = *b;
                if let Some((from, to)) = self.alias {
                    if a >= from && a < from + 4 {
                        self.mem[to + a - from] = *b;
                    }
                }
            }
        }
        fn read(&mut self, offset: u64, buf: &mut [u8]) {
            for (i, b) in buf.iter_mut().enumerate() {
                let a = offset as usize + i;
                *b = self.mem[a];
                if let Some((at, mask)) = self.stuck {
                    if a == at {
                        *b &= !mask;
                    }
                }
            }
        }
    }

    #[test]
    fn good_memory_passes_every_pattern() {
        let mut mem = std::vec![0xEEu8; 10_003];
        let s = run(&mut SliceMemory(&mut mem), &mut [0; CHUNK]);
        assert_eq!(
            s,
            Summary {
                bytes: 10_000,
                patterns: 7,
                failure: None
            }
        );
        // The last pattern is what remains in memory.
        assert_eq!(&mem[8..12], &Pattern::WalkingOnes.word(8).to_le_bytes());
    }

    #[test]
    fn stuck_bit_is_found_where_it_is() {
        let mut m = Faulty {
            mem: std::vec![0; 9000],
            stuck: Some((5001, 0x08)),
            alias: None,
        };
        let f = run(&mut m, &mut [0; CHUNK]).failure.unwrap();
        assert_eq!((f.pattern, f.offset), (Pattern::Ones, 5000));
        assert_eq!(f.found, !(0x08 << 8));
    }

    #[test]
    fn aliased_addresses_are_found_by_address_in_address() {
        let mut m = Faulty {
            mem: std::vec![0; 9000],
            stuck: None,
            alias: Some((4096, 8)),
        };
        let s = run(&mut m, &mut [0; CHUNK]);
        let f = s.failure.unwrap();
        assert_eq!(
            (f.pattern, f.offset, f.found),
            (Pattern::AddressInAddress, 8, 4096)
        );
        assert_eq!(s.patterns, 4);
    }
}
