//! Real threads on real hardware: a producer and a consumer stream many
//! records of varying length through a small ring, sleeping and waking each
//! other through the notification hooks, and every record arrives intact,
//! once, in order. (loom explores interleavings exhaustively on a small
//! model; this runs the full-size code at speed.)
#![cfg(not(loom))]

use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::Duration;

use bulkhead_channel::layout::HEADER_WORDS;
use bulkhead_channel::{
    AtomicU64, Consumer, Producer, Receiver, RecvError, RingMemory, SendError, Sender,
};
use bulkhead_protocols::vmi::{Event, VmmToMonitor};

const SLOT: usize = 64;

fn region(slots: usize, slot: usize) -> Vec<AtomicU64> {
    (0..HEADER_WORDS + slots * slot / 8)
        .map(|_| AtomicU64::new(0))
        .collect()
}

/// Deterministic record `i`: length and bytes derived from `i`.
fn record(i: u32) -> Vec<u8> {
    let len = (i.wrapping_mul(2_654_435_761) >> 26) as usize % (SLOT - 16 + 1);
    (0..len)
        .map(|k| (i as u8).wrapping_add(k as u8).wrapping_mul(13))
        .collect()
}

fn wake(t: &OnceLock<Thread>) {
    if let Some(t) = t.get() {
        t.unpark();
    }
}

/// Sleep until notified. The timeout only bounds a test that would
/// otherwise hang if a wake-up were lost; loom checks that none is.
fn sleep() {
    thread::park_timeout(Duration::from_millis(50));
}

#[test]
fn stream_of_records_between_threads() {
    const N: u32 = 50_000;
    let words = region(8, SLOT);
    let mem = RingMemory::split(&words).unwrap();
    let (producer, consumer) = (OnceLock::new(), OnceLock::new());
    thread::scope(|s| {
        s.spawn(|| {
            producer.set(thread::current()).unwrap();
            let mut tx = Producer::<SLOT, _>::new(mem, || wake(&consumer)).unwrap();
            for i in 0..N {
                let r = record(i);
                while let Err(e) = tx.try_send(&r) {
                    assert_eq!(e, SendError::Full);
                    sleep();
                }
            }
        });
        s.spawn(|| {
            consumer.set(thread::current()).unwrap();
            let mut rx = Consumer::<SLOT, _>::new(mem, || wake(&producer)).unwrap();
            let mut i = 0;
            while i < N {
                match rx.try_recv() {
                    Ok(got) => {
                        assert_eq!(got, &record(i)[..], "record {i}");
                        i += 1;
                    }
                    Err(RecvError::Empty) => sleep(),
                    Err(e) => panic!("record {i}: {e:?}"),
                }
            }
            assert_eq!(rx.stats().rejected(), 0);
            assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        });
    });
}

#[test]
fn typed_stream_between_threads() {
    const N: u32 = 20_000;
    let words = region(4, 128);
    let mem = RingMemory::split(&words).unwrap();
    let (producer, consumer) = (OnceLock::new(), OnceLock::new());
    let event = |i: u32| VmmToMonitor::Event {
        vcpu: (i % 4) as u8,
        paused: i.is_multiple_of(2),
        event: Event::MsrWrite {
            msr: 0xc000_0082,
            value: u64::from(i) << 20,
        },
    };
    thread::scope(|s| {
        s.spawn(|| {
            producer.set(thread::current()).unwrap();
            let mut tx = Sender::<VmmToMonitor, 128, _>::new(mem, || wake(&consumer)).unwrap();
            for i in 0..N {
                while tx.send(&event(i)).is_err() {
                    sleep();
                }
            }
        });
        s.spawn(|| {
            consumer.set(thread::current()).unwrap();
            let mut rx = Receiver::<VmmToMonitor, 128, _>::new(mem, || wake(&producer)).unwrap();
            let mut i = 0;
            while i < N {
                match rx.recv() {
                    Ok(m) => {
                        assert_eq!(m, event(i));
                        i += 1;
                    }
                    Err(RecvError::Empty) => sleep(),
                    Err(e) => panic!("message {i}: {e:?}"),
                }
            }
            assert_eq!(rx.stats().delivered, u64::from(N));
        });
    });
}
