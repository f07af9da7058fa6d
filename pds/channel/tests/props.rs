//! Property tests of the ring: (1) any interleaving of sends and receives
//! behaves exactly like a bounded FIFO queue, delivering every message once,
//! in order, with backpressure and coalesced notifications as specified;
//! (2) whatever is corrupted in the region, the consumer only ever yields
//! messages that were sent, each at most once and in order, and never panics.
#![cfg(not(loom))]

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use bulkhead_channel::layout::HEADER_WORDS;
use bulkhead_channel::{AtomicU64, Consumer, NoNotify, Producer, RecvError, RingMemory, SendError};
use proptest::prelude::*;

const SLOT: usize = 48;
const MAX: usize = SLOT - 16;

fn region(slots: usize) -> Vec<AtomicU64> {
    (0..HEADER_WORDS + slots * SLOT / 8)
        .map(|_| AtomicU64::new(0))
        .collect()
}

/// Message `id` of length `len`: the id, then a pattern derived from it.
fn message(id: u32, len: usize) -> Vec<u8> {
    let mut m = id.to_le_bytes().to_vec();
    m.extend((0..len.saturating_sub(4)).map(|i| (id as u8).wrapping_mul(7).wrapping_add(i as u8)));
    m.truncate(len.max(4));
    m
}

fn id_of(m: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(m.get(..4)?.try_into().ok()?))
}

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    Recv,
    AskNotify,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (4..=MAX).prop_map(Op::Send),
        4 => Just(Op::Recv),
        1 => Just(Op::AskNotify),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn behaves_as_a_bounded_fifo(slots in 1usize..6, ops in prop::collection::vec(op(), 0..200)) {
        let words = region(slots);
        let mem = RingMemory::split(&words).unwrap();
        let (to_consumer, to_producer) = (Cell::new(0u32), Cell::new(0u32));
        let mut tx = Producer::<SLOT, _>::new(mem, || to_consumer.set(to_consumer.get() + 1)).unwrap();
        let mut rx = Consumer::<SLOT, _>::new(mem, || to_producer.set(to_producer.get() + 1)).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let (mut next_id, mut asked, mut producer_waits) = (0u32, false, false);
        let (mut want_to_consumer, mut want_to_producer) = (0u32, 0u32);
        for op in ops {
            match op {
                Op::Send(len) => {
                    let m = message(next_id, len);
                    let got = tx.try_send(&m);
                    if model.len() == slots {
                        prop_assert_eq!(got, Err(SendError::Full));
                        producer_waits = true;
                    } else {
                        prop_assert_eq!(got, Ok(()));
                        if model.is_empty() || asked {
                            want_to_consumer += 1;
                        }
                        asked = false;
                        model.push_back(m);
                        next_id += 1;
                    }
                }
                Op::Recv => {
                    let got = rx.try_recv().map(|m| m.to_vec());
                    match model.pop_front() {
                        None => prop_assert_eq!(got, Err(RecvError::Empty)),
                        Some(m) => {
                            prop_assert_eq!(got, Ok(m));
                            if producer_waits {
                                want_to_producer += 1;
                                producer_waits = false;
                            }
                        }
                    }
                }
                Op::AskNotify => {
                    rx.request_notify();
                    asked = true;
                }
            }
            prop_assert_eq!(to_consumer.get(), want_to_consumer);
            prop_assert_eq!(to_producer.get(), want_to_producer);
        }
        // Drain: everything sent arrives, once, in order.
        while let Some(m) = model.pop_front() {
            prop_assert_eq!(rx.try_recv().map(|m| m.to_vec()), Ok(m));
        }
        prop_assert_eq!(rx.try_recv(), Err(RecvError::Empty));
        prop_assert_eq!(rx.stats().rejected(), 0);
        prop_assert_eq!(rx.stats().delivered, u64::from(next_id));
    }

    #[test]
    fn corruption_yields_only_sent_messages_or_errors(
        slots in 1usize..6,
        before in 0usize..12,
        consumed_before in 0usize..12,
        lens in prop::collection::vec(4..=MAX, 24),
        hits in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>(), any::<bool>()), 1..8),
        after in 0usize..12,
    ) {
        let words = region(slots);
        let mem = RingMemory::split(&words).unwrap();
        let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
        let mut rx = Consumer::<SLOT>::new(mem, NoNotify).unwrap();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let mut delivered: Vec<Vec<u8>> = Vec::new();
        let send = |tx: &mut Producer<SLOT>, sent: &mut Vec<Vec<u8>>, n: usize| {
            for _ in 0..n {
                let m = message(sent.len() as u32, lens[sent.len() % lens.len()]);
                if tx.try_send(&m).is_ok() {
                    sent.push(m);
                }
            }
        };
        let recv = |rx: &mut Consumer<SLOT>, delivered: &mut Vec<Vec<u8>>, n: usize| {
            for _ in 0..n {
                if let Ok(m) = rx.try_recv() {
                    delivered.push(m.to_vec());
                }
            }
        };
        send(&mut tx, &mut sent, before);
        recv(&mut rx, &mut delivered, consumed_before);
        send(&mut tx, &mut sent, before);
        // Corrupt: xor or overwrite arbitrary words, header included.
        for (at, value, overwrite) in hits {
            let w = &words[at.index(words.len())];
            if overwrite { w.store(value, Ordering::Relaxed) } else { w.fetch_xor(value, Ordering::Relaxed); }
        }
        recv(&mut rx, &mut delivered, 2 * slots + 2);
        send(&mut tx, &mut sent, after);
        recv(&mut rx, &mut delivered, 2 * slots + after + 2);
        // Only sent messages, each once, in the order sent.
        let mut last: Option<u32> = None;
        for m in &delivered {
            let id = id_of(m).expect("a delivered message has an id");
            prop_assert!(sent.get(id as usize) == Some(m), "delivered a message that was never sent: {:?}", m);
            prop_assert!(last.is_none_or(|l| id > l), "out of order or duplicate: {} after {:?}", id, last);
            last = Some(id);
        }
    }
}

proptest! {
    /// Message registers from a hostile caller: decoding never panics, and
    /// whatever it accepts is a real value that round-trips.
    #[test]
    fn ppc_registers_decode_defensively(mrs in prop::collection::vec(any::<u64>(), 0..70), count in 0usize..80, len in 0u64..600) {
        use bulkhead_protocols::regs;
        use bulkhead_protocols::vmi::MonitorToVmm;
        let mut mrs = mrs;
        if let Some(first) = mrs.first_mut() {
            *first = len; // plausible lengths more often than random ones
        }
        // As a callee does: only the registers the call carried.
        let n = count.min(mrs.len()).min(regs::MAX_WORDS);
        if let Ok(m) = regs::from_words::<MonitorToVmm>(&mrs[..n]) {
            let mut again = [0u64; regs::MAX_WORDS];
            let used = regs::to_words(&m, &mut again).unwrap();
            prop_assert_eq!(regs::from_words::<MonitorToVmm>(&again[..used]), Ok(m));
        }
    }
}
