//! The boot plan: what the host tool compiled from `system.xml`, and the
//! checks the kernel runs on it before creating any object.
//!
//! A boot module is `header | plan | data`: a fixed 32-byte [`Header`]
//! (magic, format version, lengths, CRC-32 of everything after the header),
//! the postcard encoding of [`BootPlan`], then the bytes the plan's
//! [`Segment`]s and region [`Prefill`]s point into. Capacities are fixed ([`MAX_PDS`] ...): the kernel
//! holds the plan in a static and allocates nothing after boot.
//!
//! [`decode`] never trusts its input: a short, corrupt, foreign or
//! wrong-version module, or a plan whose fields break a rule of
//! [`BootPlan::validate`], yields a [`PlanError`] that says what is wrong.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// Magic at the start of every boot module.
pub const MAGIC: [u8; 8] = *b"BHDPLAN\0";
/// Format version this kernel reads. Bump on any change to the types below.
pub const VERSION: u32 = 4;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 32;

/// Most PDs in a system.
pub const MAX_PDS: usize = 16;
/// Most memory regions in a system.
pub const MAX_REGIONS: usize = 32;
/// Most channels in a system.
pub const MAX_CHANNELS: usize = 64;
/// Most ELF segments per PD.
pub const MAX_SEGMENTS: usize = 8;
/// Most maps per PD.
pub const MAX_MAPS: usize = 16;
/// Most IRQs per PD.
pub const MAX_IRQS: usize = 8;
/// Most I/O port ranges per PD.
pub const MAX_IOPORTS: usize = 8;
/// Longest PD or region name.
pub const MAX_NAME: usize = 32;
/// Largest PD stack.
pub const MAX_STACK: u64 = 1 << 20;
/// Largest region (256 MiB; the kernel maps only below 4 GiB anyway).
pub const MAX_REGION: u64 = 256 << 20;
/// Largest total size of a PD's segments in memory.
pub const MAX_IMAGE: u64 = 64 << 20;
/// Page size; every map, region and stack is a multiple of it.
pub const PAGE: u64 = 4096;
/// The CPU vector of SDF IRQ vector 0: SDF vectors 0..=107 are delivered on
/// CPU vectors 0x90..=0xfb (below are exceptions, the kernel timer at 0x20
/// and the syscall vector 0x80; 0xff is the spurious vector).
pub const MIN_IRQ_VECTOR: u8 = 0x90;
/// Highest CPU vector an IRQ may use.
pub const MAX_IRQ_VECTOR: u8 = 0xfb;
/// Number of IOAPIC pins the kernel drives.
pub const IOAPIC_PINS: u8 = 24;

/// Read permission bit in [`Segment::perms`] and [`Map::perms`].
pub const PERM_R: u8 = 1;
/// Write permission bit.
pub const PERM_W: u8 = 2;
/// Execute permission bit.
pub const PERM_X: u8 = 4;

/// The whole system as the kernel instantiates it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct BootPlan {
    /// Protection domains; a PD's index here is its identity in the kernel.
    pub pds: Vec<Pd, MAX_PDS>,
    /// Memory regions, referenced by index from [`Map::region`].
    pub regions: Vec<Region, MAX_REGIONS>,
    /// Channels between PDs.
    pub channels: Vec<Channel, MAX_CHANNELS>,
    /// Virtual machines (format version 3), see [`crate::plan_vm`].
    pub vms: Vec<crate::plan_vm::Vm, { crate::plan_vm::MAX_VMS }>,
}

/// One protection domain.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Pd {
    /// Name, printed before its console output and in fault reports.
    pub name: String<MAX_NAME>,
    /// Priority 0..=254; higher runs first.
    pub priority: u8,
    /// CPU time (µs) it may use per period.
    pub budget_us: u32,
    /// Replenishment period (µs); `budget_us <= period_us`.
    pub period_us: u32,
    /// A passive PD runs only to serve PPCs (and its notifications wait).
    pub passive: bool,
    /// Index of the parent PD, which receives this PD's faults.
    pub parent: Option<u8>,
    /// The id the parent uses for this child (`id` attribute in the SDF).
    pub child_id: u8,
    /// ELF entry point.
    pub entry: u64,
    /// Stack size in bytes (page multiple).
    pub stack_size: u64,
    /// Loadable ELF segments.
    pub segments: Vec<Segment, MAX_SEGMENTS>,
    /// Memory regions mapped into this PD.
    pub maps: Vec<Map, MAX_MAPS>,
    /// IRQs delivered to this PD as notifications.
    pub irqs: Vec<Irq, MAX_IRQS>,
    /// I/O port ranges this PD may use.
    pub ioports: Vec<IoPorts, MAX_IOPORTS>,
}

/// A loadable segment: `data_len` bytes at `data_offset` of the data area,
/// then zeroes up to `mem_size`, at `vaddr`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct Segment {
    /// Virtual address (need not be page aligned).
    pub vaddr: u64,
    /// Size in memory (data then zeroes).
    pub mem_size: u64,
    /// Offset of its bytes in the module's data area.
    pub data_offset: u64,
    /// Number of bytes stored (<= `mem_size`).
    pub data_len: u64,
    /// [`PERM_R`] | [`PERM_W`] | [`PERM_X`]; W and X never together.
    pub perms: u8,
}

/// A memory region.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Region {
    /// Name from the SDF.
    pub name: String<MAX_NAME>,
    /// Size in bytes (page multiple).
    pub size: u64,
    /// Fixed physical address (device memory); `None` = RAM the kernel
    /// allocates and zeroes at boot.
    pub phys_addr: Option<u64>,
    /// Initial contents (`prefill_path` in the SDF; format version 4): bytes
    /// of the data area copied to the start of the region at boot, the rest
    /// stays zero. Only RAM regions (no `phys_addr`) may have one.
    pub prefill: Option<Prefill>,
}

/// Where a region's initial contents lie in the module's data area.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct Prefill {
    /// Offset of the bytes in the data area.
    pub data_offset: u64,
    /// Number of bytes (at most the region's size).
    pub data_len: u64,
}

/// A region mapped into a PD.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct Map {
    /// Index into [`BootPlan::regions`].
    pub region: u16,
    /// Page-aligned virtual address.
    pub vaddr: u64,
    /// [`PERM_R`] | [`PERM_W`] | [`PERM_X`]; W and X never together.
    pub perms: u8,
    /// `false` maps it uncached (device memory).
    pub cached: bool,
}

/// An IRQ delivered to a PD as a notification on channel `id`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct Irq {
    /// The PD's channel id for it.
    pub id: u8,
    /// IOAPIC input pin (GSI).
    pub pin: u8,
    /// CPU vector it is routed to.
    pub vector: u8,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else high).
    pub active_low: bool,
    /// A message-signalled IRQ of this PCI function (bus, device, function)
    /// instead of an IOAPIC pin (`pin`, `level`, `active_low` then unused).
    pub msi: Option<(u8, u8, u8)>,
}

/// A range of I/O ports a PD may use directly.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct IoPorts {
    /// First port.
    pub base: u16,
    /// Number of ports (>= 1, `base + size <= 0x10000`).
    pub size: u32,
}

/// One end of a channel.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct End {
    /// PD index.
    pub pd: u8,
    /// The channel id this PD uses for it.
    pub id: u8,
    /// Whether this end may notify the other.
    pub notify: bool,
    /// Whether this end may make protected calls to the other end
    /// (`pp="true"` on this `<end>`, as in the Microkit SDF).
    pub pp: bool,
}

/// A channel between two PDs.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct Channel {
    /// First end.
    pub a: End,
    /// Second end.
    pub b: End,
}

/// Why a boot module cannot be used. Printed by the kernel before it halts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// Shorter than the header or than the lengths it declares.
    Truncated,
    /// Not a boot module (wrong magic).
    BadMagic,
    /// Written for another format version.
    Version {
        /// The version found.
        found: u32,
    },
    /// The CRC-32 does not match: the module was damaged.
    Checksum,
    /// The plan does not decode (or exceeds a capacity).
    Decode,
    /// Bytes left after the plan's encoding.
    TrailingBytes,
    /// A rule broken by one PD (index and which rule).
    Pd {
        /// PD index.
        pd: u8,
        /// The rule.
        rule: Rule,
    },
    /// A rule broken by one region.
    Region {
        /// Region index.
        region: u8,
        /// The rule.
        rule: Rule,
    },
    /// A rule broken by one channel.
    Channel {
        /// Channel index.
        channel: u8,
        /// The rule.
        rule: Rule,
    },
    /// The plan has no PD.
    NoPds,
    /// A rule broken by one virtual machine.
    Vm {
        /// VM index.
        vm: u8,
        /// The rule.
        rule: crate::plan_vm::VmRule,
    },
}

/// A structural rule of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Priority above 254.
    Priority,
    /// Budget zero or above the period, or period zero.
    Budget,
    /// Parent index out of range, the PD itself, or a cycle.
    Parent,
    /// Two children of one parent share an id.
    ChildId,
    /// Entry point not inside an executable segment.
    Entry,
    /// Stack size zero, not a page multiple, or too large.
    Stack,
    /// Segment data outside the module, data longer than memory size,
    /// or address range outside user space.
    SegmentBounds,
    /// A segment both writable and executable (W^X).
    WriteExecute,
    /// Segments too large in total.
    ImageSize,
    /// Two segments, maps, the stack (with its guard page) or the IPC
    /// buffer overlap.
    Overlap,
    /// Map of a region index out of range, unaligned, or outside user space.
    MapBounds,
    /// Region size zero, not a page multiple, too large, or an unaligned
    /// physical address.
    RegionBounds,
    /// Channel end names a missing PD, has an id above 62, or both ends
    /// are the same PD.
    ChannelEnd,
    /// A PD uses one channel id twice (channels or IRQs).
    DuplicateId,
    /// A `pp` end (caller) whose callee's priority is not strictly higher.
    PpPriority,
    /// IRQ pin or vector out of range, or a vector used twice.
    IrqBounds,
    /// I/O port range empty or past 0xffff.
    IoPortBounds,
    /// A name that is empty.
    Name,
    /// Prefill bytes outside the data area, longer than the region, or
    /// given for a device region (fixed `phys_addr`).
    Prefill,
}

impl core::fmt::Display for Rule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Rule::Priority => "priority above 254",
            Rule::Budget => "budget must be 1..=period and period non-zero",
            Rule::Parent => "parent is out of range, itself, or forms a cycle",
            Rule::ChildId => "two children of one parent share an id",
            Rule::Entry => "entry point is not in an executable segment",
            Rule::Stack => "stack size must be a non-zero page multiple up to 1 MiB",
            Rule::SegmentBounds => "segment data or address out of bounds",
            Rule::WriteExecute => "segment or map is writable and executable",
            Rule::ImageSize => "segments too large in total",
            Rule::Overlap => "segments, maps, stack (with guard page) or IPC buffer overlap",
            Rule::MapBounds => "map names a missing region or an unaligned/out-of-range address",
            Rule::RegionBounds => "region size or physical address invalid",
            Rule::ChannelEnd => {
                "channel end names a missing PD, an id above 62, or the same PD twice"
            }
            Rule::DuplicateId => "a channel/IRQ id is used twice in one PD",
            Rule::PpPriority => {
                "the PD a pp end calls must have strictly higher priority than the caller"
            }
            Rule::IrqBounds => "IRQ pin or vector out of range or used twice",
            Rule::IoPortBounds => "I/O port range empty or past 0xffff",
            Rule::Name => "empty name",
            Rule::Prefill => {
                "prefill data out of bounds, larger than the region, or for a device region"
            }
        })
    }
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlanError::Truncated => f.write_str("boot module is truncated"),
            PlanError::BadMagic => f.write_str("boot module has no Bulkhead plan magic (wrong module?)"),
            PlanError::Version { found } => write!(
                f,
                "boot plan format version {found}, this kernel reads {VERSION}: rebuild with the matching `bulkhead pack`"
            ),
            PlanError::Checksum => f.write_str("boot module checksum mismatch (damaged image)"),
            PlanError::Decode => f.write_str("boot plan does not decode or exceeds a capacity"),
            PlanError::TrailingBytes => f.write_str("boot plan has trailing bytes"),
            PlanError::Pd { pd, rule } => write!(f, "PD #{pd}: {rule}"),
            PlanError::Region { region, rule } => write!(f, "region #{region}: {rule}"),
            PlanError::Channel { channel, rule } => write!(f, "channel #{channel}: {rule}"),
            PlanError::NoPds => f.write_str("boot plan has no PD"),
            PlanError::Vm { vm, rule } => write!(f, "VM #{vm}: {rule}"),
        }
    }
}

/// The fixed header of a boot module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Length of the postcard-encoded plan.
    pub plan_len: u32,
    /// Length of the data area after the plan.
    pub data_len: u64,
    /// CRC-32 (IEEE) of plan and data.
    pub crc: u32,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    let lo = le32(b, at)? as u64;
    let hi = le32(b, at + 4)? as u64;
    Some(lo | (hi << 32))
}

/// CRC-32 lookup table (IEEE 802.3, reflected polynomial), built at
/// compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected), one table lookup per byte: with guest
/// kernels prefilled into regions the module is megabytes, and the kernel
/// checks all of it at boot (a bitwise loop took seconds under Bochs).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = (crc >> 8) ^ CRC_TABLE[((crc ^ byte as u32) & 0xff) as usize];
    }
    !crc
}

/// Decodes and validates a boot module: returns the plan and its data area.
pub fn decode(module: &[u8]) -> Result<(BootPlan, &[u8]), PlanError> {
    if module.len() < HEADER_LEN {
        return Err(PlanError::Truncated);
    }
    if module[..8] != MAGIC {
        return Err(PlanError::BadMagic);
    }
    let version = le32(module, 8).ok_or(PlanError::Truncated)?;
    if version != VERSION {
        return Err(PlanError::Version { found: version });
    }
    let plan_len = le32(module, 12).ok_or(PlanError::Truncated)? as usize;
    let data_len = le64(module, 16).ok_or(PlanError::Truncated)?;
    let crc = le32(module, 24).ok_or(PlanError::Truncated)?;
    let body = &module[HEADER_LEN..];
    let total = (plan_len as u64)
        .checked_add(data_len)
        .ok_or(PlanError::Truncated)?;
    if (body.len() as u64) < total {
        return Err(PlanError::Truncated);
    }
    let body = &body[..total as usize];
    if crc32(body) != crc {
        return Err(PlanError::Checksum);
    }
    let (plan_bytes, data) = body.split_at(plan_len);
    let (plan, rest): (BootPlan, _) =
        postcard::take_from_bytes(plan_bytes).map_err(|_| PlanError::Decode)?;
    if !rest.is_empty() {
        return Err(PlanError::TrailingBytes);
    }
    plan.validate(data.len() as u64)?;
    Ok((plan, data))
}

/// Encodes a plan and its data area into a boot module (host tool side).
#[cfg(any(feature = "alloc", test))]
pub fn encode(plan: &BootPlan, data: &[u8]) -> Result<alloc::vec::Vec<u8>, PlanError> {
    plan.validate(data.len() as u64)?;
    let plan_bytes = postcard::to_allocvec(plan).map_err(|_| PlanError::Decode)?;
    Ok(assemble(&plan_bytes, data))
}

/// Puts header, encoded plan and data together (no checks: tests use it to
/// build deliberately broken modules).
#[cfg(any(feature = "alloc", test))]
pub fn assemble(plan_bytes: &[u8], data: &[u8]) -> alloc::vec::Vec<u8> {
    let mut body = alloc::vec::Vec::with_capacity(plan_bytes.len() + data.len());
    body.extend_from_slice(plan_bytes);
    body.extend_from_slice(data);
    let mut out = alloc::vec::Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(plan_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32(&body).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body);
    out
}

/// A half-open virtual address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    fn overlaps(self, other: Range) -> bool {
        self.start < other.end && other.start < self.end
    }
    fn page_span(self) -> Range {
        Range {
            start: self.start & !(PAGE - 1),
            end: self.end.saturating_add(PAGE - 1) & !(PAGE - 1),
        }
    }
}

/// The stack's pages plus the guard page below it.
pub fn stack_range_with_guard(stack_size: u64) -> Range {
    let top = bulkhead_abi::STACK_TOP;
    Range {
        start: top.saturating_sub(stack_size).saturating_sub(PAGE),
        end: top,
    }
}

/// The IPC buffer page.
pub fn ipc_range() -> Range {
    Range {
        start: bulkhead_abi::IPC_BUFFER_VADDR,
        end: bulkhead_abi::IPC_BUFFER_VADDR + PAGE,
    }
}

fn wx(perms: u8) -> bool {
    perms & PERM_W != 0 && perms & PERM_X != 0
}

impl BootPlan {
    /// Every structural and bounds rule; `data_len` is the size of the data
    /// area segments point into.
    pub fn validate(&self, data_len: u64) -> Result<(), PlanError> {
        if self.pds.is_empty() {
            return Err(PlanError::NoPds);
        }
        for (ri, r) in self.regions.iter().enumerate() {
            let err = |rule| PlanError::Region {
                region: ri as u8,
                rule,
            };
            if r.name.is_empty() {
                return Err(err(Rule::Name));
            }
            if r.size == 0 || !r.size.is_multiple_of(PAGE) || r.size > MAX_REGION {
                return Err(err(Rule::RegionBounds));
            }
            if let Some(p) = r.phys_addr {
                if !p.is_multiple_of(PAGE) || p.checked_add(r.size).is_none_or(|e| e > 1 << 52) {
                    return Err(err(Rule::RegionBounds));
                }
            }
            if let Some(f) = r.prefill {
                // Device memory is not the kernel's to write at boot.
                if r.phys_addr.is_some()
                    || f.data_len > r.size
                    || f.data_offset
                        .checked_add(f.data_len)
                        .is_none_or(|e| e > data_len)
                {
                    return Err(err(Rule::Prefill));
                }
            }
        }
        let mut vectors_used = [false; 256];
        for (pi, pd) in self.pds.iter().enumerate() {
            let err = |rule| PlanError::Pd { pd: pi as u8, rule };
            self.validate_pd(pi, pd, data_len).map_err(err)?;
            for irq in &pd.irqs {
                if vectors_used[irq.vector as usize] {
                    return Err(err(Rule::IrqBounds));
                }
                vectors_used[irq.vector as usize] = true;
            }
        }
        for (ci, ch) in self.channels.iter().enumerate() {
            let err = |rule| PlanError::Channel {
                channel: ci as u8,
                rule,
            };
            for end in [ch.a, ch.b] {
                if end.pd as usize >= self.pds.len() || end.id as u64 > bulkhead_abi::MAX_CHANNEL_ID
                {
                    return Err(err(Rule::ChannelEnd));
                }
            }
            if ch.a.pd == ch.b.pd {
                return Err(err(Rule::ChannelEnd));
            }
            for (caller, callee) in [(ch.a, ch.b), (ch.b, ch.a)] {
                if caller.pp
                    && self.pds[callee.pd as usize].priority
                        <= self.pds[caller.pd as usize].priority
                {
                    return Err(err(Rule::PpPriority));
                }
            }
        }
        // Channel ids unique per PD, across channels and IRQs.
        for (pi, pd) in self.pds.iter().enumerate() {
            let mut used = 0u64;
            let mut take = |id: u8| -> Result<(), PlanError> {
                let bit = 1u64 << (id as u64 & 63);
                if id as u64 > bulkhead_abi::MAX_CHANNEL_ID || used & bit != 0 {
                    return Err(PlanError::Pd {
                        pd: pi as u8,
                        rule: Rule::DuplicateId,
                    });
                }
                used |= bit;
                Ok(())
            };
            for ch in &self.channels {
                for end in [ch.a, ch.b] {
                    if end.pd as usize == pi {
                        take(end.id)?;
                    }
                }
            }
            for irq in &pd.irqs {
                take(irq.id)?;
            }
        }
        self.validate_vms()?;
        // Parents: in range, not self, acyclic; child ids unique per parent.
        for (pi, pd) in self.pds.iter().enumerate() {
            let err = |rule| PlanError::Pd { pd: pi as u8, rule };
            let mut cur = pd.parent;
            let mut steps = 0;
            while let Some(p) = cur {
                if p as usize >= self.pds.len() || p as usize == pi || steps > MAX_PDS {
                    return Err(err(Rule::Parent));
                }
                steps += 1;
                cur = self.pds[p as usize].parent;
            }
            for (qi, q) in self.pds.iter().enumerate() {
                if qi != pi
                    && q.parent.is_some()
                    && q.parent == pd.parent
                    && q.child_id == pd.child_id
                {
                    return Err(err(Rule::ChildId));
                }
            }
        }
        Ok(())
    }

    fn validate_pd(&self, _pi: usize, pd: &Pd, data_len: u64) -> Result<(), Rule> {
        if pd.name.is_empty() {
            return Err(Rule::Name);
        }
        if pd.priority > 254 {
            return Err(Rule::Priority);
        }
        if pd.period_us == 0 || pd.budget_us == 0 || pd.budget_us > pd.period_us {
            return Err(Rule::Budget);
        }
        if pd.stack_size == 0 || !pd.stack_size.is_multiple_of(PAGE) || pd.stack_size > MAX_STACK {
            return Err(Rule::Stack);
        }
        let mut ranges: Vec<Range, { MAX_SEGMENTS + MAX_MAPS + 2 }> = Vec::new();
        let mut total = 0u64;
        let mut entry_ok = false;
        for seg in &pd.segments {
            let data_end = seg
                .data_offset
                .checked_add(seg.data_len)
                .ok_or(Rule::SegmentBounds)?;
            let end = seg
                .vaddr
                .checked_add(seg.mem_size)
                .ok_or(Rule::SegmentBounds)?;
            if data_end > data_len
                || seg.data_len > seg.mem_size
                || seg.mem_size == 0
                || end > bulkhead_abi::USER_TOP
                || seg.vaddr < PAGE
            {
                return Err(Rule::SegmentBounds);
            }
            if wx(seg.perms) {
                return Err(Rule::WriteExecute);
            }
            total = total.saturating_add(seg.mem_size);
            let r = Range {
                start: seg.vaddr,
                end,
            }
            .page_span();
            if seg.perms & PERM_X != 0 && pd.entry >= seg.vaddr && pd.entry < end {
                entry_ok = true;
            }
            ranges.push(r).map_err(|_| Rule::Overlap)?;
        }
        if total > MAX_IMAGE {
            return Err(Rule::ImageSize);
        }
        if !entry_ok {
            return Err(Rule::Entry);
        }
        for m in &pd.maps {
            let region = self.regions.get(m.region as usize).ok_or(Rule::MapBounds)?;
            let end = m.vaddr.checked_add(region.size).ok_or(Rule::MapBounds)?;
            if !m.vaddr.is_multiple_of(PAGE) || m.vaddr < PAGE || end > bulkhead_abi::USER_TOP {
                return Err(Rule::MapBounds);
            }
            if wx(m.perms) {
                return Err(Rule::WriteExecute);
            }
            ranges
                .push(Range {
                    start: m.vaddr,
                    end,
                })
                .map_err(|_| Rule::Overlap)?;
        }
        ranges
            .push(stack_range_with_guard(pd.stack_size))
            .map_err(|_| Rule::Overlap)?;
        ranges.push(ipc_range()).map_err(|_| Rule::Overlap)?;
        for (i, a) in ranges.iter().enumerate() {
            for b in &ranges[i + 1..] {
                if a.overlaps(*b) {
                    return Err(Rule::Overlap);
                }
            }
        }
        for irq in &pd.irqs {
            if let Some((_, dev, func)) = irq.msi {
                if dev > 31
                    || func > 7
                    || irq.vector < MIN_IRQ_VECTOR
                    || irq.vector > MAX_IRQ_VECTOR
                {
                    return Err(Rule::IrqBounds);
                }
                continue;
            }
            if irq.pin >= IOAPIC_PINS || irq.vector < MIN_IRQ_VECTOR || irq.vector > MAX_IRQ_VECTOR
            {
                return Err(Rule::IrqBounds);
            }
        }
        for io in &pd.ioports {
            if io.size == 0 || io.base as u32 + io.size > 0x1_0000 {
                return Err(Rule::IoPortBounds);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pd(name: &str, priority: u8) -> Pd {
        let mut segments = Vec::new();
        segments
            .push(Segment {
                vaddr: 0x20_0000,
                mem_size: 0x1000,
                data_offset: 0,
                data_len: 16,
                perms: PERM_R | PERM_X,
            })
            .unwrap();
        Pd {
            name: String::try_from(name).unwrap(),
            priority,
            budget_us: 1000,
            period_us: 1000,
            entry: 0x20_0000,
            stack_size: 0x4000,
            segments,
            ..Pd::default()
        }
    }

    pub(crate) fn two_pd_plan() -> BootPlan {
        let mut plan = BootPlan::default();
        plan.pds.push(pd("client", 10)).unwrap();
        plan.pds.push(pd("server", 20)).unwrap();
        plan.pds[1].parent = Some(0);
        plan.pds[1].child_id = 3;
        plan.channels
            .push(Channel {
                a: End {
                    pd: 0,
                    id: 1,
                    notify: true,
                    pp: true,
                },
                b: End {
                    pd: 1,
                    id: 2,
                    notify: true,
                    pp: false,
                },
            })
            .unwrap();
        plan
    }

    fn module(plan: &BootPlan) -> std::vec::Vec<u8> {
        encode(plan, &[0x90; 16]).unwrap()
    }

    #[test]
    fn round_trip() {
        let plan = two_pd_plan();
        let m = module(&plan);
        let (back, data) = decode(&m).unwrap();
        assert_eq!(back, plan);
        assert_eq!(data, &[0x90; 16]);
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The catalogue check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    fn prefilled_plan() -> BootPlan {
        let mut p = two_pd_plan();
        p.regions
            .push(Region {
                name: String::try_from("kernel").unwrap(),
                size: 0x2000,
                phys_addr: None,
                prefill: Some(Prefill {
                    data_offset: 16,
                    data_len: 0x1800,
                }),
            })
            .unwrap();
        p
    }

    #[test]
    fn prefill_round_trips_with_its_bytes() {
        let plan = prefilled_plan();
        let mut data = std::vec![0x90u8; 16];
        data.extend((0..0x1800u32).map(|i| (i * 7) as u8));
        let m = encode(&plan, &data).unwrap();
        let (back, got) = decode(&m).unwrap();
        assert_eq!(back, plan);
        let f = back.regions[0].prefill.unwrap();
        assert_eq!(
            &got[f.data_offset as usize..(f.data_offset + f.data_len) as usize],
            &data[16..]
        );
    }

    #[test]
    fn prefill_rules() {
        let region_err = Err(PlanError::Region {
            region: 0,
            rule: Rule::Prefill,
        });
        let data_len = 16 + 0x1800;
        let p = prefilled_plan();
        assert_eq!(p.validate(data_len), Ok(()));
        // Bytes past the data area.
        assert_eq!(p.validate(data_len - 1), region_err);
        // Exactly the region's size is fine, one byte more is not.
        let mut p = prefilled_plan();
        p.regions[0].prefill = Some(Prefill {
            data_offset: 0,
            data_len: 0x2000,
        });
        assert_eq!(p.validate(0x2000), Ok(()));
        p.regions[0].prefill = Some(Prefill {
            data_offset: 0,
            data_len: 0x2001,
        });
        assert_eq!(p.validate(0x3000), region_err);
        // An offset that would overflow.
        p.regions[0].prefill = Some(Prefill {
            data_offset: u64::MAX,
            data_len: 1,
        });
        assert_eq!(p.validate(0x3000), region_err);
        // Device memory is never written at boot.
        let mut p = prefilled_plan();
        p.regions[0].phys_addr = Some(0xfeb0_0000);
        assert_eq!(p.validate(data_len), region_err);
    }

    #[test]
    fn a_module_of_the_previous_format_is_refused_by_version() {
        let mut m = module(&two_pd_plan());
        m[8..12].copy_from_slice(&(VERSION - 1).to_le_bytes());
        assert_eq!(decode(&m), Err(PlanError::Version { found: VERSION - 1 }));
        m[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        assert_eq!(decode(&m), Err(PlanError::Version { found: VERSION + 1 }));
    }

    #[test]
    fn corrupt_modules_are_rejected_with_the_right_error() {
        let m = module(&two_pd_plan());
        assert_eq!(decode(&m[..10]), Err(PlanError::Truncated));
        assert_eq!(decode(&m[..m.len() - 1]), Err(PlanError::Truncated));
        let mut bad = m.clone();
        bad[0] = b'X';
        assert_eq!(decode(&bad), Err(PlanError::BadMagic));
        let mut bad = m.clone();
        bad[8] = 9;
        assert_eq!(decode(&bad), Err(PlanError::Version { found: 9 }));
        let mut bad = m.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode(&bad), Err(PlanError::Checksum));
        // A plan encoding cut short but with a matching checksum.
        let bytes = postcard::to_allocvec(&two_pd_plan()).unwrap();
        let cut = assemble(&bytes[..bytes.len() / 2], &[]);
        assert_eq!(decode(&cut), Err(PlanError::Decode));
    }

    #[test]
    fn every_single_byte_corruption_is_an_error_not_a_panic() {
        let m = module(&two_pd_plan());
        for i in 0..m.len() {
            for flip in [1u8, 0x80, 0xff] {
                let mut bad = m.clone();
                bad[i] ^= flip;
                // Decoding must return (either error or, for bytes the CRC does
                // not cover such as the reserved word, the same plan).
                let _ = decode(&bad);
            }
        }
    }

    fn rule_of(plan: &BootPlan) -> Result<(), PlanError> {
        plan.validate(16)
    }

    #[test]
    fn structural_rules() {
        let mut p = two_pd_plan();
        p.pds[0].segments[0].perms = PERM_R | PERM_W | PERM_X;
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::WriteExecute
            })
        );

        let mut p = two_pd_plan();
        p.pds[1].priority = 5; // callee below caller
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Channel {
                channel: 0,
                rule: Rule::PpPriority
            })
        );

        let mut p = two_pd_plan();
        p.pds[0].segments[0].data_len = 17;
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::SegmentBounds
            })
        );

        let mut p = two_pd_plan();
        p.pds[0].entry = 0x30_0000;
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::Entry
            })
        );

        let mut p = two_pd_plan();
        p.pds[0].parent = Some(1);
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::Parent
            })
        );

        let mut p = two_pd_plan();
        p.pds[0].budget_us = 2000;
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::Budget
            })
        );

        let mut p = two_pd_plan();
        p.regions
            .push(Region {
                name: String::try_from("r").unwrap(),
                size: 0x2000,
                phys_addr: None,
                prefill: None,
            })
            .unwrap();
        p.pds[0]
            .maps
            .push(Map {
                region: 0,
                vaddr: 0x1f_f000,
                perms: PERM_R,
                cached: true,
            })
            .unwrap();
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::Overlap
            })
        );
        p.pds[0].maps[0].vaddr = 0x40_0000;
        assert_eq!(rule_of(&p), Ok(()));
        p.pds[0].maps[0].region = 7;
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::MapBounds
            })
        );

        let mut p = two_pd_plan();
        p.pds[0]
            .irqs
            .push(Irq {
                id: 1,
                pin: 2,
                vector: 0x90,
                level: false,
                active_low: false,
                msi: None,
            })
            .unwrap();
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::DuplicateId
            })
        );
        p.pds[0].irqs[0].id = 5;
        assert_eq!(rule_of(&p), Ok(()));
        p.pds[1]
            .irqs
            .push(Irq {
                id: 6,
                pin: 3,
                vector: 0x90,
                level: false,
                active_low: false,
                msi: None,
            })
            .unwrap();
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 1,
                rule: Rule::IrqBounds
            })
        );

        let mut p = two_pd_plan();
        p.pds[0]
            .ioports
            .push(IoPorts {
                base: 0xfff0,
                size: 0x20,
            })
            .unwrap();
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::IoPortBounds
            })
        );

        let mut p = two_pd_plan();
        p.pds[0].segments[0].vaddr = bulkhead_abi::STACK_TOP - 0x4000 - 0x1000; // the guard page
        p.pds[0].entry = p.pds[0].segments[0].vaddr;
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::Overlap
            })
        );
    }

    #[test]
    fn msi_irqs_are_checked() {
        let mut p = two_pd_plan();
        let msi = Irq {
            id: 5,
            pin: 0,
            vector: 0x95,
            level: false,
            active_low: false,
            msi: Some((0, 16, 0)),
        };
        p.pds[0].irqs.push(msi).unwrap();
        assert_eq!(rule_of(&p), Ok(()));
        p.pds[0].irqs[0].msi = Some((0, 32, 0));
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::IrqBounds
            })
        );
        p.pds[0].irqs[0].msi = Some((0, 1, 8));
        assert_eq!(
            rule_of(&p),
            Err(PlanError::Pd {
                pd: 0,
                rule: Rule::IrqBounds
            })
        );
    }

    #[test]
    fn errors_print_an_actionable_message() {
        let e = PlanError::Pd {
            pd: 2,
            rule: Rule::WriteExecute,
        };
        assert_eq!(
            std::format!("{e}"),
            "PD #2: segment or map is writable and executable"
        );
        let e = PlanError::Version { found: 7 };
        assert!(std::format!("{e}").contains("bulkhead pack"));
    }
}
