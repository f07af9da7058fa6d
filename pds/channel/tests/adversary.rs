//! The in-kernel streaming scenario, on the host: two threads stream typed
//! messages both ways at full rate while a third floods one of them with
//! hostile records on a ring it is allowed to write. Every good message
//! arrives, once, in order; every hostile record is rejected and counted
//! under the right kind; nothing panics.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use bulkhead_channel::adversary::{Adversary, Attack};
use bulkhead_channel::layout::HEADER_WORDS;
use bulkhead_channel::{AtomicU64, NoNotify, Receiver, RecvError, RingMemory, Sender};
use bulkhead_protocols::supervisor::{Level, Log, Report};
use bulkhead_protocols::vmi::{MonitorToVmm, VmmToMonitor};

const SLOT: usize = 128;

fn region(slots: usize) -> Vec<AtomicU64> {
    (0..HEADER_WORDS + slots * SLOT / 8)
        .map(|_| AtomicU64::new(0))
        .collect()
}

fn ping(i: u32) -> MonitorToVmm {
    MonitorToVmm::Pause {
        tag: i,
        vcpu: (i % 3) as u8,
    }
}

fn pong(i: u32) -> VmmToMonitor {
    VmmToMonitor::Reply {
        tag: i,
        answer: bulkhead_protocols::vmi::Answer::Ok,
    }
}

fn report(i: u32) -> Report {
    let mut text = heapless::String::new();
    let _ = core::fmt::write(&mut text, format_args!("log {i}"));
    Report::Log(Log {
        level: Level::Info,
        text,
    })
}

/// Sends `msg` on `tx`, spinning (with yields) while the ring is full.
fn send<T: bulkhead_protocols::Message>(tx: &mut Sender<T, SLOT>, msg: &T) {
    while tx.send(msg).is_err() {
        thread::yield_now();
    }
}

#[test]
fn good_traffic_survives_a_hostile_neighbour() {
    const N: u32 = 3000;
    let (a_to_b, b_to_a, logs, hostile) = (region(8), region(8), region(8), region(4));
    let (a_to_b, b_to_a) = (
        RingMemory::split(&a_to_b).unwrap(),
        RingMemory::split(&b_to_a).unwrap(),
    );
    let (logs, hostile) = (
        RingMemory::split(&logs).unwrap(),
        RingMemory::split(&hostile).unwrap(),
    );
    let done = AtomicBool::new(false);

    let (tally, b_stats) = thread::scope(|s| {
        // A: streams requests to B and a log line per request to B's log ring,
        // and reads B's replies.
        s.spawn(|| {
            let mut tx = Sender::<MonitorToVmm, SLOT>::new(a_to_b, NoNotify).unwrap();
            let mut log = Sender::<Report, SLOT>::new(logs, NoNotify).unwrap();
            let mut rx = Receiver::<VmmToMonitor, SLOT>::new(b_to_a, NoNotify).unwrap();
            let (mut sent, mut got) = (0, 0);
            while got < N {
                if sent < N && tx.send(&ping(sent)).is_ok() {
                    send(&mut log, &report(sent));
                    sent += 1;
                }
                match rx.recv() {
                    Ok(m) => {
                        assert_eq!(m, pong(got));
                        got += 1;
                    }
                    Err(RecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("A got {e:?}"),
                }
            }
            assert_eq!(rx.stats().rejected(), 0);
        });
        // C: floods B's second inbound ring until B is done.
        let c = s.spawn(|| {
            let mut adv = Adversary::<Report, SLOT>::new(hostile, 0x5eed);
            let mut tally = [0u64; Attack::ALL.len()];
            while !done.load(Ordering::Acquire) {
                match adv.strike() {
                    Some(a) => tally[Attack::ALL.iter().position(|x| *x == a).unwrap()] += 1,
                    None => thread::yield_now(),
                }
            }
            adv.stop();
            tally
        });
        // B: answers A, and reads its two report rings: A's logs and C's garbage.
        let b = s.spawn(|| {
            let mut rx = Receiver::<MonitorToVmm, SLOT>::new(a_to_b, NoNotify).unwrap();
            let mut tx = Sender::<VmmToMonitor, SLOT>::new(b_to_a, NoNotify).unwrap();
            let mut log = Receiver::<Report, SLOT>::new(logs, NoNotify).unwrap();
            let mut bad = Receiver::<Report, SLOT>::new(hostile, NoNotify).unwrap();
            let (mut got, mut logged) = (0, 0);
            // Also wait for two rounds of every record attack, so the test
            // does not depend on how the threads were scheduled.
            let records_rejected =
                |r: &Receiver<Report, SLOT>| r.stats().rejected() - r.stats().index_out_of_range;
            while got < N || logged < N || records_rejected(&bad) < 2 * Attack::ALL.len() as u64 {
                match rx.recv() {
                    Ok(m) => {
                        assert_eq!(m, ping(got));
                        send(&mut tx, &pong(got));
                        got += 1;
                    }
                    Err(RecvError::Empty) => {}
                    Err(e) => panic!("B got {e:?} from A"),
                }
                match log.recv() {
                    Ok(m) => {
                        assert_eq!(m, report(logged));
                        logged += 1;
                    }
                    Err(RecvError::Empty) => {}
                    Err(e) => panic!("B got {e:?} on the log ring"),
                }
                if let Ok(m) = bad.recv() {
                    panic!("a hostile record was accepted: {m:?}");
                }
            }
            done.store(true, Ordering::Release);
            (log, bad, rx.stats())
        });
        let tally = c.join().unwrap();
        let (_log, mut bad, a_stats) = b.join().unwrap();
        // Drain what C left after its last strike.
        for _ in 0..64 {
            if let Ok(m) = bad.recv() {
                panic!("a hostile record was accepted: {m:?}");
            }
        }
        assert_eq!(a_stats.rejected(), 0);
        (tally, bad.stats())
    });

    // Every record attack was rejected exactly once, under its own kind.
    let count = |a: Attack| tally[Attack::ALL.iter().position(|x| *x == a).unwrap()];
    assert!(
        Attack::ALL.iter().all(|a| count(*a) > 0),
        "every attack ran: {tally:?}"
    );
    assert_eq!(b_stats.delivered, 0);
    assert_eq!(b_stats.bad_check, count(Attack::Garbage));
    assert_eq!(b_stats.bad_length, count(Attack::BadLength));
    assert_eq!(b_stats.bad_sequence, count(Attack::BadSequence));
    assert_eq!(b_stats.wrong_protocol, count(Attack::WrongProtocol));
    assert_eq!(b_stats.wrong_version, count(Attack::WrongVersion));
    assert_eq!(b_stats.malformed, count(Attack::Malformed));
    // Index jumps are reported each time B polls during one (so their count
    // is not fixed), and never cost a record: the exact counts above hold.
    assert_eq!(b_stats.wrong_layout, 0);
}
