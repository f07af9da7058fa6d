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

/// The `vm` scenario under `-cpu qemu64,+svm,+npt` (the last `-cpu` wins
/// over the runner's `max`), with the console lines that prove the kernel
/// reported the triple fault and kept running.
pub fn extra() -> Result<()> {
    kernel::build()?;
    kernel::system_test(
        "vm",
        90,
        &[
            "bulkhead: VM 'testguest': AMD-V, NPT",
            "bulkhead: VM 'testguest' vCPU 0 stopped: triple fault",
            "vm| vCPU stopped after the triple fault; the VMM PD keeps running",
        ],
        &["-cpu", "qemu64,+svm,+npt"],
    )
}
