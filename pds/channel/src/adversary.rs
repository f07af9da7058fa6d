//! A hostile producer, for tests: it writes records that a consumer must
//! reject, one kind at a time, straight into the ring's memory (bypassing
//! [`crate::Producer`]'s rules). The host tests stream good traffic beside
//! it, and the in-kernel streaming test runs it in a third PD that is
//! deliberately allowed to write a ring.
//!
//! Each record attack produces exactly one rejection of a known kind when
//! the consumer reaches it (so a test can check the consumer's counters
//! exactly). The index attack makes the consumer report
//! `IndexOutOfRange` for as long as it lasts (until the next strike), so it
//! is counted at least once if the consumer polls in between, and possibly
//! many times.
#![forbid(unsafe_code)]

use core::marker::PhantomData;

use bulkhead_protocols::envelope::Message;

use crate::layout::{
    geometry_word, magic_word, slot_word, Check, SLOT_HEADER_BYTES, W_CONSUMED, W_GEOMETRY,
    W_MAGIC, W_PRODUCED,
};
use crate::region::RingMemory;
use crate::ring::RecvError;
use crate::sync::Ordering;

/// One kind of hostile write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Attack {
    /// A slot with random payload and a wrong check word.
    Garbage,
    /// A slot whose length exceeds the slot.
    BadLength,
    /// A slot with a valid check word but another record's sequence number.
    BadSequence,
    /// A well-formed record of another protocol.
    WrongProtocol,
    /// A well-formed record of another version of the protocol.
    WrongVersion,
    /// A record with the right envelope and a body that does not decode
    /// (variant or length 127, more than any protocol here allows).
    Malformed,
    /// `produced` set more than a ring ahead (undone by the next strike).
    IndexJump,
}

impl Attack {
    /// Every attack, in the order [`Adversary::strike`] cycles through them.
    pub const ALL: [Attack; 7] = [
        Attack::Garbage,
        Attack::BadLength,
        Attack::BadSequence,
        Attack::WrongProtocol,
        Attack::WrongVersion,
        Attack::Malformed,
        Attack::IndexJump,
    ];

    /// The error a typed [`crate::Receiver`] reports for it.
    pub fn expected(self) -> RecvError {
        match self {
            Attack::Garbage => RecvError::BadCheck,
            Attack::BadLength => RecvError::BadLength,
            Attack::BadSequence => RecvError::BadSequence,
            Attack::WrongProtocol => RecvError::WrongProtocol,
            Attack::WrongVersion => RecvError::WrongVersion,
            Attack::Malformed => RecvError::Malformed,
            Attack::IndexJump => RecvError::IndexOutOfRange,
        }
    }
}

/// A hostile producer of `T` records on a ring of `SLOT`-byte slots.
pub struct Adversary<'a, T: Message, const SLOT: usize> {
    mem: RingMemory<'a>,
    slots: u64,
    produced: u64,
    rng: u64,
    next: usize,
    jumped: bool,
    _t: PhantomData<fn(&T)>,
}

impl<'a, T: Message, const SLOT: usize> Adversary<'a, T, SLOT> {
    /// Takes the producer side of `mem` with a seed for its random bytes.
    /// Writes a correct header, so the consumer attaches and reads slots.
    pub fn new(mem: RingMemory<'a>, seed: u64) -> Self {
        let slots = (mem.data.len() / (SLOT / 8)) as u64;
        if let (Some(m), Some(g)) = (mem.header.get(W_MAGIC), mem.header.get(W_GEOMETRY)) {
            m.store(magic_word(), Ordering::Relaxed);
            g.store(geometry_word(SLOT, slots as usize), Ordering::Relaxed);
        }
        let produced = mem
            .header
            .get(W_PRODUCED)
            .map_or(0, |w| w.load(Ordering::Relaxed));
        Adversary {
            mem,
            slots,
            produced,
            rng: seed | 1,
            next: 0,
            jumped: false,
            _t: PhantomData,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64: enough to make garbage look like garbage.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Makes the next attack, cycling through [`Attack::ALL`]. Returns
    /// `None`, doing nothing, while the ring is full: like a real producer
    /// it waits for the consumer, so every record attack is read once.
    pub fn strike(&mut self) -> Option<Attack> {
        let header = self.mem.header;
        let (Some(produced_w), Some(consumed_w)) = (header.get(W_PRODUCED), header.get(W_CONSUMED))
        else {
            return None;
        };
        if self.jumped {
            produced_w.store(self.produced, Ordering::Release);
            self.jumped = false;
        }
        let consumed = consumed_w.load(Ordering::Acquire);
        if self.slots == 0 || self.produced.wrapping_sub(consumed) >= self.slots {
            return None;
        }
        let attack = Attack::ALL[self.next % Attack::ALL.len()];
        self.next += 1;
        if attack == Attack::IndexJump {
            // Relative to the true index, which the consumer never passes:
            // more than a ring ahead of wherever the consumer is.
            let ahead = self.slots + 1 + self.random() % 1000;
            produced_w.store(self.produced.wrapping_add(ahead), Ordering::Release);
            self.jumped = true;
            return Some(attack);
        }
        let max = SLOT - SLOT_HEADER_BYTES;
        let mut record = [0u8; SLOT];
        let (protocol, version) = (T::PROTOCOL as u16, T::VERSION);
        let len = match attack {
            Attack::WrongProtocol => put_header(&mut record, protocol ^ 0x40, version, &[0]),
            Attack::WrongVersion => {
                put_header(&mut record, protocol, version.wrapping_add(1), &[0])
            }
            // Variant 127 of an enum with fewer variants: does not decode.
            Attack::Malformed => put_header(&mut record, protocol, version, &[0x7f, 0xff]),
            _ => {
                let n = (self.random() as usize % max.max(1)).min(max);
                for b in record.iter_mut().take(n) {
                    *b = self.random() as u8;
                }
                n
            }
        };
        let len = len.min(max);
        let seq_index = if attack == Attack::BadSequence {
            self.produced.wrapping_add(self.slots)
        } else {
            self.produced
        };
        let mut head = slot_word(len, seq_index);
        if attack == Attack::BadLength {
            head = slot_word(max + 1 + (self.random() % 4096) as usize, seq_index);
        }
        let base = (self.produced % self.slots) as usize * (SLOT / 8);
        let mut check = Check::new(head);
        for (i, chunk) in record[..len.div_ceil(8) * 8].chunks_exact(8).enumerate() {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            let w = u64::from_le_bytes(bytes);
            check = check.add(w);
            if let Some(slot) = self.mem.data.get(base + 2 + i) {
                slot.store(w, Ordering::Relaxed);
            }
        }
        let mut check = check.finish();
        if attack == Attack::Garbage {
            check ^= self.random() | 1;
        }
        if let (Some(h), Some(c)) = (self.mem.data.get(base), self.mem.data.get(base + 1)) {
            h.store(head, Ordering::Relaxed);
            c.store(check, Ordering::Relaxed);
        }
        self.produced = self.produced.wrapping_add(1);
        produced_w.store(self.produced, Ordering::Release);
        Some(attack)
    }

    /// Undoes a pending index jump, so the consumer can drain what is left.
    pub fn stop(&mut self) {
        if let (true, Some(w)) = (self.jumped, self.mem.header.get(W_PRODUCED)) {
            w.store(self.produced, Ordering::Release);
            self.jumped = false;
        }
    }
}

/// Writes an envelope header and `body` into `record`; returns the length.
fn put_header(record: &mut [u8], protocol: u16, version: u16, body: &[u8]) -> usize {
    let mut bytes = [0u8; 4];
    bytes[..2].copy_from_slice(&protocol.to_le_bytes());
    bytes[2..].copy_from_slice(&version.to_le_bytes());
    let mut n = 0;
    for (dst, src) in record.iter_mut().zip(bytes.iter().chain(body)) {
        *dst = *src;
        n += 1;
    }
    n
}
