//! Test hooks of the channels area (`pds/channel`, `pds/protocols`).
//!
//! The workspace tests (unit, behaviour and property tests) need nothing
//! installed. `extra` runs what plain `cargo test` cannot:
//! - loom model checking of the ring (`--cfg loom`, its own target dir so it
//!   does not invalidate the normal build);
//! - Miri on the tests that go through the crate's unsafe code;
//! - a short fuzz run draining arbitrary ring regions;
//! - the in-kernel system test `tests/channels` (two PDs stream typed
//!   messages both ways, a third floods a ring with hostile records), booted
//!   in QEMU through the kernel area's `system_test`.
//!
//! `bench` (run by `cargo xtask bench`) measures typed messages between two
//! PDs in QEMU (`tests/channel-bench`).

use std::process::Command;
use std::time::Duration;

use crate::{cargo, host, kernel, run, Result};

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
        .args([
            "test",
            "--release",
            "-p",
            "bulkhead-channel",
            "--test",
            "loom",
        ]))?;

    eprintln!("xtask: channels: Miri on the ring's unsafe code");
    host::nightly()?;
    host::rustup_component(Some("nightly"), "miri")?;
    host::rustup_component(Some("nightly"), "rust-src")?;
    run(Command::new("cargo")
        .current_dir(host::root())
        .env("MIRIFLAGS", "-Zmiri-strict-provenance")
        .args([
            "+nightly",
            "miri",
            "test",
            "-p",
            "bulkhead-channel",
            "--lib",
            "--test",
            "miri",
        ]))?;

    let fuzz = host::root().join("pds").join("channel").join("fuzz");
    host::fuzz_smoke(&fuzz, "drain_region", 20)?;

    eprintln!("xtask: channels: in-kernel streaming test (QEMU)");
    kernel::build()?;
    kernel::system_test(
        "channels",
        120,
        &["left| left: sent 20000 pings, got 20000 pongs"],
        &[],
    )
}

/// `cargo xtask bench` (after the kernel's IPC bench): typed messages from
/// one PD to another over a ring in QEMU with `-icount shift=0`, so TSC
/// ticks are guest instructions; compared with the PPC round trip of the
/// kernel bench in the same run (`ppc_cycles`), the other way to move a
/// small message between two PDs.
pub fn bench(ppc_cycles: Option<u64>) -> Result<()> {
    let dir = host::root().join("tests").join("channel-bench");
    println!("Typed channel bench (QEMU TCG, -icount shift=0: 1 TSC tick = 1 guest instruction)");
    for (file, name, what) in [
        ("system.xml", "channel-bench", "equal priorities (batched)"),
        (
            "system-prio.xml",
            "channel-bench-prio",
            "producer above consumer (a wake-up per slot)",
        ),
    ] {
        let per = bench_one(&dir.join(file), name)?;
        println!(
            "  {what}: {per} guest instructions per message, {:.0} messages/s at 1 instruction/ns (QEMU's icount clock)",
            1e9 / per.max(1) as f64
        );
        if let Some(ppc) = ppc_cycles {
            println!(
                "    ratio: PPC round trip ({ppc}) / ring message ({per}) = {:.2}",
                ppc as f64 / per.max(1) as f64
            );
        }
    }
    Ok(())
}

/// Boots one bench system; returns instructions per message.
fn bench_one(system: &std::path::Path, name: &str) -> Result<u64> {
    let iso = kernel::image(system, name)?;
    let mut c = kernel::qemu_command(&iso, false)?;
    c.args(["-icount", "shift=0"]);
    let r = kernel::run_collect(&mut c, Duration::from_secs(300), None, false)?;
    let line = r
        .output
        .lines()
        .find(|l| l.contains("BENCH channel_msg_cycles"));
    let (Some(line), Some(kernel::QEMU_PASS)) = (line, r.code) else {
        eprintln!("{}", r.output);
        return Err(format!(
            "channel bench {name} did not complete (QEMU exit {:?})",
            r.code
        ));
    };
    line.split("mean=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| format!("channel bench {name}: cannot read its line: {line}"))
}
