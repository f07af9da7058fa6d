//! Guest physical memory: the [`PhysMem`] trait every walker reads
//! through, and memory images — QEMU `dump-guest-memory` ELF cores (with
//! their CPU state notes) and raw `pmemsave` dumps — as one implementation.
//!
//! Design rules: an image is validated once when opened (every segment
//! inside the file, sane counts); reads outside the captured ranges are
//! errors, never panics. In the monitor PD the same trait is implemented
//! over the read-only mapping of guest RAM.

use alloc::string::String;
use alloc::vec::Vec;

/// Why a physical read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// The physical address is not in the captured memory.
    NotPresent(u64),
}

/// Read access to guest-physical memory.
pub trait PhysMem {
    /// Fills `buf` from guest-physical address `pa`.
    fn read_phys(&self, pa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// One past the highest captured physical address.
    fn phys_end(&self) -> u64;
}

/// CPU state found in an image (first vCPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuRegs {
    /// CR3 (page-table root and flags).
    pub cr3: u64,
    /// CR4 (LA57 = bit 12 tells 5-level paging).
    pub cr4: u64,
    /// IDTR base.
    pub idt_base: u64,
    /// IDTR limit.
    pub idt_limit: u32,
    /// RIP at dump time.
    pub rip: u64,
    /// GS base and the swapped kernel GS base.
    pub gs_base: u64,
    /// IA32_KERNEL_GS_BASE as saved by QEMU.
    pub kernel_gs_base: u64,
    /// IA32_LSTAR when known (QEMU cores do not carry MSRs: 0 = unknown).
    pub lstar: u64,
}

/// Why an image could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Too small to be a memory image.
    TooSmall,
    /// An ELF file that is not a 64-bit little-endian core.
    NotACore,
    /// The ELF core's program headers or a segment lie outside the file
    /// (a truncated dump).
    Truncated,
    /// The ELF core has no memory segments.
    NoMemory,
    /// A raw dump whose size is not a whole number of pages.
    RawNotPageMultiple,
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ImageError::TooSmall => "too small to be a memory image (under 1 MiB)",
            ImageError::NotACore => "an ELF file but not an x86-64 ELF core (expected QEMU dump-guest-memory output)",
            ImageError::Truncated => "ELF core is truncated: a program header or memory segment lies past the end of the file",
            ImageError::NoMemory => "ELF core has no PT_LOAD memory segments",
            ImageError::RawNotPageMultiple => "raw dump size is not a multiple of 4 KiB (truncated pmemsave output?)",
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct Range {
    pa: u64,
    len: u64,
    off: usize,
}

/// Where an image's bytes come from: a slice in memory, or (on the host) a
/// file read on demand.
pub trait ImageSource {
    /// Total length in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from offset `off`; `false` when that is not possible.
    fn read_at(&self, off: u64, buf: &mut [u8]) -> bool;
}

impl ImageSource for &[u8] {
    fn size(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> bool {
        let Ok(o) = usize::try_from(off) else {
            return false;
        };
        match self.get(o..o.saturating_add(buf.len())) {
            Some(s) if s.len() == buf.len() => {
                buf.copy_from_slice(s);
                true
            }
            _ => false,
        }
    }
}

/// A memory image over any [`ImageSource`].
pub struct ImageOf<S> {
    src: S,
    ranges: Vec<Range>,
    /// CPU registers (ELF cores from QEMU).
    pub regs: Option<CpuRegs>,
    /// The VMCOREINFO note's text, when the guest published one.
    pub vmcoreinfo: Option<String>,
    /// `true` for ELF cores, `false` for raw dumps.
    pub is_elf: bool,
}

/// A memory image held in a byte slice.
pub type Image<'a> = ImageOf<&'a [u8]>;

fn u16le(d: &[u8], o: usize) -> Option<u16> {
    d.get(o..o.checked_add(2)?)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}
fn u32le(d: &[u8], o: usize) -> Option<u32> {
    d.get(o..o.checked_add(4)?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
fn u64le(d: &[u8], o: usize) -> Option<u64> {
    let b = d.get(o..o.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

impl<'a> ImageOf<&'a [u8]> {
    /// Opens an ELF core or a raw dump held in memory.
    pub fn parse(data: &'a [u8]) -> Result<Image<'a>, ImageError> {
        ImageOf::open(data, data)
    }
}

impl<S: ImageSource> ImageOf<S> {
    /// Opens an ELF core or a raw dump. `head` is the start of the source,
    /// long enough to hold an ELF core's program headers and notes (QEMU
    /// writes them before the memory); for a slice, the slice itself.
    pub fn open(src: S, head: &[u8]) -> Result<ImageOf<S>, ImageError> {
        let len = src.size();
        if head.starts_with(b"\x7fELF") {
            let (ranges, regs, vmcoreinfo) = Self::parse_elf(head, len)?;
            return Ok(ImageOf {
                src,
                ranges,
                regs,
                vmcoreinfo,
                is_elf: true,
            });
        }
        if len < 1 << 20 {
            return Err(ImageError::TooSmall);
        }
        if !len.is_multiple_of(4096) {
            return Err(ImageError::RawNotPageMultiple);
        }
        Ok(ImageOf {
            src,
            ranges: alloc::vec![Range { pa: 0, len, off: 0 }],
            regs: None,
            vmcoreinfo: None,
            is_elf: false,
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse_elf(
        d: &[u8],
        file_len: u64,
    ) -> Result<(Vec<Range>, Option<CpuRegs>, Option<String>), ImageError> {
        if d.len() < 64
            || d[4] != 2
            || d[5] != 1
            || u16le(d, 16) != Some(4)
            || u16le(d, 18) != Some(62)
        {
            return Err(ImageError::NotACore);
        }
        let phoff = u64le(d, 32).ok_or(ImageError::Truncated)? as usize;
        let phentsize = u16le(d, 54).ok_or(ImageError::Truncated)? as usize;
        let phnum = u16le(d, 56).ok_or(ImageError::Truncated)? as usize;
        if phentsize < 56 {
            return Err(ImageError::NotACore);
        }
        let mut ranges = Vec::new();
        let mut regs = None;
        let mut vmcoreinfo = None;
        for i in 0..phnum {
            let h = phoff
                .checked_add(i * phentsize)
                .ok_or(ImageError::Truncated)?;
            let ty = u32le(d, h).ok_or(ImageError::Truncated)?;
            let off = u64le(d, h + 8).ok_or(ImageError::Truncated)? as usize;
            let paddr = u64le(d, h + 24).ok_or(ImageError::Truncated)?;
            let filesz = u64le(d, h + 32).ok_or(ImageError::Truncated)?;
            let end = off
                .checked_add(filesz as usize)
                .ok_or(ImageError::Truncated)?;
            if end as u64 > file_len {
                return Err(ImageError::Truncated);
            }
            match ty {
                1 if filesz > 0 => ranges.push(Range {
                    pa: paddr,
                    len: filesz,
                    off,
                }),
                4 => {
                    let notes = d.get(off..end).ok_or(ImageError::Truncated)?;
                    let (r, v) = parse_notes(notes);
                    if regs.is_none() {
                        regs = r;
                    }
                    if vmcoreinfo.is_none() {
                        vmcoreinfo = v;
                    }
                }
                _ => {}
            }
        }
        if ranges.is_empty() {
            return Err(ImageError::NoMemory);
        }
        ranges.sort_by_key(|r| r.pa);
        Ok((ranges, regs, vmcoreinfo))
    }

    /// The captured physical ranges (start, length).
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|r| (r.pa, r.len))
    }

    /// File offset of physical address `pa`, for tools that patch images.
    pub fn file_offset(&self, pa: u64) -> Option<usize> {
        let i = self.ranges.partition_point(|r| r.pa <= pa);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (pa - r.pa < r.len).then(|| r.off + (pa - r.pa) as usize)
    }
}

/// Reads the ELF notes: the first vCPU's registers (QEMU's "QEMU" note,
/// with NT_PRSTATUS as a fallback for RIP) and VMCOREINFO.
fn parse_notes(n: &[u8]) -> (Option<CpuRegs>, Option<String>) {
    let mut p = 0usize;
    let mut regs: Option<CpuRegs> = None;
    let mut vmci = None;
    let align4 = |x: usize| x.checked_add(3).map(|v| v & !3);
    while p + 12 <= n.len() {
        let (Some(namesz), Some(descsz), Some(ty)) =
            (u32le(n, p), u32le(n, p + 4), u32le(n, p + 8))
        else {
            break;
        };
        let name_start = p + 12;
        let Some(desc_start) = align4(name_start.saturating_add(namesz as usize)) else {
            break;
        };
        let Some(next) = align4(desc_start.saturating_add(descsz as usize)) else {
            break;
        };
        let (Some(name), Some(desc)) = (
            n.get(name_start..name_start + namesz as usize),
            n.get(desc_start..desc_start + descsz as usize),
        ) else {
            break;
        };
        let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
        if name == b"QEMU" && regs.is_none() && desc.len() >= 432 {
            let g = |o| u64le(desc, o).unwrap_or(0);
            regs = Some(CpuRegs {
                rip: g(136),
                idt_limit: u32le(desc, 368 + 4).unwrap_or(0),
                idt_base: g(384),
                cr3: g(416),
                cr4: g(424),
                gs_base: g(152 + 4 * 24 + 16),
                kernel_gs_base: if desc.len() >= 440 { g(432) } else { 0 },
                lstar: 0,
            });
        } else if name == b"VMCOREINFO" && vmci.is_none() {
            vmci = Some(String::from_utf8_lossy(desc).into_owned());
        }
        let _ = ty;
        p = next;
    }
    (regs, vmci)
}

impl<S: ImageSource> PhysMem for ImageOf<S> {
    fn read_phys(&self, pa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = pa
                .checked_add(done as u64)
                .ok_or(MemError::NotPresent(pa))?;
            let i = self.ranges.partition_point(|r| r.pa <= a);
            let r = i
                .checked_sub(1)
                .and_then(|i| self.ranges.get(i))
                .ok_or(MemError::NotPresent(a))?;
            let into = a - r.pa;
            if into >= r.len {
                return Err(MemError::NotPresent(a));
            }
            let n = ((r.len - into) as usize).min(buf.len() - done);
            let off = (r.off as u64).saturating_add(into);
            if !self.src.read_at(off, &mut buf[done..done + n]) {
                return Err(MemError::NotPresent(a));
            }
            done += n;
        }
        Ok(())
    }

    fn phys_end(&self) -> u64 {
        self.ranges.last().map(|r| r.pa + r.len).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A minimal QEMU-style ELF core: one note, two memory segments.
    pub fn tiny_core() -> Vec<u8> {
        let mut d = vec![0u8; 64];
        d[..6].copy_from_slice(b"\x7fELF\x02\x01");
        d[16..18].copy_from_slice(&4u16.to_le_bytes());
        d[18..20].copy_from_slice(&62u16.to_le_bytes());
        d[32..40].copy_from_slice(&64u64.to_le_bytes());
        d[54..56].copy_from_slice(&56u16.to_le_bytes());
        d[56..58].copy_from_slice(&3u16.to_le_bytes());
        let mut note = Vec::new();
        note.extend_from_slice(&5u32.to_le_bytes());
        note.extend_from_slice(&440u32.to_le_bytes());
        note.extend_from_slice(&0u32.to_le_bytes());
        note.extend_from_slice(b"QEMU\0\0\0\0");
        let mut desc = vec![0u8; 440];
        desc[416..424].copy_from_slice(&0x1234_5000u64.to_le_bytes());
        desc[384..392].copy_from_slice(&0xffff_fe00_0000_0000u64.to_le_bytes());
        note.extend_from_slice(&desc);
        let data_off = 64 + 3 * 56;
        let note_off = data_off;
        let seg1 = note_off + note.len();
        let seg2 = seg1 + 4096;
        let ph = |ty: u32, off: usize, pa: u64, sz: usize| {
            let mut h = vec![0u8; 56];
            h[0..4].copy_from_slice(&ty.to_le_bytes());
            h[8..16].copy_from_slice(&(off as u64).to_le_bytes());
            h[24..32].copy_from_slice(&pa.to_le_bytes());
            h[32..40].copy_from_slice(&(sz as u64).to_le_bytes());
            h
        };
        d.extend(ph(4, note_off, 0, note.len()));
        d.extend(ph(1, seg1, 0x1000, 4096));
        d.extend(ph(1, seg2, 0x10_0000, 4096));
        d.extend(note);
        d.extend(vec![0xaa; 4096]);
        d.extend(vec![0xbb; 4096]);
        d
    }

    #[test]
    fn elf_core_reads_and_regs() {
        let d = tiny_core();
        let img = Image::parse(&d).unwrap();
        let r = img.regs.unwrap();
        assert_eq!(r.cr3, 0x1234_5000);
        assert_eq!(r.idt_base, 0xffff_fe00_0000_0000);
        let mut b = [0u8; 4];
        img.read_phys(0x1ffe, &mut b[..2]).unwrap();
        assert_eq!(b[..2], [0xaa, 0xaa]);
        // A read crossing into a hole fails.
        assert_eq!(
            img.read_phys(0x1ffe, &mut b),
            Err(MemError::NotPresent(0x2000))
        );
        img.read_phys(0x10_0000, &mut b).unwrap();
        assert_eq!(b, [0xbb; 4]);
        assert_eq!(img.read_phys(0, &mut b), Err(MemError::NotPresent(0)));
    }

    #[test]
    fn truncated_and_garbage_images_are_errors() {
        let d = tiny_core();
        for cut in [10, 63, 100, 300, d.len() - 1] {
            assert!(Image::parse(&d[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            Image::parse(&[0x55; 1000]).err(),
            Some(ImageError::TooSmall)
        );
        assert_eq!(
            Image::parse(&vec![0x55; (1 << 20) + 1]).err(),
            Some(ImageError::RawNotPageMultiple)
        );
        let raw = vec![0u8; 1 << 20];
        let img = Image::parse(&raw).unwrap();
        assert_eq!(img.phys_end(), 1 << 20);
    }
}
