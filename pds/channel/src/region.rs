//! The shared region as the ring sees it: two slices of 64-bit atomic words,
//! the header and the data area. This is the crate's only `unsafe` module,
//! and its only unsafe code turns a raw region (a `setvar_vaddr` symbol and
//! a length from `system.xml`) into those slices.
//!
//! Safety argument: after construction every access to shared memory is an
//! atomic load or store of an aligned `u64` inside the slices (the ring code
//! indexes with `get`, never out of bounds). Atomics make concurrent access
//! by the peer well defined whatever the peer does: a compromised peer can
//! change the *values* we read, never the memory we touch or make a read
//! undefined. Nothing else in the crate creates a reference into the region,
//! so no `&u8`/`&mut u8` aliases the words the peer writes.

use crate::layout::HEADER_WORDS;
use crate::sync::AtomicU64;

/// Why a region cannot hold a ring.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LayoutError {
    /// The base address is null or not 8-byte aligned.
    Misaligned,
    /// The header area is smaller than [`crate::layout::HEADER_BYTES`].
    HeaderTooSmall,
    /// The data area holds no slot of this size.
    NoSlot,
}

/// The memory of one ring: header words and data words.
#[derive(Clone, Copy)]
pub struct RingMemory<'a> {
    pub(crate) header: &'a [AtomicU64],
    pub(crate) data: &'a [AtomicU64],
}

impl<'a> RingMemory<'a> {
    /// A ring over a separate header area and data area (two regions in
    /// `system.xml`, so the data area can be mapped read-only to the consumer).
    pub fn new(header: &'a [AtomicU64], data: &'a [AtomicU64]) -> Result<Self, LayoutError> {
        if header.len() < HEADER_WORDS {
            return Err(LayoutError::HeaderTooSmall);
        }
        if data.is_empty() {
            return Err(LayoutError::NoSlot);
        }
        Ok(RingMemory {
            header: &header[..HEADER_WORDS],
            data,
        })
    }

    /// A ring in one region: the header first, the data area after it.
    pub fn split(words: &'a [AtomicU64]) -> Result<Self, LayoutError> {
        if words.len() < HEADER_WORDS {
            return Err(LayoutError::HeaderTooSmall);
        }
        let (header, data) = words.split_at(HEADER_WORDS);
        Self::new(header, data)
    }

    /// A ring in one raw region of `len` bytes at `base`: header, then data.
    ///
    /// # Safety
    /// `base..base + len` must be memory mapped readable into this address
    /// space for all of `'a`, and writable where this side writes (the
    /// producer: all of it; the consumer: the header), accessed by anyone else (the peer
    /// PD, other code here) only through atomic operations or by another
    /// PD's hardware accesses, never through Rust references to non-atomic
    /// data. A region from `system.xml` mapped at a `setvar_vaddr` for the
    /// PD's lifetime satisfies this with `'a = 'static`.
    #[cfg(not(loom))]
    pub unsafe fn from_raw(base: *mut u8, len: usize) -> Result<Self, LayoutError> {
        // SAFETY: forwarded: the caller guarantees the region contract.
        let words = unsafe { words_from_raw(base, len)? };
        Self::split(words)
    }

    /// A ring over a raw header area and a raw data area.
    ///
    /// # Safety
    /// As [`RingMemory::from_raw`], for both areas, except that the data
    /// area need only be readable on the consumer's side: the consumer only
    /// ever loads from it (atomic loads of aligned words are allowed on
    /// read-only memory).
    #[cfg(not(loom))]
    pub unsafe fn from_raw_parts(
        header: *mut u8,
        header_len: usize,
        data: *mut u8,
        data_len: usize,
    ) -> Result<Self, LayoutError> {
        // SAFETY: forwarded: the caller guarantees the region contract for both.
        let (header, data) = unsafe {
            (
                words_from_raw(header, header_len)?,
                words_from_raw(data, data_len)?,
            )
        };
        Self::new(header, data)
    }

    /// Number of data words (slots are carved from these).
    pub fn data_words(&self) -> usize {
        self.data.len()
    }
}

/// # Safety
/// As [`RingMemory::from_raw`].
#[cfg(not(loom))]
unsafe fn words_from_raw<'a>(base: *mut u8, len: usize) -> Result<&'a [AtomicU64], LayoutError> {
    if base.is_null() || base.align_offset(core::mem::align_of::<AtomicU64>()) != 0 {
        return Err(LayoutError::Misaligned);
    }
    // A trailing partial word is never touched.
    let words = len / core::mem::size_of::<AtomicU64>();
    // SAFETY: `base` is non-null and aligned for `AtomicU64` (checked above);
    // the caller guarantees `len` bytes from it are mapped, readable and
    // writable for `'a` (so `words * 8 <= len` bytes are, within one mapped
    // object whose size fits `isize`), and that every other access is atomic
    // or from another PD, so shared `&AtomicU64` references are sound.
    // `AtomicU64` has the size and alignment of `u64` and any bit pattern is
    // a valid value, so whatever the region holds is a valid `[AtomicU64]`.
    Ok(unsafe { core::slice::from_raw_parts(base.cast::<AtomicU64>().cast_const(), words) })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::layout::HEADER_BYTES;

    #[test]
    fn raw_region_checks() {
        let mut buf = vec![0u64; 64];
        let base = buf.as_mut_ptr().cast::<u8>();
        // SAFETY: `buf` outlives the ring and is only accessed through it.
        unsafe {
            assert_eq!(
                RingMemory::from_raw(core::ptr::null_mut(), 512).err(),
                Some(LayoutError::Misaligned)
            );
            assert_eq!(
                RingMemory::from_raw(base.add(4), 256).err(),
                Some(LayoutError::Misaligned)
            );
            assert_eq!(
                RingMemory::from_raw(base, HEADER_BYTES - 8).err(),
                Some(LayoutError::HeaderTooSmall)
            );
            assert_eq!(
                RingMemory::from_raw(base, HEADER_BYTES + 7).err(),
                Some(LayoutError::NoSlot)
            );
            let ring = RingMemory::from_raw(base, 64 * 8 - 3).unwrap();
            assert_eq!(ring.data_words(), 64 - HEADER_BYTES / 8 - 1);
        }
    }
}
