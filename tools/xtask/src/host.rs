//! Host setup: makes sure what a step needs is installed, from the registries
//! the project may use (Debian packages, rustup components, PyPI, crates.io).
//!
//! Every installer is idempotent and cheap when the thing is already there, so
//! a step simply asks for what it needs before it runs. On a fresh machine
//! (CI) this is what installs everything; nothing is expected to be there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use crate::{run, Result};

/// The workspace root (where the top `Cargo.toml` is).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .expect("tools/xtask sits two levels below the root")
        .to_path_buf()
}

/// A directory for downloaded and generated things that survive `cargo clean`
/// but are never committed (`.cache/` is git-ignored).
pub fn cache_dir() -> PathBuf {
    let dir = root().join(".cache");
    std::fs::create_dir_all(&dir).expect("create .cache");
    dir
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `cmd` prefixed with `sudo` when we are not root.
fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

static APT_UPDATE: Once = Once::new();

/// Runs `apt-get update` at most once per xtask run.
pub fn apt_update() -> Result<()> {
    let mut result = Ok(());
    APT_UPDATE.call_once(|| {
        eprintln!("xtask: apt-get update");
        result = run(privileged("apt-get").args(["update", "-qq"]));
    });
    result
}

/// Installs the Debian packages that are missing.
pub fn apt(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_update()?;
    eprintln!("xtask: installing {}", missing.join(" "));
    run(privileged("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
}

/// Adds a rustup component to a toolchain (the pinned one when `toolchain` is None).
pub fn rustup_component(toolchain: Option<&str>, component: &str) -> Result<()> {
    let mut c = Command::new("rustup");
    c.arg("component").arg("add").arg(component);
    if let Some(t) = toolchain {
        c.arg("--toolchain").arg(t);
    }
    c.current_dir(root());
    run(&mut c)
}

/// Installs a cargo subcommand from crates.io if `probe` does not run.
pub fn cargo_install(krate: &str, version: &str, probe: &[&str]) -> Result<()> {
    let ok = Command::new("cargo")
        .args(probe)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Ok(());
    }
    eprintln!("xtask: cargo install {krate}@{version}");
    run(Command::new("cargo").args(["install", "--locked", krate, "--version", version]))
}

/// A Python virtual environment under `.cache/venv` with `packages`
/// (pip requirement strings) installed; returns the path of its `python`.
pub fn python_venv(packages: &[&str]) -> Result<PathBuf> {
    apt(&["python3-venv"]).ok(); // Debian's python3 needs it; other pythons carry venv.
    let venv = cache_dir().join("venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|spec| !pip_has(&python, spec))
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask: pip install {}", missing.join(" "));
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(&missing))?;
    }
    Ok(python)
}

fn pip_has(python: &Path, spec: &str) -> bool {
    let name = spec
        .split(|c: char| "=<>!~[ ".contains(c))
        .next()
        .unwrap_or(spec);
    Command::new(python)
        .args(["-m", "pip", "show", "-q", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs a `cargo fuzz` target for `seconds` as a smoke test: proves that no
/// input the fuzzer reaches in that time panics. `fuzz_dir` is the crate's
/// `fuzz/` directory (its own workspace, built with the nightly toolchain).
pub fn fuzz_smoke(fuzz_dir: &Path, target: &str, seconds: u32) -> Result<()> {
    nightly()?;
    rustup_component(Some("nightly"), "rust-src")?;
    cargo_install("cargo-fuzz", "0.12.0", &["fuzz", "--version"])?;
    // libFuzzer reports every new input; keep that in a log and show its
    // tail only when the run fails, so CI output stays readable.
    let logs = root().join("target").join("fuzz-logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("create {}: {e}", logs.display()))?;
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    eprintln!(
        "xtask: fuzzing {target} for {seconds}s (log: {})",
        log_path.display()
    );
    let result = run(Command::new("cargo")
        .current_dir(fuzz_dir.parent().unwrap_or(fuzz_dir))
        .args(["+nightly", "fuzz", "run", "--fuzz-dir"])
        .arg(fuzz_dir)
        .arg(target)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048")
        .stdout(log)
        .stderr(log_err));
    if result.is_err() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of {} ---", log_path.display());
        for line in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("{line}");
        }
    }
    result
}

/// Makes sure the pinned toolchain has the targets and components
/// `rust-toolchain.toml` names. rustup installs them by itself only when
/// automatic installation is on, and a fresh machine may have it off.
pub fn toolchain() -> Result<()> {
    run(Command::new("rustup").current_dir(root()).args([
        "--quiet",
        "target",
        "add",
        "x86_64-unknown-none",
        "wasm32-unknown-unknown",
    ]))?;
    run(Command::new("rustup").current_dir(root()).args([
        "--quiet",
        "component",
        "add",
        "rust-src",
        "llvm-tools",
    ]))
}

/// Miri and cargo-fuzz need a nightly toolchain; a fresh machine may lack one.
pub fn nightly() -> Result<()> {
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
