//! Test hooks of the channels area (`pds/channel`, `pds/protocols`).
//!
//! The workspace tests (unit, behaviour and property tests) need nothing
//! installed. `extra` runs what plain `cargo test` cannot:
//! - loom model checking of the ring (`--cfg loom`, its own target dir so it
//!   does not invalidate the normal build);
//! - Miri on the tests that go through the crate's unsafe code;
//! - a short fuzz run draining arbitrary ring regions.

use std::process::Command;

use crate::{cargo, host, run, Result};

/// Nothing to prepare: the channel tests run on plain host memory.
pub fn setup(_env: &mut Vec<(String, String)>) -> Result<()> {
    Ok(())
}

/// Loom, Miri and the fuzz smoke run.
pub fn extra() -> Result<()> {
    eprintln!("xtask: channels: loom model checks");
    run(cargo()
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", host::root().join("target").join("loom"))
        .args(["test", "--release", "-p", "bulkhead-channel", "--test", "loom"]))?;

    eprintln!("xtask: channels: Miri on the ring's unsafe code");
    ensure_nightly()?;
    host::rustup_component(Some("nightly"), "miri")?;
    host::rustup_component(Some("nightly"), "rust-src")?;
    run(Command::new("cargo")
        .current_dir(host::root())
        .env("MIRIFLAGS", "-Zmiri-strict-provenance")
        .args(["+nightly", "miri", "test", "-p", "bulkhead-channel", "--lib", "--test", "miri"]))?;

    let fuzz = host::root().join("pds").join("channel").join("fuzz");
    host::fuzz_smoke(&fuzz, "drain_region", 20)
}

/// Miri and cargo-fuzz need a nightly toolchain; a fresh machine may lack one.
fn ensure_nightly() -> Result<()> {
    let present = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing the nightly toolchain (for Miri and fuzzing)");
    run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))
}
