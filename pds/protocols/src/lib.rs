//! Message types shared by both ends of Bulkhead's typed channels.
//!
//! Every interface between two PDs is a Rust enum here, encoded with postcard
//! inside the [`envelope`] (protocol id + version), bounded in size
//! ([`envelope::Message::MAX_SIZE`], checked by each module's tests) and
//! built only from fixed-capacity types (`heapless`), so neither end ever
//! allocates to send or receive.
//!
//! Design rules:
//! - one enum per direction of a channel, each with its own
//!   [`envelope::ProtocolId`], so a record on the wrong channel is rejected;
//! - nothing in a message is trusted for the sender's identity: the receiver
//!   knows which channel (and so which PD) a record came from;
//! - small and documented; later issues extend these enums by bumping their
//!   `VERSION` (see [`envelope`]).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod console;
pub mod envelope;
pub mod gateway;
pub mod post;
pub mod regs;
pub mod supervisor;
pub mod vmi;

pub use envelope::{decode, encode, DecodeError, EncodeError, Message, ProtocolId};
