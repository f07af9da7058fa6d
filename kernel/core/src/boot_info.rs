//! Multiboot2 boot information: the memory map and the modules, parsed from
//! the bytes GRUB hands over, and the physical frame allocator built on them.
//!
//! Rules: the parser trusts nothing (every tag length is bounds-checked,
//! unknown tags are skipped); the allocator hands out 4 KiB frames from the
//! usable RAM below 4 GiB (the kernel's direct map) minus what is reserved
//! (low 1 MiB, kernel image, boot information, modules), only at boot.

use heapless::Vec;

/// Most memory map entries kept.
pub const MAX_MMAP: usize = 64;
/// Most modules kept.
pub const MAX_MODULES: usize = 8;
/// The Multiboot2 magic in `eax` at entry.
pub const MB2_MAGIC: u32 = 0x36d7_6289;

/// A physical memory range (half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// What the kernel needs from the boot information.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// Usable RAM (type 1 entries).
    pub usable: Vec<PhysRange, MAX_MMAP>,
    /// Boot modules, in order.
    pub modules: Vec<PhysRange, MAX_MODULES>,
    /// Whether a memory map tag was present.
    pub has_mmap: bool,
    /// A copy of the ACPI RSDP (tag 15 preferred over tag 14), if given.
    pub rsdp: Option<heapless::Vec<u8, 36>>,
}

/// Why the boot information is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// The magic in `eax` is not Multiboot2's: not booted by a Multiboot2 loader.
    BadMagic,
    /// Shorter than its header or its declared size, or a tag overruns it.
    Truncated,
    /// No memory map tag.
    NoMemoryMap,
    /// More memory map entries or modules than the kernel keeps.
    TooMany,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BootInfoError::BadMagic => "not booted by a Multiboot2 loader (bad magic)",
            BootInfoError::Truncated => "Multiboot2 information is truncated or malformed",
            BootInfoError::NoMemoryMap => "Multiboot2 information has no memory map",
            BootInfoError::TooMany => "too many memory map entries or modules",
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32_at(b, at)? as u64 | ((u32_at(b, at.checked_add(4)?)? as u64) << 32))
}

/// Parses the boot information (`info` starts at the `total_size` field).
pub fn parse(magic: u32, info: &[u8]) -> Result<BootInfo, BootInfoError> {
    if magic != MB2_MAGIC {
        return Err(BootInfoError::BadMagic);
    }
    let total = u32_at(info, 0).ok_or(BootInfoError::Truncated)? as usize;
    if total < 8 || total > info.len() {
        return Err(BootInfoError::Truncated);
    }
    let info = &info[..total];
    let mut out = BootInfo::default();
    let mut at = 8usize;
    while at + 8 <= total {
        let ty = u32_at(info, at).ok_or(BootInfoError::Truncated)?;
        let size = u32_at(info, at + 4).ok_or(BootInfoError::Truncated)? as usize;
        if size < 8 || at + size > total {
            return Err(BootInfoError::Truncated);
        }
        let tag = &info[at..at + size];
        match ty {
            0 => break,
            3 => {
                let start = u32_at(tag, 8).ok_or(BootInfoError::Truncated)? as u64;
                let end = u32_at(tag, 12).ok_or(BootInfoError::Truncated)? as u64;
                if end < start {
                    return Err(BootInfoError::Truncated);
                }
                out.modules
                    .push(PhysRange { start, end })
                    .map_err(|_| BootInfoError::TooMany)?;
            }
            6 => {
                out.has_mmap = true;
                let entry_size = u32_at(tag, 8).ok_or(BootInfoError::Truncated)? as usize;
                if entry_size < 24 {
                    return Err(BootInfoError::Truncated);
                }
                let mut e = 16;
                while e + entry_size <= size {
                    let base = u64_at(tag, e).ok_or(BootInfoError::Truncated)?;
                    let len = u64_at(tag, e + 8).ok_or(BootInfoError::Truncated)?;
                    let kind = u32_at(tag, e + 16).ok_or(BootInfoError::Truncated)?;
                    if kind == 1 && len > 0 {
                        let end = base.saturating_add(len);
                        out.usable
                            .push(PhysRange { start: base, end })
                            .map_err(|_| BootInfoError::TooMany)?;
                    }
                    e += entry_size;
                }
            }
            14 | 15 => {
                let body = &tag[8..];
                let take = body.len().min(36);
                // Tag 15 (ACPI 2.0+ RSDP) wins over tag 14 (ACPI 1.0).
                if ty == 15 || out.rsdp.is_none() {
                    out.rsdp = heapless::Vec::from_slice(&body[..take]).ok();
                }
            }
            _ => {}
        }
        at += (size + 7) & !7;
    }
    if !out.has_mmap {
        return Err(BootInfoError::NoMemoryMap);
    }
    Ok(out)
}

/// Hands out 4 KiB frames from usable RAM minus reserved ranges. Boot only.
#[derive(Debug, Clone, Default)]
pub struct FrameAllocator {
    free: Vec<PhysRange, { MAX_MMAP * 2 }>,
    /// Frames handed out so far.
    pub allocated: u64,
}

const PAGE: u64 = 4096;

impl FrameAllocator {
    /// Usable RAM clipped to `[floor, ceiling)` and rounded inwards to pages.
    pub fn new(usable: &[PhysRange], floor: u64, ceiling: u64) -> Self {
        let mut free = Vec::new();
        for r in usable {
            let start = r.start.max(floor).saturating_add(PAGE - 1) & !(PAGE - 1);
            let end = r.end.min(ceiling) & !(PAGE - 1);
            if start < end {
                let _ = free.push(PhysRange { start, end });
            }
        }
        Self { free, allocated: 0 }
    }

    /// Removes `r` from the free ranges (splitting one if needed).
    pub fn reserve(&mut self, r: PhysRange) {
        let r = PhysRange {
            start: r.start & !(PAGE - 1),
            end: r.end.saturating_add(PAGE - 1) & !(PAGE - 1),
        };
        let mut i = 0;
        while i < self.free.len() {
            let f = self.free[i];
            if r.end <= f.start || r.start >= f.end {
                i += 1;
                continue;
            }
            self.free.swap_remove(i);
            if f.start < r.start {
                let _ = self.free.push(PhysRange {
                    start: f.start,
                    end: r.start,
                });
            }
            if r.end < f.end {
                let _ = self.free.push(PhysRange {
                    start: r.end,
                    end: f.end,
                });
            }
        }
    }

    /// One frame's physical address, or `None` when memory is exhausted.
    pub fn alloc(&mut self) -> Option<u64> {
        let f = self.free.iter_mut().find(|f| f.start < f.end)?;
        let frame = f.start;
        f.start += PAGE;
        self.allocated += 1;
        Some(frame)
    }

    /// `n` physically contiguous frames (for regions), or `None`.
    pub fn alloc_contiguous(&mut self, n: u64) -> Option<u64> {
        let bytes = n.checked_mul(PAGE)?;
        let f = self.free.iter_mut().find(|f| f.end - f.start >= bytes)?;
        let base = f.start;
        f.start += bytes;
        self.allocated += n;
        Some(base)
    }

    /// `n` contiguous frames starting at a multiple of `align` (a power of
    /// two, at least a page), for regions that large pages can map (2 MiB
    /// EPT leaves); the frames skipped to align stay free. `None` if no
    /// free range has room.
    pub fn alloc_contiguous_aligned(&mut self, n: u64, align: u64) -> Option<u64> {
        if !align.is_power_of_two() || align < PAGE {
            return None;
        }
        let bytes = n.checked_mul(PAGE)?;
        let i = self.free.iter().position(|f| {
            let base = f.start.checked_add(align - 1).map(|x| x & !(align - 1));
            base.and_then(|b| b.checked_add(bytes))
                .is_some_and(|end| end <= f.end)
        })?;
        let f = self.free[i];
        let base = (f.start + align - 1) & !(align - 1);
        // The range keeps what lies after; the gap before goes back as a
        // range of its own when there is room to list it (else it is lost,
        // never handed out twice).
        self.free[i].start = base + bytes;
        if base > f.start {
            let _ = self.free.push(PhysRange {
                start: f.start,
                end: base,
            });
        }
        self.allocated += n;
        Some(base)
    }

    /// Bytes still free.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|f| f.end - f.start).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(ty: u32, body: &[u8]) -> std::vec::Vec<u8> {
        let mut t = std::vec::Vec::new();
        t.extend_from_slice(&ty.to_le_bytes());
        t.extend_from_slice(&((8 + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(body);
        while t.len() % 8 != 0 {
            t.push(0);
        }
        t
    }

    fn info() -> std::vec::Vec<u8> {
        let mut mmap = std::vec::Vec::new();
        mmap.extend_from_slice(&24u32.to_le_bytes());
        mmap.extend_from_slice(&0u32.to_le_bytes());
        for (base, len, kind) in [
            (0u64, 0x9f000u64, 1u32),
            (0x100000, 0x7f00000, 1),
            (0xfec00000, 0x1000, 2),
        ] {
            mmap.extend_from_slice(&base.to_le_bytes());
            mmap.extend_from_slice(&len.to_le_bytes());
            mmap.extend_from_slice(&kind.to_le_bytes());
            mmap.extend_from_slice(&0u32.to_le_bytes());
        }
        let mut module = std::vec::Vec::new();
        module.extend_from_slice(&0x200000u32.to_le_bytes());
        module.extend_from_slice(&0x234567u32.to_le_bytes());
        module.extend_from_slice(b"plan\0");
        let mut body = std::vec::Vec::new();
        body.extend(tag(1, b"cmdline\0"));
        body.extend(tag(6, &mmap));
        body.extend(tag(3, &module));
        body.extend(tag(0, &[]));
        let mut out = std::vec::Vec::new();
        out.extend_from_slice(&((8 + body.len()) as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn parses_memory_map_and_modules() {
        let i = parse(MB2_MAGIC, &info()).unwrap();
        assert_eq!(i.usable.len(), 2);
        assert_eq!(
            i.usable[1],
            PhysRange {
                start: 0x100000,
                end: 0x8000000
            }
        );
        assert_eq!(
            i.modules.as_slice(),
            &[PhysRange {
                start: 0x200000,
                end: 0x234567
            }]
        );
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        assert_eq!(parse(0, &info()), Err(BootInfoError::BadMagic));
        let good = info();
        for cut in 0..good.len() {
            let mut b = good[..cut].to_vec();
            if b.len() >= 4 {
                // Keep the declared size: the parser must notice the overrun.
                b[..4].copy_from_slice(&(good.len() as u32).to_le_bytes());
            }
            assert!(parse(MB2_MAGIC, &b).is_err(), "cut at {cut}");
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] = 0xff;
            let _ = parse(MB2_MAGIC, &b);
        }
    }

    #[test]
    fn allocator_skips_reserved_ranges() {
        let usable = [
            PhysRange {
                start: 0,
                end: 0x9f000,
            },
            PhysRange {
                start: 0x100000,
                end: 0x110000,
            },
        ];
        let mut a = FrameAllocator::new(&usable, 0x100000, 1 << 32);
        a.reserve(PhysRange {
            start: 0x101000,
            end: 0x102800,
        });
        let mut got = std::vec::Vec::new();
        while let Some(f) = a.alloc() {
            got.push(f);
        }
        assert_eq!(got.len(), 16 - 2);
        assert!(got.contains(&0x100000));
        assert!(!got.contains(&0x101000));
        assert!(!got.contains(&0x102000));
        assert!(got.iter().all(|f| f % 4096 == 0 && *f >= 0x100000));
        assert_eq!(a.free_bytes(), 0);
    }

    #[test]
    fn contiguous_allocation() {
        let usable = [
            PhysRange {
                start: 0x100000,
                end: 0x104000,
            },
            PhysRange {
                start: 0x200000,
                end: 0x210000,
            },
        ];
        let mut a = FrameAllocator::new(&usable, 0, 1 << 32);
        assert_eq!(a.alloc_contiguous(8), Some(0x200000));
        assert_eq!(a.alloc_contiguous(100), None);
    }

    #[test]
    fn aligned_contiguous_allocation_keeps_the_gap() {
        let usable = [PhysRange {
            start: 0x10_1000,
            end: 0x80_0000,
        }];
        let mut a = FrameAllocator::new(&usable, 0, 1 << 32);
        let before = a.free_bytes();
        // 2 MiB at 2 MiB alignment: 0x20_0000; the 0x10_1000.. gap stays free.
        assert_eq!(a.alloc_contiguous_aligned(512, 0x20_0000), Some(0x20_0000));
        assert_eq!(a.free_bytes(), before - 0x20_0000);
        assert_eq!(a.alloc_contiguous_aligned(512, 0x20_0000), Some(0x40_0000));
        assert_eq!(a.alloc_contiguous_aligned(512, 0x20_0000), Some(0x60_0000));
        assert_eq!(a.alloc_contiguous_aligned(512, 0x20_0000), None);
        // The gap still serves ordinary frames, and never twice.
        let mut seen = std::vec::Vec::new();
        while let Some(f) = a.alloc() {
            assert!((0x10_1000..0x20_0000).contains(&f), "{f:#x}");
            assert!(!seen.contains(&f));
            seen.push(f);
        }
        assert_eq!(seen.len(), 0xff);
        assert_eq!(a.alloc_contiguous_aligned(1, 3 * 4096), None);
        assert_eq!(a.alloc_contiguous_aligned(1, 0), None);
    }
}
