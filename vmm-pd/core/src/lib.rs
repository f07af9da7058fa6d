//! The VMM's logic, hardware-free: everything the VMM PD does to boot and
//! serve a Linux guest, written so the host can test it register by
//! register. The PD (`vmm-pd/pd`) only moves bytes between these models and
//! the kernel's vCPU interface.
//!
//! Design rules: no_std, no `unsafe`, no panics on any input — every value
//! here comes from the guest (port writes, MSR writes, CPUID leaves) or from
//! a guest image that could be corrupt, so everything is bounds-checked and
//! every failure is a small error enum.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod boot;
pub mod cpuid;
pub mod devices;
pub mod msr;
pub mod vmi;
