//! Verified channels: single-producer single-consumer rings in memory shared
//! between two PDs, and a typed layer that moves `bulkhead-protocols`
//! messages through them.
//!
//! A ring lives in regions `system.xml` declares; each PD finds them through
//! `setvar_vaddr` symbols and builds a [`RingMemory`] from the address and
//! size ([`RingMemory::from_raw`] for one region, header then data, or
//! [`RingMemory::from_raw_parts`] for a header region and a data region, so
//! the consumer can map the data read-only). The producer takes it as a
//! [`Producer`] or [`Sender`], the consumer as a [`Consumer`] or
//! [`Receiver`], each with a [`Notify`] hook that calls the channel's
//! `notify`.
//!
//! Design rules:
//! - the peer may be compromised: receiving never panics, never touches
//!   memory outside the region, copies a record out before checking it, and
//!   turns everything wrong into a counted [`RecvError`] (see its docs for
//!   how the consumer resynchronises);
//! - backpressure, never loss: a full ring refuses the send with
//!   [`SendError::Full`] and overwrites nothing;
//! - notifications are coalesced: the producer wakes the consumer only when
//!   the ring goes from empty to non-empty, or when the consumer asked;
//! - `unsafe` is confined to [`region`], which turns the raw region into
//!   atomic words; every other module forbids it.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod adversary;
pub mod layout;
#[allow(unsafe_code)] // The one module that may: raw region → atomic words.
pub mod region;
pub mod ring;
pub mod rules;
mod sync;
pub mod typed;

pub use region::{LayoutError, RingMemory};
pub use ring::{Consumer, NoNotify, Notify, Producer, RecvError, RecvStats, SendError, SendStats};
pub use sync::AtomicU64;
pub use typed::{Receiver, Sender};
