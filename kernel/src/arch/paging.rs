//! Page tables: the kernel's direct map of physical memory and one address
//! space per PD.
//!
//! Every PML4 shares the kernel half (entries 256..512: the direct map at
//! [`DIRECT_MAP`] and the kernel image at -2 GiB), which is supervisor-only.
//! The user half is private to each PD and built at boot only. Leaf entries
//! carry the real permissions (user, writable, NX, cache type); the tables
//! above them are permissive so the leaf alone decides.

use core::ptr;

/// Virtual address of physical address 0 in the direct map (0..4 GiB).
pub const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
/// The end of physical memory the direct map covers.
pub const DIRECT_MAP_LIMIT: u64 = 4 << 30;
const PAGE: u64 = 4096;

const P: u64 = 1;
const W: u64 = 1 << 1;
const U: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Leaf permissions of a user page.
#[derive(Clone, Copy, Debug)]
pub struct Perms {
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Uncached (PAT entry 3 = UC, see [`init_pat`]).
    pub uncached: bool,
}

static mut PCID_ON: bool = false;

/// Records that CR4.PCIDE is on (called once at boot, before any PD).
pub fn enable_pcid() {
    // SAFETY: single CPU, boot time, no concurrent reader.
    unsafe { PCID_ON = true }
}

/// Pointer to physical memory through the direct map.
pub fn phys_to_virt(phys: u64) -> *mut u8 {
    (DIRECT_MAP + phys) as *mut u8
}

/// The kernel's PML4 (physical), as set up by the boot trampoline.
pub fn kernel_pml4() -> u64 {
    // Only called at boot, while the kernel's own PML4 is loaded.
    super::cpu::cr3() & ADDR
}

/// Programs the PAT with the architectural reset value, so PCD|PWT (entry 3)
/// is UC whatever the firmware left there.
pub fn init_pat() {
    // SAFETY: IA32_PAT exists on every x86_64 CPU; this is its reset value,
    // which the kernel's own (WB, PAT index 0) mappings already assume.
    unsafe { super::cpu::wrmsr(0x277, 0x0007_0406_0007_0406) }
}

/// Removes the boot identity map of low memory (the trampoline's), so the
/// user half of the kernel's own table is empty.
pub fn drop_identity_map() {
    let pml4 = phys_to_virt(kernel_pml4()) as *mut u64;
    // SAFETY: entry 0 is only used by the trampoline, which has finished;
    // reloading CR3 flushes the stale translations.
    unsafe {
        ptr::write_volatile(pml4, 0);
        super::cpu::set_cr3(kernel_pml4());
    }
}

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __kernel_phys_end: u8;
}

const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;

/// Replaces the boot trampoline's 2 MiB RWX kernel window with 4 KiB pages
/// carrying each section's own permissions (text RX, rodata R+NX, data and
/// bss RW+NX; nothing else of low memory), then marks the whole direct map
/// NX. After this no kernel page is both writable and executable. Must run
/// before PD address spaces are made (they share these tables anyway).
pub fn protect_kernel_image(frames: &mut impl FrameSource) -> Option<()> {
    let addr = |s: &u8| s as *const u8 as u64;
    // SAFETY: linker-defined symbols; only their addresses are used.
    let (text, text_end, ro, ro_end, data, phys_end) = unsafe {
        (
            addr(&__text_start),
            addr(&__text_end),
            addr(&__rodata_start),
            addr(&__rodata_end),
            addr(&__data_start),
            addr(&__kernel_phys_end),
        )
    };
    let end = phys_end + KERNEL_BASE;
    let pml4 = kernel_pml4();
    // SAFETY: reading the boot tables through the direct map.
    let pdpt = unsafe { ptr::read(entry(pml4, 511)) } & ADDR;
    let pd = frames.frame()?;
    let mut va = text & !(PAGE - 1);
    while va < end {
        let pde = entry(pd, (va >> 21) & 0x1ff);
        // SAFETY: `pd` is a fresh, zeroed page directory owned here.
        let mut pt = unsafe { ptr::read(pde) } & ADDR;
        if pt == 0 {
            pt = frames.frame()?;
            // SAFETY: as above.
            unsafe { ptr::write(pde, pt | P | W) };
        }
        let flags = if va >= text && va < text_end {
            P
        } else if va >= ro && va < ro_end {
            P | NX
        } else if va >= data {
            P | W | NX
        } else {
            0
        };
        if flags != 0 {
            // SAFETY: `pt` is this new page table; index within it.
            unsafe { ptr::write(entry(pt, (va >> 12) & 0x1ff), (va - KERNEL_BASE) | flags) };
        }
        va += PAGE;
    }
    // SAFETY: swaps the PDPT entry for the kernel's first GiB to the new
    // directory (same translations for every kernel address in use, fewer
    // rights), then sets NX on the direct map's 2 MiB entries (PDPT entries
    // 0..4 of the table that PML4[256] points to), and flushes by reloading
    // CR3. The second kernel-window GiB is dropped: nothing lives there.
    unsafe {
        ptr::write(entry(pdpt, 510), pd | P | W);
        ptr::write(entry(pdpt, 511), 0);
        let direct = ptr::read(entry(pml4, 256)) & ADDR;
        for g in 0..4 {
            let dpd = ptr::read(entry(direct, g)) & ADDR;
            for i in 0..512 {
                let e = entry(dpd, i);
                ptr::write(e, ptr::read(e) | NX);
            }
        }
        super::cpu::set_cr3(pml4);
    }
    Some(())
}

/// Zeroes one frame through the direct map.
pub fn zero_frame(phys: u64) {
    debug_assert!(phys + PAGE <= DIRECT_MAP_LIMIT);
    // SAFETY: the frame is below the direct-map limit and owned by the
    // caller (fresh from the allocator or a PD frame being reset).
    unsafe { ptr::write_bytes(phys_to_virt(phys), 0, PAGE as usize) }
}

/// Copies bytes into physical memory through the direct map.
pub fn copy_to_phys(phys: u64, bytes: &[u8]) {
    // SAFETY: the caller owns the destination frame(s); the source is kernel
    // memory (the boot module) that cannot overlap a PD frame.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), phys_to_virt(phys), bytes.len()) }
}

/// A frame source for page-table pages.
pub trait FrameSource {
    /// A zeroed frame, or `None`.
    fn frame(&mut self) -> Option<u64>;
}

/// One PD's address space.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddressSpace {
    /// Physical address of its PML4.
    pub pml4: u64,
}

fn entry(table: u64, index: u64) -> *mut u64 {
    (phys_to_virt(table) as *mut u64).wrapping_add(index as usize)
}

impl AddressSpace {
    /// A new address space sharing the kernel half.
    pub fn new(frames: &mut impl FrameSource) -> Option<Self> {
        let pml4 = frames.frame()?;
        let kernel = kernel_pml4();
        for i in 256..512 {
            // SAFETY: both tables are page-sized frames in the direct map.
            unsafe { ptr::write(entry(pml4, i), ptr::read(entry(kernel, i))) }
        }
        Some(Self { pml4 })
    }

    /// Maps the user page at `vaddr` to frame `phys`. Returns `None` when a
    /// table frame cannot be allocated or a large page is in the way.
    pub fn map(
        &self,
        vaddr: u64,
        phys: u64,
        perms: Perms,
        frames: &mut impl FrameSource,
    ) -> Option<()> {
        let mut table = self.pml4;
        for level in [39u64, 30, 21] {
            let e = entry(table, (vaddr >> level) & 0x1ff);
            // SAFETY: `table` is a page-table frame of this address space.
            let v = unsafe { ptr::read(e) };
            table = if v & P == 0 {
                let t = frames.frame()?;
                // SAFETY: as above; installs a fresh zeroed table.
                unsafe { ptr::write(e, t | P | W | U) };
                t
            } else if v & PS != 0 {
                return None;
            } else {
                v & ADDR
            };
        }
        let mut leaf = (phys & ADDR) | P | U;
        if perms.write {
            leaf |= W;
        }
        if !perms.exec {
            leaf |= NX;
        }
        if perms.uncached {
            leaf |= PCD | PWT;
        }
        // SAFETY: `table` is this space's page table for `vaddr`.
        unsafe { ptr::write(entry(table, (vaddr >> 12) & 0x1ff), leaf) };
        Some(())
    }

    /// The frame and leaf flags of the user page at `vaddr`, if mapped.
    pub fn translate(&self, vaddr: u64) -> Option<(u64, u64)> {
        if vaddr >= bulkhead_abi::USER_TOP {
            return None;
        }
        let mut table = self.pml4;
        for level in [39u64, 30, 21, 12] {
            // SAFETY: walking tables of this address space.
            let v = unsafe { ptr::read(entry(table, (vaddr >> level) & 0x1ff)) };
            if v & P == 0 || (level != 12 && v & PS != 0) {
                return None;
            }
            if level == 12 {
                return Some((v & ADDR, v));
            }
            table = v & ADDR;
        }
        None
    }

    /// Copies user memory `[vaddr, vaddr+out.len())` into `out`, checking
    /// every page is a present user page of this space. The kernel reads
    /// user memory only this way (through the direct map, so SMAP stays on).
    pub fn copy_from_user(&self, vaddr: u64, out: &mut [u8]) -> Result<(), u64> {
        let mut done = 0usize;
        while done < out.len() {
            let va = vaddr.checked_add(done as u64).ok_or(vaddr)?;
            let (frame, flags) = self.translate(va).ok_or(va)?;
            if flags & U == 0 {
                return Err(va);
            }
            let off = va & (PAGE - 1);
            let n = ((PAGE - off) as usize).min(out.len() - done);
            // SAFETY: `frame` is a mapped user frame below the direct-map
            // limit; `off + n` stays inside it.
            unsafe {
                ptr::copy_nonoverlapping(phys_to_virt(frame + off), out[done..].as_mut_ptr(), n)
            };
            done += n;
        }
        Ok(())
    }

    /// Switches to this address space; `tag` (1..4095) is its PCID when
    /// PCIDs are on. Page tables never change after boot, so the switch keeps
    /// the TLB entries of every tag (CR3 bit 63).
    pub fn activate(&self, tag: u16) {
        // SAFETY: reading a flag written once at boot, before any PD runs.
        let cr3 = if unsafe { PCID_ON } {
            self.pml4 | (tag as u64 & 0xfff) | (1 << 63)
        } else {
            self.pml4
        };
        // SAFETY: every PD PML4 carries the kernel half (see `new`).
        unsafe { super::cpu::set_cr3(cr3) }
    }
}
