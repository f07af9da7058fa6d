//! Intel Processor Trace for the VMI monitor: a packet decoder and a
//! control-flow-integrity (CFI) checker.
//!
//! - [`packet`]: every packet of the SDM's PT chapter, decoded and encoded.
//! - [`decoder`]: a decoder over a whole buffer with libipt's contract
//!   (sync, offsets, error positions), and last-IP reconstruction.
//! - [`stream`]: the same over a trace that arrives in pieces.
//! - [`dump`]: packets as text, one per line (`bulkhead pt dump`).
//! - [`elf`]: the code image and function symbols of an ELF file.
//! - [`synth`]: a deterministic PRNG and random valid packets (tests, benches).
//! - [`cfi`]: the checker: a policy built from the guest's code, a
//!   packet-level fast path and an instruction-level slow path.
//!
//! Design rules: no `unsafe`; no allocation per packet (the decoders own no
//! heap memory at all; the CFI policy is built once, up front); no panics on
//! any input — every malformed byte sequence is an error value with an offset.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod cfi;
pub mod decoder;
pub mod dump;
pub mod elf;
pub mod packet;
pub mod stream;
pub mod synth;

pub use decoder::{find_psb, Decoded, Decoder, Error, Item, LastIp};
pub use packet::{encode, encode_bip, Config, ErrorKind, IpPayload, Ipc, Packet};
pub use stream::{Event, StreamDecoder};

#[cfg(test)]
mod tests;
