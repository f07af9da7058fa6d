//! The VMM PD binary (being integrated: see lib.rs).

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{protection_domain, Handler, Infallible};

struct Vmm;

fn init() -> Vmm {
    Vmm
}

impl Handler for Vmm {
    type Error = Infallible;
}

protection_domain!(init);
