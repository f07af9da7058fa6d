//! The zero page (`struct boot_params`): the offsets of the fields a
//! 64-bit boot loader fills, and the e820 memory map.
//!
//! Design rules: offsets are the boot protocol's (Documentation/arch/x86/
//! zero-page.rst), named once here; the e820 table is built from the VM's
//! RAM size alone, so the guest sees the memory map of a plain PC.

/// Size of `boot_params`.
pub const SIZE: usize = 0x1000;

/// Offsets inside `boot_params` (besides the setup header at 0x1f1).
pub mod off {
    /// `ext_ramdisk_image` (u32): bits 63..32 of the ramdisk address.
    pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
    /// `ext_ramdisk_size` (u32): bits 63..32 of the ramdisk size.
    pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
    /// `ext_cmd_line_ptr` (u32): bits 63..32 of the command line address.
    pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
    /// `e820_entries` (u8).
    pub const E820_ENTRIES: usize = 0x1e8;
    /// `sentinel` (u8): must stay 0 (a nonzero value tells the kernel the
    /// loader copied the whole image header and it must clean up).
    pub const SENTINEL: usize = 0x1ef;
    /// `hdr`: the setup header.
    pub const HDR: usize = 0x1f1;
    /// `e820_table`: 128 entries of 20 bytes.
    pub const E820_TABLE: usize = 0x2d0;
}

/// Entries the zero page's e820 table holds.
pub const E820_MAX: usize = 128;
/// Size of one e820 entry: address u64, size u64, type u32 (packed).
pub const E820_ENTRY_SIZE: usize = 20;

/// e820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type: reserved.
pub const E820_RESERVED: u32 = 2;

/// Where a PC's conventional memory ends and its EBDA begins.
pub const EBDA_START: u64 = 0x9_fc00;
/// Start of RAM above the legacy hole (1 MiB).
pub const HIGH_MEM: u64 = 0x10_0000;

/// One e820 entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// [`E820_RAM`] or [`E820_RESERVED`].
    pub kind: u32,
}

/// The e820 map of a VM with `ram_size` bytes of RAM at guest-physical 0:
/// RAM below the EBDA, the EBDA/VGA/BIOS hole reserved up to 1 MiB, RAM
/// from 1 MiB to the end. `ram_size` must be above 1 MiB (the loader
/// checks that first), else only what fits is returned.
pub fn e820_map(ram_size: u64) -> ([E820Entry; 3], usize) {
    let entries = [
        E820Entry {
            addr: 0,
            size: EBDA_START.min(ram_size),
            kind: E820_RAM,
        },
        E820Entry {
            addr: EBDA_START,
            size: HIGH_MEM - EBDA_START,
            kind: E820_RESERVED,
        },
        E820Entry {
            addr: HIGH_MEM,
            size: ram_size.saturating_sub(HIGH_MEM),
            kind: E820_RAM,
        },
    ];
    let n = if ram_size > HIGH_MEM { 3 } else { 2 };
    (entries, n)
}
