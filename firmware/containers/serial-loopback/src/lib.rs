//! POST container: sends the SDK's loopback sequence (every data line, then
//! a text) through the serial port in loopback mode and reports the first
//! byte that does not come back unchanged.

#![no_std]
#![deny(unsafe_code)]

use core::fmt::Write;

use firmware_sdk::{host, serial, text::Text};

/// The entry point named in the manifest.
#[allow(unsafe_code)] // Exporting the entry point by name; nothing else.
#[no_mangle]
pub extern "C" fn run() {
    let mut t = Text::<128>::new();
    match serial::check(host::serial_loopback) {
        Ok(n) => {
            let _ = write!(t, "{n} bytes came back unchanged");
            host::report(true, t.as_str());
        }
        Err(f) => {
            let _ = match f.received {
                Some(r) => write!(
                    t,
                    "byte {} sent {:#04x}, received {:#04x}",
                    f.index, f.sent, r
                ),
                None => write!(
                    t,
                    "byte {} sent {:#04x}, nothing came back",
                    f.index, f.sent
                ),
            };
            host::report(false, t.as_str());
        }
    }
}
