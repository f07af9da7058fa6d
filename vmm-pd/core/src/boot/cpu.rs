//! The CPU side of the 64-bit boot protocol: identity-mapped page tables,
//! the boot GDT (`__BOOT_CS` = 0x10, `__BOOT_DS` = 0x18) and the initial
//! vCPU state, as data the VMM writes through `bulkhead_abi::vcpu`.
//!
//! Design rules: the segment attributes are derived from the very GDT
//! descriptors we write, so the hidden state and the table the guest
//! reloads from can never disagree; every register the entry depends on
//! is listed, nothing is left to the vCPU's previous state.

use super::mem::GuestMemory;
use bulkhead_abi::vcpu::{Gpr, Register, Segment, SegmentField, Vendor};

/// Page-table entry: present.
pub const PTE_P: u64 = 1 << 0;
/// Page-table entry: writable.
pub const PTE_W: u64 = 1 << 1;
/// Page-directory entry: 2 MiB page.
pub const PTE_PS: u64 = 1 << 7;
/// The address bits of a table entry.
pub const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// How much the boot page tables identity-map: 4 GiB in 2 MiB pages.
pub const IDENTITY_MAPPED: u64 = 1 << 32;
/// Page directories needed for [`IDENTITY_MAPPED`].
pub const PAGE_DIRECTORIES: usize = (IDENTITY_MAPPED >> 30) as usize;

/// `__BOOT_CS`: the selector the protocol requires for the 64-bit code segment.
pub const BOOT_CS: u16 = 0x10;
/// `__BOOT_DS`: the selector for the data segments.
pub const BOOT_DS: u16 = 0x18;
/// Flat 64-bit code: base 0, limit 4 GiB, type execute/read accessed, S, P, L, G.
pub const GDT_CODE64: u64 = 0x00af_9b00_0000_ffff;
/// Flat data: base 0, limit 4 GiB, type read/write accessed, S, P, D/B, G.
pub const GDT_DATA: u64 = 0x00cf_9300_0000_ffff;
/// The boot GDT: two null descriptors, then code at 0x10 and data at 0x18.
pub const GDT: [u64; 4] = [0, 0, GDT_CODE64, GDT_DATA];

/// VMX access rights of a busy 64-bit TSS (type 11, present). The guest
/// loads its own TR before it needs one; VM entry only checks the type.
pub const TR_ATTRIBUTES: u32 = 0x8b;
/// VMX access rights: the unusable bit (bit 16), for LDTR.
pub const UNUSABLE: u32 = 1 << 16;

/// CR0: protection, extension type, numeric error (VT-x requires NE), paging.
pub const CR0: u64 = (1 << 0) | (1 << 4) | (1 << 5) | (1 << 31);
/// CR4: PAE, required for long mode. (On VT-x the kernel adds VMXE and
/// hides it behind the read shadow; that is not the guest's state.)
pub const CR4: u64 = 1 << 5;
/// EFER.LME.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.SVME: AMD-V refuses VMRUN unless the guest's EFER has it.
pub const EFER_SVME: u64 = 1 << 12;
/// RFLAGS: bit 1 is reserved and reads as 1; IF is clear as the protocol requires.
pub const RFLAGS: u64 = 1 << 1;

/// VMX access rights of a GDT descriptor: bits 40..48 (type, S, DPL, P)
/// and 52..56 (AVL, L, D/B, G) of the descriptor, as VMX packs them.
pub const fn descriptor_attributes(desc: u64) -> u32 {
    ((desc >> 40) & 0xf0ff) as u32
}

/// The hidden and visible state of one segment register.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SegmentState {
    /// Selector.
    pub selector: u16,
    /// Base.
    pub base: u64,
    /// Byte-granular limit.
    pub limit: u32,
    /// VMX access rights.
    pub attributes: u32,
}

/// The vCPU state at the kernel's 64-bit entry point.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InitialState {
    /// RIP: load address + 0x200 (`startup_64`).
    pub rip: u64,
    /// RSI: guest-physical address of `boot_params`.
    pub rsi: u64,
    /// RFLAGS, interrupts disabled.
    pub rflags: u64,
    /// CR0.
    pub cr0: u64,
    /// CR3: the boot PML4.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER: LME | LMA, plus SVME on AMD-V.
    pub efer: u64,
    /// GDTR base.
    pub gdt_base: u64,
    /// GDTR limit.
    pub gdt_limit: u16,
    /// ES, CS, SS, DS, FS, GS, LDTR, TR (the `Segment` order).
    pub segments: [(Segment, SegmentState); 8],
}

/// Number of register writes [`InitialState::register_writes`] returns.
pub const REGISTER_WRITES: usize = 16 + 7 + 4 + 8 * 4;

impl InitialState {
    /// The state for entry at `rip` with `boot_params` at `rsi`, page
    /// tables at `cr3`, the GDT at `gdt_base`, on CPUs of `vendor`.
    pub fn new(rip: u64, rsi: u64, cr3: u64, gdt_base: u64, vendor: Vendor) -> Self {
        let flat = |selector, desc| SegmentState {
            selector,
            base: 0,
            limit: 0xffff_ffff,
            attributes: descriptor_attributes(desc),
        };
        let data = flat(BOOT_DS, GDT_DATA);
        Self {
            rip,
            rsi,
            rflags: RFLAGS,
            cr0: CR0,
            cr3,
            cr4: CR4,
            efer: EFER_LME
                | EFER_LMA
                | match vendor {
                    Vendor::Svm => EFER_SVME,
                    Vendor::Vmx => 0,
                },
            gdt_base,
            gdt_limit: (GDT.len() * 8 - 1) as u16,
            segments: [
                (Segment::Es, data),
                (Segment::Cs, flat(BOOT_CS, GDT_CODE64)),
                (Segment::Ss, data),
                (Segment::Ds, data),
                (Segment::Fs, data),
                (Segment::Gs, data),
                (
                    Segment::Ldtr,
                    SegmentState {
                        selector: 0,
                        base: 0,
                        limit: 0,
                        attributes: UNUSABLE,
                    },
                ),
                (
                    Segment::Tr,
                    SegmentState {
                        selector: 0,
                        base: 0,
                        limit: 0x67,
                        attributes: TR_ATTRIBUTES,
                    },
                ),
            ],
        }
    }

    /// Every register write that establishes this state, in an order the
    /// VMM can apply blindly: all GPRs (zero but RSI), RIP, RFLAGS, the
    /// control registers, EFER, GDTR, an empty IDTR, then each segment's
    /// selector, base, limit and attributes.
    pub fn register_writes(&self) -> [(Register, u64); REGISTER_WRITES] {
        let mut out = [(Register::Rip, 0u64); REGISTER_WRITES];
        let mut i = 0;
        let mut push = |r: Register, v: u64| {
            if let Some(slot) = out.get_mut(i) {
                *slot = (r, v);
            }
            i += 1;
        };
        for n in 0..16 {
            if let Some(g) = Gpr::from_index(n) {
                push(Register::Gpr(g), if g == Gpr::Rsi { self.rsi } else { 0 });
            }
        }
        push(Register::Rip, self.rip);
        push(Register::Rflags, self.rflags);
        push(Register::Cr0, self.cr0);
        push(Register::Cr3, self.cr3);
        push(Register::Cr4, self.cr4);
        push(Register::Efer, self.efer);
        push(Register::Dr7, 0x400);
        push(Register::Gdtr(false), self.gdt_base);
        push(Register::Gdtr(true), self.gdt_limit as u64);
        push(Register::Idtr(false), 0);
        push(Register::Idtr(true), 0);
        for (seg, s) in self.segments {
            push(
                Register::Segment(seg, SegmentField::Selector),
                s.selector as u64,
            );
            push(Register::Segment(seg, SegmentField::Base), s.base);
            push(Register::Segment(seg, SegmentField::Limit), s.limit as u64);
            push(
                Register::Segment(seg, SegmentField::Attributes),
                s.attributes as u64,
            );
        }
        out
    }
}

/// Writes identity-mapping page tables (2 MiB pages, [`IDENTITY_MAPPED`]
/// bytes) into `mem` at `pml4` (one PML4 page, one PDPT page after it, then
/// [`PAGE_DIRECTORIES`] page directories). `None` if they do not fit.
pub fn write_page_tables(mem: &mut (impl GuestMemory + ?Sized), pml4: u64) -> Option<()> {
    let pdpt = pml4.checked_add(0x1000)?;
    let pd0 = pdpt.checked_add(0x1000)?;
    let end = pd0.checked_add(PAGE_DIRECTORIES as u64 * 0x1000)?;
    mem.zero(pml4, end - pml4)?;
    put64(mem, pml4, pdpt | PTE_P | PTE_W)?;
    let mut page = [0u8; 0x1000];
    for d in 0..PAGE_DIRECTORIES as u64 {
        let pd = pd0 + d * 0x1000;
        put64(mem, pdpt + d * 8, pd | PTE_P | PTE_W)?;
        for (e, slot) in page.chunks_exact_mut(8).enumerate() {
            let phys = (d * 512 + e as u64) << 21;
            slot.copy_from_slice(&(phys | PTE_P | PTE_W | PTE_PS).to_le_bytes());
        }
        mem.write(pd, &page)?;
    }
    Some(())
}

/// Bytes [`write_page_tables`] uses.
pub const PAGE_TABLES_SIZE: u64 = (2 + PAGE_DIRECTORIES as u64) * 0x1000;

/// Writes [`GDT`] at `at`.
pub fn write_gdt(mem: &mut (impl GuestMemory + ?Sized), at: u64) -> Option<()> {
    for (i, d) in GDT.iter().enumerate() {
        put64(mem, at + i as u64 * 8, *d)?;
    }
    Some(())
}

pub(crate) fn put(mem: &mut (impl GuestMemory + ?Sized), at: u64, bytes: &[u8]) -> Option<()> {
    mem.write(at, bytes)
}

pub(crate) fn put64(mem: &mut (impl GuestMemory + ?Sized), at: u64, v: u64) -> Option<()> {
    put(mem, at, &v.to_le_bytes())
}
