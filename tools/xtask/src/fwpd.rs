//! The firmware PD area (`firmware/pd`): its embedded POST bundle and its
//! QEMU system tests.
//!
//! The PD embeds the platform policy and the signed containers at build
//! time (`firmware/pd/build.rs` reads `BULKHEAD_FW_BUNDLE`). [`bundle_dir`]
//! prepares that directory from the signed containers of the firmware area
//! (`.cache/firmware`, made by `firmware::setup`, which signs with a fresh
//! development key): `policy.bin` from its `trust.toml`, the `.bhc` files,
//! and `order.txt` (run order). `kernel::build` calls it, so every PD build
//! (`cargo xtask run`, `test`, `bochs`) has a real firmware PD.
//!
//! `extra` boots two systems in QEMU:
//! - the reference system: every POST container's real result must be on
//!   the console, before the VMM is told to start the guest, and the boot
//!   must reach `REFERENCE_SYSTEM_UP`;
//! - `tests/firmware-critical`: the same PD built with a tampered (critical)
//!   memtest; the judging supervisor must receive a `Halt` summary naming
//!   it, and the VMM must never be notified.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{host, kernel, Result};

/// Run order of the POST containers.
const ORDER: &[&str] = &[
    "memtest.bhc",
    "pci-inventory.bhc",
    "timer-rtc.bhc",
    "serial-loopback.bhc",
];

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| format!("{}: path is not UTF-8", p.display()))
}

/// The signed containers of the firmware area, made once if missing.
fn signed_containers() -> Result<PathBuf> {
    let dir = host::cache_dir().join("firmware");
    let complete = ORDER.iter().all(|f| dir.join(f).is_file()) && dir.join("trust.toml").is_file();
    if !complete {
        crate::firmware::setup(&mut Vec::new())?;
    }
    Ok(dir)
}

/// Prepares the bundle the firmware PD embeds; `tampered` flips one byte of
/// memtest's module (its manifest hash then no longer matches).
pub fn bundle_dir(tampered: bool) -> Result<PathBuf> {
    let signed = signed_containers()?;
    let out = host::cache_dir()
        .join("fwpd")
        .join(if tampered { "critical" } else { "reference" });
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: cannot create: {e}", out.display()))?;
    let policy = out.join("policy.bin");
    crate::bulkhead(&[
        "container",
        "policy",
        path_str(&signed.join("trust.toml"))?,
        "-o",
        path_str(&policy)?,
    ])?;
    for name in ORDER {
        let mut bytes = std::fs::read(signed.join(name))
            .map_err(|e| format!("{}: cannot read: {e}", signed.join(name).display()))?;
        if tampered && *name == "memtest.bhc" {
            // Inside the module: before the 32-byte key and 64-byte signature
            // that end the file, past the manifest at the start.
            let at = bytes.len() - 96 - 200;
            bytes[at] ^= 0x01;
        }
        write_if_changed(&out.join(name), &bytes)?;
    }
    write_if_changed(&out.join("order.txt"), ORDER.join("\n").as_bytes())?;
    Ok(out)
}

/// Writes only on change, so cargo does not rebuild the PD for nothing.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// Builds the firmware PD for the target (on its own: built with the kernel,
/// cargo would unify its `alloc` features into the kernel's dependencies)
/// with the reference bundle, or the tampered one; returns the binary.
pub fn build_pd(tampered: bool) -> Result<PathBuf> {
    let mut c = crate::cargo();
    c.args(["build", "--release", "--target", kernel::TARGET])
        .args(["--package", "bulkhead-firmware-pd"])
        .env("RUSTFLAGS", kernel::PD_RUSTFLAGS)
        .env("BULKHEAD_FW_BUNDLE", bundle_dir(tampered)?);
    crate::run(&mut c)?;
    Ok(host::root()
        .join("target")
        .join(kernel::TARGET)
        .join("release")
        .join("firmware"))
}

/// Nothing to install beyond the kernel's and the firmware area's setup.
pub fn setup(_env: &mut Vec<(String, String)>) -> Result<()> {
    Ok(())
}

/// Builds the critical-failure variant of the PD as
/// `build/pds/firmware_critical.elf`, rebuilds the real one, and boots both
/// systems.
pub fn extra() -> Result<()> {
    let built = build_pd(true)?;
    std::fs::create_dir_all(kernel::pd_dir()).map_err(|e| e.to_string())?;
    let critical = kernel::pd_dir().join("firmware_critical.elf");
    std::fs::copy(&built, &critical)
        .map_err(|e| format!("{}: cannot copy: {e}", built.display()))?;
    // The real PD again (the reference image must not embed the tampered set).
    kernel::build()?;
    let mut failed = Vec::new();
    if let Err(e) = reference_post() {
        eprintln!("xtask: fwpd test reference-post: FAILED: {e}");
        failed.push("reference-post");
    }
    if let Err(e) = kernel::system_test(
        "firmware-critical",
        120,
        &[
            "firmware| BOOT STOPPED: a critical POST container did not pass",
            "firmware| POST decision: STOP (critical container in slot 0 did not pass)",
            "module length or SHA-256 differs from the manifest",
        ],
        &[],
    ) {
        eprintln!("xtask: fwpd test firmware-critical: FAILED: {e}");
        failed.push("firmware-critical");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("firmware PD tests failed: {}", failed.join(", ")))
    }
}

/// Boots the reference system; every container's real result must be on
/// the console, and the VMM must hear of the guest start only after them.
fn reference_post() -> Result<()> {
    let iso = kernel::reference_image()?;
    // kernel::qemu_command gives the machine COM2 (`-serial null`) for the
    // serial-loopback container; COM1 is the supervisor's console.
    let mut qemu = kernel::qemu_command(&iso, false)?;
    let r = kernel::run_collect(
        &mut qemu,
        Duration::from_secs(180),
        Some(kernel::REFERENCE_MARKER),
        false,
    )?;
    let log = host::root()
        .join("build")
        .join("reference")
        .join("post-serial.log");
    let _ = std::fs::write(&log, &r.output);
    let pos = |needle: &str| r.output.find(needle);
    let expect = [
        "firmware| POST report for platform qemu-q35: 4 container(s)",
        "firmware|   [0] memtest 1.0.0 (critical): PASS: ",
        "firmware|   [1] pci-inventory 1.0.0 (critical): PASS: ",
        "firmware|   [2] timer-rtc 1.0.0: PASS: ",
        "firmware|   [3] serial-loopback 1.0.0: PASS: ",
        "firmware|   scratch region: 131072 bytes wiped",
        "firmware| POST decision: BOOT",
        "firmware| BENCH verify+load memtest: ",
        "firmware| POST passed, containers wiped: telling the VMM to start the guest",
        "vmm| firmware says: start the guest",
        kernel::REFERENCE_MARKER,
    ];
    let mut last = 0;
    let mut problems = Vec::new();
    for (i, e) in expect.iter().enumerate() {
        match pos(e) {
            None => problems.push(format!("missing: {e:?}")),
            // The bench line comes before the report; order is checked from the report on.
            Some(p) if i != 7 && p < last => problems.push(format!("out of order: {e:?}")),
            Some(p) if i != 7 => last = p,
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        eprintln!("xtask: fwpd test reference-post: ok");
        for line in r.output.lines().filter(|l| l.contains("BENCH verify+load")) {
            eprintln!("xtask: {line}");
        }
        Ok(())
    } else {
        eprintln!("---- serial output ----\n{}\n----", r.output.trim_end());
        Err(format!("{} (log: {})", problems.join("; "), log.display()))
    }
}
