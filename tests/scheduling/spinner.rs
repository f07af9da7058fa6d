//! scheduling/spinner: never blocks; counts in shared memory.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{protection_domain, setvar, Handler, Infallible};
use bulkhead_test_pds::Shared;

setvar!(shared);

struct Spinner;

fn init() -> Spinner {
    let sh = Shared::new(shared.get());
    let mut n = 0u64;
    loop {
        n += 1;
        sh.write(0, n);
    }
}

impl Handler for Spinner {
    type Error = Infallible;
}

protection_domain!(init);
