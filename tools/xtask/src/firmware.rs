//! Test hooks of the firmware containers area (`firmware/`).
//!
//! `setup`: builds the sample containers for wasm32 (their own workspace,
//! `firmware/containers`), makes a fresh development key, builds and signs
//! every container with `bulkhead container`, and copies the reference trust
//! configuration beside the key. Tests find all of it through
//! `BULKHEAD_FW_CONTAINERS` (a directory holding `<name>.bhc`, `<name>.wasm`,
//! `dev.pub` and `trust.toml`).
//!
//! `extra`: a fuzz smoke run of the container, manifest, policy and report
//! decoders (and verification) in `firmware/core/fuzz`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{host, run, Result};

/// The sample containers: crate directory name and wasm file stem.
const CONTAINERS: &[(&str, &str)] = &[
    ("memtest", "memtest"),
    ("pci-inventory", "pci_inventory"),
    ("timer-rtc", "timer_rtc"),
    ("serial-loopback", "serial_loopback"),
];

/// Builds the containers; returns the directory holding the `.wasm` files.
fn build_containers() -> Result<PathBuf> {
    run(Command::new("rustup")
        .args(["target", "add", "wasm32-unknown-unknown"])
        .current_dir(host::root()))?;
    let target_dir = host::root().join("target").join("containers");
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(host::root().join("firmware").join("containers"))
            .env("CARGO_TARGET_DIR", &target_dir)
            .args([
                "build",
                "--quiet",
                "--release",
                "--target",
                "wasm32-unknown-unknown",
            ]),
    )?;
    Ok(target_dir.join("wasm32-unknown-unknown").join("release"))
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| format!("{}: path is not UTF-8", p.display()))
}

pub fn setup(env: &mut Vec<(String, String)>) -> Result<()> {
    let wasm_dir = build_containers()?;
    let out = host::cache_dir().join("firmware");
    // A fresh key every run: keygen never overwrites, and no key outlives a test run.
    if out.exists() {
        std::fs::remove_dir_all(&out)
            .map_err(|e| format!("{}: cannot clear: {e}", out.display()))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    let key = out.join("dev");
    crate::bulkhead(&["container", "keygen", path_str(&key)?])?;
    let src = host::root().join("firmware").join("containers");
    for (name, stem) in CONTAINERS {
        let wasm = wasm_dir.join(format!("{stem}.wasm"));
        let copy = out.join(format!("{name}.wasm"));
        std::fs::copy(&wasm, &copy).map_err(|e| format!("{}: cannot copy: {e}", wasm.display()))?;
        let bhc = out.join(format!("{name}.bhc"));
        let manifest = src.join(name).join("manifest.toml");
        crate::bulkhead(&[
            "container",
            "build",
            path_str(&copy)?,
            "--manifest",
            path_str(&manifest)?,
            "-o",
            path_str(&bhc)?,
        ])?;
        crate::bulkhead(&[
            "container",
            "sign",
            path_str(&bhc)?,
            "--key",
            path_str(&out.join("dev.sec"))?,
        ])?;
    }
    let trust = out.join("trust.toml");
    std::fs::copy(src.join("trust.toml"), &trust)
        .map_err(|e| format!("trust.toml: cannot copy: {e}"))?;
    crate::bulkhead(&[
        "container",
        "verify",
        path_str(&out.join("memtest.bhc"))?,
        "--policy",
        path_str(&trust)?,
    ])?;
    env.push(("BULKHEAD_FW_CONTAINERS".into(), path_str(&out)?.into()));
    Ok(())
}

pub fn extra() -> Result<()> {
    host::fuzz_smoke(
        &host::root().join("firmware").join("core").join("fuzz"),
        "decode",
        20,
    )
}
