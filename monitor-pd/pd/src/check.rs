//! What the monitor checks in the guest's CPU state, as plain functions:
//! where a Linux x86_64 kernel keeps its system-call entry and its IDT.
//!
//! - LSTAR (the 64-bit `syscall` entry) must point into the kernel image,
//!   which Linux maps at `__START_KERNEL_map` = 0xffff_ffff_8000_0000 and,
//!   with KASLR, places anywhere in the 1 GiB after it ([`KERNEL_IMAGE`]).
//!   A rootkit that hooks system calls by rewriting LSTAR points it at a
//!   module (0xffff_ffff_c000_0000 and up) or at memory of its own.
//! - The IDTR base must be in the kernel image (`idt_table`, before the
//!   CPU entry area is set up) or in the CPU entry area
//!   ([`CPU_ENTRY_AREA`], 0xffff_fe00_0000_0000, the same with 4- and
//!   5-level paging), where Linux since 4.15 maps a read-only alias of the
//!   IDT and points IDTR at it. Anywhere else (the direct map, a module,
//!   user space) is an IDT someone else built.
//!
//! These hold once the guest is up: during early boot Linux loads a
//! bring-up IDT by its physical address, so the PD checks only after the
//! VMM's `GuestUp`.

use core::ops::Range;

use bulkhead_protocols::supervisor::{Alert, AlertKind, Report, Severity};

/// Where a Linux x86_64 kernel image (text, data) lives, KASLR included.
pub const KERNEL_IMAGE: Range<u64> = 0xffff_ffff_8000_0000..0xffff_ffff_c000_0000;
/// Linux's CPU entry area (per-CPU read-only IDT and GDT aliases, entry
/// stacks): one top-level page-table slot.
pub const CPU_ENTRY_AREA: Range<u64> = 0xffff_fe00_0000_0000..0xffff_fe80_0000_0000;

/// The guest CPU state the monitor reads once the guest is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestState {
    /// Page-table root.
    pub cr3: u64,
    /// 64-bit system-call entry.
    pub lstar: u64,
    /// IDT base.
    pub idtr_base: u64,
    /// IDT limit.
    pub idtr_limit: u64,
    /// GDT base.
    pub gdtr_base: u64,
}

/// Something the checks found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// LSTAR points outside the kernel image.
    LstarOutsideKernel(u64),
    /// The IDT is neither in the kernel image nor in the CPU entry area.
    IdtOutsideKernel(u64),
}

/// Whether `lstar` is a plausible system-call entry.
pub fn lstar_ok(lstar: u64) -> bool {
    KERNEL_IMAGE.contains(&lstar)
}

/// Whether `base` is a plausible IDT base.
pub fn idt_ok(base: u64) -> bool {
    KERNEL_IMAGE.contains(&base) || CPU_ENTRY_AREA.contains(&base)
}

/// Every finding for `state` (none for a clean Linux guest).
pub fn check(state: &GuestState) -> heapless::Vec<Finding, 2> {
    let mut found = heapless::Vec::new();
    if !lstar_ok(state.lstar) {
        // Capacity 2, at most 2 pushes.
        let _ = found.push(Finding::LstarOutsideKernel(state.lstar));
    }
    if !idt_ok(state.idtr_base) {
        let _ = found.push(Finding::IdtOutsideKernel(state.idtr_base));
    }
    found
}

/// The alert the supervisor gets for `finding`.
pub fn alert(finding: Finding) -> Report {
    let (kind, subject, detail) = match finding {
        Finding::LstarOutsideKernel(v) => {
            (AlertKind::SyscallHook, v, "LSTAR outside the kernel image")
        }
        Finding::IdtOutsideKernel(v) => (
            AlertKind::IntegrityViolation,
            v,
            "IDT outside the kernel image and CPU entry area",
        ),
    };
    Report::Alert(Alert {
        severity: Severity::Critical,
        kind,
        subject,
        // Both texts are shorter than ALERT_DETAIL_LEN.
        detail: heapless::String::try_from(detail).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(lstar: u64, idtr_base: u64) -> GuestState {
        GuestState {
            cr3: 0x1_0000,
            lstar,
            idtr_base,
            idtr_limit: 0xfff,
            gdtr_base: 0xffff_fe00_0000_1000,
        }
    }

    #[test]
    fn a_linux_guest_passes_at_the_edges_of_its_ranges() {
        // Debian 6.1 with KASLR: entry_SYSCALL_64 in the image, IDT in the
        // CPU entry area (or idt_table before it exists).
        assert!(check(&state(0xffff_ffff_a280_0040, 0xffff_fe00_0000_0000)).is_empty());
        assert!(check(&state(0xffff_ffff_8000_0000, 0xffff_ffff_bfff_f000)).is_empty());
        assert!(check(&state(0xffff_ffff_bfff_ffff, 0xffff_fe7f_ffff_f000)).is_empty());
    }

    #[test]
    fn hooks_and_foreign_idts_are_found() {
        // A module (just past the image), user space, the direct map.
        let module = 0xffff_ffff_c000_0000;
        let direct_map = 0xffff_8880_0010_0000;
        assert_eq!(
            check(&state(module, direct_map)).as_slice(),
            [
                Finding::LstarOutsideKernel(module),
                Finding::IdtOutsideKernel(direct_map)
            ]
        );
        assert_eq!(
            check(&state(0x40_1000, 0xffff_fe80_0000_0000)).as_slice(),
            [
                Finding::LstarOutsideKernel(0x40_1000),
                Finding::IdtOutsideKernel(0xffff_fe80_0000_0000)
            ]
        );
        assert!(!lstar_ok(0xffff_ffff_7fff_ffff) && !idt_ok(0xffff_fdff_ffff_ffff));
        // The CPU entry area is no place for a system-call entry.
        assert!(!lstar_ok(0xffff_fe00_0000_0000));
    }

    #[test]
    fn alerts_say_what_and_where() {
        let Report::Alert(a) = alert(Finding::LstarOutsideKernel(0xffff_ffff_c012_3456)) else {
            panic!("not an alert");
        };
        assert_eq!(
            (a.severity, a.kind, a.subject),
            (
                Severity::Critical,
                AlertKind::SyscallHook,
                0xffff_ffff_c012_3456
            )
        );
        assert!(a.detail.contains("LSTAR"));
        let Report::Alert(a) = alert(Finding::IdtOutsideKernel(7)) else {
            panic!("not an alert");
        };
        assert_eq!((a.kind, a.subject), (AlertKind::IntegrityViolation, 7));
        assert!(a.detail.contains("IDT"));
    }
}
