//! Fills a ring region (header and data) with arbitrary bytes and drains it
//! with the raw consumer and with typed receivers: no input may panic, read
//! outside the region (the region is an exact-size allocation, so the
//! sanitizer sees any stray access), or deliver an oversized record.
//!
//! Arbitrary bytes almost never pass a slot's check word, so half the modes
//! instead have an honest producer publish arbitrary *records* (with a valid
//! envelope header or not): that fuzzes the typed decoders behind the ring.
//! Two more modes decode arbitrary message registers (the PPC path).
#![no_main]

use bulkhead_channel::layout::HEADER_BYTES;
use bulkhead_channel::{Consumer, NoNotify, Producer, Receiver, RecvError, RingMemory, SendError};
use bulkhead_protocols::gateway::AppToGateway;
use bulkhead_protocols::supervisor::Report;
use libfuzzer_sys::fuzz_target;

fn words(bytes: &[u8]) -> Vec<u64> {
    let mut w: Vec<u64> = bytes
        .chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    w.shrink_to_fit();
    w
}

/// Drains with `next` for at most a few laps; the consumer must make
/// progress or report errors, never loop forever or panic.
fn drain<T>(mut next: impl FnMut() -> Result<T, RecvError>, limit: usize) {
    for _ in 0..limit {
        if let Err(RecvError::Empty) = next() {
            break;
        }
    }
}

fn raw<const SLOT: usize>(region: &mut [u64]) {
    let len = region.len() * 8;
    // SAFETY: `region` outlives the consumer and is only accessed through it.
    let Ok(mem) = (unsafe { RingMemory::from_raw(region.as_mut_ptr().cast(), len) }) else { return };
    let Ok(mut rx) = Consumer::<SLOT>::new(mem, NoNotify) else { return };
    let limit = 2 * rx.capacity() + 4;
    drain(
        || {
            let r = rx.try_recv().map(|m| m.len());
            if let Ok(n) = r {
                assert!(n <= SLOT - 16);
            }
            r
        },
        limit,
    );
    let s = rx.stats();
    assert!(s.delivered + s.rejected() <= limit as u64);
}

fn typed<T: bulkhead_protocols::Message, const SLOT: usize>(region: &mut [u64]) {
    let len = region.len() * 8;
    // SAFETY: as above.
    let Ok(mem) = (unsafe { RingMemory::from_raw(region.as_mut_ptr().cast(), len) }) else { return };
    let Ok(mut rx) = Receiver::<T, SLOT>::new(mem, NoNotify) else { return };
    drain(|| rx.recv(), 64);
}

/// Publishes `rest` as records (each prefixed by a length byte, and by a
/// valid envelope header when `envelope`) and drains them as `T`.
fn records<T: bulkhead_protocols::Message + serde::Serialize, const SLOT: usize>(rest: &[u8], envelope: bool) {
    let mut region = vec![0u64; HEADER_BYTES / 8 + 4 * SLOT / 8];
    let len = region.len() * 8;
    // SAFETY: as above; producer and consumer share the ring in one thread.
    let mem = unsafe { RingMemory::from_raw(region.as_mut_ptr().cast(), len) }.unwrap();
    let mut tx = Producer::<SLOT>::new(mem, NoNotify).unwrap();
    let mut rx = Receiver::<T, SLOT>::new(mem, NoNotify).unwrap();
    let mut input = rest;
    while let Some((&n, tail)) = input.split_first() {
        let body = &tail[..(n as usize).min(tail.len())];
        input = &tail[body.len()..];
        let mut rec = Vec::new();
        if envelope {
            rec.extend_from_slice(&(T::PROTOCOL as u16).to_le_bytes());
            rec.extend_from_slice(&T::VERSION.to_le_bytes());
        }
        rec.extend_from_slice(body);
        if tx.try_send(&rec) == Err(SendError::Full) {
            drain(|| rx.recv().map(|m| check_reencodes(&m)), 8);
            let _ = tx.try_send(&rec);
        }
    }
    drain(|| rx.recv().map(|m| check_reencodes(&m)), 8);
}

/// Arbitrary message registers (as a PPC callee gets them) decoded as `T`.
fn registers<T: bulkhead_protocols::Message>(rest: &[u8]) {
    let Some((&count, regs)) = rest.split_first() else { return };
    let mrs = words(regs);
    // As the callee does: only the registers the call says it carried.
    let n = (count as usize).min(mrs.len()).min(bulkhead_protocols::regs::MAX_WORDS);
    if let Ok(m) = bulkhead_protocols::regs::from_words::<T>(&mrs[..n]) {
        check_reencodes(&m);
    }
}

/// A message the receiver accepted is a real value: it encodes again
/// within its declared bound.
fn check_reencodes<T: bulkhead_protocols::Message>(m: &T) {
    let mut buf = [0u8; 512];
    let n = bulkhead_protocols::encode(m, &mut buf).expect("accepted message re-encodes");
    assert!(n <= T::MAX_SIZE);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 10 {
        8 => return registers::<bulkhead_protocols::vmi::MonitorToVmm>(rest),
        9 => return registers::<bulkhead_protocols::gateway::AppToGateway>(rest),
        4 => return records::<Report, 128>(rest, true),
        5 => return records::<AppToGateway, 64>(rest, true),
        6 => return records::<bulkhead_protocols::vmi::VmmToMonitor, 128>(rest, true),
        7 => return records::<bulkhead_protocols::post::PostSummary, 288>(rest, mode & 8 != 0),
        _ => {}
    }
    let mut region = words(rest);
    if region.len() * 8 < HEADER_BYTES {
        return;
    }
    match mode % 4 {
        0 => raw::<24>(&mut region),
        1 => raw::<64>(&mut region),
        2 => typed::<Report, 128>(&mut region),
        _ => typed::<AppToGateway, 64>(&mut region),
    }
});
