//! Test hooks of the Intel PT area (`monitor-pd/pt`, `monitor-pd/pt-ref`).
//!
//! - setup: libipt (Debian `libipt-dev`) is the reference decoder the
//!   `bulkhead-pt-ref` tests compare ours with; its build script compiles
//!   the C shim only when the headers are there, so install them first.
//! - extra: fuzz smoke runs of the packet decoders and of the CFI checker.

use crate::{host, Result};

/// Installs libipt for the reference tests.
pub fn setup(_env: &mut Vec<(String, String)>) -> Result<()> {
    host::apt(&["libipt-dev"])
}

/// Fuzzes the slice and stream decoders, then the checker, for a short while.
pub fn extra() -> Result<()> {
    let fuzz = host::root().join("monitor-pd").join("pt").join("fuzz");
    host::fuzz_smoke(&fuzz, "decode", 20)?;
    host::fuzz_smoke(&fuzz, "check", 20)
}
