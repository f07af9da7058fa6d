//! Loading the guest: Debian's bzImage and the initramfs arrive in
//! prefilled regions the VMM maps; vmm-core's loader puts the kernel into
//! guest RAM by the 64-bit boot protocol, this module puts the initramfs
//! at the top of RAM, and the vCPU gets the protocol's entry state.
//!
//! Design rules: the regions are reached through [`SharedBytes`] (word
//! accessors, no `unsafe`); a corrupt image is a [`LoadError`] naming what
//! is wrong, and the vCPU is not started.

use bulkhead_abi::vcpu::{Vendor, VmError};
use bulkhead_microkit::bytes::SharedBytes;
use vmm_core::boot::{self, BootConfig, BootError, CpioError, GuestMemory, Image, Initrd};

use crate::exits::Cpu;

/// The regions the VMM loads from and into.
pub struct GuestImages {
    /// Guest RAM (guest-physical 0 at offset 0).
    pub ram: SharedBytes,
    /// The bzImage (zero-padded to its region's size).
    pub kernel: SharedBytes,
    /// The initramfs (an uncompressed cpio, zero-padded), if mapped.
    pub initrd: Option<SharedBytes>,
}

/// Guest RAM as the loader writes it.
pub struct Ram(pub SharedBytes);

impl GuestMemory for Ram {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn write(&mut self, gpa: u64, bytes: &[u8]) -> Option<()> {
        self.0.write(usize::try_from(gpa).ok()?, bytes)
    }
    fn zero(&mut self, gpa: u64, len: u64) -> Option<()> {
        self.0
            .zero(usize::try_from(gpa).ok()?, usize::try_from(len).ok()?)
    }
}

/// A prefilled region as the loader reads it.
pub struct Region(pub SharedBytes);

impl Image for Region {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        self.0.read(offset, buf)
    }
}

/// Where the guest went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Load address of the protected-mode kernel.
    pub kernel_addr: u64,
    /// End of its `init_size` area.
    pub kernel_end: u64,
    /// Bytes of initramfs (0 without one).
    pub initrd_len: u64,
    /// The 64-bit entry point.
    pub entry: u64,
}

/// Why the guest was not loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The kernel image or the layout was refused.
    Boot(BootError),
    /// The initramfs region holds no usable archive.
    Initrd(CpioError),
    /// The initramfs does not fit in guest RAM above the kernel.
    InitrdTooLarge(u64),
    /// Guest RAM could not be written.
    Ram,
    /// The kernel refused a vCPU register write.
    Vcpu(VmError),
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Boot(e) => write!(f, "kernel image refused: {e:?}"),
            Self::Initrd(e) => write!(f, "initramfs refused: {e:?}"),
            Self::InitrdTooLarge(n) => {
                write!(f, "initramfs of {n} bytes does not fit in guest RAM")
            }
            Self::Ram => write!(f, "guest RAM not writable where the layout needs it"),
            Self::Vcpu(e) => write!(f, "vCPU register write refused: {e:?}"),
        }
    }
}

/// The kernel command line for a guest with this VMM's devices: vmm-core's
/// default (console on the emulated COM1, no PCI, ACPI or local APIC)
/// plus early console output, no I/O APIC, a TSC Linux may trust (the
/// kernel measured its rate; `tsc_early_khz` is appended) and a reboot on
/// panic, which the VMM sees and reports.
pub const CMDLINE: &[u8] = b"console=ttyS0 earlyprintk=serial,ttyS0,115200 pci=off acpi=off \
nolapic noapic tsc=reliable panic=-1";

/// [`CMDLINE`] and ` bulkhead.boot=<boot>` in `buf`.
fn with_boot_count(buf: &mut [u8], boot: u32) -> Option<&[u8]> {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = boot;
    loop {
        *digits.get_mut(n)? = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let key = b" bulkhead.boot=";
    let len = CMDLINE.len() + key.len() + n;
    let out = buf.get_mut(..len)?;
    out[..CMDLINE.len()].copy_from_slice(CMDLINE);
    out[CMDLINE.len()..CMDLINE.len() + key.len()].copy_from_slice(key);
    for (i, d) in digits[..n].iter().rev().enumerate() {
        out[CMDLINE.len() + key.len() + i] = *d;
    }
    Some(out)
}

/// Loads the guest (its `boot`-th boot, counting from 1) and sets `cpu` to
/// the boot protocol's entry state.
pub fn load(
    images: &GuestImages,
    vendor: Vendor,
    tsc_khz: u64,
    boot: u32,
    cpu: &mut impl Cpu,
) -> Result<Loaded, LoadError> {
    let mut ram = Ram(images.ram);
    let ram_size = ram.size();
    // Which boot this is, for the guest to see (a reboot after a crash is
    // boot 2, ...).
    let mut base = [0u8; 224];
    let base =
        with_boot_count(&mut base, boot).ok_or(LoadError::Boot(BootError::CmdlineTooLong {
            len: CMDLINE.len() + 24,
            max: 224,
        }))?;
    let mut buf = [0u8; 256];
    let cmdline =
        boot::cmdline_with_tsc(&mut buf, base, tsc_khz as u32).map_err(LoadError::Boot)?;
    // The initramfs goes to the top of RAM, page-aligned, below 4 GiB.
    let initrd = match images.initrd {
        Some(region) => {
            let len = boot::initramfs_len(&Region(region)).map_err(LoadError::Initrd)? as u64;
            let top = ram_size.min(1 << 32);
            let addr = top
                .checked_sub(len)
                .map(|a| a & !0xfff)
                .filter(|&a| a >= boot::layout::HIGH_MEM)
                .ok_or(LoadError::InitrdTooLarge(len))?;
            ram.copy_from(addr, &Region(region), 0, len as usize)
                .ok_or(LoadError::Ram)?;
            Initrd::InPlace { addr, len }
        }
        None => Initrd::None,
    };
    let info = boot::load_linux(
        &mut ram,
        &Region(images.kernel),
        &BootConfig {
            cmdline,
            initrd,
            vendor,
        },
    )
    .map_err(LoadError::Boot)?;
    for (reg, value) in info.state.register_writes() {
        cpu.write(reg, value).map_err(LoadError::Vcpu)?;
    }
    Ok(Loaded {
        kernel_addr: info.kernel_addr,
        kernel_end: info.kernel_end,
        initrd_len: info.initrd.map_or(0, |(_, l)| l),
        entry: info.state.rip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_count_reaches_the_command_line() {
        let mut buf = [0u8; 224];
        let line = with_boot_count(&mut buf, 12).unwrap();
        let s = core::str::from_utf8(line).unwrap();
        assert!(s.starts_with("console=ttyS0 "));
        assert!(s.ends_with(" panic=-1 bulkhead.boot=12"), "{s}");
        assert!(
            with_boot_count(&mut [0u8; 10], 1).is_none(),
            "too small a buffer is refused"
        );
    }
}
