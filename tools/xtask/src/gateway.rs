//! Test hooks for the gateway (`gateway-pd/`): its host tests need the real
//! DBC files in `shared/data/dbc` beside the clone; after the workspace
//! tests, the example policy is checked through the CLI and both fuzz
//! targets get a short smoke run.
//!
//! Not here yet: the QEMU system test (two SJA1000s on a QEMU can-bus),
//! which needs the kernel.

use crate::{bulkhead, host, Result};

/// Where the shared data sits: beside the clone in CI, possibly further up
/// for a developer's worktree.
fn dbc_dir() -> Option<std::path::PathBuf> {
    host::root()
        .ancestors()
        .skip(1)
        .map(|d| d.join("shared/data/dbc"))
        .find(|d| d.is_dir())
}

/// Checks that the DBC files the gateway tests read are there.
pub fn setup(_env: &mut Vec<(String, String)>) -> Result<()> {
    match dbc_dir() {
        Some(_) => Ok(()),
        None => Err(format!(
            "gateway tests need shared/data/dbc beside the repository ({}): place the shared/ directory next to the clone",
            host::root().display()
        )),
    }
}

/// CLI smoke check of the example policy, then fuzz smoke runs.
pub fn extra() -> Result<()> {
    let dbc = dbc_dir()
        .ok_or("shared/data/dbc not found")?
        .join("toyota_prius_2010_pt.dbc");
    let out = host::cache_dir().join("gateway-example.bin");
    bulkhead(&[
        "gateway",
        "check",
        "gateway-pd/policies/example.toml",
        "--dbc",
        &dbc.to_string_lossy(),
        "-o",
        &out.to_string_lossy(),
    ])?;
    bulkhead(&["gateway", "explain", &out.to_string_lossy()])?;
    let fuzz = host::root().join("gateway-pd/core/fuzz");
    host::fuzz_smoke(&fuzz, "policy_load", 20)?;
    host::fuzz_smoke(&fuzz, "frame_path", 20)?;
    Ok(())
}
