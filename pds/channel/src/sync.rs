//! The atomics the ring uses: `core`'s, or loom's under `--cfg loom` so the
//! model checker sees every access to the shared region.
#![forbid(unsafe_code)]

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU64, Ordering};
