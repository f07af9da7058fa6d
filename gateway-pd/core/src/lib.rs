//! The gateway's policy engine: the part of the gateway PD a certifier reads.
//!
//! Guest applications reach the vehicle's CAN buses and the network only
//! through the gateway; this crate decides, frame by frame and port by port,
//! what each application may do. It is hardware-free and runs the same on the
//! host (replaying CAN logs, benchmarks, fuzzing) and in the PD.
//!
//! Design rules:
//! - `no_std`, no `unsafe`, no panics on any input: a compiled policy or a
//!   frame that is malformed yields an error or a denial, never a crash.
//! - Allocation happens once, when a compiled policy is loaded
//!   ([`Policy::from_bytes`], [`Engine::new`]); the per-frame path
//!   ([`Engine::check_send`], [`Engine::check_receive`], [`Engine::observe`])
//!   never allocates.
//! - Default deny. Every [`Decision`] names the rule that made it (or none,
//!   for the default) and why; denials go to a bounded, rate-limited
//!   [`audit`] log.
//! - Signals are compared as raw integers: the policy compiler turns
//!   physical ranges and named values into raw ranges, so the engine needs
//!   no floating point.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod audit;
pub mod bucket;
pub mod candump;
pub mod engine;
pub mod frame;
pub mod policy;
pub mod service;
pub mod signal;

pub use engine::{AppEvent, AppEventKind, AppState, Decision, Direction, Engine, Reason, Verdict};
pub use frame::{Frame, FrameKind};
pub use policy::{LoadError, Policy};
