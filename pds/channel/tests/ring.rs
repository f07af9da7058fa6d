//! Behaviour of the ring and the typed layer, one edge per test.
#![cfg(not(loom))]

use std::cell::Cell;

use bulkhead_channel::layout::{HEADER_WORDS, SLOT_HEADER_BYTES};
use bulkhead_channel::{
    AtomicU64, Consumer, NoNotify, Producer, Receiver, RecvError, RingMemory, SendError, Sender,
};
use bulkhead_protocols::supervisor::{Level, Log, Report};
use bulkhead_protocols::vmi::{MonitorToVmm, VmmToMonitor};
use std::sync::atomic::Ordering;

const SLOT: usize = 64;

fn region(slots: usize) -> Vec<AtomicU64> {
    (0..HEADER_WORDS + slots * SLOT / 8)
        .map(|_| AtomicU64::new(0))
        .collect()
}

fn data_word(words: &[AtomicU64], slot: usize, w: usize) -> &AtomicU64 {
    &words[HEADER_WORDS + slot * SLOT / 8 + w]
}

#[test]
fn delivers_in_order_across_wrap_around() {
    let words = region(3);
    let mem = RingMemory::split(&words).unwrap();
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    for round in 0u8..10 {
        for i in 0..2u8 {
            let msg = vec![
                round.wrapping_mul(31).wrapping_add(i);
                (round as usize * 5 + i as usize) % 49
            ];
            tx.try_send(&msg).unwrap();
        }
        for i in 0..2u8 {
            let msg = vec![
                round.wrapping_mul(31).wrapping_add(i);
                (round as usize * 5 + i as usize) % 49
            ];
            assert_eq!(rx.try_recv().unwrap(), &msg[..]);
        }
        assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    }
    assert_eq!(rx.stats().delivered, 20);
    assert_eq!(rx.stats().rejected(), 0);
}

#[test]
fn full_ring_refuses_and_loses_nothing() {
    let words = region(2);
    let mem = RingMemory::split(&words).unwrap();
    let woken = Cell::new(0);
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    let mut rx = Consumer::<SLOT, _>::new(mem, || woken.set(woken.get() + 1)).unwrap();
    tx.try_send(b"one").unwrap();
    tx.try_send(b"two").unwrap();
    assert_eq!(tx.try_send(b"three"), Err(SendError::Full));
    assert_eq!(tx.try_send(b"three"), Err(SendError::Full));
    assert_eq!(tx.stats().full, 2);
    assert_eq!(rx.try_recv().unwrap(), b"one");
    // The producer waited for space: freeing a slot wakes it, once.
    assert_eq!(woken.get(), 1);
    tx.try_send(b"three").unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"two");
    assert_eq!(rx.try_recv().unwrap(), b"three");
    assert_eq!(woken.get(), 1);
    assert_eq!(rx.try_recv(), Err(RecvError::Empty));
}

#[test]
fn too_large_is_refused_and_max_fits() {
    let words = region(2);
    let mem = RingMemory::split(&words).unwrap();
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    let max = SLOT - SLOT_HEADER_BYTES;
    assert_eq!(tx.try_send(&vec![1; max + 1]), Err(SendError::TooLarge));
    tx.try_send(&vec![2; max]).unwrap();
    tx.try_send(&[]).unwrap();
    assert_eq!(rx.try_recv().unwrap(), &vec![2; max][..]);
    assert_eq!(rx.try_recv().unwrap(), b"");
}

#[test]
fn notifies_only_on_empty_to_non_empty_or_when_asked() {
    let words = region(4);
    let mem = RingMemory::split(&words).unwrap();
    let woken = Cell::new(0);
    let mut tx = Producer::<SLOT, _>::new(mem, || woken.set(woken.get() + 1)).unwrap();
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    tx.try_send(b"a").unwrap();
    assert_eq!(woken.get(), 1);
    tx.try_send(b"b").unwrap();
    tx.try_send(b"c").unwrap();
    assert_eq!(woken.get(), 1, "coalesced while non-empty");
    rx.try_recv().unwrap();
    rx.request_notify();
    tx.try_send(b"d").unwrap();
    assert_eq!(woken.get(), 2, "the consumer asked");
    tx.try_send(b"e").unwrap();
    assert_eq!(tx.try_send(b"x"), Err(SendError::Full));
    for _ in 0..4 {
        rx.try_recv().unwrap();
    }
    assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    tx.try_send(b"f").unwrap();
    assert_eq!(woken.get(), 3, "empty again");
    assert_eq!(tx.stats().notified, 3);
}

#[test]
fn bad_record_is_skipped_and_the_next_delivered() {
    let words = region(4);
    let mem = RingMemory::split(&words).unwrap();
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    for m in [b"m0", b"m1", b"m2", b"m3"] {
        tx.try_send(m).unwrap();
    }
    data_word(&words, 0, 2).fetch_xor(1, Ordering::Relaxed); // payload
    data_word(&words, 1, 0).store(u64::MAX, Ordering::Relaxed); // length
    data_word(&words, 2, 0).fetch_xor(1 << 40, Ordering::Relaxed); // sequence
    assert_eq!(rx.try_recv(), Err(RecvError::BadCheck));
    assert_eq!(rx.try_recv(), Err(RecvError::BadLength));
    assert_eq!(rx.try_recv(), Err(RecvError::BadSequence));
    assert_eq!(rx.try_recv().unwrap(), b"m3");
    let s = rx.stats();
    assert_eq!(
        (s.bad_check, s.bad_length, s.bad_sequence, s.delivered),
        (1, 1, 1, 1)
    );
    // The ring keeps working.
    tx.try_send(b"m4").unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"m4");
}

#[test]
fn stale_slot_from_an_earlier_lap_is_not_redelivered() {
    let words = region(2);
    let mem = RingMemory::split(&words).unwrap();
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    tx.try_send(b"old").unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"old");
    // A hostile producer claims two new records without writing them: the
    // slots hold the record of lap 0 and zeroes.
    words[8].store(3, Ordering::Release);
    assert_eq!(rx.try_recv(), Err(RecvError::BadSequence)); // zeroed slot 1
    assert_eq!(rx.try_recv(), Err(RecvError::BadSequence)); // "old" again in slot 0
    assert_eq!(rx.stats().bad_sequence, 2);
    assert_eq!(rx.try_recv(), Err(RecvError::Empty));
}

#[test]
fn impossible_indices_are_rejected_without_consuming() {
    let words = region(2);
    let mem = RingMemory::split(&words).unwrap();
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    tx.try_send(b"x").unwrap();
    words[8].store(1000, Ordering::Release);
    assert_eq!(rx.try_recv(), Err(RecvError::IndexOutOfRange));
    words[8].store(u64::MAX, Ordering::Release); // "behind" the consumer
    assert_eq!(rx.try_recv(), Err(RecvError::IndexOutOfRange));
    assert_eq!(rx.stats().index_out_of_range, 2);
    words[8].store(1, Ordering::Release);
    assert_eq!(rx.try_recv().unwrap(), b"x");
    // A hostile consumer index makes the producer refuse, not overwrite: it
    // uses the space it last saw free (one slot: "x" had not been consumed
    // when it last looked), then finds the index impossible.
    words[16].store(7, Ordering::Release);
    tx.try_send(b"y").unwrap();
    assert_eq!(tx.try_send(b"z"), Err(SendError::PeerIndexInvalid));
    assert_eq!(tx.stats().peer_index_invalid, 1);
}

#[test]
fn wrong_layout_is_refused() {
    let words = region(2);
    let mem = RingMemory::split(&words).unwrap();
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    // A consumer configured with another slot size refuses the ring.
    let mut rx128 = Consumer::<128>::new(mem, NoNotify).unwrap();
    tx.try_send(b"x").unwrap();
    assert_eq!(rx128.try_recv(), Err(RecvError::WrongLayout));
    assert_eq!(rx128.stats().wrong_layout, 1);
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    words[0].fetch_add(1 << 32, Ordering::Relaxed); // layout version
    assert_eq!(rx.try_recv(), Err(RecvError::WrongLayout));
    words[0].fetch_sub(1 << 32, Ordering::Relaxed);
    assert_eq!(rx.try_recv().unwrap(), b"x");
}

#[test]
fn separate_header_and_data_areas() {
    let header: Vec<AtomicU64> = (0..HEADER_WORDS).map(|_| AtomicU64::new(0)).collect();
    let data: Vec<AtomicU64> = (0..3 * SLOT / 8 + 5).map(|_| AtomicU64::new(0)).collect();
    let mem = RingMemory::new(&header, &data).unwrap();
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    assert_eq!(tx.capacity(), 3);
    let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
    tx.try_send(b"hello").unwrap();
    assert_eq!(rx.try_recv().unwrap(), b"hello");
    // The spare words past the last whole slot are never written.
    assert!(data[3 * SLOT / 8..]
        .iter()
        .all(|w| w.load(Ordering::Relaxed) == 0));
}

#[test]
fn typed_round_trip_and_rejections() {
    let words = (0..HEADER_WORDS + 8 * 128 / 8)
        .map(|_| AtomicU64::new(0))
        .collect::<Vec<_>>();
    let mem = RingMemory::split(&words).unwrap();
    let mut tx = Sender::<Report, 128>::new(mem, NoNotify).unwrap();
    let mut rx = Receiver::<Report, 128>::new(mem, NoNotify).unwrap();
    let log = Report::Log(Log {
        level: Level::Info,
        text: "booted".try_into().unwrap(),
    });
    tx.send(&log).unwrap();
    assert_eq!(rx.recv().unwrap(), log);

    // Records of another protocol, another version, and garbage, each
    // followed by a good one.
    let mut raw = Producer::<128>::new(mem, NoNotify).unwrap();
    let mut buf = [0u8; 128];
    let n = bulkhead_protocols::encode(
        &VmmToMonitor::Reply {
            tag: 1,
            answer: bulkhead_protocols::vmi::Answer::Ok,
        },
        &mut buf,
    )
    .unwrap();
    raw.try_send(&buf[..n]).unwrap();
    let n = bulkhead_protocols::encode(&log, &mut buf).unwrap();
    buf[2] = 2;
    raw.try_send(&buf[..n]).unwrap();
    raw.try_send(&[1, 0, 1, 0, 0xff, 0xff]).unwrap();
    raw.try_send(&[1]).unwrap();
    let mut tx = Sender::<Report, 128>::new(mem, NoNotify).unwrap();
    tx.send(&log).unwrap();
    assert_eq!(rx.recv(), Err(RecvError::WrongProtocol));
    assert_eq!(rx.recv(), Err(RecvError::WrongVersion));
    assert_eq!(rx.recv(), Err(RecvError::Malformed));
    assert_eq!(rx.recv(), Err(RecvError::Malformed));
    assert_eq!(rx.recv().unwrap(), log);
    assert_eq!(rx.recv(), Err(RecvError::Empty));
    let s = rx.stats();
    assert_eq!((s.wrong_protocol, s.wrong_version, s.malformed), (1, 1, 2));
    assert_eq!((s.delivered, s.rejected()), (2, 4));
    let _ = MonitorToVmm::Pause { tag: 0, vcpu: 0 };
}
