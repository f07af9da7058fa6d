//! Virtualization tests (issue 5): the `vm` system test — the test VMM
//! (`tests/vm/vmm.rs`) drives our test guest through every normalised exit
//! on AMD-V in QEMU TCG. The host-tested parts (ABI encodings, grants,
//! views, exit tables, NPT/EPT entries, VMCB layout) run with the workspace
//! tests. The emulators come from the kernel area's setup.

use crate::{kernel, Result};

/// Nothing beyond the kernel area's packages (QEMU, GRUB).
pub fn setup(_env: &mut Vec<(String, String)>) -> Result<()> {
    Ok(())
}

/// A 20 s fuzz smoke run of the VM request and exit decoders, then the
/// `vm` scenario under `-cpu qemu64,+svm,+npt` (the last `-cpu` wins
/// over the runner's `max`), with the console lines that prove the kernel
/// reported the triple fault and kept running.
pub fn extra() -> Result<()> {
    let fuzz = crate::host::root().join("kernel").join("core").join("fuzz");
    crate::host::fuzz_smoke(&fuzz, "vm_requests", 20)?;
    kernel::build()?;
    kernel::system_test(
        "vm",
        90,
        &[
            "bulkhead: VM 'testguest': AMD-V, NPT",
            "bulkhead: VM 'testguest' vCPU 0 stopped: triple fault",
            "vmm| vCPU stopped after the triple fault; the VMM PD keeps running",
            "witness| alive after the guest's triple fault",
        ],
        &["-cpu", "qemu64,+svm,+npt"],
    )?;
    kernel::system_test(
        "vm-loop",
        90,
        &["bulkhead: VM 'loopguest' vCPU 0 stopped: triple fault"],
        &["-cpu", "qemu64,+svm,+npt"],
    )
}

/// `cargo xtask bench`, the VM part: boots `tests/vm-bench` under
/// `-icount shift=0` (1 TSC tick = 1 guest instruction) and prints the VM
/// exit round trip (guest CPUID -> VMM PD -> resume) beside the same run's
/// null-syscall round trip, and their ratio.
pub fn bench() -> Result<()> {
    use std::io::Read as _;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let iso = kernel::image(
        &crate::host::root()
            .join("tests")
            .join("vm-bench")
            .join("system.xml"),
        "vm-bench",
    )?;
    let mut c = kernel::qemu_command(&iso, false)?;
    c.args(["-cpu", "qemu64,+svm,+npt", "-icount", "shift=0"]);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("BENCH ")).collect();
    if status.and_then(|s| s.code()) != Some(33) || lines.len() != 2 {
        eprintln!("{out}");
        return Err(format!(
            "VM bench did not complete (QEMU status {status:?}, timed out: {})",
            status.is_none()
        ));
    }
    println!("VM exit bench (AMD-V, QEMU TCG, -icount shift=0: 1 TSC tick = 1 guest instruction)");
    for l in &lines {
        println!(
            "  bulkhead {}",
            l.split("BENCH ").nth(1).unwrap_or(l).trim()
        );
    }
    let field = |l: &str, key: &str| -> Option<u64> {
        l.split(key).nth(1)?.split_whitespace().next()?.parse().ok()
    };
    if let (Some(e), Some(s)) = (field(lines[0], "min="), field(lines[1], "min=")) {
        println!(
            "  ratio (min): VM exit round trip / null syscall round trip = {:.1}",
            e as f64 / s.max(1) as f64
        );
    }
    Ok(())
}
