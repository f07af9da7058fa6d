//! isolation/loner: has no parent and writes to an unmapped address at once;
//! the kernel must stop it and report it on the console.

#![cfg_attr(target_os = "none", no_std, no_main)]
// Faults on purpose.
#![allow(unsafe_code)]

use bulkhead_microkit::{protection_domain, Handler, Infallible};

struct Loner;

fn init() -> Loner {
    // SAFETY: none — a write near address 0, on purpose.
    unsafe { core::ptr::write_volatile(core::ptr::without_provenance_mut::<u64>(8), 1) };
    Loner
}

impl Handler for Loner {
    type Error = Infallible;
}

protection_domain!(init);
