//! `bulkhead-pack`: compiles a checked [`System`] and the PD ELF images it
//! names into the kernel's boot module (see `kernel_core::plan`).
//!
//! What it does, per PD: finds the image in the search path, requires a
//! static x86_64 executable, patches every `setvar_*` symbol the SDF
//! declares, extracts the loadable segments (refusing writable+executable
//! ones, two segments sharing a page, and segments that collide with a map,
//! the stack with its guard page, or the IPC buffer), and records maps,
//! IRQs, I/O ports, scheduling and the parent. The plan is then checked by
//! the same code the kernel runs at boot, so a module this tool writes is one
//! the kernel accepts.
//!
//! Errors name the file, the line of the element, what is wrong and what
//! would fix it.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use bulkhead_sdf::{IrqKind, Polarity, System, Trigger};
use kernel_core::plan::{self, BootPlan, PAGE, PERM_R, PERM_W, PERM_X};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Object, ObjectSymbol};

/// A problem that stops packing, with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackError {
    /// `file:line:` prefix, or the image path.
    pub at: String,
    /// What is wrong and what would fix it.
    pub message: String,
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

impl std::error::Error for PackError {}

/// Non-fatal findings (features of the SDF the kernel does not implement yet).
pub type Warnings = Vec<String>;

/// The result of packing.
#[derive(Debug)]
pub struct Packed {
    /// The boot module (header, plan, segment data).
    pub module: Vec<u8>,
    /// The plan it holds (for reports and tests).
    pub plan: BootPlan,
    /// What was ignored, and why.
    pub warnings: Warnings,
}

fn at(system: &System, line: u32) -> String {
    format!("{}:{}", system.file, line)
}

fn name<const N: usize>(s: &str, what: &str, loc: &str) -> Result<heapless::String<N>, PackError> {
    heapless::String::try_from(s).map_err(|_| PackError {
        at: loc.to_string(),
        message: format!(
            "{what} name '{s}' is longer than {N} bytes, the kernel's limit; shorten it"
        ),
    })
}

fn full(loc: &str, what: &str, max: usize) -> PackError {
    PackError {
        at: loc.to_string(),
        message: format!("more than {max} {what}, the kernel's limit"),
    }
}

/// Looks `file` up in the search path (first match wins).
pub fn find_image(file: &str, search_path: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(file);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    search_path
        .iter()
        .map(|d| d.join(file))
        .find(|c| c.is_file())
}

/// A loadable segment read from an image.
#[derive(Debug, Clone)]
pub struct ElfSegment {
    /// Virtual address.
    pub vaddr: u64,
    /// Size in memory.
    pub mem_size: u64,
    /// File bytes (after setvar patching).
    pub bytes: Vec<u8>,
    /// PERM_* bits.
    pub perms: u8,
}

/// An image ready to pack.
#[derive(Debug, Clone)]
pub struct Image {
    /// Entry point.
    pub entry: u64,
    /// Loadable segments.
    pub segments: Vec<ElfSegment>,
}

/// Reads an ELF image and patches `setvars` (symbol, value) into it.
/// `symbols` is the ELF to take symbols from (`path_for_symbols`), if not
/// the image itself.
pub fn load_image(
    data: &[u8],
    symbols: Option<&[u8]>,
    setvars: &[(String, u64)],
    loc: &str,
) -> Result<Image, PackError> {
    let err = |message: String| PackError {
        at: loc.to_string(),
        message,
    };
    let header = elf::FileHeader64::<object::Endianness>::parse(data)
        .map_err(|e| err(format!("not a 64-bit ELF file ({e})")))?;
    let endian = header
        .endian()
        .map_err(|e| err(format!("bad ELF header ({e})")))?;
    if header.e_machine(endian) != elf::EM_X86_64 {
        return Err(err(
            "not an x86_64 image; build the PD for x86_64-unknown-none".into(),
        ));
    }
    if header.e_type(endian) != elf::ET_EXEC {
        return Err(err(
            "not a static executable (position-independent?); build PDs with `cargo xtask build`, which passes -C relocation-model=static".into(),
        ));
    }
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| err(format!("bad program headers ({e})")))?;
    let mut segments = Vec::new();
    for ph in phdrs {
        if ph.p_type(endian) != elf::PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let flags = ph.p_flags(endian);
        let mut perms = 0;
        if flags & elf::PF_R != 0 {
            perms |= PERM_R;
        }
        if flags & elf::PF_W != 0 {
            perms |= PERM_W;
        }
        if flags & elf::PF_X != 0 {
            perms |= PERM_X;
        }
        let vaddr = ph.p_vaddr(endian);
        if perms & PERM_W != 0 && perms & PERM_X != 0 {
            return Err(err(format!(
                "segment at {vaddr:#x} is writable and executable (W^X); fix the linker script"
            )));
        }
        let bytes = ph
            .data(endian, data)
            .map_err(|_| err(format!("segment at {vaddr:#x} lies outside the file")))?;
        segments.push(ElfSegment {
            vaddr,
            mem_size: ph.p_memsz(endian),
            bytes: bytes.to_vec(),
            perms,
        });
    }
    if segments.is_empty() {
        return Err(err("no loadable segment".into()));
    }
    segments.sort_by_key(|s| s.vaddr);
    for w in segments.windows(2) {
        let a_last = (w[0].vaddr + w[0].mem_size - 1) / PAGE;
        if a_last >= w[1].vaddr / PAGE {
            return Err(err(format!(
                "segments at {:#x} and {:#x} share a page, so one of them would get the other's permissions; link with page-aligned segments",
                w[0].vaddr, w[1].vaddr
            )));
        }
    }
    let sym_file = object::File::parse(symbols.unwrap_or(data))
        .map_err(|e| err(format!("cannot read symbols ({e})")))?;
    for (symbol, value) in setvars {
        let sym = sym_file
            .symbols()
            .find(|s| s.name() == Ok(symbol.as_str()))
            .ok_or_else(|| err(format!("setvar symbol '{symbol}' is not in the image; declare it with `bulkhead_microkit::setvar!({symbol})`")))?;
        if sym.size() != 8 {
            return Err(err(format!(
                "setvar symbol '{symbol}' is {} bytes, not 8 (a u64)",
                sym.size()
            )));
        }
        let addr = sym.address();
        let seg = segments
            .iter_mut()
            .find(|s| addr >= s.vaddr && addr + 8 <= s.vaddr + s.bytes.len() as u64)
            .ok_or_else(|| err(format!("setvar symbol '{symbol}' at {addr:#x} is not in initialised data (is it in .bss? `setvar!` puts it in .data)")))?;
        let off = (addr - seg.vaddr) as usize;
        seg.bytes[off..off + 8].copy_from_slice(&value.to_le_bytes());
    }
    Ok(Image {
        entry: header.e_entry(endian),
        segments,
    })
}

/// Finds a region's `prefill_path` file in the search path (as program
/// images are found), appends its bytes to the data area and says where
/// they are. The file must fit the region; the rest of the region stays zero.
fn prefill(
    mr: &bulkhead_sdf::MemoryRegion,
    file: &str,
    search_path: &[PathBuf],
    loc: &str,
    data: &mut Vec<u8>,
) -> Result<plan::Prefill, PackError> {
    let err = |message: String| PackError {
        at: loc.to_string(),
        message,
    };
    if mr.phys_addr.is_some() {
        return Err(err(format!(
            "memory region '{}' has both phys_addr and prefill_path: a device region's contents are the device's, the kernel does not write them at boot; remove one of the two",
            mr.name
        )));
    }
    let path = find_image(file, search_path).ok_or_else(|| {
        err(format!(
            "prefill file '{file}' of memory region '{}' not found in the search path ({}); build it (the guest images: `cargo xtask test` or `bulkhead guest`) or add its directory with --search-path",
            mr.name,
            search_path
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let bytes = std::fs::read(&path)
        .map_err(|e| err(format!("cannot read prefill file {}: {e}", path.display())))?;
    let len = bytes.len() as u64;
    if len > mr.size {
        return Err(err(format!(
            "prefill file {} has {len:#x} bytes, more than memory region '{}' holds ({:#x}); make the region at least {:#x} bytes",
            path.display(),
            mr.name,
            mr.size,
            len.div_ceil(PAGE) * PAGE
        )));
    }
    let data_offset = data.len() as u64;
    data.extend_from_slice(&bytes);
    Ok(plan::Prefill {
        data_offset,
        data_len: len,
    })
}

/// Compiles `system` with images from `search_path`.
pub fn pack(system: &System, search_path: &[PathBuf]) -> Result<Packed, PackError> {
    let mut plan = BootPlan::default();
    let mut data = Vec::new();
    let mut warnings = Vec::new();
    let sys_loc = system.file.clone();
    if system.domains.is_some() {
        warnings.push(format!(
            "{sys_loc}: <domains> is ignored: the kernel has no domain scheduler yet"
        ));
    }
    for mr in &system.memory_regions {
        let loc = at(system, mr.pos.line);
        let prefill = match &mr.prefill_path {
            Some(file) => Some(prefill(mr, file, search_path, &loc, &mut data)?),
            None => None,
        };
        plan.regions
            .push(plan::Region {
                name: name(&mr.name, "memory region", &loc)?,
                size: mr.size,
                phys_addr: mr.phys_addr,
                prefill,
            })
            .map_err(|_| full(&loc, "memory regions", plan::MAX_REGIONS))?;
    }
    for pd in &system.pds {
        let loc = at(system, pd.pos.line);
        let img_loc = at(system, pd.program_image.pos.line);
        let path = find_image(&pd.program_image.path, search_path).ok_or_else(|| PackError {
            at: img_loc.clone(),
            message: format!(
                "program image '{}' of PD '{}' not found in the search path ({}); build it or add its directory with --search-path",
                pd.program_image.path,
                pd.name,
                search_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        })?;
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| PackError {
                at: p.display().to_string(),
                message: format!("cannot read: {e}"),
            })
        };
        let bytes = read(&path)?;
        let sym_bytes = match &pd.program_image.path_for_symbols {
            Some(s) => Some(read(&find_image(s, search_path).ok_or_else(|| {
                PackError {
                    at: img_loc.clone(),
                    message: format!("path_for_symbols '{s}' not found in the search path"),
                }
            })?)?),
            None => None,
        };
        let setvars: Vec<(String, u64)> = pd
            .setvars
            .iter()
            .map(|s| (s.symbol.clone(), s.value.value()))
            .collect();
        let image = load_image(
            &bytes,
            sym_bytes.as_deref(),
            &setvars,
            &path.display().to_string(),
        )?;

        let mut p = plan::Pd {
            name: name(&pd.name, "PD", &loc)?,
            priority: pd.priority,
            budget_us: u32::try_from(pd.budget).map_err(|_| PackError {
                at: loc.clone(),
                message: "budget too large".into(),
            })?,
            period_us: u32::try_from(pd.period).map_err(|_| PackError {
                at: loc.clone(),
                message: "period too large".into(),
            })?,
            passive: pd.passive,
            parent: pd.parent.map(|x| x as u8),
            child_id: pd.child_id.unwrap_or(0),
            entry: image.entry,
            stack_size: pd.stack_size,
            ..Default::default()
        };
        if pd.stack_size > plan::MAX_STACK {
            return Err(PackError {
                at: loc,
                message: format!(
                    "stack_size {:#x} is above the kernel's limit of 1 MiB",
                    pd.stack_size
                ),
            });
        }
        // Maps first, so segment collisions can name the map.
        for m in &pd.maps {
            let mloc = at(system, m.pos.line);
            let mut perms = 0;
            if m.perms.read {
                perms |= PERM_R;
            }
            if m.perms.write {
                perms |= PERM_W;
            }
            if m.perms.execute {
                perms |= PERM_X;
            }
            p.maps
                .push(plan::Map {
                    region: m.mr_index as u16,
                    vaddr: m.vaddr,
                    perms,
                    cached: m.cached,
                })
                .map_err(|_| full(&mloc, "maps in one PD", plan::MAX_MAPS))?;
        }
        let stack = plan::stack_range_with_guard(pd.stack_size);
        let ipc = plan::ipc_range();
        for seg in &image.segments {
            let start = seg.vaddr & !(PAGE - 1);
            let end = (seg.vaddr + seg.mem_size + PAGE - 1) & !(PAGE - 1);
            for m in &pd.maps {
                let mr = &system.memory_regions[m.mr_index];
                if start < m.end(mr) && m.vaddr < end {
                    return Err(PackError {
                        at: at(system, m.pos.line),
                        message: format!(
                            "map of '{}' at {:#x}..{:#x} collides with segment {:#x}..{:#x} of image '{}' (PD '{}'); move the map or relink the image",
                            m.mr, m.vaddr, m.end(mr), seg.vaddr, seg.vaddr + seg.mem_size, pd.program_image.path, pd.name
                        ),
                    });
                }
            }
            for (what, r) in [("stack (with its guard page)", stack), ("IPC buffer", ipc)] {
                if start < r.end && r.start < end {
                    return Err(PackError {
                        at: img_loc.clone(),
                        message: format!("segment {:#x}..{:#x} of '{}' collides with the kernel-placed {what} at {:#x}..{:#x}", seg.vaddr, seg.vaddr + seg.mem_size, pd.program_image.path, r.start, r.end),
                    });
                }
            }
            let offset = data.len() as u64;
            data.extend_from_slice(&seg.bytes);
            p.segments
                .push(plan::Segment {
                    vaddr: seg.vaddr,
                    mem_size: seg.mem_size,
                    data_offset: offset,
                    data_len: seg.bytes.len() as u64,
                    perms: seg.perms,
                })
                .map_err(|_| full(&img_loc, "segments in one image", plan::MAX_SEGMENTS))?;
        }
        for m in &pd.maps {
            let mr = &system.memory_regions[m.mr_index];
            for (what, r) in [("stack (with its guard page)", stack), ("IPC buffer", ipc)] {
                if m.vaddr < r.end && r.start < m.end(mr) {
                    return Err(PackError {
                        at: at(system, m.pos.line),
                        message: format!("map of '{}' at {:#x} collides with the kernel-placed {what} at {:#x}..{:#x}; move the map", m.mr, m.vaddr, r.start, r.end),
                    });
                }
            }
        }
        for irq in &pd.irqs {
            let iloc = at(system, irq.pos.line);
            match irq.kind {
                IrqKind::Ioapic {
                    ioapic,
                    pin,
                    trigger,
                    polarity,
                    vector,
                } => {
                    if ioapic != 0 || pin >= plan::IOAPIC_PINS as u64 {
                        return Err(PackError { at: iloc, message: format!("IOAPIC {ioapic} pin {pin}: the kernel drives IOAPIC 0 pins 0..23 only") });
                    }
                    p.irqs
                        .push(plan::Irq {
                            id: irq.id,
                            pin: pin as u8,
                            vector: plan::MIN_IRQ_VECTOR + vector,
                            level: trigger == Trigger::Level,
                            active_low: polarity == Polarity::Low,
                            msi: None,
                        })
                        .map_err(|_| full(&iloc, "IRQs in one PD", plan::MAX_IRQS))?;
                }
                IrqKind::Msi {
                    pci,
                    handle,
                    vector,
                } => {
                    if handle != 0 {
                        return Err(PackError {
                            at: iloc,
                            message: format!("MSI handle {handle}: the kernel programs single-message MSI only (handle 0)"),
                        });
                    }
                    p.irqs
                        .push(plan::Irq {
                            id: irq.id,
                            pin: 0,
                            vector: plan::MIN_IRQ_VECTOR + vector,
                            level: false,
                            active_low: false,
                            msi: Some((pci.bus, pci.device, pci.function)),
                        })
                        .map_err(|_| full(&iloc, "IRQs in one PD", plan::MAX_IRQS))?;
                }
            }
        }
        for io in &pd.ioports {
            p.ioports
                .push(plan::IoPorts {
                    base: io.addr,
                    size: io.size,
                })
                .map_err(|_| {
                    full(
                        &at(system, io.pos.line),
                        "I/O port ranges in one PD",
                        plan::MAX_IOPORTS,
                    )
                })?;
        }
        plan.pds
            .push(p)
            .map_err(|_| full(&loc, "protection domains", plan::MAX_PDS))?;
    }
    for (owner, pd) in system.pds.iter().enumerate() {
        if let Some(vm) = &pd.virtual_machine {
            plan.vms.push(vm_plan(system, owner, vm)?).map_err(|_| {
                full(
                    &at(system, vm.pos.line),
                    "virtual machines",
                    kernel_core::plan_vm::MAX_VMS,
                )
            })?;
        }
    }
    for ch in &system.channels {
        let cloc = at(system, ch.pos.line);
        let end = |e: &bulkhead_sdf::ChannelEnd| plan::End {
            pd: e.pd_index as u8,
            id: e.id,
            notify: e.notify,
            pp: e.pp,
        };
        plan.channels
            .push(plan::Channel {
                a: end(&ch.ends[0]),
                b: end(&ch.ends[1]),
            })
            .map_err(|_| full(&cloc, "channels", plan::MAX_CHANNELS))?;
    }
    let module = plan::encode(&plan, &data).map_err(|e| PackError {
        at: sys_loc.clone(),
        message: describe(&plan, e),
    })?;
    Ok(Packed {
        module,
        plan,
        warnings,
    })
}

/// A plan error with PD/region names instead of indices.
pub fn describe(plan: &BootPlan, e: plan::PlanError) -> String {
    match e {
        plan::PlanError::Pd { pd, rule } => {
            let n = plan.pds.get(pd as usize).map_or("?", |p| p.name.as_str());
            format!("PD '{n}': {rule}")
        }
        plan::PlanError::Region { region, rule } => {
            let n = plan
                .regions
                .get(region as usize)
                .map_or("?", |r| r.name.as_str());
            format!("memory region '{n}': {rule}")
        }
        plan::PlanError::Vm { vm, rule } => {
            let n = plan.vms.get(vm as usize).map_or("?", |v| v.name.as_str());
            format!("virtual machine '{n}': {rule}")
        }
        other => other.to_string(),
    }
}

/// A `<virtual_machine>` as the kernel's plan holds it. Guest maps are not
/// subject to W^X (the guest's own page tables decide what is code); the
/// plan's checks still refuse rights the nested tables cannot express.
fn vm_plan(
    system: &System,
    owner: usize,
    vm: &bulkhead_sdf::VirtualMachine,
) -> Result<kernel_core::plan_vm::Vm, PackError> {
    let loc = at(system, vm.pos.line);
    let mut v = kernel_core::plan_vm::Vm {
        name: name(&vm.name, "virtual machine", &loc)?,
        owner: owner as u8,
        ..Default::default()
    };
    for c in &vm.vcpus {
        v.vcpus.push(c.id).map_err(|_| {
            full(
                &at(system, c.pos.line),
                "vCPUs in one VM",
                kernel_core::vm::MAX_VCPUS,
            )
        })?;
    }
    for m in &vm.maps {
        let mloc = at(system, m.pos.line);
        let mut perms = 0;
        if m.perms.read {
            perms |= PERM_R;
        }
        if m.perms.write {
            perms |= PERM_W;
        }
        if m.perms.execute {
            perms |= PERM_X;
        }
        if perms & PERM_R == 0 {
            return Err(PackError {
                at: mloc,
                message: format!(
                    "guest map of '{}' has no read right: nested page tables cannot express write- or execute-only guest memory; add r to perms",
                    m.mr
                ),
            });
        }
        v.maps
            .push(plan::Map {
                region: m.mr_index as u16,
                vaddr: m.vaddr,
                perms,
                cached: m.cached,
            })
            .map_err(|_| full(&mloc, "guest maps in one VM", kernel_core::vm::MAX_VM_MAPS))?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests;
