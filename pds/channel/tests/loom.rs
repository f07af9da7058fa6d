//! Model checking of the ring protocol with loom: every interleaving (up to
//! a preemption bound) of one producer thread and one consumer thread, with
//! loom's model of relaxed/acquire/release atomics and fences, so a missing
//! ordering shows up as a torn or stale record (caught by the check word and
//! the content assertions) and a lost wake-up as a deadlock.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p bulkhead-channel --release --test loom`
//! (`cargo xtask test` does, in the channels area's extra step).
#![cfg(loom)]

use loom::sync::{Arc, Notify};
use loom::thread;

use bulkhead_channel::layout::HEADER_WORDS;
use bulkhead_channel::{AtomicU64, Consumer, NoNotify, Producer, RecvError, RingMemory, SendError};

/// Two payload words per slot: a record spans several stores, so a torn
/// read is possible if the ordering were wrong.
const SLOT: usize = 32;

fn region(slots: usize) -> Arc<Vec<AtomicU64>> {
    Arc::new(
        (0..HEADER_WORDS + slots * SLOT / 8)
            .map(|_| AtomicU64::new(0))
            .collect(),
    )
}

fn message(i: u8) -> [u8; 12] {
    [
        i,
        i ^ 0x5a,
        i.wrapping_mul(3),
        7,
        8,
        9,
        10,
        11,
        12,
        13,
        i,
        0xee,
    ]
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    // Bounded so the run stays within seconds (LOOM_MAX_PREEMPTIONS
    // overrides). Dropping the Release on `produced` or either SeqCst fence
    // already fails at a bound of 2; 5 explores well past that.
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(5);
    }
    b.check(f);
}

/// Spinning producer and consumer: every record arrives intact, in order,
/// across wrap-around, with both the full and the empty edge reached.
#[test]
fn records_arrive_intact_in_order_across_wrap() {
    model(|| {
        let words = region(2);
        let w2 = words.clone();
        let producer = thread::spawn(move || {
            let mem = RingMemory::split(&w2).unwrap();
            let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
            for i in 0..3u8 {
                loop {
                    match tx.try_send(&message(i)) {
                        Ok(()) => break,
                        Err(SendError::Full) => thread::yield_now(),
                        Err(e) => panic!("send: {e:?}"),
                    }
                }
            }
        });
        let mem = RingMemory::split(&words).unwrap();
        let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
        let mut got = 0u8;
        while got < 3 {
            match rx.try_recv() {
                Ok(m) => {
                    assert_eq!(m, &message(got)[..]);
                    got += 1;
                }
                Err(RecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("recv: {e:?}"),
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        assert_eq!(rx.stats().rejected(), 0);
    });
}

/// Both sides sleep instead of spinning: the consumer waits for "data"
/// whenever the ring is empty, the producer for "space" whenever it is full
/// (one slot, so both edges are hit on every record). A lost wake-up on
/// either side leaves a thread waiting forever, which loom reports.
#[test]
fn no_lost_wakeups_with_one_slot() {
    model(|| {
        let words = region(1);
        let data = Arc::new(Notify::new());
        let space = Arc::new(Notify::new());
        let (w2, d2, s2) = (words.clone(), data.clone(), space.clone());
        let producer = thread::spawn(move || {
            let mem = RingMemory::split(&w2).unwrap();
            let mut tx = Producer::<SLOT, _>::new(mem, || d2.notify()).unwrap();
            for i in 0..2u8 {
                loop {
                    match tx.try_send(&message(i)) {
                        Ok(()) => break,
                        Err(SendError::Full) => s2.wait(),
                        Err(e) => panic!("send: {e:?}"),
                    }
                }
            }
        });
        let mem = RingMemory::split(&words).unwrap();
        let mut rx = Consumer::<SLOT, _>::new(mem, || space.notify()).unwrap();
        let mut got = 0u8;
        while got < 2 {
            match rx.try_recv() {
                Ok(m) => {
                    assert_eq!(m, &message(got)[..]);
                    got += 1;
                }
                Err(RecvError::Empty) => data.wait(),
                Err(e) => panic!("recv: {e:?}"),
            }
        }
        producer.join().unwrap();
    });
}

/// The consumer asked for a notification while records were pending: the
/// next record wakes it even though the ring never went empty.
#[test]
fn requested_notification_is_delivered() {
    model(|| {
        let words = region(2);
        let data = Arc::new(Notify::new());
        let (w2, d2) = (words.clone(), data.clone());
        let mem = RingMemory::split(&words).unwrap();
        let d1 = data.clone();
        let mut tx = Producer::<SLOT, _>::new(mem, move || d1.notify()).unwrap();
        let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
        tx.try_send(&message(0)).unwrap();
        rx.request_notify();
        let producer = thread::spawn(move || {
            // A producer continues from the index in the header.
            let mem = RingMemory::split(&w2).unwrap();
            let mut tx = Producer::<SLOT, _>::new(mem, move || d2.notify()).unwrap();
            tx.try_send(&message(1)).unwrap();
        });
        // Waits may wake spuriously, so wait for the condition.
        while rx.pending() < 2 {
            data.wait();
        }
        assert_eq!(rx.try_recv().unwrap(), &message(0)[..]);
        assert_eq!(rx.try_recv().unwrap(), &message(1)[..]);
        producer.join().unwrap();
    });
}
