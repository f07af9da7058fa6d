//! Tests of the ring over *raw* memory, the path that goes through the
//! crate's unsafe code, meant to run under Miri (`cargo xtask test` runs
//! `cargo +nightly miri test -p bulkhead-channel --lib --test miri` with
//! strict provenance):
//! Miri checks that every access stays in bounds, is aligned, and that the
//! two threads' accesses are data-race free.
#![cfg(not(loom))]

use std::thread;

use bulkhead_channel::layout::HEADER_BYTES;
use bulkhead_channel::{Consumer, NoNotify, Producer, RecvError, RingMemory, SendError};

const SLOT: usize = 40;

/// Two threads, separate raw header and data areas, many laps.
#[test]
fn threads_over_raw_header_and_data() {
    let mut header = vec![0u64; HEADER_BYTES / 8];
    let mut data = vec![0u64; 3 * SLOT / 8 + 1];
    let (hl, dl) = (header.len() * 8, data.len() * 8);
    // SAFETY: both vectors outlive the scoped threads below and are only
    // accessed through this ring, which uses atomic accesses only.
    let mem = unsafe {
        RingMemory::from_raw_parts(header.as_mut_ptr().cast(), hl, data.as_mut_ptr().cast(), dl)
            .unwrap()
    };
    const N: u32 = 60;
    thread::scope(|s| {
        s.spawn(move || {
            let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
            for i in 0..N {
                let m = [i.to_le_bytes(), (!i).to_le_bytes(), [i as u8; 4]].concat();
                while tx.try_send(&m[..(i as usize % m.len()) + 1]) == Err(SendError::Full) {
                    thread::yield_now();
                }
            }
        });
        s.spawn(move || {
            let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
            let mut i = 0;
            while i < N {
                match rx.try_recv() {
                    Ok(got) => {
                        let m = [i.to_le_bytes(), (!i).to_le_bytes(), [i as u8; 4]].concat();
                        assert_eq!(got, &m[..(i as usize % m.len()) + 1]);
                        i += 1;
                    }
                    Err(RecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
            assert_eq!(rx.stats().rejected(), 0);
        });
    });
    drop((header, data));
}

/// Garbage everywhere in a raw region: the consumer reads only inside it
/// and delivers nothing it should not.
#[test]
fn garbage_raw_region_is_drained_without_stray_reads() {
    let mut words: Vec<u64> = (0..HEADER_BYTES / 8 + 2 * SLOT / 8)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        .collect();
    // A plausible index so the consumer does read slots.
    words[8] = 2;
    let len = words.len() * 8;
    // SAFETY: `words` outlives the ring and is only accessed through it.
    let mem = unsafe { RingMemory::from_raw(words.as_mut_ptr().cast(), len).unwrap() };
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    for _ in 0..4 {
        assert!(rx.try_recv().is_err());
    }
    assert!(rx.stats().rejected() >= 1);
    assert_eq!(rx.stats().delivered, 0);
}
