//! The PD's heap: a static region in `.bss` under a first-fit allocator,
//! wrapped so every block is zeroed when freed. wasmi reallocates a growing
//! linear memory, and the runtime can only wipe the final buffer: zeroing
//! on free is what keeps a container's data from surviving in a freed block.
//!
//! Design rules: the only `unsafe` of the PD besides `scratch`; one
//! thread, so the allocator's spin lock never contends.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

use linked_list_allocator::LockedHeap;

/// Heap size: wasmi's translated code and each container's linear memory
/// (the policy caps it at 16 pages = 1 MiB) with room to spare.
const HEAP_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the arena is only ever reached through the allocator, which
// serialises access with its lock; the PD has one thread.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_SIZE]));

struct ZeroOnFree(LockedHeap);

// SAFETY: delegates to `LockedHeap`, a correct `GlobalAlloc`; zeroing a
// block before handing it back writes only the `layout.size()` bytes the
// caller owned.
unsafe impl GlobalAlloc for ZeroOnFree {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract; passed through.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `alloc` with `layout`, so it is
        // valid for `layout.size()` bytes and owned by the caller until freed.
        unsafe {
            core::ptr::write_bytes(ptr, 0, layout.size());
            self.0.dealloc(ptr, layout)
        }
    }
}

#[cfg_attr(target_os = "none", global_allocator)]
static ALLOCATOR: ZeroOnFree = ZeroOnFree(LockedHeap::empty());

/// Hands the arena to the allocator; called once, first thing in `init`.
pub fn init() {
    // SAFETY: the arena is a static of HEAP_SIZE bytes used by nothing
    // else, and `init` runs once before any allocation.
    unsafe {
        ALLOCATOR
            .0
            .lock()
            .init(ARENA.0.get().cast::<u8>(), HEAP_SIZE);
    }
}
