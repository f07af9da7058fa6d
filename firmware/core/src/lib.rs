//! Temporary firmware containers: the part of the firmware PD a certifier reads.
//!
//! A container is a signed manifest plus a WebAssembly module (see
//! [`container`]). This crate parses containers, verifies them against the
//! platform's [`Policy`] in a fixed order that ends in either a
//! [`VerifiedContainer`] or a precise [`Refusal`], and defines the structured
//! [`PostReport`] that the firmware PD sends to the supervisor and prints.
//!
//! Design rules: `no_std` + `alloc`, no `unsafe`, no panics on any input
//! (every length and offset is checked, every decode returns an error enum),
//! and every encoding starts with a magic and a version so a PD built from an
//! older tree refuses a newer format instead of misreading it.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod container;
pub mod manifest;
pub mod report;
pub mod verify;
pub mod wasm;

pub use container::{Container, ParseError};
pub use manifest::{
    Capability, CapabilitySet, Date, Inspection, InspectionResult, Limits, Manifest,
    ProtectedRegion, Severity, Version,
};
pub use report::{Decision, Outcome, PostEntry, PostReport, TrapKind};
pub use verify::{verify, Policy, Refusal, TrustedKey, VerifiedContainer};
