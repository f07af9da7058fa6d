//! Shared parts of the typed-channel system test and bench PDs: the
//! messages each side sends, the counts, and building a ring end from the
//! `tx_`/`rx_` setvars of `system.xml` without `unsafe`
//! (`bulkhead_microkit::shared_words`).

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

use bulkhead_channel::RingMemory;
use bulkhead_microkit::{shared_words, SetVar};
use bulkhead_protocols::vmi::{Answer, MonitorToVmm, VmmToMonitor};

/// Good messages each way.
pub const N: u32 = 20_000;
/// Rounds of the adversary: each round is one of each of its 7 attacks.
pub const ROUNDS: u64 = 300;
/// The tag of left's last message, "I have every reply".
pub const DONE: u32 = u32::MAX;
/// Slot of the left->right ring (MonitorToVmm: 20 + 16 bytes).
pub const PING_SLOT: usize = 40;
/// Slot of the right->left ring (VmmToMonitor: 92 + 16 bytes).
pub const PONG_SLOT: usize = 112;
/// Slot of the flooder's ring (supervisor::Report: 103 + 16 bytes).
pub const JUNK_SLOT: usize = 128;

/// Left's message number `i`.
pub fn ping(i: u32) -> MonitorToVmm {
    MonitorToVmm::Pause {
        tag: i,
        vcpu: (i % 3) as u8,
    }
}

/// Right's message number `i`.
pub fn pong(i: u32) -> VmmToMonitor {
    VmmToMonitor::Reply {
        tag: i,
        answer: Answer::Ok,
    }
}

/// A ring's memory from its four setvars; panics (a PD fault, which the
/// test's parent reports) if `system.xml` does not map them.
pub fn ring(
    header: &'static SetVar,
    header_size: &'static SetVar,
    data: &'static SetVar,
    data_size: &'static SetVar,
) -> RingMemory<'static> {
    let (Some(h), Some(d)) = (
        shared_words(header, header_size),
        shared_words(data, data_size),
    ) else {
        panic!("ring setvars not patched: check system.xml")
    };
    match RingMemory::new(h, d) {
        Ok(m) => m,
        Err(_) => panic!("ring regions too small"),
    }
}

/// Messages of the in-kernel channel bench.
pub const BENCH_N: u32 = 100_000;
