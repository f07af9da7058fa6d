//! Hardware-free logic of the Bulkhead kernel, tested on the host.
//!
//! - [`plan`]: the boot plan the host tool writes and the kernel reads — its
//!   versioned format, and the structural and bounds checks the kernel runs
//!   before it trusts a single field;
//! - [`caps`]: which channel a PD may notify or call, which IRQ and I/O ports
//!   it holds, where its faults go;
//! - [`boot_info`], [`acpi`]: what the boot loader and firmware hand over;
//! - [`sched`]: fixed-priority, round-robin scheduling with per-PD budgets;
//! - [`vm`], [`vmexit`], [`nested`]: hardware virtualization — a VM's
//!   guest-physical grants and views, exit normalisation for AMD-V and VT-x,
//!   NPT/EPT entry encoding.
//!
//! Design rules: no unsafe, no allocation (the kernel allocates nothing after
//! boot), no panics on any input: every decoder and check returns a small
//! error enum the kernel can print before it halts.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

pub mod acpi;
pub mod boot_info;
pub mod caps;
pub mod nested;
pub mod plan;
pub mod plan_vm;
pub mod sched;
pub mod vm;
pub mod vmcb;
pub mod vmcs;
pub mod vmexit;
