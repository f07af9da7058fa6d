//! A static bump heap for PDs whose libraries allocate once at start-up
//! (e.g. the gateway's policy loader): `#[global_allocator] static HEAP:
//! BumpHeap<N> = BumpHeap::new();`. It never frees, so a PD must allocate
//! only at init; running out returns null, which Rust's alloc machinery
//! turns into an abort (a fault to the parent), never memory corruption.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// `N` bytes of `.bss` handed out front to back.
pub struct BumpHeap<const N: usize> {
    arena: UnsafeCell<[u8; N]>,
    next: AtomicUsize,
}

// SAFETY: allocation hands out disjoint ranges of `arena` (the atomic
// `next` only moves forward), so sharing the heap cannot alias memory.
unsafe impl<const N: usize> Sync for BumpHeap<N> {}

impl<const N: usize> BumpHeap<N> {
    /// An empty heap.
    pub const fn new() -> Self {
        Self {
            arena: UnsafeCell::new([0; N]),
            next: AtomicUsize::new(0),
        }
    }

    /// Bytes handed out so far (alignment padding included).
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }
}

impl<const N: usize> Default for BumpHeap<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `alloc` returns either null or a pointer to `layout.size()` bytes
// inside `arena`, aligned to `layout.align()`, never handed out before.
unsafe impl<const N: usize> GlobalAlloc for BumpHeap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.arena.get() as usize;
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let Some(start) = (base + cur)
                .checked_next_multiple_of(layout.align())
                .map(|a| a - base)
            else {
                return core::ptr::null_mut();
            };
            let Some(end) = start.checked_add(layout.size()).filter(|e| *e <= N) else {
                return core::ptr::null_mut();
            };
            match self
                .next
                .compare_exchange(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // The range start..end lies inside the arena (end <= N).
                Ok(_) => return (self.arena.get() as *mut u8).wrapping_add(start),
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {
        // A bump heap never reuses memory: PDs allocate at init only.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_disjoint_and_bounded() {
        let h: BumpHeap<64> = BumpHeap::new();
        // SAFETY: test of the allocator itself; nothing is dereferenced.
        let (a, b, c) = unsafe {
            (
                h.alloc(Layout::from_size_align(3, 1).unwrap()),
                h.alloc(Layout::from_size_align(8, 8).unwrap()),
                h.alloc(Layout::from_size_align(64, 1).unwrap()),
            )
        };
        assert!(!a.is_null() && !b.is_null());
        assert_eq!(b as usize % 8, 0);
        assert!(b as usize >= a as usize + 3);
        assert!(c.is_null(), "over-allocation must fail, not overflow");
        assert!(h.used() <= 64);
    }
}
