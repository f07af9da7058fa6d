//! The design rule "no allocation per packet", measured: a counting global
//! allocator around the stream decoder and the CFI fast path while they
//! process whole traces. (The slow path and policy building may allocate.)

mod e2e_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bulkhead_pt::cfi::{CheckConfig, Checker};
use bulkhead_pt::{Config, StreamDecoder};
use e2e_support::*;

struct Counting;

thread_local! {
    // Per thread: the test harness's own threads (output capture, slow-test
    // timers) allocate at times of their choosing, and must not be counted.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: allocations during thread teardown are not ours to count.
    let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call unchanged to the system allocator, which
// upholds GlobalAlloc's contract; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn stream_decoder_and_fast_path_never_allocate() {
    let p = program();
    let policy = p.policy();
    let mut traces = Vec::new();
    for attack in [Attack::None, Attack::Rop, Attack::Jop, Attack::Pivot] {
        let (flows, _) = execute(&p, attack);
        traces.push(synthesize(p.at("main"), &flows, TraceOpts::default()));
    }
    // Corrupt one copy so error paths run too.
    let mut bad = traces[0].clone();
    bad[40] ^= 0x5a;
    traces.push(bad);
    let all: Vec<u8> = traces.concat().repeat(50);
    // The counter sees allocations (so a zero below means something).
    assert_eq!(
        allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))),
        1
    );

    let mut dec = StreamDecoder::new(Config::default());
    let mut packets = 0u64;
    let n = allocations_during(|| {
        for piece in all.chunks(37) {
            dec.feed(piece, |_| packets += 1);
        }
        dec.finish(|_| {});
    });
    assert!(packets > 1000);
    assert_eq!(n, 0, "the stream decoder allocated {n} times");

    let mut c = Checker::new(&policy, CheckConfig::default());
    let n = allocations_during(|| {
        c.enter_controlled();
        for piece in all.chunks(53) {
            c.feed(piece);
        }
        let _ = c.gate();
        let _ = c.leave_controlled();
    });
    assert!(c.packets() > 1000);
    assert_eq!(n, 0, "the fast path allocated {n} times");
}
