//! The VMM PD's logic, apart from the kernel calls: what to do with each
//! vCPU exit, the guest console, interrupt delivery from the device models,
//! and the exit statistics. The PD binary (`main.rs`) feeds it exits and
//! timer ticks; host tests feed it the same through [`Cpu`] and [`Board`]
//! doubles.
//!
//! Design rules: the guest is untrusted, so no exit it can cause makes the
//! VMM panic: an access nothing emulates gets the answer hardware would give
//! (all-ones reads, ignored writes, #GP for a refused MSR) and is counted;
//! only what cannot be answered (an access to guest-physical memory outside
//! RAM, an entry failure, a triple fault) ends the guest's run, with a
//! report. Output the guest floods is bounded by the device models' buffers
//! and this console's line length.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod board;
pub mod console;
pub mod exits;
pub mod guest;
pub mod stats;

pub use exits::{Board, Cpu, Machine, Verdict};
