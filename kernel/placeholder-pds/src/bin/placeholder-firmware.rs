//! Placeholder firmware PD: reports up, then tells the VMM to start the guest
//! (the notification the real firmware sends after its POST containers).

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{debug_println, protection_domain, setvar, Handler, Infallible};
use bulkhead_placeholder_pds::{channel, tell_supervisor, LABEL_UP};

setvar!(scratch);
setvar!(scratch_size);
setvar!(report);
setvar!(ch_supervisor);
setvar!(ch_vmm);

struct Firmware;

fn init() -> Firmware {
    debug_println!(
        "placeholder firmware PD: scratch {:#x} ({} KiB), no containers run",
        scratch.get().unwrap_or(0),
        scratch_size.get().unwrap_or(0) / 1024
    );
    let _ = report.get();
    tell_supervisor(channel(&ch_supervisor, "ch_supervisor"), LABEL_UP);
    channel(&ch_vmm, "ch_vmm").notify();
    Firmware
}

impl Handler for Firmware {
    type Error = Infallible;
}

protection_domain!(init);
