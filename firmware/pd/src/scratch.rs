//! The regions `system.xml` maps for the PD, as slices: the scratch region
//! (containers test it; wiped after the POST phase) and the report region
//! (the supervisor reads it).
//!
//! Design rules: the address and size come only from the setvars `pack`
//! patches from `system.xml`; each region is turned into a slice once, so
//! no two `&mut` alias.
#![allow(unsafe_code)]

use bulkhead_microkit::SetVar;

/// The region at `vaddr` of `size` bytes; panics (a PD fault the supervisor
/// sees) if `system.xml` did not set the address.
pub fn region(vaddr: &'static SetVar, size: &'static SetVar, what: &str) -> &'static mut [u8] {
    let len = match size.get() {
        Some(s) => s as usize,
        None => panic!("setvar {what}_size was not patched: check system.xml"),
    };
    at(vaddr.get(), len, what)
}

/// As [`region`], with `default` bytes when the size setvar is absent.
pub fn region_or(
    vaddr: &'static SetVar,
    size: &'static SetVar,
    default: usize,
    what: &str,
) -> &'static mut [u8] {
    at(
        vaddr.get(),
        size.get().map_or(default, |s| s as usize),
        what,
    )
}

fn at(vaddr: Option<u64>, len: usize, what: &str) -> &'static mut [u8] {
    let base = match vaddr {
        Some(v) if v != 0 => v as usize,
        _ => panic!("setvar {what} was not patched: check system.xml"),
    };
    // SAFETY: `pack` patched `base` and `len` from the `<map>` system.xml
    // gives this PD (read-write, `len` bytes, page-aligned, mapped for the
    // PD's lifetime); each caller asks for a distinct region exactly once.
    unsafe { core::slice::from_raw_parts_mut(base as *mut u8, len) }
}
