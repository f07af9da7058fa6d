//! Byte access to shared memory a PD maps (guest RAM for a VMM, an image a
//! region was prefilled with), built on [`crate::shared_words`]: no
//! `unsafe` anywhere, and the same code runs on the host over a harness's
//! regions.
//!
//! Design rules: every access is bounds-checked and returns `None` instead
//! of panicking; word-aligned runs are copied a word at a time (a VMM loads
//! megabytes of kernel image this way), the ragged edges byte by byte with
//! a read-modify-write of their word. Each word access is atomic, so a peer
//! reading concurrently sees whole words; a byte write is not atomic with
//! respect to a peer *writing* the same word, which the regions used here
//! (single writer) never have.

use core::sync::atomic::{AtomicU64, Ordering};

/// A mapped region as bytes.
#[derive(Clone, Copy)]
pub struct SharedBytes {
    words: &'static [AtomicU64],
}

impl SharedBytes {
    /// The region `words` (from [`crate::shared_words`]).
    pub const fn new(words: &'static [AtomicU64]) -> Self {
        Self { words }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.words.len() * 8
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    fn range_ok(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len())
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; `None` (and nothing
    /// copied) if the range leaves the region.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        if !self.range_ok(offset, buf.len()) {
            return None;
        }
        let mut i = 0;
        while i < buf.len() {
            let at = offset + i;
            let word = self.words[at / 8].load(Ordering::Relaxed).to_le_bytes();
            let within = at % 8;
            let n = (8 - within).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&word[within..within + n]);
            i += n;
        }
        Some(())
    }

    /// Copies `data` to `offset`; `None` (and nothing written) if the range
    /// leaves the region.
    pub fn write(&self, offset: usize, data: &[u8]) -> Option<()> {
        if !self.range_ok(offset, data.len()) {
            return None;
        }
        let mut i = 0;
        while i < data.len() {
            let at = offset + i;
            let within = at % 8;
            let n = (8 - within).min(data.len() - i);
            let w = &self.words[at / 8];
            if n == 8 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[i..i + 8]);
                w.store(u64::from_le_bytes(b), Ordering::Relaxed);
            } else {
                let mut b = w.load(Ordering::Relaxed).to_le_bytes();
                b[within..within + n].copy_from_slice(&data[i..i + n]);
                w.store(u64::from_le_bytes(b), Ordering::Relaxed);
            }
            i += n;
        }
        Some(())
    }

    /// Zeroes `len` bytes at `offset`.
    pub fn zero(&self, offset: usize, len: usize) -> Option<()> {
        if !self.range_ok(offset, len) {
            return None;
        }
        let zeros = [0u8; 64];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len());
            self.write(offset + done, &zeros[..n])?;
            done += n;
        }
        Some(())
    }

    /// Copies `len` bytes from `src` at `src_offset` to `dst_offset` here.
    pub fn copy_from(
        &self,
        dst_offset: usize,
        src: &SharedBytes,
        src_offset: usize,
        len: usize,
    ) -> Option<()> {
        if !self.range_ok(dst_offset, len) || !src.range_ok(src_offset, len) {
            return None;
        }
        let mut buf = [0u8; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len());
            src.read(src_offset + done, &mut buf[..n])?;
            self.write(dst_offset + done, &buf[..n])?;
            done += n;
        }
        Some(())
    }

    /// A little-endian `u64` at `offset`.
    pub fn read_u64(&self, offset: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(offset, &mut b)?;
        Some(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(words: usize) -> SharedBytes {
        let v: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        SharedBytes::new(Box::leak(v.into_boxed_slice()))
    }

    #[test]
    fn unaligned_writes_read_back_and_leave_neighbours_alone() {
        let r = region(4);
        r.write(0, &[0xaa; 32]).unwrap();
        r.write(3, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]).unwrap();
        let mut b = [0u8; 32];
        r.read(0, &mut b).unwrap();
        assert_eq!(&b[..3], &[0xaa; 3]);
        assert_eq!(&b[3..14], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(&b[14..], &[0xaa; 18]);
        assert_eq!(
            r.read_u64(8).unwrap(),
            u64::from_le_bytes([6, 7, 8, 9, 10, 11, 0xaa, 0xaa])
        );
    }

    #[test]
    fn out_of_range_is_refused_whole() {
        let r = region(2);
        assert!(r.write(10, &[1; 7]).is_none());
        assert!(r.write(usize::MAX, &[1]).is_none());
        assert!(r.read(16, &mut [0u8; 1]).is_none());
        assert!(r.zero(8, 9).is_none());
        let mut b = [9u8; 16];
        r.read(0, &mut b).unwrap();
        assert_eq!(b, [0; 16], "a refused write changed nothing");
        assert!(
            r.read(16, &mut []).is_some(),
            "an empty read at the end is fine"
        );
    }

    #[test]
    fn copy_between_regions_and_zero() {
        let (a, b) = (region(40), region(40));
        let data: Vec<u8> = (0..300).map(|i| (i * 7) as u8).collect();
        a.write(5, &data).unwrap();
        b.copy_from(1, &a, 5, 300).unwrap();
        let mut got = vec![0u8; 300];
        b.read(1, &mut got).unwrap();
        assert_eq!(got, data);
        b.zero(2, 100).unwrap();
        b.read(1, &mut got).unwrap();
        assert_eq!(got[0], data[0]);
        assert!(got[1..101].iter().all(|&x| x == 0));
        assert_eq!(&got[101..], &data[101..]);
        assert!(b.copy_from(0, &a, 100, 300).is_none());
    }
}
