//! `cargo xtask`: the one entry point for building, running and testing
//! Bulkhead (CONVENTIONS.md §2). A thin, readable wrapper: each command is a
//! short list of steps, and each step says what it runs.
//!
//! Commands:
//! - `test`  — every test: host unit tests, then the steps that need emulators,
//!   downloaded guests or external reference tools. Installs what it needs.
//! - `run`   — builds everything and boots the reference system in QEMU
//!   (`--uefi`: with OVMF), serial console on stdout.
//! - `bochs` — the same in Bochs (headless; VT-x capable CPU model).
//! - `bench` — the kernel's IPC bench (PPC round trip, notify→wake) and the
//!   typed-channel bench (messages between two PDs) in QEMU.
//! - `check` — `bulkhead check` on the reference `system.xml`.

#![forbid(unsafe_code)]

mod channels;
mod debian;
mod firmware;
mod fwpd;
mod gateway;
mod guest;
mod host;
mod kernel;
mod pt;
mod sdf;
mod virt;
mod vmi;
mod vmm;

use std::process::{Command, ExitCode};
use std::time::Instant;

/// Errors are plain text: xtask reports what failed and stops.
pub type Result<T> = std::result::Result<T, String>;

/// Runs a command with inherited stdio, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// `cargo` in the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(host::root());
    c
}

/// `bulkhead` built from this workspace, run with `args`.
pub fn bulkhead(args: &[&str]) -> Result<()> {
    run(cargo()
        .args(["run", "--quiet", "--release", "--package", "bulkhead", "--"])
        .args(args))
}

/// `cargo xtask test`: every test.
///
/// Each area of the platform has a module here with two functions:
/// - `setup(env)`: installs what its tests need and prepares fixtures (guest
///   images, memory dumps, reference tools), pushing environment variables
///   that tell its tests where they are;
/// - `extra()`: what runs after the workspace tests (fuzz smoke runs,
///   emulator system tests).
///
/// Tests that need such fixtures are `#[ignore = "..."]` in plain
/// `cargo test` and run here with `--include-ignored`; when run without
/// their fixtures they fail, they never skip silently.
fn test() -> Result<()> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (area, setup) in AREAS.iter().map(|a| (a.0, a.1)) {
        eprintln!("xtask: test setup: {area}");
        setup(&mut env)?;
    }
    let started = Instant::now();
    // Ignored tests are the ones that need the fixtures set up above, so
    // they run here; doctests run in their own pass, because for them
    // `--include-ignored` would also run the `ignore` examples, which are
    // illustrations and not meant to compile.
    let (passed, failed) = run_counting(
        cargo()
            .args(["test", "--workspace", "--lib", "--bins", "--tests"])
            .args(["--", "--include-ignored"])
            .envs(env.iter().map(|(k, v)| (k, v))),
    )?;
    let (doc_passed, doc_failed) = run_counting(
        cargo()
            .args(["test", "--workspace", "--doc"])
            .envs(env.iter().map(|(k, v)| (k, v))),
    )?;
    let (passed, failed) = (passed + doc_passed, failed + doc_failed);
    eprintln!(
        "xtask: workspace tests: {passed} passed in {}s",
        started.elapsed().as_secs()
    );
    if failed > 0 {
        return Err(format!("{failed} workspace tests failed"));
    }
    let mut steps = 0;
    for (area, extra) in AREAS.iter().map(|a| (a.0, a.2)) {
        eprintln!("xtask: extra tests: {area}");
        let started = Instant::now();
        extra()?;
        steps += 1;
        eprintln!(
            "xtask: extra tests: {area} passed in {}s",
            started.elapsed().as_secs()
        );
    }
    println!("xtask: {steps} extra test areas passed after the workspace tests");
    println!("tests: {passed} passed, 0 failed");
    Ok(())
}

/// Runs a `cargo test` command, echoing its output, and adds up the
/// `test result:` lines of every test binary: (passed, failed).
fn run_counting(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let (mut passed, mut failed) = (0, 0);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| format!("reading test output: {e}"))?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                passed += count_before(rest, " passed");
                failed += count_before(rest, " failed");
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo test: {e}"))?;
    if !status.success() && failed == 0 {
        return Err(format!("{cmd:?} failed with {status}"));
    }
    Ok((passed, failed))
}

/// The number just before `word` in a `test result:` line.
fn count_before(line: &str, word: &str) -> u64 {
    line.find(word)
        .and_then(|end| line[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Test setup for one area: installs and prepares, pushes env vars for its tests.
type Setup = fn(&mut Vec<(String, String)>) -> Result<()>;
/// Tests of one area that run after the workspace tests.
type Extra = fn() -> Result<()>;

/// Every area's test hooks, in the order they run.
const AREAS: &[(&str, Setup, Extra)] = &[
    ("sdf", sdf::setup, sdf::extra),
    ("channels", channels::setup, channels::extra),
    ("pt", pt::setup, pt::extra),
    ("gateway", gateway::setup, gateway::extra),
    ("firmware", firmware::setup, firmware::extra),
    ("kernel", kernel::setup, kernel::extra),
    ("guest", guest::setup, guest::extra),
    ("vmi", vmi::setup, vmi::extra),
    ("virt", virt::setup, virt::extra),
    ("fwpd", fwpd::setup, fwpd::extra),
    ("vmm", vmm::setup, vmm::extra),
];

/// `cargo xtask run [--uefi]`: builds everything and boots the reference
/// system in QEMU (SeaBIOS, or OVMF with `--uefi`), serial on stdout.
/// `cargo xtask test <area>...`: only those areas' setup and extras (the
/// system tests, fuzz smoke runs), for working on one part.
fn test_areas(names: &[String]) -> Result<()> {
    let mut env: Vec<(String, String)> = Vec::new();
    for name in names {
        let Some(area) = AREAS.iter().find(|a| a.0 == name) else {
            let known: Vec<&str> = AREAS.iter().map(|a| a.0).collect();
            return Err(format!(
                "no test area '{name}'; the areas are: {}",
                known.join(", ")
            ));
        };
        (area.1)(&mut env)?;
        for (k, v) in &env {
            std::env::set_var(k, v);
        }
        (area.2)()?;
    }
    Ok(())
}

fn run_system(args: &[String]) -> Result<()> {
    kernel::run_reference(args)
}

fn usage() -> String {
    "usage: cargo xtask <test [area...] | run [--uefi] | bochs | bench | check>".into()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next();
    let rest: Vec<String> = args.collect();
    if let Err(e) = host::toolchain() {
        eprintln!("xtask: error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cmd.as_deref() {
        Some("test") if rest.is_empty() => test(),
        Some("test") => test_areas(&rest),
        Some("run") => run_system(&rest),
        Some("bochs") => kernel::bochs(&rest),
        Some("bench") => kernel::bench(&rest)
            .and_then(|()| virt::bench())
            .and_then(|()| vmm::bench()),
        Some("check") => bulkhead(&["check", "system.xml"]),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn counts_come_from_cargo_test_result_lines() {
        let line = "FAILED. 12 passed; 3 failed; 1 ignored; 0 measured; 0 filtered out";
        assert_eq!(count_before(line, " passed"), 12);
        assert_eq!(count_before(line, " failed"), 3);
        assert_eq!(count_before("ok. nothing here", " passed"), 0);
    }
}
