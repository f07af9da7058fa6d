//! Test hooks of the `sdf` area (`bulkhead check`, crate `bulkhead-sdf`).
//!
//! - setup: a Python venv with `sdfgen`, the Microkit SDF generator, so a
//!   test can render x86_64 systems with it and check that `bulkhead check`
//!   accepts them as they are (BULKHEAD_PYTHON names that python);
//! - extra: a short fuzz run of the parser proving no input panics.

use crate::{host, Result};

/// The sdfgen release the tests were written against (its x86_64
/// rendering: IOAPIC/MSI irqs, ioports, VMs).
const SDFGEN: &str = "sdfgen==0.35.1";

pub fn setup(env: &mut Vec<(String, String)>) -> Result<()> {
    let python = host::python_venv(&[SDFGEN])?;
    env.push(("BULKHEAD_PYTHON".into(), python.display().to_string()));
    Ok(())
}

pub fn extra() -> Result<()> {
    host::fuzz_smoke(&host::root().join("tools/sdf/fuzz"), "parse", 20)
}
