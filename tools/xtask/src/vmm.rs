//! Test hooks of the VMM area (`vmm-pd/core`).
//!
//! - setup: nothing to install; the device models' tests are plain host
//!   unit tests.
//! - extra: a fuzz smoke run of the device models behind the port bus.

use crate::{host, Result};

/// The device model tests need no fixtures.
pub fn setup(_env: &mut Vec<(String, String)>) -> Result<()> {
    Ok(())
}

/// Fuzzes the port bus (UART, PIC, PIT, RTC, unknown ports) for a while.
pub fn extra() -> Result<()> {
    let fuzz = host::root().join("vmm-pd").join("core").join("fuzz");
    host::fuzz_smoke(&fuzz, "devices", 20)
}
