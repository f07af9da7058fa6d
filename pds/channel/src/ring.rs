//! The byte-record ring: one [`Producer`] and one [`Consumer`] over a
//! [`RingMemory`], moving records of up to `SLOT - 16` bytes in fixed slots.
//!
//! Ordering: the producer fills a slot with relaxed stores, then publishes
//! it by storing `produced` with Release; the consumer loads `produced` with
//! Acquire before reading the slot, so it sees the whole record. In the other
//! direction the consumer copies the slot out, then stores `consumed` with
//! Release; the producer loads `consumed` with Acquire before reusing the
//! slot, so it never overwrites a record still being read.
//!
//! Notification (no lost wake-ups): after publishing, the producer issues a
//! SeqCst fence and reads `consumed`; the consumer, after storing `consumed`,
//! issues a SeqCst fence before it reads `produced` again. Of two such
//! fenced store-then-load sequences at least one sees the other's store, so
//! either the consumer finds the new record, or the producer sees that the
//! ring was empty before its record and calls its hook. A consumer that got
//! [`RecvError::Empty`] may therefore sleep until notified. The same pairing
//! makes the producer's "wants space" flag safe when the ring is full.
//!
//! Defence: each side trusts only its own index (kept locally, only ever
//! written to the shared header) and the geometry it was built with; the
//! peer's index is checked before use. See [`RecvError`] for what the
//! consumer rejects and how it resynchronises.
#![forbid(unsafe_code)]

use crate::layout::{
    geometry_word, magic_word, slot_word, split_slot_word, words_for, Check, SLOT_HEADER_BYTES,
    W_CONSUMED, W_CONSUMER_WANTS_NOTIFY, W_GEOMETRY, W_MAGIC, W_PRODUCED, W_PRODUCER_WANTS_SPACE,
};
use crate::region::{LayoutError, RingMemory};
use crate::sync::{fence, AtomicU64, Ordering};

/// Called to wake the other side: a Microkit `notify` on the channel.
pub trait Notify {
    /// Wake the peer.
    fn notify(&mut self);
}

/// No hook: the peer polls.
#[derive(Clone, Copy, Default, Debug)]
pub struct NoNotify;

impl Notify for NoNotify {
    fn notify(&mut self) {}
}

/// A PD's channel to the peer: the hook notifies it.
#[cfg(feature = "microkit")]
impl Notify for bulkhead_microkit::Channel {
    fn notify(&mut self) {
        bulkhead_microkit::Channel::notify(*self)
    }
}

/// A channel `system.xml` may not give (an optional `setvar_id`): the hook
/// notifies it if there is one; without one the peer polls.
#[cfg(feature = "microkit")]
impl Notify for Option<bulkhead_microkit::Channel> {
    fn notify(&mut self) {
        if let Some(ch) = self {
            ch.notify()
        }
    }
}

impl<F: FnMut()> Notify for F {
    fn notify(&mut self) {
        self()
    }
}

/// Why a record was not sent. The record was not written: the caller still
/// has it and nothing in the ring changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendError {
    /// The ring is full (backpressure). The consumer will notify when it
    /// frees a slot; send again then.
    Full,
    /// The record is larger than a slot's payload.
    TooLarge,
    /// The consumer's index is impossible (ahead of ours, or more than a ring
    /// behind): the peer is broken or hostile. Counted.
    PeerIndexInvalid,
}

/// Why no record was delivered. Every variant but `Empty` is counted in
/// [`RecvStats`].
///
/// Resynchronisation: records live in fixed slots, so a bad record costs
/// exactly its own slot. On `BadLength`, `BadSequence` or `BadCheck` the
/// consumer has already stepped past that slot, and the next call reads the
/// next record; the good records behind a bad one are delivered. A bad
/// producer index (`IndexOutOfRange`) or header (`WrongLayout`) is not a
/// record: nothing is consumed and every call reports it until the producer
/// fixes it. The consumer never moves its own index backwards, so no record
/// is ever delivered twice.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecvError {
    /// No record waiting. Safe to sleep until notified.
    Empty,
    /// The header's magic, layout version or geometry differ from ours.
    WrongLayout,
    /// The producer's index is behind ours or more than a ring ahead.
    IndexOutOfRange,
    /// A slot's length does not fit a slot. The slot was skipped.
    BadLength,
    /// A slot carries another record's sequence number (stale or forged
    /// index). The slot was skipped.
    BadSequence,
    /// A slot's check word does not match its contents. The slot was skipped.
    BadCheck,
    /// The record is not this channel's protocol (typed layer). Skipped.
    WrongProtocol,
    /// The record is another version of the protocol (typed layer). Skipped.
    WrongVersion,
    /// The record does not decode (typed layer). Skipped.
    Malformed,
}

/// The consumer's counters. Saturating: a hostile peer cannot wrap them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct RecvStats {
    /// Records delivered.
    pub delivered: u64,
    /// [`RecvError::WrongLayout`] seen.
    pub wrong_layout: u64,
    /// [`RecvError::IndexOutOfRange`] seen.
    pub index_out_of_range: u64,
    /// [`RecvError::BadLength`] seen.
    pub bad_length: u64,
    /// [`RecvError::BadSequence`] seen.
    pub bad_sequence: u64,
    /// [`RecvError::BadCheck`] seen.
    pub bad_check: u64,
    /// [`RecvError::WrongProtocol`] seen.
    pub wrong_protocol: u64,
    /// [`RecvError::WrongVersion`] seen.
    pub wrong_version: u64,
    /// [`RecvError::Malformed`] seen.
    pub malformed: u64,
    /// Times the producer was woken because it waited for space.
    pub notified: u64,
}

impl RecvStats {
    /// All rejections together.
    pub fn rejected(&self) -> u64 {
        [
            self.wrong_layout,
            self.index_out_of_range,
            self.bad_length,
            self.bad_sequence,
            self.bad_check,
            self.wrong_protocol,
            self.wrong_version,
            self.malformed,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }

    pub(crate) fn count(&mut self, e: RecvError) {
        let c = match e {
            RecvError::Empty => return,
            RecvError::WrongLayout => &mut self.wrong_layout,
            RecvError::IndexOutOfRange => &mut self.index_out_of_range,
            RecvError::BadLength => &mut self.bad_length,
            RecvError::BadSequence => &mut self.bad_sequence,
            RecvError::BadCheck => &mut self.bad_check,
            RecvError::WrongProtocol => &mut self.wrong_protocol,
            RecvError::WrongVersion => &mut self.wrong_version,
            RecvError::Malformed => &mut self.malformed,
        };
        *c = c.saturating_add(1);
    }
}

/// The producer's counters.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct SendStats {
    /// Records published.
    pub sent: u64,
    /// Sends refused with [`SendError::Full`].
    pub full: u64,
    /// Sends refused with [`SendError::PeerIndexInvalid`].
    pub peer_index_invalid: u64,
    /// Times the consumer was woken.
    pub notified: u64,
}

/// Slots of `SLOT` bytes that fit in `words` data words.
const fn slot_count<const SLOT: usize>(words: usize) -> usize {
    words / (SLOT / 8)
}

/// The slots a data area of `words` holds, refused if none (or more than
/// the 32-bit slot index can name).
fn slots_of<const SLOT: usize>(words: usize) -> Result<usize, LayoutError> {
    let slots = slot_count::<SLOT>(words);
    if slots == 0 || slots > u32::MAX as usize {
        return Err(LayoutError::NoSlot);
    }
    Ok(slots)
}

/// The slot after `pos` in a ring of `slots`.
const fn next_pos(pos: usize, slots: usize) -> usize {
    if pos + 1 == slots {
        0
    } else {
        pos + 1
    }
}

const fn check_slot_size<const SLOT: usize>() {
    assert!(
        SLOT.is_multiple_of(8) && SLOT > SLOT_HEADER_BYTES && SLOT <= 1 << 16,
        "SLOT must be a multiple of 8 in 24..=65536"
    );
}

fn word(words: &[AtomicU64], i: usize) -> &AtomicU64 {
    // Indices come from the fixed layout constants and the locally kept
    // slot position, both below the lengths checked at construction; `get`
    // keeps even a logic error from touching memory outside the region.
    // The fallback is never taken, and cannot panic: the constructors
    // guarantee both slices are non-empty.
    match words.get(i) {
        Some(w) => w,
        None => &words[0],
    }
}

/// Writes record `index` into slot `pos`: payload words, then the length and
/// sequence word, then the check word (relaxed stores; `publish` releases them).
fn write_slot<const SLOT: usize>(data: &[AtomicU64], pos: usize, index: u64, src: &[u8]) {
    let base = pos * (SLOT / 8);
    let head = slot_word(src.len(), index);
    let mut check = Check::new(head);
    let mut put = |i: usize, bytes: [u8; 8]| {
        let w = u64::from_le_bytes(bytes);
        check = check.add(w);
        word(data, base + 2 + i).store(w, Ordering::Relaxed);
    };
    let whole = src.chunks_exact(8);
    let tail = whole.remainder();
    let n = whole.len();
    for (i, chunk) in whole.enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        put(i, bytes);
    }
    if !tail.is_empty() {
        // The last word is zero padded so the check word covers a
        // deterministic value.
        let mut bytes = [0u8; 8];
        bytes[..tail.len()].copy_from_slice(tail);
        put(n, bytes);
    }
    word(data, base).store(head, Ordering::Relaxed);
    word(data, base + 1).store(check.finish(), Ordering::Relaxed);
}

/// The sending side of a ring of `SLOT`-byte slots.
pub struct Producer<'a, const SLOT: usize, N: Notify = NoNotify> {
    header: &'a [AtomicU64],
    data: &'a [AtomicU64],
    slots: usize,
    produced: u64,
    /// The consumer's index as last loaded (Acquire) and validated: space
    /// known free without touching the consumer's cache line.
    consumed_seen: u64,
    pos: usize,
    buf: [u8; SLOT],
    notify: N,
    stats: SendStats,
}

impl<'a, const SLOT: usize, N: Notify> Producer<'a, SLOT, N> {
    /// Largest record payload in bytes.
    pub const MAX_PAYLOAD: usize = SLOT - SLOT_HEADER_BYTES;

    /// Takes the producer side of `mem`, writing the header's layout words.
    /// Continues from the `produced` index already in the header (zero in a
    /// fresh region), so a restarted producer does not rewind.
    /// `notify` is called when the consumer should wake up.
    pub fn new(mem: RingMemory<'a>, notify: N) -> Result<Self, LayoutError> {
        const { check_slot_size::<SLOT>() };
        let slots = slots_of::<SLOT>(mem.data.len())?;
        let header = mem.header;
        word(header, W_MAGIC).store(magic_word(), Ordering::Relaxed);
        word(header, W_GEOMETRY).store(geometry_word(SLOT, slots), Ordering::Relaxed);
        let produced = word(header, W_PRODUCED).load(Ordering::Relaxed);
        let pos = (produced % slots as u64) as usize;
        Ok(Producer {
            header,
            data: mem.data,
            slots,
            produced,
            // Assume full until the consumer's index is loaded and checked.
            consumed_seen: produced.wrapping_sub(slots as u64),
            pos,
            buf: [0; SLOT],
            notify,
            stats: SendStats::default(),
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// Counters.
    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// Sends one record (copied into the next slot).
    pub fn try_send(&mut self, record: &[u8]) -> Result<(), SendError> {
        if record.len() > Self::MAX_PAYLOAD {
            return Err(SendError::TooLarge);
        }
        self.reserve()?;
        write_slot::<SLOT>(self.data, self.pos, self.produced, record);
        self.publish();
        Ok(())
    }

    /// Sends one record that `fill` writes into a scratch buffer of
    /// [`Self::MAX_PAYLOAD`] bytes, returning its length (or `None` when it
    /// does not fit: [`SendError::TooLarge`]). `fill` is only called when
    /// there is room, so a full ring costs no encoding.
    pub fn try_send_with(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<(), SendError> {
        self.reserve()?;
        let max = Self::MAX_PAYLOAD;
        let len = match fill(&mut self.buf[..max]) {
            Some(len) if len <= max => len,
            _ => return Err(SendError::TooLarge),
        };
        write_slot::<SLOT>(self.data, self.pos, self.produced, &self.buf[..len]);
        self.publish();
        Ok(())
    }

    /// Makes sure the next slot is free, arming the wants-space flag first
    /// when it looks full so the consumer's wake-up cannot be lost.
    fn reserve(&mut self) -> Result<(), SendError> {
        if self.produced.wrapping_sub(self.consumed_seen) < self.slots as u64 {
            return Ok(());
        }
        match self.free_slots() {
            Err(e) => Err(e),
            Ok(0) => {
                word(self.header, W_PRODUCER_WANTS_SPACE).store(1, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                match self.free_slots() {
                    Ok(0) => {
                        self.stats.full = self.stats.full.saturating_add(1);
                        Err(SendError::Full)
                    }
                    other => other.map(|_| ()),
                }
            }
            Ok(_) => Ok(()),
        }
    }

    /// Loads and checks the consumer's index; returns the free slots.
    fn free_slots(&mut self) -> Result<u64, SendError> {
        let consumed = word(self.header, W_CONSUMED).load(Ordering::Acquire);
        let used = self.produced.wrapping_sub(consumed);
        if used > self.slots as u64 {
            self.stats.peer_index_invalid = self.stats.peer_index_invalid.saturating_add(1);
            return Err(SendError::PeerIndexInvalid);
        }
        self.consumed_seen = consumed;
        Ok(self.slots as u64 - used)
    }

    fn publish(&mut self) {
        let was = self.produced;
        self.produced = self.produced.wrapping_add(1);
        self.pos = next_pos(self.pos, self.slots);
        word(self.header, W_PRODUCED).store(self.produced, Ordering::Release);
        self.stats.sent = self.stats.sent.saturating_add(1);
        fence(Ordering::SeqCst);
        let consumed = word(self.header, W_CONSUMED).load(Ordering::Acquire);
        if self.produced.wrapping_sub(consumed) <= self.slots as u64 {
            self.consumed_seen = consumed;
        }
        let asked = word(self.header, W_CONSUMER_WANTS_NOTIFY);
        let asked = asked.load(Ordering::Relaxed) != 0 && asked.swap(0, Ordering::Relaxed) != 0;
        if consumed == was || asked {
            self.stats.notified = self.stats.notified.saturating_add(1);
            self.notify.notify();
        }
    }
}

/// The receiving side of a ring of `SLOT`-byte slots.
pub struct Consumer<'a, const SLOT: usize, N: Notify = NoNotify> {
    header: &'a [AtomicU64],
    data: &'a [AtomicU64],
    slots: usize,
    consumed: u64,
    /// The producer's index as last loaded (Acquire) and validated: records
    /// known to be there without touching the producer's cache line.
    produced_seen: u64,
    pos: usize,
    attached: bool,
    buf: [u8; SLOT],
    notify: N,
    stats: RecvStats,
}

impl<'a, const SLOT: usize, N: Notify> Consumer<'a, SLOT, N> {
    /// Largest record payload in bytes.
    pub const MAX_PAYLOAD: usize = SLOT - SLOT_HEADER_BYTES;

    /// Takes the consumer side of `mem`, continuing from the `consumed`
    /// index in the header (zero in a fresh region). `notify` is called when
    /// the producer waits for space and a slot was freed.
    pub fn new(mem: RingMemory<'a>, notify: N) -> Result<Self, LayoutError> {
        const { check_slot_size::<SLOT>() };
        let slots = slots_of::<SLOT>(mem.data.len())?;
        let consumed = word(mem.header, W_CONSUMED).load(Ordering::Relaxed);
        let pos = (consumed % slots as u64) as usize;
        Ok(Consumer {
            header: mem.header,
            data: mem.data,
            slots,
            consumed,
            produced_seen: consumed,
            pos,
            attached: false,
            buf: [0; SLOT],
            notify,
            stats: RecvStats::default(),
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// Counters.
    pub fn stats(&self) -> RecvStats {
        self.stats
    }

    /// A record the ring delivered was then rejected by the typed layer:
    /// count it as rejected instead of delivered.
    pub(crate) fn reject_delivered(&mut self, e: RecvError) {
        self.stats.delivered = self.stats.delivered.saturating_sub(1);
        self.stats.count(e);
    }

    /// Records published and not yet consumed, as the producer's index
    /// claims (0 when that index is impossible). Consumes nothing.
    pub fn pending(&self) -> usize {
        let avail = self.available();
        if avail > self.slots as u64 {
            0
        } else {
            avail as usize
        }
    }

    /// Asks the producer to notify on its next record even if the ring is
    /// not empty (for a consumer that stops before draining). Poll again
    /// after calling this before waiting: a record may have arrived meanwhile.
    pub fn request_notify(&mut self) {
        word(self.header, W_CONSUMER_WANTS_NOTIFY).store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Receives the next record, copied out of shared memory (so the peer
    /// cannot change it after it was checked) into a buffer borrowed until
    /// the next call.
    pub fn try_recv(&mut self) -> Result<&[u8], RecvError> {
        match self.next() {
            Ok(len) => {
                self.stats.delivered = self.stats.delivered.saturating_add(1);
                Ok(&self.buf[..len])
            }
            Err(e) => {
                self.stats.count(e);
                Err(e)
            }
        }
    }

    fn available(&self) -> u64 {
        word(self.header, W_PRODUCED)
            .load(Ordering::Acquire)
            .wrapping_sub(self.consumed)
    }

    fn next(&mut self) -> Result<usize, RecvError> {
        if self.produced_seen == self.consumed {
            let mut avail = self.available();
            if avail == 0 {
                // Pairs with the producer's fence (module docs): after it,
                // either we see the new record or the producer sees our
                // index and wakes us.
                fence(Ordering::SeqCst);
                avail = self.available();
                if avail == 0 {
                    return Err(RecvError::Empty);
                }
            }
            if avail > self.slots as u64 {
                return Err(RecvError::IndexOutOfRange);
            }
            self.produced_seen = self.consumed.wrapping_add(avail);
        }
        if !self.attached {
            // Loaded after the Acquire of `produced`, so a correct producer's
            // header writes (done before its first publish) are visible.
            let magic = word(self.header, W_MAGIC).load(Ordering::Relaxed);
            let geometry = word(self.header, W_GEOMETRY).load(Ordering::Relaxed);
            if magic != magic_word() || geometry != geometry_word(SLOT, self.slots) {
                return Err(RecvError::WrongLayout);
            }
            self.attached = true;
        }
        let result = self.read_slot();
        self.advance();
        result
    }

    fn read_slot(&mut self) -> Result<usize, RecvError> {
        let base = self.pos * (SLOT / 8);
        let head = word(self.data, base).load(Ordering::Relaxed);
        let (len, seq) = split_slot_word(head);
        if len > Self::MAX_PAYLOAD as u64 {
            return Err(RecvError::BadLength);
        }
        if seq != self.consumed as u32 {
            return Err(RecvError::BadSequence);
        }
        let len = len as usize;
        let mut check = Check::new(head);
        for (i, chunk) in self.buf[..words_for(len) * 8]
            .chunks_exact_mut(8)
            .enumerate()
        {
            let w = word(self.data, base + 2 + i).load(Ordering::Relaxed);
            check = check.add(w);
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        if word(self.data, base + 1).load(Ordering::Relaxed) != check.finish() {
            return Err(RecvError::BadCheck);
        }
        Ok(len)
    }

    /// Steps past the current slot (good or bad) and wakes a producer that
    /// waits for space.
    fn advance(&mut self) {
        self.consumed = self.consumed.wrapping_add(1);
        self.pos = next_pos(self.pos, self.slots);
        word(self.header, W_CONSUMED).store(self.consumed, Ordering::Release);
        fence(Ordering::SeqCst);
        let wants = word(self.header, W_PRODUCER_WANTS_SPACE);
        if wants.load(Ordering::Relaxed) != 0 && wants.swap(0, Ordering::Relaxed) != 0 {
            self.stats.notified = self.stats.notified.saturating_add(1);
            self.notify.notify();
        }
    }
}
