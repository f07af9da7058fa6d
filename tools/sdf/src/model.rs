//! The typed model of a checked system.
//!
//! A [`System`] is what `system.xml` means once every number is resolved to
//! an integer, every default is filled in and every reference (a map's
//! region, a channel end's PD) is resolved to an index. It is only ever
//! handed out after every rule has passed, so code that builds on it (the
//! boot-plan compiler of `bulkhead pack`, the report) may rely on:
//!
//! - names are unique (PDs, memory regions, virtual machines);
//! - every index (`Map::mr_index`, `ChannelEnd::pd_index`, `parent`,
//!   `children`) is in range;
//! - ids are `<= MAX_ID` and unique where the rules say so;
//! - maps are page aligned, inside the address space and do not overlap;
//! - I/O port ranges, IRQ vectors and IOAPIC pins are claimed at most once.
//!
//! Every element carries the [`Pos`] of its start tag, so later stages can
//! still point at the line that caused a problem.

use serde::Serialize;

/// Highest channel / IRQ / I/O port / child / vCPU id (inclusive).
///
/// Microkit 2.3 delivers events as bits of a 64-bit badge: bit 63 marks a
/// protected call and bit 62 a fault, leaving bits 0..=61 for ids.
pub const MAX_ID: u8 = 61;
/// Highest PD priority (255 is the Microkit monitor's; Bulkhead keeps the
/// same bound so files stay portable).
pub const MAX_PRIORITY: u8 = 254;
/// The most PDs one system may have.
pub const MAX_PDS: usize = 63;
/// Longest PD name, in characters.
pub const MAX_PD_NAME: usize = 64;
/// Default budget and period, in microseconds.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// Default stack size of a PD.
pub const DEFAULT_STACK_SIZE: u64 = 0x2000;
/// Smallest stack a PD may ask for (one page).
pub const MIN_STACK_SIZE: u64 = 0x1000;
/// Largest stack a PD may ask for (16 MiB).
pub const MAX_STACK_SIZE: u64 = 16 * 1024 * 1024;
/// First virtual address above user space on x86_64 (4-level paging,
/// minus the guard page seL4 keeps). A PD's stack sits right below it.
pub const USER_TOP: u64 = 0x7fff_ffff_f000;
/// Highest usable IRQ vector (inclusive) in the SDF's numbering, which is
/// relative to the first vector the kernel hands to user level.
pub const MAX_IRQ_VECTOR: u8 = 107;
/// Size of the x86 I/O port space.
pub const IO_PORT_SPACE: u32 = 0x1_0000;

/// A position in the source file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1 (in characters).
    pub column: u32,
}

/// A whole system: the `<system>` element.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct System {
    /// The file name the system was parsed from (as given to [`crate::parse`]).
    pub file: String,
    /// `<memory_region>`s in document order.
    pub memory_regions: Vec<MemoryRegion>,
    /// Every PD, flattened in document order (pre-order: a parent comes
    /// before its children). The index into this vector is the PD's number
    /// everywhere else in the model.
    pub pds: Vec<ProtectionDomain>,
    /// `<channel>`s in document order.
    pub channels: Vec<Channel>,
    /// The `<domains>` schedule, if the file has one.
    pub domains: Option<Domains>,
    /// Findings that do not stop the system from being built (an unused
    /// memory region, ...).
    pub warnings: Vec<crate::Diagnostic>,
}

impl System {
    /// The PD named `name`, with its index.
    pub fn pd(&self, name: &str) -> Option<(usize, &ProtectionDomain)> {
        self.pds.iter().enumerate().find(|(_, pd)| pd.name == name)
    }

    /// The memory region named `name`, with its index.
    pub fn memory_region(&self, name: &str) -> Option<(usize, &MemoryRegion)> {
        self.memory_regions
            .iter()
            .enumerate()
            .find(|(_, mr)| mr.name == name)
    }

    /// Indices of the PDs that have no parent.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.pds
            .iter()
            .enumerate()
            .filter(|(_, pd)| pd.parent.is_none())
            .map(|(i, _)| i)
    }

    /// The channels with an end in PD `pd`, with the index of that end (0 or 1).
    pub fn channels_of(&self, pd: usize) -> impl Iterator<Item = (&Channel, usize)> + '_ {
        self.channels.iter().flat_map(move |ch| {
            ch.ends
                .iter()
                .enumerate()
                .filter(move |(_, e)| e.pd_index == pd)
                .map(move |(i, _)| (ch, i))
        })
    }
}

/// Page size of a memory region: x86_64 maps 4 KiB and 2 MiB pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PageSize {
    /// 4 KiB.
    Small,
    /// 2 MiB.
    Large,
}

impl PageSize {
    /// The page size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Small => 0x1000,
            PageSize::Large => 0x20_0000,
        }
    }

    /// The page size for a byte count, if x86_64 has one.
    pub const fn from_bytes(bytes: u64) -> Option<PageSize> {
        match bytes {
            0x1000 => Some(PageSize::Small),
            0x20_0000 => Some(PageSize::Large),
            _ => None,
        }
    }
}

/// A `<memory_region>`: a contiguous range of physical memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryRegion {
    /// Unique name, referenced by maps.
    pub name: String,
    /// Size in bytes, a non-zero multiple of `page_size`.
    pub size: u64,
    /// Page size used to map it (default 4 KiB).
    pub page_size: PageSize,
    /// Fixed physical address (device memory), aligned to `page_size`;
    /// `None` means the tool allocates it from RAM.
    pub phys_addr: Option<u64>,
    /// File whose bytes fill the region at boot, if any (path as written).
    pub prefill_path: Option<String>,
    /// Where the element starts.
    pub pos: Pos,
}

impl MemoryRegion {
    /// Number of pages of `page_size`.
    pub fn page_count(&self) -> u64 {
        self.size / self.page_size.bytes()
    }
}

/// Access rights of a map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Perms {
    /// `r`
    pub read: bool,
    /// `w`
    pub write: bool,
    /// `x`
    pub execute: bool,
}

impl Perms {
    /// Read and write, the default when `perms` is absent.
    pub const RW: Perms = Perms {
        read: true,
        write: true,
        execute: false,
    };
}

impl core::fmt::Display for Perms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.execute, 'x')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// A `<map>` of a memory region into a PD's address space, or into a
/// virtual machine's guest-physical space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Map {
    /// Name of the mapped region.
    pub mr: String,
    /// Index of the mapped region in [`System::memory_regions`].
    pub mr_index: usize,
    /// Virtual (or guest-physical) address of the first byte.
    pub vaddr: u64,
    /// Access rights.
    pub perms: Perms,
    /// Cached (write-back) or uncached (device) memory; default cached.
    pub cached: bool,
    /// Symbol patched with `vaddr` (PD maps only).
    pub setvar_vaddr: Option<String>,
    /// Symbol patched with the region's size (PD maps only).
    pub setvar_size: Option<String>,
    /// Why a writable and executable PD map is acceptable, from a
    /// `<?bulkhead allow_wx reason="..."?>` right before the map.
    pub allow_wx: Option<String>,
    /// Where the element starts.
    pub pos: Pos,
}

impl Map {
    /// One past the last mapped address, given the region's size.
    pub fn end(&self, mr: &MemoryRegion) -> u64 {
        self.vaddr.saturating_add(mr.size)
    }
}

/// IOAPIC trigger mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Trigger {
    /// `level` (the default).
    Level,
    /// `edge`.
    Edge,
}

/// IOAPIC pin polarity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Polarity {
    /// Active high (the default).
    High,
    /// Active low.
    Low,
}

/// A PCI function address, `bus:device.function`, written in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PciAddress {
    /// Bus, 0..=255.
    pub bus: u8,
    /// Device, 0..=31.
    pub device: u8,
    /// Function, 0..=7.
    pub function: u8,
}

impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

/// The two x86 forms of `<irq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum IrqKind {
    /// A pin of an IOAPIC, routed to `vector`.
    Ioapic {
        /// IOAPIC number (default 0).
        ioapic: u64,
        /// Input pin of that IOAPIC.
        pin: u64,
        /// Trigger mode.
        trigger: Trigger,
        /// Polarity.
        polarity: Polarity,
        /// Vector, 0..=[`MAX_IRQ_VECTOR`].
        vector: u8,
    },
    /// A message-signalled interrupt of a PCI function.
    Msi {
        /// The PCI function raising it.
        pci: PciAddress,
        /// The MSI handle (which of the function's messages).
        handle: u64,
        /// Vector, 0..=[`MAX_IRQ_VECTOR`].
        vector: u8,
    },
}

/// An `<irq>` delivered to a PD as a notification on channel id `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Irq {
    /// Id in the PD's channel id space.
    pub id: u8,
    /// Symbol patched with `id`.
    pub setvar_id: Option<String>,
    /// IOAPIC pin or MSI.
    pub kind: IrqKind,
    /// Where the element starts.
    pub pos: Pos,
}

impl Irq {
    /// The vector this IRQ is delivered on.
    pub fn vector(&self) -> u8 {
        match self.kind {
            IrqKind::Ioapic { vector, .. } | IrqKind::Msi { vector, .. } => vector,
        }
    }
}

/// An `<ioport>`: a range of x86 I/O ports granted to a PD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IoPort {
    /// Id of the I/O port capability (its own id space per PD).
    pub id: u8,
    /// First port.
    pub addr: u16,
    /// Number of ports (1..=0x10000, and `addr + size <= 0x10000`).
    pub size: u32,
    /// Symbol patched with `id`.
    pub setvar_id: Option<String>,
    /// Symbol patched with `addr`.
    pub setvar_addr: Option<String>,
    /// Where the element starts.
    pub pos: Pos,
}

impl IoPort {
    /// One past the last port.
    pub fn end(&self) -> u32 {
        u32::from(self.addr) + self.size
    }
}

/// What a setvar symbol is patched with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SetVarValue {
    /// A map's virtual address (`setvar_vaddr`).
    Vaddr(u64),
    /// A memory region's size (`setvar_size`).
    Size(u64),
    /// A memory region's physical address (`<setvar region_paddr>`).
    Paddr(u64),
    /// A channel, IRQ, I/O port, child or vCPU id (`setvar_id`).
    Id(u8),
    /// An I/O port range's first port (`setvar_addr`).
    IoPortAddr(u16),
}

impl SetVarValue {
    /// The value written into the symbol.
    pub fn value(&self) -> u64 {
        match *self {
            SetVarValue::Vaddr(v) | SetVarValue::Size(v) | SetVarValue::Paddr(v) => v,
            SetVarValue::Id(v) => u64::from(v),
            SetVarValue::IoPortAddr(v) => u64::from(v),
        }
    }
}

/// A symbol in a PD's program image that the tool patches at build time.
/// [`ProtectionDomain::setvars`] holds every one, whichever element
/// declared it (map, irq, ioport, channel end, child PD, vCPU, setvar).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetVar {
    /// The symbol name (unique within the PD).
    pub symbol: String,
    /// The value it gets.
    pub value: SetVarValue,
    /// Where the declaring element starts.
    pub pos: Pos,
    /// The declaring element: `map`, `irq`, `ioport`, `end`, `vcpu`,
    /// `setvar` or (a child's `setvar_id`) `protection_domain`.
    pub element: &'static str,
}

/// The `<program_image>` of a PD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramImage {
    /// ELF file, looked up in the search path.
    pub path: String,
    /// An ELF with symbols to use for setvars, when `path` is stripped.
    pub path_for_symbols: Option<String>,
    /// Where the element starts.
    pub pos: Pos,
}

/// A `<vcpu>` of a virtual machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vcpu {
    /// Id, unique in the VM and distinct from the PD's child ids.
    pub id: u8,
    /// CPU core it runs on (default: the PD's).
    pub cpu: Option<u8>,
    /// Symbol patched with `id`.
    pub setvar_id: Option<String>,
    /// Where the element starts.
    pub pos: Pos,
}

/// A `<virtual_machine>`, owned by the PD (the VMM) it is declared in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtualMachine {
    /// Unique name.
    pub name: String,
    /// At least one vCPU.
    pub vcpus: Vec<Vcpu>,
    /// Guest-physical maps (guest RAM and passthrough devices).
    pub maps: Vec<Map>,
    /// Where the element starts.
    pub pos: Pos,
}

/// A `<protection_domain>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtectionDomain {
    /// Unique name.
    pub name: String,
    /// 0..=[`MAX_PRIORITY`], default 0.
    pub priority: u8,
    /// Microseconds of CPU per period (default 1000).
    pub budget: u64,
    /// Microseconds (default: the budget).
    pub period: u64,
    /// Passive PDs run only on their callers' scheduling contexts.
    pub passive: bool,
    /// Bytes, a multiple of 4 KiB in 4 KiB..=16 MiB (default 8 KiB).
    pub stack_size: u64,
    /// CPU core (default 0).
    pub cpu: u8,
    /// Whether the PD may use the FPU (default true).
    pub fpu: bool,
    /// Scheduling domain, when the system has `<domains>`.
    pub domain: Option<String>,
    /// The id by which the parent refers to this PD (children only).
    pub child_id: Option<u8>,
    /// Index of the parent PD in [`System::pds`].
    pub parent: Option<usize>,
    /// Indices of the child PDs in [`System::pds`].
    pub children: Vec<usize>,
    /// The ELF to run.
    pub program_image: ProgramImage,
    /// Maps into the PD's own address space.
    pub maps: Vec<Map>,
    /// IRQs delivered to the PD.
    pub irqs: Vec<Irq>,
    /// I/O port ranges granted to the PD.
    pub ioports: Vec<IoPort>,
    /// Every symbol patched in the PD's image.
    pub setvars: Vec<SetVar>,
    /// The virtual machine this PD runs, if it is a VMM.
    pub virtual_machine: Option<VirtualMachine>,
    /// Where the element starts.
    pub pos: Pos,
}

/// One `<end>` of a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelEnd {
    /// Name of the PD at this end.
    pub pd: String,
    /// Index of that PD in [`System::pds`].
    pub pd_index: usize,
    /// The id by which this PD refers to the channel.
    pub id: u8,
    /// This end may notify the other end (default true).
    pub notify: bool,
    /// This end may make protected calls to the other end (default false);
    /// the other end then has a strictly higher priority.
    pub pp: bool,
    /// Symbol in this PD patched with `id`.
    pub setvar_id: Option<String>,
    /// Where the element starts.
    pub pos: Pos,
}

/// A `<channel>` between two different PDs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// The two ends, in document order.
    pub ends: [ChannelEnd; 2],
    /// Where the element starts.
    pub pos: Pos,
}

/// A `<domain>` of the domain schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Domain {
    /// Unique name, referenced by PDs' `domain` attribute.
    pub name: String,
    /// Explicit domain number, if given.
    pub id: Option<u8>,
    /// Where the element starts.
    pub pos: Pos,
}

/// How long a schedule entry runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Duration {
    /// Microseconds (`"500 us"`).
    Us(u64),
    /// Timer ticks (`"10 ticks"`).
    Ticks(u64),
}

/// One entry of the domain schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ScheduleEntry {
    /// `<schedule_entry domain=".." duration=".."/>`.
    Run {
        /// Name of the domain that runs.
        domain: String,
        /// For how long.
        duration: Duration,
    },
    /// `<schedule_end_marker/>`.
    EndMarker,
}

/// The `<domains>` element: temporal partitioning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Domains {
    /// Declared domains.
    pub domains: Vec<Domain>,
    /// The schedule, in order.
    pub schedule: Vec<ScheduleEntry>,
    /// `start_index` of `<domain_schedule>` (default 0).
    pub start_index: u64,
    /// `index_shift` of `<domain_schedule>`, if given.
    pub index_shift: Option<u64>,
    /// Where the element starts.
    pub pos: Pos,
}
