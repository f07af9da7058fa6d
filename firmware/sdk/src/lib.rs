//! The guest SDK for firmware containers, written for
//! `wasm32-unknown-unknown`.
//!
//! - [`host`]: safe wrappers over the firmware PD's host API (module
//!   `bulkhead`); each function needs a capability the container's manifest
//!   declares, or the container traps. Only on wasm32.
//! - [`memtest`], [`pci`], [`rtc`], [`serial`]: the POST algorithms,
//!   plain `no_std` code that also builds on the host, so it is unit-tested
//!   there and the benchmark runs the very same memory test natively beside
//!   the Wasm build.
//! - [`text::Text`]: a fixed-capacity string for report details (no
//!   allocator in containers).
//!
//! Design rules: no allocator, no `std`. The only `unsafe` is the FFI
//! declaration and calls in `ffi` (wasm32 only), each with its safety
//! argument; everything else is `#![deny(unsafe_code)]`.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod ffi;
#[cfg(target_arch = "wasm32")]
pub mod host;
pub mod memtest;
pub mod pci;
pub mod rtc;
pub mod serial;
pub mod text;

/// Ends the container on a Rust panic: `unreachable` traps the container,
/// the PD reports it, and nothing of the panic message is needed.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
