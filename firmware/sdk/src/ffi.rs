//! The raw imports of the host API (module `bulkhead`). The names, types and
//! meaning are the ABI the runtime's `host` module implements; keep the two
//! in step (the runtime's tests link the real containers against it).
//!
//! Every call is `unsafe` only because it is FFI: the host validates every
//! pointer and length against the container's own linear memory and traps
//! the container on a bad one, so no argument can corrupt the guest or host.

#![allow(unsafe_code)] // FFI declarations and calls: the SDK's only unsafe.

#[link(wasm_import_module = "bulkhead")]
unsafe extern "C" {
    pub fn log(ptr: *const u8, len: usize);
    pub fn report(passed: i32, ptr: *const u8, len: usize);
    pub fn scratch_size() -> i64;
    pub fn scratch_read(offset: i64, ptr: *mut u8, len: usize);
    pub fn scratch_write(offset: i64, ptr: *const u8, len: usize);
    pub fn pci_read32(bus: i32, device: i32, function: i32, offset: i32) -> i32;
    pub fn timer_ns() -> i64;
    pub fn rtc() -> i64;
    pub fn serial_loopback(byte: i32) -> i32;
}
