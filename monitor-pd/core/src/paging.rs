//! x86-64 virtual-to-physical translation: 4-level and 5-level paging with
//! 4 KiB, 2 MiB and 1 GiB pages, over [`PhysMem`].
//!
//! Design rules: page-table entries come from guest memory and are
//! untrusted; the walk is a fixed number of steps, a missing or
//! non-canonical address is an error naming the level that stopped it.

use crate::mem::{MemError, PhysMem};

const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Why a translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The address is not canonical for this paging mode.
    NonCanonical(u64),
    /// The entry at this level (5..=1, 1 = PTE) is not present.
    NotPresent {
        /// Virtual address looked up.
        va: u64,
        /// Level whose entry was not present.
        level: u8,
    },
    /// A page-table page or the data lies outside captured memory.
    Mem(MemError),
}

impl From<MemError> for WalkError {
    fn from(e: MemError) -> Self {
        WalkError::Mem(e)
    }
}

/// An address space: a page-table root and the paging mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressSpace {
    /// Physical address of the top-level table (CR3 without flags).
    pub root: u64,
    /// 4 or 5.
    pub levels: u8,
}

impl AddressSpace {
    /// From a CR3 value; `la57` selects 5-level paging.
    pub fn from_cr3(cr3: u64, la57: bool) -> Self {
        AddressSpace {
            root: cr3 & ADDR,
            levels: if la57 { 5 } else { 4 },
        }
    }

    /// Is `va` canonical for this mode?
    pub fn canonical(&self, va: u64) -> bool {
        let bits = if self.levels == 5 { 57 } else { 48 };
        let top = (va as i64) >> (bits - 1);
        top == 0 || top == -1
    }

    /// Translates a virtual address to a physical one.
    pub fn translate(&self, mem: &dyn PhysMem, va: u64) -> Result<u64, WalkError> {
        if !self.canonical(va) {
            return Err(WalkError::NonCanonical(va));
        }
        let mut table = self.root;
        let mut level = self.levels;
        loop {
            let shift = 12 + 9 * (level as u32 - 1);
            let idx = (va >> shift) & 0x1ff;
            let mut e = [0u8; 8];
            mem.read_phys(table + idx * 8, &mut e)?;
            let e = u64::from_le_bytes(e);
            if e & 1 == 0 {
                return Err(WalkError::NotPresent { va, level });
            }
            if level == 1 || (e & 0x80 != 0 && (level == 2 || level == 3)) {
                let mask = (1u64 << shift) - 1;
                return Ok((e & ADDR & !mask) | (va & mask));
            }
            table = e & ADDR;
            level -= 1;
        }
    }

    /// Reads `buf.len()` bytes at virtual address `va`, page by page.
    pub fn read(&self, mem: &dyn PhysMem, va: u64, buf: &mut [u8]) -> Result<(), WalkError> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let pa = self.translate(mem, a)?;
            let n = ((0x1000 - (a & 0xfff)) as usize).min(buf.len() - done);
            mem.read_phys(pa, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Reads a little-endian u64 at `va`.
    pub fn read_u64(&self, mem: &dyn PhysMem, va: u64) -> Result<u64, WalkError> {
        let mut b = [0u8; 8];
        self.read(mem, va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian u32 at `va`.
    pub fn read_u32(&self, mem: &dyn PhysMem, va: u64) -> Result<u32, WalkError> {
        let mut b = [0u8; 4];
        self.read(mem, va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Flat test memory.
    pub struct Flat(pub Vec<u8>);
    impl PhysMem for Flat {
        fn read_phys(&self, pa: u64, buf: &mut [u8]) -> Result<(), MemError> {
            let s = self
                .0
                .get(pa as usize..pa as usize + buf.len())
                .ok_or(MemError::NotPresent(pa))?;
            buf.copy_from_slice(s);
            Ok(())
        }
        fn phys_end(&self) -> u64 {
            self.0.len() as u64
        }
    }
    impl Flat {
        pub fn set(&mut self, pa: u64, v: u64) {
            self.0[pa as usize..pa as usize + 8].copy_from_slice(&v.to_le_bytes());
        }
    }

    fn idx(va: u64, level: u32) -> u64 {
        (va >> (12 + 9 * (level - 1))) & 0x1ff
    }

    #[test]
    fn four_level_with_all_page_sizes() {
        let mut m = Flat(vec![0; 0x40_0000]);
        let (pml4, pdpt, pd, pt) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
        let va4k = 0xffff_ffff_8123_4567u64;
        let va2m = 0xffff_ffff_8140_0123u64;
        let va1g = 0xffff_8880_4000_0042u64;
        m.set(pml4 + idx(va4k, 4) * 8, pdpt | 3);
        m.set(pdpt + idx(va4k, 3) * 8, pd | 3);
        m.set(pd + idx(va4k, 2) * 8, pt | 3);
        m.set(pt + idx(va4k, 1) * 8, 0x20_0000 | 3);
        m.set(pd + idx(va2m, 2) * 8, 0x20_0000 | 0x83);
        let pdpt2 = 0x5000u64;
        m.set(pml4 + idx(va1g, 4) * 8, pdpt2 | 3);
        m.set(pdpt2 + idx(va1g, 3) * 8, 0x4000_0000 | 0x83 | (1 << 63));
        let a = AddressSpace {
            root: pml4,
            levels: 4,
        };
        assert_eq!(a.translate(&m, va4k), Ok(0x20_0567));
        assert_eq!(a.translate(&m, va2m), Ok(0x20_0123));
        assert_eq!(a.translate(&m, va1g), Ok(0x4000_0042));
        assert_eq!(
            a.translate(&m, 0x0000_8000_0000_0000),
            Err(WalkError::NonCanonical(0x0000_8000_0000_0000))
        );
        assert!(matches!(
            a.translate(&m, 0xffff_ffff_a000_0000),
            Err(WalkError::NotPresent { level: 2, .. })
        ));
        // A read across a 4K page boundary into an unmapped page fails.
        let mut b = [0u8; 16];
        assert!(a.read(&m, va4k | 0xff8, &mut b).is_err());
        // A table pointer outside memory is a memory error, not a panic.
        m.set(pt + idx(va4k, 1) * 8, 0x7fff_0000_0000 | 3);
        assert!(a.translate(&m, va4k).is_ok());
        assert!(matches!(a.read(&m, va4k, &mut b), Err(WalkError::Mem(_))));
    }

    #[test]
    fn five_level() {
        let mut m = Flat(vec![0; 0x10_0000]);
        let va = 0xff11_2233_4455_6000u64;
        let tables = [0x1000u64, 0x2000, 0x3000, 0x4000, 0x5000];
        for l in (1..=5u32).rev() {
            let t = tables[(5 - l) as usize];
            let next = if l == 1 {
                0x9000
            } else {
                tables[(6 - l) as usize]
            };
            m.set(t + idx(va, l) * 8, next | 3);
        }
        let a = AddressSpace::from_cr3(0x1000 | 0x18, true);
        assert_eq!(a.translate(&m, va | 0x7b), Ok(0x907b));
        // The same address is non-canonical with 4 levels.
        let a4 = AddressSpace::from_cr3(0x1000, false);
        assert!(matches!(
            a4.translate(&m, va),
            Err(WalkError::NonCanonical(_))
        ));
    }
}
