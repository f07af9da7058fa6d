//! POST container: runs the SDK's memory test (zeros, ones, checkerboards,
//! address-in-address, inverse address, walking ones) over the scratch
//! region the firmware PD exposes, and reports the first bad word.

#![no_std]
#![deny(unsafe_code)]

use core::fmt::Write;

use firmware_sdk::memtest::{self, TestMemory};
use firmware_sdk::{host, text::Text};

/// The PD's scratch region, reached through the host API.
struct Scratch;

impl TestMemory for Scratch {
    fn size(&self) -> u64 {
        host::scratch_size()
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        host::scratch_write(offset, data);
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) {
        host::scratch_read(offset, buf);
    }
}

/// The entry point named in the manifest.
#[allow(unsafe_code)] // Exporting the entry point by name; nothing else.
#[no_mangle]
pub extern "C" fn run() {
    let mut t = Text::<256>::new();
    if Scratch.size() < 4 {
        host::report(false, "no scratch region to test");
        return;
    }
    let mut buf = [0u8; memtest::CHUNK];
    let s = memtest::run(&mut Scratch, &mut buf);
    match s.failure {
        None => {
            let _ = write!(t, "{} patterns over {} bytes", s.patterns, s.bytes);
            host::report(true, t.as_str());
        }
        Some(f) => {
            let _ = write!(
                t,
                "{:?} pattern: word at offset {:#x} read {:#010x}, wrote {:#010x}",
                f.pattern, f.offset, f.found, f.expected
            );
            host::report(false, t.as_str());
        }
    }
}
