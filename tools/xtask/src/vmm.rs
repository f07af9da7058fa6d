//! Test hooks of the VMM area (`vmm-pd/core`, `vmm-pd/pd`).
//!
//! - setup: nothing to install beyond the guest area's images (the device
//!   models' tests are plain host unit tests);
//! - extra: a fuzz smoke run of the device models behind the port bus, then
//!   the reference system in QEMU (AMD-V) booting Debian's Linux in the VMM
//!   PD: the banner, `/init`, the guest script's `uname -r` and `ps`, the
//!   monitor's reading of the guest's registers.
//!
//! `cargo xtask bench` adds the boot figure: time from the VM's start to
//! the guest's ready marker, beside the same kernel and initramfs booted
//! directly by QEMU in the same run, and the VM exits by reason.

use std::time::Duration;

use crate::guest::{self, Timed};
use crate::{debian, host, kernel, Result};

/// The VMM's line when it starts the guest, and the guest's markers.
const STARTING: &str = "vmm| linux: starting guest";
const READY: &str = "vmm| linux| BULKHEAD_GUEST_READY";
const DONE: &str = "vmm| linux| BULKHEAD_GUEST_DONE";

/// What the tests type on the platform console after the guest's scripts,
/// and the line its answer makes (the command's echo does not contain it).
const TYPED: &str = "echo typed-$((6*7))\n";
const TYPED_ANSWER: &str = "vmm| linux| typed-42";

/// The device model tests need no fixtures.
pub fn setup(_env: &mut Vec<(String, String)>) -> Result<()> {
    Ok(())
}

/// Fuzzes the port bus, then boots Linux on the reference system with a
/// guest that misbehaves on its first boot.
pub fn extra() -> Result<()> {
    let fuzz = host::root().join("vmm-pd").join("core").join("fuzz");
    host::fuzz_smoke(&fuzz, "devices", 20)?;
    let run = boot_reference(ROBUST)?;
    check_linux(&run)?;
    check_robustness(&run)
}

/// The scenario name of the reference system booted with the robustness
/// script in its initramfs (`build/linux-robust/initramfs.cpio`, found
/// before the plain one).
const ROBUST: &str = "linux-robust";

fn robust_initramfs() -> Result<()> {
    let img = guest::images()?;
    let dir = host::root().join("build").join(ROBUST);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let scripts = host::root().join("tools").join("guest").join("scripts");
    crate::bulkhead(&[
        "guest",
        "--busybox",
        &img.busybox_deb.display().to_string(),
        "--script",
        &scripts.join("system-info.sh").display().to_string(),
        "--script",
        &scripts.join("robustness.sh").display().to_string(),
        "--out",
        &dir.join("initramfs.cpio").display().to_string(),
    ])
}

/// Boots the reference system (`reference`, or the robustness variant) in
/// QEMU TCG until the guest is done.
fn boot_reference(variant: &str) -> Result<Timed> {
    kernel::build()?;
    let iso = if variant == ROBUST {
        robust_initramfs()?;
        kernel::image(&host::root().join("system.xml"), ROBUST)?
    } else {
        kernel::reference_image()?
    };
    eprintln!(
        "xtask: vmm: booting Linux on the reference system ({})",
        iso.display()
    );
    let mut c = kernel::qemu_command(&iso, false)?;
    // Once the guest offers its shell, type a command on the platform
    // console: it must reach the guest through the supervisor and the VMM.
    let run = guest::run_typing(
        &mut c,
        Duration::from_secs(400),
        &[(DONE, TYPED)],
        TYPED_ANSWER,
    )?;
    let log = host::root().join("build").join(variant).join("linux.log");
    let _ = std::fs::write(&log, run.output());
    Ok(run)
}

/// What the guest run must show, in order.
fn check_linux(run: &Timed) -> Result<()> {
    let pkg = debian::kernel_abi_package()?;
    let release = pkg.strip_prefix("linux-image-").unwrap_or(&pkg).to_string();
    let uname = format!("vmm| linux| guest uname -r: {release}");
    let expect: [(&str, &str); 8] = [
        (
            "the kernel creates the VM",
            "bulkhead: VM 'linux': AMD-V, NPT",
        ),
        ("the VMM loads and starts the guest", STARTING),
        (
            "Linux prints its banner",
            "vmm| linux| [    0.000000] Linux version ",
        ),
        (
            "Linux finds the emulated UART",
            "serial8250: ttyS0 at I/O 0x3f8 (irq = 4",
        ),
        ("/init runs", READY),
        ("the guest script prints uname -r", &uname),
        (
            "ps lists init as PID 1",
            "vmm| linux|     1 0        {init} /bin/sh /init",
        ),
        ("the guest finishes its scripts", DONE),
    ];
    let out = run.output();
    let at = in_order(&out, "Linux on the reference system", &expect)?;
    // The monitor asks once the VMM says the guest is up: after the ready
    // marker, in whatever order with the guest's own lines.
    let monitor = "monitor| guest: CR3=";
    let after_ready = out.find(READY).map_or("", |i| &out[i..]);
    if !after_ready.contains(monitor) {
        return Err(format!("Linux on the reference system: the monitor did not read the guest's registers (no {monitor:?} after the ready marker)"));
    }
    if !out[at..].contains(TYPED_ANSWER) {
        return Err(format!("Linux on the reference system: a command typed on the platform console got no answer ({TYPED_ANSWER:?})"));
    }
    if !out.contains(kernel::REFERENCE_MARKER) {
        return Err(format!(
            "Linux booted but the reference system did not report {}",
            kernel::REFERENCE_MARKER
        ));
    }
    eprintln!("xtask: vmm: Linux {release} booted in the VMM PD, ran /init and its script");
    Ok(())
}

/// `cargo xtask bench`, the VMM part: the guest's boot time in the VMM
/// against a direct QEMU boot of the same kernel and initramfs.
pub fn bench() -> Result<()> {
    let img = guest::images()?;
    let direct = guest::direct_boot(&img.kernel, &img.initramfs, &[], Duration::from_secs(300))?;
    let run = boot_reference("reference")?;
    check_linux(&run)?;
    let (Some(start), Some(ready)) = (run.first(STARTING), run.first(READY)) else {
        return Err("the VMM boot printed no start or ready line".into());
    };
    let Some(direct_ready) = direct.ready else {
        return Err("the direct boot printed no ready marker".into());
    };
    let in_vmm = ready.saturating_sub(start);
    println!(
        "bulkhead linux_boot_to_ready_ms vmm={} direct_qemu={} ratio={:.2}",
        in_vmm.as_millis(),
        direct_ready.as_millis(),
        in_vmm.as_secs_f64() / direct_ready.as_secs_f64().max(1e-9)
    );
    println!("  (vmm: from the VMM's start of the vCPU; direct: from QEMU's start, firmware included; both QEMU TCG, wall clock)");
    for (_, line) in &run.lines {
        if let Some(rest) = line.strip_prefix("vmm| linux:   exits ") {
            println!(
                "bulkhead linux_boot_exits {}",
                rest.split_whitespace().collect::<Vec<_>>().join("=")
            );
        }
        if line.starts_with("vmm| linux: guest ready") {
            println!("  {}", line.trim_start_matches("vmm| "));
        }
    }
    Ok(())
}

/// The misbehaving first boot: the VMM absorbed the port hammering and the
/// flood, saw the crash's reset request, rebooted the guest, and the
/// second boot ran to its end.
fn check_robustness(run: &Timed) -> Result<()> {
    let expect: [(&str, &str); 7] = [
        (
            "the guest hammers unknown ports",
            "vmm| linux| robustness: hammering 8192 unknown ports",
        ),
        ("the guest floods its console", "vmm| linux| flood 299 "),
        (
            "the guest crashes its kernel",
            "Kernel panic - not syncing: sysrq triggered crash",
        ),
        (
            "the VMM counts what it absorbed",
            "accesses to ports no device answers",
        ),
        (
            "the VMM reboots the guest",
            "vmm| linux: the guest asked for a reset: rebooting the guest (reboot 1 of at most",
        ),
        ("the second boot reaches /init", READY),
        (
            "the second boot behaves",
            "vmm| linux| robustness: boot 2 is well",
        ),
    ];
    let out = run.output();
    let at = in_order(&out, "VMM robustness", &expect)?;
    if !out[at..].contains(DONE) {
        return Err("VMM robustness: the rebooted guest did not finish its scripts".into());
    }
    eprintln!("xtask: vmm: the VMM absorbed port hammering, a console flood and a kernel crash, and rebooted the guest");
    Ok(())
}

/// Finds each `(what, line)` of `expect` in `out`, in order; returns the
/// offset after the last, or says which is missing (with the output).
fn in_order(out: &str, test: &str, expect: &[(&str, &str)]) -> Result<usize> {
    let mut at = 0;
    for (what, line) in expect {
        match out[at..].find(line) {
            Some(i) => at += i + line.len(),
            None => {
                eprintln!("---- serial output ----\n{}\n----", out.trim_end());
                return Err(format!("{test}: {what}: no line with {line:?} (in order)"));
            }
        }
    }
    Ok(at)
}
