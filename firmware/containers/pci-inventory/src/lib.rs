//! POST container: scans PCI bus 0 and checks the devices the board must
//! have (a QEMU q35 machine: host bridge, ICH9 LPC, AHCI and SMBus), logs
//! every function found, and reports the first missing or wrong device.

#![no_std]
#![deny(unsafe_code)]

use core::fmt::Write;

use firmware_sdk::pci::{self, Expected};
use firmware_sdk::{host, text::Text};

/// What platform `qemu-q35` must have on bus 0.
const EXPECTED: &[Expected] = &[
    Expected {
        device: 0,
        function: 0,
        vendor: 0x8086,
        device_id: 0x29c0,
        name: "Q35 host bridge",
    },
    Expected {
        device: 31,
        function: 0,
        vendor: 0x8086,
        device_id: 0x2918,
        name: "ICH9 LPC bridge",
    },
    Expected {
        device: 31,
        function: 2,
        vendor: 0x8086,
        device_id: 0x2922,
        name: "ICH9 AHCI controller",
    },
    Expected {
        device: 31,
        function: 3,
        vendor: 0x8086,
        device_id: 0x2930,
        name: "ICH9 SMBus controller",
    },
];

/// The entry point named in the manifest.
#[allow(unsafe_code)] // Exporting the entry point by name; nothing else.
#[no_mangle]
pub extern "C" fn run() {
    let inv = pci::scan_bus0(|dev, func, off| host::pci_read32(0, dev, func, off));
    for f in inv.found() {
        let mut line = Text::<64>::new();
        let _ = write!(
            line,
            "00:{:02x}.{} {:04x}:{:04x}",
            f.device, f.function, f.vendor, f.device_id
        );
        host::log(line.as_str());
    }
    let mut t = Text::<256>::new();
    match pci::check(&inv, EXPECTED) {
        Ok(others) => {
            let _ = write!(
                t,
                "bus 0: {} functions, all {} expected devices present ({} others)",
                inv.found().len(),
                EXPECTED.len(),
                others
            );
            host::report(true, t.as_str());
        }
        Err(m) => {
            let e = m.expected;
            let _ = write!(
                t,
                "{} ({:04x}:{:04x}) at 00:{:02x}.{}: ",
                e.name, e.vendor, e.device_id, e.device, e.function
            );
            let _ = match m.found {
                None => write!(t, "nothing answers"),
                Some(f) => write!(t, "found {:04x}:{:04x} instead", f.vendor, f.device_id),
            };
            host::report(false, t.as_str());
        }
    }
}
