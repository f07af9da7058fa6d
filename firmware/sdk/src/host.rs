//! Safe wrappers over the host API. Each needs the capability named in its
//! doc in the container's manifest; without it the call traps the container.

#![allow(unsafe_code)] // Each call below is one FFI call; see `ffi` for why they are sound.

use crate::ffi;
use crate::rtc::RtcTime;

/// Writes a line to the PD's log. Needs `log`.
pub fn log(line: &str) {
    // SAFETY: the pointer and length describe `line`, a live slice; the host
    // only reads them, after checking them against linear memory.
    unsafe { ffi::log(line.as_ptr(), line.len()) }
}

/// Reports the container's result; the last report counts. Needs `report`.
pub fn report(passed: bool, detail: &str) {
    // SAFETY: as for `log`.
    unsafe { ffi::report(passed as i32, detail.as_ptr(), detail.len()) }
}

/// Size of the scratch region in bytes. Needs `scratch`.
pub fn scratch_size() -> u64 {
    // SAFETY: no arguments.
    unsafe { ffi::scratch_size() as u64 }
}

/// Copies scratch bytes at `offset` into `buf`; traps if out of range. Needs `scratch`.
pub fn scratch_read(offset: u64, buf: &mut [u8]) {
    // SAFETY: the pointer and length describe `buf`, a live exclusive slice;
    // the host writes at most `buf.len()` bytes there.
    unsafe { ffi::scratch_read(offset as i64, buf.as_mut_ptr(), buf.len()) }
}

/// Copies `buf` into the scratch region at `offset`; traps if out of range. Needs `scratch`.
pub fn scratch_write(offset: u64, buf: &[u8]) {
    // SAFETY: the pointer and length describe `buf`; the host only reads.
    unsafe { ffi::scratch_write(offset as i64, buf.as_ptr(), buf.len()) }
}

/// Reads the 32-bit PCI configuration register at `offset` (a multiple of
/// 4) of bus/device/function. Needs `pci-config`.
pub fn pci_read32(bus: u8, device: u8, function: u8, offset: u8) -> u32 {
    // SAFETY: plain integers.
    unsafe { ffi::pci_read32(bus.into(), device.into(), function.into(), offset.into()) as u32 }
}

/// The monotonic timer in nanoseconds. Needs `timer`.
pub fn timer_ns() -> u64 {
    // SAFETY: no arguments.
    unsafe { ffi::timer_ns() as u64 }
}

/// The real-time clock. Needs `rtc`.
pub fn rtc() -> RtcTime {
    // SAFETY: no arguments.
    RtcTime::unpack(unsafe { ffi::rtc() } as u64)
}

/// Sends `byte` through the serial port in loopback mode; what came back,
/// or `None` if nothing did in time. Needs `serial`.
pub fn serial_loopback(byte: u8) -> Option<u8> {
    // SAFETY: plain integer.
    let r = unsafe { ffi::serial_loopback(byte.into()) };
    u8::try_from(r).ok()
}
