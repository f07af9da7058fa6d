//! Support for the kernel's system-test PDs: how a test ends. The judging
//! PD of each scenario is granted QEMU's isa-debug-exit port (0xf4) in its
//! `system.xml`; it prints a marker (for emulators without that port, such
//! as Bochs) and writes the exit code.

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

use bulkhead_microkit::{debug_println, io};

/// QEMU's isa-debug-exit port (`-device isa-debug-exit,iobase=0xf4`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Value written on success: QEMU exits with (0x10 << 1) | 1 = 33.
pub const PASS: u8 = 0x10;
/// Value written on failure: QEMU exits with 35.
pub const FAIL: u8 = 0x11;

/// Ends the test successfully.
pub fn pass(scenario: &str) {
    debug_println!("TEST_PASS {scenario}");
    io::outb(DEBUG_EXIT_PORT, PASS);
}

/// Ends the test with a failure, saying why.
pub fn fail(scenario: &str, why: core::fmt::Arguments) {
    debug_println!("TEST_FAIL {scenario}: {why}");
    io::outb(DEBUG_EXIT_PORT, FAIL);
}

/// Checks a condition; on failure ends the test and returns false.
pub fn check(scenario: &str, ok: bool, what: core::fmt::Arguments) -> bool {
    if !ok {
        fail(scenario, what);
    }
    ok
}

/// A page of shared memory as 64-bit words, at an address a `setvar_vaddr`
/// gave. Test-only: the real PDs get typed channels (pds/channels).
#[derive(Clone, Copy)]
pub struct Shared {
    base: u64,
}

impl Shared {
    /// The words at `base`, which `system.xml` maps with at least one page.
    pub fn new(base: Option<u64>) -> Self {
        match base {
            Some(base) if base % 8 == 0 => Self { base },
            _ => panic!("shared region setvar not patched"),
        }
    }
    /// Reads word `i` (< 512).
    pub fn read(self, i: usize) -> u64 {
        assert!(i < 512);
        // SAFETY: `base` is a page-aligned map of at least 4 KiB from
        // system.xml, readable by this PD; i < 512 keeps within the page.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::read_volatile((self.base as *const u64).add(i))
        }
    }
    /// Reads the 32-bit register at byte offset `off` (< 4096, aligned):
    /// devices such as QEMU's `edu` answer only 32-bit accesses there.
    pub fn read_u32(self, off: usize) -> u32 {
        assert!(off < 4096 && off.is_multiple_of(4));
        // SAFETY: as in `read`, for a 4-byte aligned offset in the page.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::read_volatile((self.base as usize + off) as *const u32)
        }
    }
    /// Writes the 32-bit register at byte offset `off`.
    pub fn write_u32(self, off: usize, v: u32) {
        assert!(off < 4096 && off.is_multiple_of(4));
        // SAFETY: as in `write`, for a 4-byte aligned offset in the page.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_volatile((self.base as usize + off) as *mut u32, v)
        }
    }
    /// Writes word `i` (< 512); the map must be writable (else this PD faults).
    pub fn write(self, i: usize, v: u64) {
        assert!(i < 512);
        // SAFETY: as in `read`; a read-only map makes this a write fault of
        // this PD, which the kernel delivers to its parent.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_volatile((self.base as *mut u64).add(i), v)
        }
    }
}
