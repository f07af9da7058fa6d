//! The gateway PD: moves bytes between its channels, its SJA1000 cards and
//! `gateway_core::service::Gateway`, and nothing else. Every decision is the
//! core's; this crate only wires hardware and rings to it.
//!
//! - `clock`: a microsecond clock (the TSC at the kernel's calibrated rate).
//! - `pci`: placing a Kvaser card's I/O BARs at the ports `system.xml` grants.
//! - `card`: the SJA1000's `Registers` over granted ports, the S5920 INTCSR.
//! - `ring`: typed rings over the shared regions `system.xml` maps.
//! - `service`: the PD's handler (IRQs, requests, replies, statistics).
//!
//! Design rules: addresses, sizes and channel ids come from setvars; a
//! request's application is the one its channel is bound to, never what
//! the message claims; work per notification is bounded by the rings'
//! capacity and served round robin, so one application cannot starve
//! another. `unsafe` is confined to `ring` (turning a mapped region into a
//! ring) and the runtime's heap.

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

pub mod card;
pub mod clock;
pub mod pci;
pub mod ring;
pub mod service;

/// Slot size of request rings (application -> gateway): `AppToGateway::MAX_SIZE` (46) + 16.
pub const REQ_SLOT: usize = 64;
/// Slot size of reply rings (gateway -> application): `GatewayToApp::MAX_SIZE` (23) + 16.
pub const RSP_SLOT: usize = 40;

/// Label of the statistics call (`protected`): the reply carries
/// [`service::Counters`] in message registers 0..=5.
pub const LABEL_STATS: u64 = 1;
/// Label of the clock call: the reply carries the TSC ticks per
/// microsecond (register 0) and the gateway's time in microseconds
/// (register 1), for PDs that share its time base.
pub const LABEL_CLOCK: u64 = 2;

// The policy loader allocates once at init (the compiled policy's vectors);
// nothing allocates afterwards (gateway-core's no-allocation tests).
#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: bulkhead_microkit::heap::BumpHeap<{ 256 * 1024 }> =
    bulkhead_microkit::heap::BumpHeap::new();
