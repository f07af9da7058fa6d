//! The typed layer: [`Sender<T>`]/[`Receiver<T>`] move `bulkhead-protocols`
//! messages through a ring, each record in the versioned envelope.
//!
//! The slot size is checked against `T::MAX_SIZE` at compile time, so a
//! message that encodes at all always fits its slot. On receive, a record
//! that is not this protocol, not this version, or does not decode is
//! rejected and counted like a ring-level error, and the ring has already
//! stepped past it: the next call reads the next record.
#![forbid(unsafe_code)]

use core::marker::PhantomData;

use bulkhead_protocols::envelope::{self, DecodeError, Message};

use crate::layout::SLOT_HEADER_BYTES;
use crate::region::{LayoutError, RingMemory};
use crate::ring::{
    Consumer, NoNotify, Notify, Producer, RecvError, RecvStats, SendError, SendStats,
};

/// Sends `T` messages over a ring of `SLOT`-byte slots.
pub struct Sender<'a, T: Message, const SLOT: usize, N: Notify = NoNotify> {
    ring: Producer<'a, SLOT, N>,
    _t: PhantomData<fn(&T)>,
}

impl<'a, T: Message, const SLOT: usize, N: Notify> Sender<'a, T, SLOT, N> {
    /// Takes the producer side of `mem` (see [`Producer::new`]).
    pub fn new(mem: RingMemory<'a>, notify: N) -> Result<Self, LayoutError> {
        const {
            assert!(
                T::MAX_SIZE + SLOT_HEADER_BYTES <= SLOT,
                "SLOT too small for this protocol's MAX_SIZE"
            )
        };
        Ok(Sender {
            ring: Producer::new(mem, notify)?,
            _t: PhantomData,
        })
    }

    /// Sends `msg`. On [`SendError::Full`] nothing was written; send again
    /// once the consumer has notified.
    pub fn send(&mut self, msg: &T) -> Result<(), SendError> {
        self.ring
            .try_send_with(|buf| envelope::encode(msg, buf).ok())
    }

    /// Counters.
    pub fn stats(&self) -> SendStats {
        self.ring.stats()
    }

    /// The underlying ring.
    pub fn ring(&self) -> &Producer<'a, SLOT, N> {
        &self.ring
    }
}

/// Receives `T` messages from a ring of `SLOT`-byte slots.
pub struct Receiver<'a, T: Message, const SLOT: usize, N: Notify = NoNotify> {
    ring: Consumer<'a, SLOT, N>,
    _t: PhantomData<fn() -> T>,
}

impl<'a, T: Message, const SLOT: usize, N: Notify> Receiver<'a, T, SLOT, N> {
    /// Takes the consumer side of `mem` (see [`Consumer::new`]).
    pub fn new(mem: RingMemory<'a>, notify: N) -> Result<Self, LayoutError> {
        const {
            assert!(
                T::MAX_SIZE + SLOT_HEADER_BYTES <= SLOT,
                "SLOT too small for this protocol's MAX_SIZE"
            )
        };
        Ok(Receiver {
            ring: Consumer::new(mem, notify)?,
            _t: PhantomData,
        })
    }

    /// Receives and decodes the next message.
    pub fn recv(&mut self) -> Result<T, RecvError> {
        let decoded = envelope::decode::<T>(self.ring.try_recv()?);
        decoded.map_err(|e| {
            let e = match e {
                DecodeError::WrongProtocol(_) => RecvError::WrongProtocol,
                DecodeError::WrongVersion(_) => RecvError::WrongVersion,
                DecodeError::Truncated | DecodeError::Malformed | DecodeError::TooLong => {
                    RecvError::Malformed
                }
            };
            self.ring.reject_delivered(e);
            e
        })
    }

    /// Counters (ring-level and decoding rejections). `delivered` counts
    /// messages handed to the caller.
    pub fn stats(&self) -> RecvStats {
        self.ring.stats()
    }

    /// Asks for a notification on the next record (see [`Consumer::request_notify`]).
    pub fn request_notify(&mut self) {
        self.ring.request_notify()
    }
}
