//! Bulkhead's VMI core: everything the monitor PD does to understand a Linux
//! guest from outside, written once and run both on live guest memory (in the
//! monitor PD) and on memory images (in `bulkhead vmi`).
//!
//! Design rules: no_std + alloc, no `unsafe`, no panics on any input — guest
//! memory is attacker-controlled, so every read is bounds-checked, every list
//! walk is bounded and loop-checked, and every failure is a small error enum.
//! Guest memory is reached only through the [`mem::PhysMem`] trait.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod checks;
pub mod linux;
pub mod mem;
pub mod paging;
pub mod profile;
pub mod text;
