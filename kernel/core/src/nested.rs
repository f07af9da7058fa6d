//! Nested page-table entries: AMD-V NPT (ordinary long-mode page-table
//! entries, every guest access counted as a user access) and Intel EPT
//! (read/write/execute bits, memory type in the leaf, #VE suppression), and
//! the choice of 2 MiB pages where a grant allows them.
//!
//! Design rules: an entry is built only from checked inputs (aligned
//! address within the physical-address width, permissions the format can
//! express) and decoding is total; the arch layer writes these words and
//! nothing else into nested tables.

use bulkhead_abi::vcpu::Perms;

/// 4 KiB.
pub const PAGE_4K: u64 = 0x1000;
/// 2 MiB.
pub const PAGE_2M: u64 = 0x20_0000;
/// Physical-address bits 12..52.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why an entry cannot be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EntryError {
    /// The address is not aligned to the page size or beyond 52 bits.
    BadAddress,
    /// The permissions cannot be expressed in this format.
    BadPermissions,
}

/// The index into each level (PML4, PDPT, PD, PT) for a guest-physical address.
pub const fn indices(gpa: u64) -> [usize; 4] {
    [
        ((gpa >> 39) & 0x1ff) as usize,
        ((gpa >> 30) & 0x1ff) as usize,
        ((gpa >> 21) & 0x1ff) as usize,
        ((gpa >> 12) & 0x1ff) as usize,
    ]
}

/// The largest page (2 MiB or 4 KiB) that maps `gpa` → `phys` without
/// leaving the `remaining` bytes of the grant: both addresses 2 MiB-aligned
/// and at least 2 MiB left.
pub const fn page_size_for(gpa: u64, phys: u64, remaining: u64) -> u64 {
    if gpa.is_multiple_of(PAGE_2M) && phys.is_multiple_of(PAGE_2M) && remaining >= PAGE_2M {
        PAGE_2M
    } else {
        PAGE_4K
    }
}

fn check_addr(phys: u64, size: u64) -> Result<(), EntryError> {
    if phys & !ADDR_MASK != 0 || !phys.is_multiple_of(size) {
        Err(EntryError::BadAddress)
    } else {
        Ok(())
    }
}

/// AMD-V nested page-table entries.
pub mod npt {
    use super::*;

    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User: nested walks treat every guest access as a user access, so
    /// every present entry needs it.
    pub const US: u64 = 1 << 2;
    /// Write-through (with PCD: PAT entry 3, uncached).
    pub const PWT: u64 = 1 << 3;
    /// Cache disable.
    pub const PCD: u64 = 1 << 4;
    /// Large page (at the PD level: 2 MiB).
    pub const PS: u64 = 1 << 7;
    /// No execute.
    pub const NX: u64 = 1 << 63;

    /// A non-leaf entry pointing at the next-level table at `table`.
    pub fn table(table: u64) -> Result<u64, EntryError> {
        check_addr(table, PAGE_4K)?;
        Ok(table | P | RW | US)
    }

    /// A leaf mapping `phys` (`size` = 4 KiB or 2 MiB) with `perms`.
    /// [`Perms::NONE`] gives the empty entry (not present); anything else
    /// must include read, as NPT cannot express write- or execute-only.
    pub fn leaf(phys: u64, size: u64, perms: Perms, uncached: bool) -> Result<u64, EntryError> {
        if size != PAGE_4K && size != PAGE_2M {
            return Err(EntryError::BadAddress);
        }
        check_addr(phys, size)?;
        if perms == Perms::NONE {
            return Ok(0);
        }
        if !perms.read() {
            return Err(EntryError::BadPermissions);
        }
        let mut e = phys | P | US;
        if perms.write() {
            e |= RW;
        }
        if !perms.exec() {
            e |= NX;
        }
        if uncached {
            e |= PCD | PWT;
        }
        if size == PAGE_2M {
            e |= PS;
        }
        Ok(e)
    }

    /// The permissions a leaf grants (decoding is total).
    pub fn perms(entry: u64) -> Perms {
        if entry & P == 0 {
            return Perms::NONE;
        }
        let raw = 1 | ((entry & RW != 0) as u64 * 2) | ((entry & NX == 0) as u64 * 4);
        Perms::from_raw(raw).unwrap_or(Perms::NONE)
    }

    /// The physical address a present entry points at.
    pub fn address(entry: u64, large: bool) -> u64 {
        let mask = if large {
            ADDR_MASK & !(PAGE_2M - 1)
        } else {
            ADDR_MASK
        };
        entry & mask
    }
}

/// Intel EPT entries.
pub mod ept {
    use super::*;

    /// Read.
    pub const R: u64 = 1 << 0;
    /// Write.
    pub const W: u64 = 1 << 1;
    /// Execute.
    pub const X: u64 = 1 << 2;
    /// Memory type write-back (6) in bits 3..6 of a leaf.
    pub const MT_WB: u64 = 6 << 3;
    /// Memory type uncacheable (0).
    pub const MT_UC: u64 = 0;
    /// Ignore the guest PAT (the VMM decides caching for device memory).
    pub const IGNORE_PAT: u64 = 1 << 6;
    /// Large page.
    pub const PS: u64 = 1 << 7;
    /// Suppress #VE: set on every leaf unless the VMM asked for #VE on the page.
    pub const SUPPRESS_VE: u64 = 1 << 63;

    /// The EPT pointer for a PML4 at `root`: WB paging-structure memory
    /// type, 4-level walk (length - 1 = 3 in bits 3..6).
    pub fn eptp(root: u64) -> Result<u64, EntryError> {
        check_addr(root, PAGE_4K)?;
        Ok(root | 6 | 3 << 3)
    }

    /// A non-leaf entry: full rights (the leaf decides).
    pub fn table(table: u64) -> Result<u64, EntryError> {
        check_addr(table, PAGE_4K)?;
        Ok(table | R | W | X)
    }

    /// A leaf mapping `phys` with `perms`; `ve` lets a violation on it be
    /// delivered to the guest as #VE. Write without read is a
    /// misconfiguration; execute-only needs the CPU's support (`exec_only`).
    pub fn leaf(
        phys: u64,
        size: u64,
        perms: Perms,
        uncached: bool,
        ve: bool,
        exec_only: bool,
    ) -> Result<u64, EntryError> {
        if size != PAGE_4K && size != PAGE_2M {
            return Err(EntryError::BadAddress);
        }
        check_addr(phys, size)?;
        if perms.write() && !perms.read() {
            return Err(EntryError::BadPermissions);
        }
        if perms.exec() && !perms.read() && !exec_only {
            return Err(EntryError::BadPermissions);
        }
        let mut e = phys | perms.raw() as u64;
        if perms == Perms::NONE {
            // Not present, but the #VE suppression bit still counts.
            return Ok(if ve { 0 } else { SUPPRESS_VE });
        }
        e |= if uncached { MT_UC | IGNORE_PAT } else { MT_WB };
        if size == PAGE_2M {
            e |= PS;
        }
        if !ve {
            e |= SUPPRESS_VE;
        }
        Ok(e)
    }

    /// The permissions a leaf grants.
    pub fn perms(entry: u64) -> Perms {
        Perms::from_raw(entry & 7).unwrap_or(Perms::NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npt_leaves_encode_and_decode() {
        let e = npt::leaf(0x40_0000, PAGE_2M, Perms::RX, false).unwrap();
        assert_eq!(e, 0x40_0000 | npt::P | npt::US | npt::PS);
        assert_eq!(npt::perms(e), Perms::RX);
        assert_eq!(npt::address(e, true), 0x40_0000);
        let d = npt::leaf(0xfeb0_0000, PAGE_4K, Perms::RW, true).unwrap();
        assert_eq!(
            d,
            0xfeb0_0000 | npt::P | npt::RW | npt::US | npt::PCD | npt::PWT | npt::NX
        );
        assert_eq!(npt::perms(d), Perms::RW);
        assert_eq!(npt::leaf(0x1000, PAGE_4K, Perms::NONE, false), Ok(0));
        assert_eq!(npt::perms(0), Perms::NONE);
        for p in [
            Perms::from_raw(2).unwrap(),
            Perms::from_raw(4).unwrap(),
            Perms::from_raw(6).unwrap(),
        ] {
            assert_eq!(
                npt::leaf(0x1000, PAGE_4K, p, false),
                Err(EntryError::BadPermissions)
            );
        }
        assert_eq!(
            npt::leaf(0x1000, PAGE_2M, Perms::R, false),
            Err(EntryError::BadAddress)
        );
        assert_eq!(
            npt::leaf(1 << 52, PAGE_4K, Perms::R, false),
            Err(EntryError::BadAddress)
        );
        assert_eq!(
            npt::leaf(0x1000, 0x3000, Perms::R, false),
            Err(EntryError::BadAddress)
        );
        assert_eq!(npt::table(0x5000), Ok(0x5007));
        assert_eq!(npt::table(0x5001), Err(EntryError::BadAddress));
        for raw in 1..8 {
            let p = Perms::from_raw(raw).unwrap();
            if let Ok(e) = npt::leaf(0x7000, PAGE_4K, p, false) {
                assert_eq!(npt::perms(e), p);
            }
        }
    }

    #[test]
    fn ept_leaves_encode_and_decode() {
        let e = ept::leaf(0x20_0000, PAGE_2M, Perms::RWX, false, false, false).unwrap();
        assert_eq!(e, 0x20_0000 | 7 | ept::MT_WB | ept::PS | ept::SUPPRESS_VE);
        assert_eq!(ept::perms(e), Perms::RWX);
        let ve = ept::leaf(0x3000, PAGE_4K, Perms::R, false, true, false).unwrap();
        assert_eq!(ve, 0x3000 | 1 | ept::MT_WB);
        let uc = ept::leaf(0x3000, PAGE_4K, Perms::RW, true, false, false).unwrap();
        assert_eq!(uc & 0x78, ept::IGNORE_PAT); // UC type, PAT ignored
        assert_eq!(
            ept::leaf(0x3000, PAGE_4K, Perms::NONE, false, false, false),
            Ok(ept::SUPPRESS_VE)
        );
        assert_eq!(
            ept::leaf(0x3000, PAGE_4K, Perms::NONE, false, true, false),
            Ok(0)
        );
        let x = Perms::from_raw(4).unwrap();
        assert_eq!(
            ept::leaf(0x3000, PAGE_4K, x, false, false, false),
            Err(EntryError::BadPermissions)
        );
        assert_eq!(
            ept::perms(ept::leaf(0x3000, PAGE_4K, x, false, false, true).unwrap()),
            x
        );
        let w = Perms::from_raw(2).unwrap();
        assert_eq!(
            ept::leaf(0x3000, PAGE_4K, w, false, false, true),
            Err(EntryError::BadPermissions)
        );
        assert_eq!(ept::eptp(0x9000), Ok(0x901e));
        assert_eq!(ept::eptp(0x9800), Err(EntryError::BadAddress));
        assert_eq!(ept::table(0x9000), Ok(0x9007));
    }

    #[test]
    fn page_sizes_and_indices() {
        assert_eq!(page_size_for(0, 0x40_0000, PAGE_2M), PAGE_2M);
        assert_eq!(page_size_for(0, 0x40_0000, PAGE_2M - PAGE_4K), PAGE_4K);
        assert_eq!(page_size_for(0, 0x40_1000, 4 * PAGE_2M), PAGE_4K);
        assert_eq!(page_size_for(0x1000, 0x40_1000, 4 * PAGE_2M), PAGE_4K);
        assert_eq!(indices(0x0000_8040_2020_3000), [0x100, 0x100, 0x101, 0x03]);
        assert_eq!(indices(u64::MAX), [0x1ff; 4]);
    }
}
