//! The bzImage setup header (Linux x86 boot protocol, "the real-mode
//! kernel header"): its offsets, and the checks that decide whether we can
//! boot an image through the 64-bit entry point.
//!
//! Design rules: every field is read through a bounds-checked accessor, and
//! every refusal names the field and the value found, so a bad image is
//! diagnosed from the error alone.

use super::BootError;

/// Offsets of the setup header fields, the same in the bzImage file and in
/// `boot_params` (the header is copied to the same offset).
pub mod off {
    /// `setup_sects` (u8): size of the real-mode setup in 512-byte sectors; 0 means 4.
    pub const SETUP_SECTS: usize = 0x1f1;
    /// `syssize` (u32): size of the protected-mode code in 16-byte units.
    pub const SYSSIZE: usize = 0x1f4;
    /// `vid_mode` (u16).
    pub const VID_MODE: usize = 0x1fa;
    /// `boot_flag` (u16): 0xAA55.
    pub const BOOT_FLAG: usize = 0x1fe;
    /// `jump` (u16): a short jump whose second byte gives the header's end.
    pub const JUMP: usize = 0x200;
    /// `header` (u32): "HdrS".
    pub const HEADER: usize = 0x202;
    /// `version` (u16): boot protocol version.
    pub const VERSION: usize = 0x206;
    /// `type_of_loader` (u8).
    pub const TYPE_OF_LOADER: usize = 0x210;
    /// `loadflags` (u8).
    pub const LOADFLAGS: usize = 0x211;
    /// `code32_start` (u32).
    pub const CODE32_START: usize = 0x214;
    /// `ramdisk_image` (u32).
    pub const RAMDISK_IMAGE: usize = 0x218;
    /// `ramdisk_size` (u32).
    pub const RAMDISK_SIZE: usize = 0x21c;
    /// `heap_end_ptr` (u16).
    pub const HEAP_END_PTR: usize = 0x224;
    /// `ext_loader_ver` (u8).
    pub const EXT_LOADER_VER: usize = 0x226;
    /// `ext_loader_type` (u8).
    pub const EXT_LOADER_TYPE: usize = 0x227;
    /// `cmd_line_ptr` (u32).
    pub const CMD_LINE_PTR: usize = 0x228;
    /// `initrd_addr_max` (u32): highest address the initrd may occupy.
    pub const INITRD_ADDR_MAX: usize = 0x22c;
    /// `kernel_alignment` (u32).
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    /// `relocatable_kernel` (u8).
    pub const RELOCATABLE_KERNEL: usize = 0x234;
    /// `min_alignment` (u8, log2).
    pub const MIN_ALIGNMENT: usize = 0x235;
    /// `xloadflags` (u16).
    pub const XLOADFLAGS: usize = 0x236;
    /// `cmdline_size` (u32): maximum command line length without the NUL.
    pub const CMDLINE_SIZE: usize = 0x238;
    /// `hardware_subarch` (u32).
    pub const HARDWARE_SUBARCH: usize = 0x23c;
    /// `payload_offset` (u32).
    pub const PAYLOAD_OFFSET: usize = 0x248;
    /// `payload_length` (u32).
    pub const PAYLOAD_LENGTH: usize = 0x24c;
    /// `setup_data` (u64).
    pub const SETUP_DATA: usize = 0x250;
    /// `pref_address` (u64).
    pub const PREF_ADDRESS: usize = 0x258;
    /// `init_size` (u32): memory the kernel needs from its load address on.
    pub const INIT_SIZE: usize = 0x260;
    /// `handover_offset` (u32).
    pub const HANDOVER_OFFSET: usize = 0x264;
    /// `kernel_info_offset` (u32), protocol 2.15.
    pub const KERNEL_INFO_OFFSET: usize = 0x268;
}

/// `boot_flag` value.
pub const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `header` value: "HdrS" little-endian.
pub const HDRS_MAGIC: u32 = u32::from_le_bytes(*b"HdrS");
/// The oldest protocol we boot: 2.12 added `xloadflags`, which is how we
/// know the kernel has a 64-bit entry point.
pub const MIN_VERSION: u16 = 0x020c;
/// `loadflags` bit 0: the protected-mode code goes at 0x100000 or above
/// (bzImage). Without it the image is a zImage, which we do not boot.
pub const LOADED_HIGH: u8 = 1 << 0;
/// `xloadflags` bit 0: the kernel has the 64-bit entry at load address + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags` bit 1: kernel, boot_params, command line and ramdisk may lie above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// The smallest header end we accept: up to and including `handover_offset`
/// (protocol 2.11), which every 2.12 kernel has.
pub const MIN_HEADER_END: usize = 0x268;
/// Where the header area of `boot_params` ends (`edd_mbr_sig_buffer` starts).
pub const MAX_HEADER_END: usize = 0x290;

pub(crate) fn rd8(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}
pub(crate) fn rd16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(crate) fn rd32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(crate) fn rd64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The setup header fields the loader uses, parsed and validated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SetupHeader {
    /// Boot protocol version (major << 8 | minor).
    pub version: u16,
    /// Real-mode setup sectors (0 already replaced by 4).
    pub setup_sects: u8,
    /// Protected-mode code size in bytes (`syssize` * 16).
    pub payload_len: u64,
    /// Offset of the protected-mode code in the image: (setup_sects + 1) * 512.
    pub payload_offset_in_image: usize,
    /// End of the setup header in the image (0x202 + the jump's offset byte).
    pub header_end: usize,
    /// `loadflags`.
    pub loadflags: u8,
    /// `xloadflags`.
    pub xloadflags: u16,
    /// `kernel_alignment`.
    pub kernel_alignment: u32,
    /// `relocatable_kernel` (nonzero: may be loaded at any aligned address).
    pub relocatable: bool,
    /// `pref_address`.
    pub pref_address: u64,
    /// `init_size`.
    pub init_size: u32,
    /// `cmdline_size` (without the terminating NUL).
    pub cmdline_size: u32,
    /// `initrd_addr_max`.
    pub initrd_addr_max: u32,
}

impl SetupHeader {
    /// Parses and validates the header of a bzImage. `image` may be longer
    /// than the file (a zero-padded region): only `syssize` decides how
    /// much protected-mode code there is.
    pub fn parse(image: &[u8]) -> Result<Self, BootError> {
        Self::parse_prefix(image, image.len())
    }

    /// As [`SetupHeader::parse`], from the image's first bytes `head` (at
    /// least the header) and the image's whole length `image_len`.
    pub fn parse_prefix(head: &[u8], image_len: usize) -> Result<Self, BootError> {
        let image = head;
        let need = |n: usize| BootError::ImageTooShort {
            len: image_len,
            needed: n,
        };
        let r8 = |at| rd8(image, at).ok_or(need(at + 1));
        let r16 = |at| rd16(image, at).ok_or(need(at + 2));
        let r32 = |at| rd32(image, at).ok_or(need(at + 4));
        let r64 = |at| rd64(image, at).ok_or(need(at + 8));

        let boot_flag = r16(off::BOOT_FLAG)?;
        if boot_flag != BOOT_FLAG_MAGIC {
            return Err(BootError::BadBootFlag(boot_flag));
        }
        let magic = r32(off::HEADER)?;
        if magic != HDRS_MAGIC {
            return Err(BootError::BadHeaderMagic(magic));
        }
        let version = r16(off::VERSION)?;
        if version < MIN_VERSION {
            return Err(BootError::ProtocolTooOld(version));
        }
        let header_end = 0x202 + r8(off::JUMP + 1)? as usize;
        if !(MIN_HEADER_END..=MAX_HEADER_END).contains(&header_end) {
            return Err(BootError::BadHeaderLength(header_end));
        }
        if image.len() < header_end {
            return Err(need(header_end));
        }
        let loadflags = r8(off::LOADFLAGS)?;
        if loadflags & LOADED_HIGH == 0 {
            return Err(BootError::NotBzImage { loadflags });
        }
        let xloadflags = r16(off::XLOADFLAGS)?;
        if xloadflags & XLF_KERNEL_64 == 0 {
            return Err(BootError::No64BitEntry { xloadflags });
        }
        let relocatable = r8(off::RELOCATABLE_KERNEL)?;
        if relocatable == 0 {
            return Err(BootError::NotRelocatable);
        }
        let kernel_alignment = r32(off::KERNEL_ALIGNMENT)?;
        if !kernel_alignment.is_power_of_two() || kernel_alignment < 0x1000 {
            return Err(BootError::BadKernelAlignment(kernel_alignment));
        }
        let setup_sects = match r8(off::SETUP_SECTS)? {
            0 => 4,
            n => n,
        };
        let payload_offset_in_image = (setup_sects as usize + 1) * 512;
        let syssize = r32(off::SYSSIZE)?;
        let payload_len = syssize as u64 * 16;
        if syssize == 0 {
            return Err(BootError::BadSyssize(syssize));
        }
        let payload_end = payload_offset_in_image as u64 + payload_len;
        if payload_end > image_len as u64 {
            return Err(BootError::ImageTooShort {
                len: image_len,
                needed: usize::try_from(payload_end).unwrap_or(usize::MAX),
            });
        }
        let init_size = r32(off::INIT_SIZE)?;
        if (init_size as u64) < payload_len {
            return Err(BootError::BadInitSize {
                init_size,
                payload_len,
            });
        }
        let pref_address = r64(off::PREF_ADDRESS)?;
        if pref_address % kernel_alignment as u64 != 0 || pref_address < super::layout::HIGH_MEM {
            return Err(BootError::BadPrefAddress(pref_address));
        }
        let cmdline_size = r32(off::CMDLINE_SIZE)?;
        if cmdline_size == 0 {
            return Err(BootError::BadCmdlineSize(cmdline_size));
        }
        let initrd_addr_max = r32(off::INITRD_ADDR_MAX)?;
        if (initrd_addr_max as u64) < super::layout::HIGH_MEM {
            return Err(BootError::BadInitrdAddrMax(initrd_addr_max));
        }
        Ok(Self {
            version,
            setup_sects,
            payload_len,
            payload_offset_in_image,
            header_end,
            loadflags,
            xloadflags,
            kernel_alignment,
            relocatable: true,
            pref_address,
            init_size,
            cmdline_size,
            initrd_addr_max,
        })
    }
}
