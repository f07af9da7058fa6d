//! The Linux x86 64-bit boot protocol: load a bzImage, an initramfs and a
//! command line into guest RAM and produce the vCPU state at the kernel's
//! 64-bit entry point (Documentation/arch/x86/boot.rst, "64-bit boot
//! protocol").
//!
//! Guest RAM is a [`GuestMemory`] (a byte slice, or the VMM PD's mapped
//! region) with guest-physical 0 at offset 0; its size is the VM's RAM
//! size. The kernel image is an [`Image`]. What goes where:
//!
//! | guest-physical | what |
//! |---|---|
//! | 0 .. 1 MiB | zeroed; the GDT at [`layout::GDT`], `boot_params` at [`layout::BOOT_PARAMS`], page tables at [`layout::PAGE_TABLES`], the command line at [`layout::CMDLINE`] |
//! | `pref_address` (16 MiB for Debian) .. + `init_size` | the protected-mode kernel; the rest of `init_size` is the kernel's decompression space |
//! | as high as allowed, page-aligned | the initramfs |
//!
//! Design rules: the low-memory structures sit below the decompressor's
//! trampoline (placed under the EBDA, ~0x9d000) and below 16 MiB, where
//! KASLR never puts the kernel; every placement is checked before a byte
//! is written, so a refused load leaves guest RAM untouched; every refusal
//! is a [`BootError`] naming the field and value.

pub mod cpu;
pub mod header;
pub mod initramfs;
pub mod mem;
pub mod zeropage;

pub use cpu::{InitialState, SegmentState};
pub use header::SetupHeader;
pub use initramfs::{initramfs_len, CpioError};
pub use mem::{GuestMemory, Image};
pub use zeropage::{e820_map, E820Entry};

use bulkhead_abi::vcpu::Vendor;
use cpu::put;

/// Where the loader puts its structures in low memory.
pub mod layout {
    /// The boot GDT.
    pub const GDT: u64 = 0x1000;
    /// `boot_params` (the zero page).
    pub const BOOT_PARAMS: u64 = 0x7000;
    /// The PML4; the PDPT and the page directories follow.
    pub const PAGE_TABLES: u64 = 0x9000;
    /// The command line.
    pub const CMDLINE: u64 = 0x2_0000;
    /// Room for the command line, its NUL included.
    pub const CMDLINE_MAX: u64 = 0x1_0000;
    /// Everything below is the loader's (zeroed on load); the kernel and
    /// the initramfs go at or above.
    pub const HIGH_MEM: u64 = super::zeropage::HIGH_MEM;
}

/// `type_of_loader` for a loader without an assigned id.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// Offset of the 64-bit entry point from the load address.
pub const ENTRY_64_OFFSET: u64 = 0x200;

/// Why a kernel could not be loaded. Each names the field and the value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BootError {
    /// The image is shorter than what its header says it holds.
    ImageTooShort {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// `boot_flag` (0x1fe) is not 0xAA55.
    BadBootFlag(u16),
    /// `header` (0x202) is not "HdrS": not a Linux kernel, or older than protocol 2.00.
    BadHeaderMagic(u32),
    /// `version` (0x206) is below 2.12.
    ProtocolTooOld(u16),
    /// The header end (0x202 + byte at 0x201) is outside 0x268..=0x290.
    BadHeaderLength(usize),
    /// `loadflags` (0x211) lacks LOADED_HIGH: a zImage.
    NotBzImage {
        /// The value found.
        loadflags: u8,
    },
    /// `xloadflags` (0x236) lacks XLF_KERNEL_64: no 64-bit entry point.
    No64BitEntry {
        /// The value found.
        xloadflags: u16,
    },
    /// `relocatable_kernel` (0x234) is 0.
    NotRelocatable,
    /// `kernel_alignment` (0x230) is not a power of two of at least 4 KiB.
    BadKernelAlignment(u32),
    /// `syssize` (0x1f4) is 0.
    BadSyssize(u32),
    /// `init_size` (0x260) is smaller than the protected-mode code.
    BadInitSize {
        /// `init_size`.
        init_size: u32,
        /// `syssize` * 16.
        payload_len: u64,
    },
    /// `pref_address` (0x258) is below 1 MiB or not aligned to `kernel_alignment`.
    BadPrefAddress(u64),
    /// `cmdline_size` (0x238) is 0.
    BadCmdlineSize(u32),
    /// `initrd_addr_max` (0x22c) is below 1 MiB.
    BadInitrdAddrMax(u32),
    /// Guest RAM ends before the kernel's `init_size` area does.
    RamTooSmall {
        /// Bytes of RAM needed.
        needed: u64,
        /// Bytes of RAM the VM has.
        have: u64,
    },
    /// The kernel's area would end above what the boot page tables map (4 GiB).
    KernelNotMapped {
        /// End of the `init_size` area.
        end: u64,
    },
    /// The command line is longer than `cmdline_size` or the loader's area.
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The most allowed, without the NUL.
        max: usize,
    },
    /// The command line contains a NUL byte (the kernel would cut it there).
    CmdlineHasNul {
        /// Its offset.
        at: usize,
    },
    /// The initramfs is empty.
    InitrdEmpty,
    /// An initramfs already in guest RAM lies (partly) outside RAM or below 1 MiB.
    InitrdOutsideRam {
        /// Its address.
        addr: u64,
        /// Its length.
        len: u64,
    },
    /// The initramfs would end above `initrd_addr_max` (or 4 GiB).
    InitrdAboveMax {
        /// Its end (exclusive).
        end: u64,
        /// The limit (exclusive).
        limit: u64,
    },
    /// There is no room for the initramfs between 1 MiB and the limit
    /// outside the kernel's area.
    InitrdDoesNotFit {
        /// Its length.
        len: u64,
    },
}

/// Where the initramfs comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Initrd<'a> {
    /// No initramfs.
    None,
    /// These bytes, copied to the highest page-aligned place allowed.
    Copy(&'a [u8]),
    /// Already in guest RAM at `addr` (e.g. a prefilled region); only
    /// checked, not moved. Use [`initramfs_len`] for `len` when the region
    /// is larger than the archive.
    InPlace {
        /// Guest-physical address.
        addr: u64,
        /// Length in bytes.
        len: u64,
    },
}

/// What to boot besides the kernel image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BootConfig<'a> {
    /// The kernel command line, without a NUL (the loader adds it).
    pub cmdline: &'a [u8],
    /// The initramfs.
    pub initrd: Initrd<'a>,
    /// The virtualization vendor (decides EFER.SVME in the initial state).
    pub vendor: Vendor,
}

/// Where everything went, and the vCPU state to start with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BootInfo {
    /// The parsed header.
    pub header: SetupHeader,
    /// Guest-physical load address of the protected-mode kernel.
    pub kernel_addr: u64,
    /// End of its `init_size` area.
    pub kernel_end: u64,
    /// `boot_params`.
    pub boot_params: u64,
    /// The command line.
    pub cmdline: u64,
    /// The initramfs (address, length), if any.
    pub initrd: Option<(u64, u64)>,
    /// The vCPU state at the 64-bit entry point.
    pub state: InitialState,
}

/// The command line the VMM boots Linux with when `system.xml` gives none:
/// serial console, no PCI, no ACPI, no local APIC (none is emulated).
pub const DEFAULT_CMDLINE: &[u8] = b"console=ttyS0 pci=off acpi=off nolapic";

/// Writes `base` followed by ` tsc_early_khz=<tsc_khz>` into `buf` and
/// returns the command line (the TSC frequency the kernel measured, so the
/// guest need not calibrate against an emulated PIT). `tsc_khz` 0 adds
/// nothing. Without allocation, for the no_std VMM.
pub fn cmdline_with_tsc<'a>(
    buf: &'a mut [u8],
    base: &[u8],
    tsc_khz: u32,
) -> Result<&'a [u8], BootError> {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = tsc_khz;
    while v != 0 || n == 0 {
        if let Some(d) = digits.get_mut(n) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        n += 1;
    }
    let key: &[u8] = if tsc_khz == 0 {
        b""
    } else {
        b" tsc_early_khz="
    };
    let n = if tsc_khz == 0 { 0 } else { n };
    let len = base.len() + key.len() + n;
    let too_long = BootError::CmdlineTooLong {
        len,
        max: buf.len(),
    };
    let out = buf.get_mut(..len).ok_or(too_long)?;
    let (b, rest) = out.split_at_mut(base.len());
    b.copy_from_slice(base);
    let (k, num) = rest.split_at_mut(key.len());
    k.copy_from_slice(key);
    for (dst, src) in num.iter_mut().zip(digits[..n].iter().rev()) {
        *dst = *src;
    }
    Ok(out)
}

/// Parses and checks a bzImage's setup header without loading anything.
pub fn parse_header(kernel: &(impl Image + ?Sized)) -> Result<SetupHeader, BootError> {
    let mut head = [0u8; HEAD_LEN];
    let n = kernel.len().min(HEAD_LEN);
    kernel
        .read(0, &mut head[..n])
        .ok_or(BootError::ImageTooShort {
            len: kernel.len(),
            needed: n,
        })?;
    SetupHeader::parse_prefix(&head[..n], kernel.len())
}

/// How much of the image the header parse reads (the header ends by 0x290).
const HEAD_LEN: usize = 0x400;

const PAGE: u64 = 0x1000;

fn overlaps(a: u64, a_end: u64, b: u64, b_end: u64) -> bool {
    a < b_end && b < a_end
}

fn align_up(v: u64, align: u64) -> Option<u64> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// Loads `kernel` (a bzImage, possibly followed by zero padding) into
/// `ram` by the 64-bit boot protocol, with `cfg`'s command line and
/// initramfs. On error nothing in `ram` has been written.
pub fn load_linux(
    ram: &mut (impl GuestMemory + ?Sized),
    kernel: &(impl Image + ?Sized),
    cfg: &BootConfig<'_>,
) -> Result<BootInfo, BootError> {
    let hdr = parse_header(kernel)?;
    let ram_size = ram.size();

    // The command line.
    let max = (hdr.cmdline_size as usize).min(layout::CMDLINE_MAX as usize - 1);
    if cfg.cmdline.len() > max {
        return Err(BootError::CmdlineTooLong {
            len: cfg.cmdline.len(),
            max,
        });
    }
    if let Some(at) = cfg.cmdline.iter().position(|&b| b == 0) {
        return Err(BootError::CmdlineHasNul { at });
    }

    // The initramfs limit: inside RAM, under initrd_addr_max and under
    // 4 GiB (the boot page tables' reach; we do not use the above-4G
    // extension).
    let initrd_limit = (hdr.initrd_addr_max as u64 + 1)
        .min(ram_size)
        .min(cpu::IDENTITY_MAPPED);
    let in_place = match cfg.initrd {
        Initrd::InPlace { addr, len } => {
            if len == 0 {
                return Err(BootError::InitrdEmpty);
            }
            let end = addr.checked_add(len);
            if addr < layout::HIGH_MEM || end.is_none_or(|e| e > ram_size) {
                return Err(BootError::InitrdOutsideRam { addr, len });
            }
            let end = addr + len;
            if end > initrd_limit {
                return Err(BootError::InitrdAboveMax {
                    end,
                    limit: initrd_limit,
                });
            }
            Some((addr, end))
        }
        Initrd::Copy([]) => return Err(BootError::InitrdEmpty),
        _ => None,
    };

    // The kernel: at pref_address, or past an initramfs already there.
    let align = hdr.kernel_alignment as u64;
    let init = hdr.init_size as u64;
    let mut load = hdr.pref_address;
    if let Some((a, e)) = in_place {
        if overlaps(load, load.saturating_add(init), a, e) {
            load = align_up(e, align).ok_or(BootError::KernelNotMapped { end: u64::MAX })?;
        }
    }
    let kernel_end = load
        .checked_add(init)
        .ok_or(BootError::KernelNotMapped { end: u64::MAX })?;
    if kernel_end > ram_size {
        return Err(BootError::RamTooSmall {
            needed: kernel_end,
            have: ram_size,
        });
    }
    if kernel_end > cpu::IDENTITY_MAPPED {
        return Err(BootError::KernelNotMapped { end: kernel_end });
    }

    // A copied initramfs: as high as allowed, page-aligned, clear of the
    // kernel's area (above it if it fits, else below it).
    let initrd = match (cfg.initrd, in_place) {
        (_, Some((a, e))) => Some((a, e - a)),
        (Initrd::Copy(bytes), _) => {
            let len = bytes.len() as u64;
            let fits = |start: u64| start >= layout::HIGH_MEM;
            let high = initrd_limit.checked_sub(len).map(|s| s & !(PAGE - 1));
            let low = load
                .min(initrd_limit)
                .checked_sub(len)
                .map(|s| s & !(PAGE - 1));
            let at = [high, low]
                .into_iter()
                .flatten()
                .find(|&s| fits(s) && !overlaps(s, s + len, load, kernel_end))
                .ok_or(BootError::InitrdDoesNotFit { len })?;
            Some((at, len))
        }
        _ => None,
    };

    // Everything is placed; now write. Each write below is inside RAM by
    // the checks above, so `None` cannot occur; it is mapped to an error
    // anyway rather than trusted.
    let oops = BootError::RamTooSmall {
        needed: kernel_end,
        have: ram_size,
    };
    ram.zero(0, layout::HIGH_MEM.min(ram_size)).ok_or(oops)?;
    ram.copy_from(
        load,
        kernel,
        hdr.payload_offset_in_image,
        hdr.payload_len as usize,
    )
    .ok_or(oops)?;
    if let (Initrd::Copy(bytes), Some((at, _))) = (cfg.initrd, initrd) {
        put(ram, at, bytes).ok_or(oops)?;
    }
    cpu::write_gdt(ram, layout::GDT).ok_or(oops)?;
    cpu::write_page_tables(ram, layout::PAGE_TABLES).ok_or(oops)?;
    // Its NUL is the zeroed low memory after it (the length check left room).
    put(ram, layout::CMDLINE, cfg.cmdline).ok_or(oops)?;
    write_boot_params(ram, kernel, &hdr, initrd).ok_or(oops)?;

    let state = InitialState::new(
        load + ENTRY_64_OFFSET,
        layout::BOOT_PARAMS,
        layout::PAGE_TABLES,
        layout::GDT,
        cfg.vendor,
    );
    Ok(BootInfo {
        header: hdr,
        kernel_addr: load,
        kernel_end,
        boot_params: layout::BOOT_PARAMS,
        cmdline: layout::CMDLINE,
        initrd,
        state,
    })
}

fn write_boot_params(
    ram: &mut (impl GuestMemory + ?Sized),
    kernel: &(impl Image + ?Sized),
    hdr: &SetupHeader,
    initrd: Option<(u64, u64)>,
) -> Option<()> {
    use header::off as h;
    use zeropage::off as z;
    let bp = layout::BOOT_PARAMS;
    let at = |o: usize| bp + o as u64;
    // The setup header, for the length the header itself declares.
    let mut setup = [0u8; header::MAX_HEADER_END - z::HDR];
    let setup = setup.get_mut(..hdr.header_end.checked_sub(z::HDR)?)?;
    kernel.read(z::HDR, setup)?;
    put(ram, at(z::HDR), setup)?;
    put(ram, at(h::TYPE_OF_LOADER), &[LOADER_TYPE_UNDEFINED])?;
    let cmd = layout::CMDLINE;
    put(ram, at(h::CMD_LINE_PTR), &(cmd as u32).to_le_bytes())?;
    put(
        ram,
        at(z::EXT_CMD_LINE_PTR),
        &((cmd >> 32) as u32).to_le_bytes(),
    )?;
    let (image, size) = initrd.unwrap_or((0, 0));
    put(ram, at(h::RAMDISK_IMAGE), &(image as u32).to_le_bytes())?;
    put(ram, at(h::RAMDISK_SIZE), &(size as u32).to_le_bytes())?;
    put(
        ram,
        at(z::EXT_RAMDISK_IMAGE),
        &((image >> 32) as u32).to_le_bytes(),
    )?;
    put(
        ram,
        at(z::EXT_RAMDISK_SIZE),
        &((size >> 32) as u32).to_le_bytes(),
    )?;
    let (entries, n) = e820_map(ram.size());
    put(ram, at(z::E820_ENTRIES), &[n as u8])?;
    for (i, e) in entries.iter().take(n).enumerate() {
        let o = at(z::E820_TABLE + i * zeropage::E820_ENTRY_SIZE);
        put(ram, o, &e.addr.to_le_bytes())?;
        put(ram, o + 8, &e.size.to_le_bytes())?;
        put(ram, o + 16, &e.kind.to_le_bytes())?;
    }
    Some(())
}

#[cfg(test)]
mod tests;
