//! Test hooks for the gateway (`gateway-pd/`): its host tests need the real
//! DBC files in `shared/data/dbc` beside the clone; after the workspace
//! tests, the example policy is checked through the CLI and both fuzz
//! targets get a short smoke run.
//!
//! The tests that drive QEMU's SJA1000 model (two `kvaser_pci` cards on
//! one `can-bus`, through qtest) need QEMU, installed here. The system test
//! `tests/gateway` boots the gateway PD, a vehicle simulator, a guest
//! application and a babbler on the kernel, with two such cards.

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

/// Checks that the DBC files the gateway tests read are there, and
/// installs QEMU for the tests that drive its `kvaser_pci` SJA1000 model
/// over qtest (`BULKHEAD_QEMU_X86`).
pub fn setup(env: &mut Vec<(String, String)>) -> Result<()> {
    host::apt(&["qemu-system-x86"])?;
    env.push(("BULKHEAD_QEMU_X86".into(), "qemu-system-x86_64".into()));
    match dbc_dir() {
        Some(_) => Ok(()),
        None => Err(format!(
            "gateway tests need shared/data/dbc beside the repository ({}): place the shared/ directory next to the clone",
            host::root().display()
        )),
    }
}

/// Boots `tests/gateway` in QEMU with two `kvaser_pci` cards on one
/// `can-bus` (slots 4 and 5, as its system.xml says).
pub fn system_test() -> Result<()> {
    crate::kernel::build()?;
    crate::kernel::system_test(
        "gateway",
        180,
        &[],
        &[
            "-object",
            "can-bus,id=canbus0",
            "-device",
            "kvaser_pci,canbus=canbus0,addr=04.0",
            "-device",
            "kvaser_pci,canbus=canbus0,addr=05.0",
        ],
    )
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
    // The PDs embed the committed compiled policy: it must be what the
    // compiler makes of example.toml today.
    let committed = host::root().join("gateway-pd/policies/example.bin");
    let fresh = std::fs::read(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
    let embedded = std::fs::read(&committed)
        .map_err(|e| format!("cannot read {}: {e}", committed.display()))?;
    if fresh != embedded {
        return Err(format!(
            "{} is stale: regenerate it with `bulkhead gateway check gateway-pd/policies/example.toml --dbc {} -o {}`",
            committed.display(),
            dbc.display(),
            committed.display()
        ));
    }
    system_test()?;
    let fuzz = host::root().join("gateway-pd/core/fuzz");
    host::fuzz_smoke(&fuzz, "policy_load", 20)?;
    host::fuzz_smoke(&fuzz, "frame_path", 20)?;
    Ok(())
}
