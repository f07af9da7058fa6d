//! Rules that relate several elements: references, uniqueness, overlaps,
//! priorities, isolation of I/O ports and IRQs.
//!
//! Each rule is its own function, named after what it protects, and adds
//! located diagnostics; none stops the others. The rules also finish the
//! model: they resolve map regions to indices and gather every setvar.

use std::collections::HashMap;

use crate::diag::{did_you_mean, Diagnostic};
use crate::model::*;
use crate::parse::Parsed;

pub(crate) fn check(parsed: &mut Parsed) -> Vec<Diagnostic> {
    let mut r = Rules {
        file: parsed.system.file.clone(),
        diags: Vec::new(),
    };
    let sys = &mut parsed.system;
    r.pd_count(sys);
    r.unique_names(sys);
    r.resolve_maps(sys, &parsed.broken_mrs);
    r.maps_fit_and_do_not_overlap(sys);
    r.write_xor_execute(sys);
    r.ids_unique_per_pd(sys);
    r.child_ids(sys);
    r.protected_calls(sys, &parsed.bad_priority);
    r.vmm_has_no_children(sys);
    r.io_ports_exclusive(sys);
    r.irqs_exclusive(sys);
    r.physical_regions_disjoint(sys);
    r.setvars(sys, &parsed.region_paddr);
    r.domains(sys, parsed.has_domains_element);
    r.unused_regions(sys);
    r.diags
}

struct Rules {
    file: String,
    diags: Vec<Diagnostic>,
}

impl Rules {
    fn error(&mut self, pos: Pos, element: &str, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::error(&self.file, pos, element, msg));
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn pd_count(&mut self, sys: &System) {
        if let Some(pd) = sys.pds.get(MAX_PDS) {
            let n = sys.pds.len();
            self.error(
                pd.pos,
                "protection_domain",
                format!("too many protection domains: {n}, at most {MAX_PDS}"),
            )
            .help =
                Some("merge PDs or split the system; this is the first one over the limit".into());
        }
    }

    fn unique_names(&mut self, sys: &System) {
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for pd in &sys.pds {
            if pd.name.is_empty() {
                continue;
            }
            if let Some(first) = seen.get(pd.name.as_str()) {
                let line = first.line;
                self.error(
                    pd.pos,
                    "protection_domain",
                    format!(
                        "duplicate protection domain name \"{}\" (first declared on line {line})",
                        pd.name
                    ),
                )
                .help = Some("every PD needs its own name".into());
            } else {
                seen.insert(&pd.name, pd.pos);
            }
        }
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for mr in &sys.memory_regions {
            if let Some(first) = seen.get(mr.name.as_str()) {
                let line = first.line;
                self.error(
                    mr.pos,
                    "memory_region",
                    format!(
                        "duplicate memory region name \"{}\" (first declared on line {line})",
                        mr.name
                    ),
                )
                .help = Some("every memory region needs its own name".into());
            } else {
                seen.insert(&mr.name, mr.pos);
            }
        }
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for vm in sys.pds.iter().filter_map(|p| p.virtual_machine.as_ref()) {
            if let Some(first) = seen.get(vm.name.as_str()) {
                let line = first.line;
                self.error(
                    vm.pos,
                    "virtual_machine",
                    format!(
                        "duplicate virtual machine name \"{}\" (first declared on line {line})",
                        vm.name
                    ),
                )
                .help = Some("every virtual machine needs its own name".into());
            } else {
                seen.insert(&vm.name, vm.pos);
            }
        }
    }

    fn resolve_maps(&mut self, sys: &mut System, broken: &[String]) {
        let names: HashMap<String, usize> = sys
            .memory_regions
            .iter()
            .enumerate()
            .rev() // the first of duplicate names wins
            .map(|(i, mr)| (mr.name.clone(), i))
            .collect();
        let all: Vec<String> = sys.memory_regions.iter().map(|m| m.name.clone()).collect();
        for pd in &mut sys.pds {
            let vm_maps = pd
                .virtual_machine
                .iter_mut()
                .flat_map(|vm| vm.maps.iter_mut());
            for map in pd.maps.iter_mut().chain(vm_maps) {
                match names.get(&map.mr) {
                    Some(&i) => map.mr_index = i,
                    None if broken.contains(&map.mr) => {}
                    None => {
                        let help = did_you_mean(&map.mr, all.iter().map(String::as_str))
                            .unwrap_or_else(|| {
                                "declare it with <memory_region name=\"..\" size=\"..\"/>".into()
                            });
                        self.error(
                            map.pos,
                            "map",
                            format!("memory region \"{}\" is not defined", map.mr),
                        )
                        .help = Some(help);
                    }
                }
            }
        }
    }

    /// Alignment, bounds and overlap of the maps of one address space.
    fn address_space(&mut self, sys: &System, maps: &[Map], limit: u64, space: &str) {
        let mut placed: Vec<(&Map, u64)> = Vec::new();
        for map in maps {
            let Some(mr) = sys.memory_regions.get(map.mr_index) else {
                continue;
            };
            let pb = mr.page_size.bytes();
            if !map.vaddr.is_multiple_of(pb) {
                self.error(
                    map.pos,
                    "map",
                    format!(
                        "vaddr {:#x} is not aligned to the page size {pb:#x} of \"{}\"",
                        map.vaddr, mr.name
                    ),
                )
                .help = Some(format!(
                    "use a multiple of {pb:#x}, e.g. {:#x}",
                    map.vaddr - map.vaddr % pb
                ));
                continue;
            }
            let Some(end) = map.vaddr.checked_add(mr.size) else {
                self.error(map.pos, "map", "the map's address range overflows");
                continue;
            };
            if end > limit {
                self.error(map.pos, "map", format!("\"{}\" mapped at {:#x}..{end:#x} goes past the end of {space} ({limit:#x})", mr.name, map.vaddr))
                    .help = Some(format!("map it below {:#x}", limit.saturating_sub(mr.size)));
                continue;
            }
            if let Some((other, oend)) = placed
                .iter()
                .find(|(o, oend)| map.vaddr < *oend && o.vaddr < end)
            {
                let line = other.pos.line;
                self.error(map.pos, "map", format!(
                    "\"{}\" at {:#x}..{end:#x} overlaps \"{}\" at {:#x}..{oend:#x} (line {line}) in {space}",
                    mr.name, map.vaddr, other.mr, other.vaddr
                ))
                .help = Some("move one of the maps to a free address range".into());
                continue;
            }
            placed.push((map, end));
        }
    }

    fn maps_fit_and_do_not_overlap(&mut self, sys: &System) {
        for pd in &sys.pds {
            // The stack occupies the top of a PD's address space.
            let limit = USER_TOP - pd.stack_size.min(USER_TOP);
            self.address_space(
                sys,
                &pd.maps,
                limit,
                &format!("the address space of \"{}\"", pd.name),
            );
            if let Some(vm) = &pd.virtual_machine {
                self.address_space(
                    sys,
                    &vm.maps,
                    USER_TOP,
                    &format!("the guest-physical space of \"{}\"", vm.name),
                );
            }
        }
    }

    /// W^X for PD maps; guest-physical maps are exempt (guest RAM holds
    /// the guest's code and data, the guest's own page tables apply W^X).
    fn write_xor_execute(&mut self, sys: &System) {
        for pd in &sys.pds {
            for map in &pd.maps {
                let wx = map.perms.write && map.perms.execute;
                if wx && map.allow_wx.is_none() {
                    self.error(map.pos, "map", format!("map of \"{}\" in \"{}\" is both writable and executable", map.mr, pd.name))
                        .help = Some("map it \"rw\" or \"rx\"; if it really must be both, put <?bulkhead allow_wx reason=\"...\"?> right before the <map> and say why".into());
                } else if !wx && map.allow_wx.is_some() {
                    self.diags.push(
                        Diagnostic::warning(
                            &self.file,
                            map.pos,
                            "map",
                            format!(
                                "allow_wx given but the map is \"{}\", not writable and executable",
                                map.perms
                            ),
                        )
                        .with_help("remove the <?bulkhead allow_wx?> instruction"),
                    );
                }
            }
        }
    }

    /// Channel and IRQ ids share one space per PD (they are bits of the
    /// same notification badge); I/O port ids have their own.
    fn ids_unique_per_pd(&mut self, sys: &System) {
        let mut used: Vec<HashMap<u8, (Pos, &'static str)>> = vec![HashMap::new(); sys.pds.len()];
        let mut events: Vec<(usize, u8, Pos, &'static str, &'static str)> = Vec::new();
        for (i, pd) in sys.pds.iter().enumerate() {
            for irq in &pd.irqs {
                events.push((i, irq.id, irq.pos, "irq", "an irq"));
            }
        }
        for ch in &sys.channels {
            for e in &ch.ends {
                events.push((e.pd_index, e.id, e.pos, "end", "a channel"));
            }
        }
        events.sort_by_key(|e| e.2);
        for (pd, id, pos, element, what) in events {
            let Some(map) = used.get_mut(pd) else {
                continue;
            };
            if let Some((first, fwhat)) = map.get(&id) {
                let (line, fwhat) = (first.line, *fwhat);
                let name = &sys.pds[pd].name;
                self.error(
                    pos,
                    element,
                    format!("id {id} of \"{name}\" is already used by {fwhat} on line {line}"),
                )
                .help =
                    Some("channel and irq ids share one id space per PD; pick an unused id".into());
            } else {
                map.insert(id, (pos, what));
            }
        }
        for pd in &sys.pds {
            let mut seen: HashMap<u8, Pos> = HashMap::new();
            for p in &pd.ioports {
                if let Some(first) = seen.get(&p.id) {
                    let line = first.line;
                    self.error(
                        p.pos,
                        "ioport",
                        format!(
                            "ioport id {} of \"{}\" is already used on line {line}",
                            p.id, pd.name
                        ),
                    )
                    .help = Some("give every ioport of a PD its own id".into());
                } else {
                    seen.insert(p.id, p.pos);
                }
            }
        }
    }

    fn child_ids(&mut self, sys: &System) {
        for pd in &sys.pds {
            let mut seen: HashMap<u8, Pos> = HashMap::new();
            if let Some(vm) = &pd.virtual_machine {
                for v in &vm.vcpus {
                    seen.insert(v.id, v.pos);
                }
            }
            for &c in &pd.children {
                let child = &sys.pds[c];
                let Some(id) = child.child_id else { continue };
                if let Some(first) = seen.get(&id) {
                    let line = first.line;
                    self.error(
                        child.pos,
                        "protection_domain",
                        format!(
                            "child id {id} of \"{}\" is already used on line {line}",
                            pd.name
                        ),
                    )
                    .help = Some("children (and vcpus) of one PD need distinct ids".into());
                } else {
                    seen.insert(id, child.pos);
                }
            }
        }
    }

    fn protected_calls(&mut self, sys: &System, bad_priority: &[bool]) {
        for ch in &sys.channels {
            for (caller, callee) in [(0, 1), (1, 0)] {
                let (a, b) = (&ch.ends[caller], &ch.ends[callee]);
                if !a.pp {
                    continue;
                }
                let (pa, pb) = (&sys.pds[a.pd_index], &sys.pds[b.pd_index]);
                let unknown = bad_priority.get(a.pd_index).copied().unwrap_or(false)
                    || bad_priority.get(b.pd_index).copied().unwrap_or(false);
                if !unknown && pa.priority >= pb.priority {
                    self.error(a.pos, "end", format!(
                        "\"{}\" (priority {}) may not make protected calls to \"{}\" (priority {}): the callee's priority must be strictly higher",
                        pa.name, pa.priority, pb.name, pb.priority
                    ))
                    .help = Some(format!("raise the priority of \"{}\" above {}, or use notifications instead of pp", pb.name, pa.priority));
                }
                if pb.virtual_machine.is_some() {
                    self.error(a.pos, "end", format!(
                        "\"{}\" may not make protected calls to \"{}\": it runs a virtual machine, and a vCPU in the guest does not take calls",
                        pa.name, pb.name
                    ))
                    .help = Some("notify the VMM and exchange data through a shared memory region".into());
                }
            }
        }
    }

    fn vmm_has_no_children(&mut self, sys: &System) {
        for pd in &sys.pds {
            if let (Some(vm), false) = (&pd.virtual_machine, pd.children.is_empty()) {
                self.error(pd.pos, "protection_domain", format!(
                    "\"{}\" runs virtual machine \"{}\" and also has child PDs; on x86_64 a VMM cannot have children",
                    pd.name, vm.name
                ))
                .help = Some("move the children to another parent (e.g. the supervisor)".into());
            }
        }
    }

    fn io_ports_exclusive(&mut self, sys: &System) {
        let mut all: Vec<(&ProtectionDomain, &IoPort)> = sys
            .pds
            .iter()
            .flat_map(|pd| pd.ioports.iter().map(move |p| (pd, p)))
            .collect();
        all.sort_by_key(|(_, p)| p.pos);
        for (i, (pd, p)) in all.iter().enumerate() {
            let clash = all[..i]
                .iter()
                .find(|(_, o)| u32::from(p.addr) < o.end() && u32::from(o.addr) < p.end());
            if let Some((opd, o)) = clash {
                let what = if opd.name == pd.name {
                    "in the same PD".to_string()
                } else {
                    format!("granted to \"{}\"", opd.name)
                };
                self.error(p.pos, "ioport", format!(
                    "I/O ports {:#x}..{:#x} of \"{}\" overlap ports {:#x}..{:#x} {what} (line {})",
                    p.addr, p.end(), pd.name, o.addr, o.end(), o.pos.line
                ))
                .help = Some("an I/O port range belongs to one PD only; give the device to one PD and let others reach it through a channel".into());
            }
        }
    }

    fn irqs_exclusive(&mut self, sys: &System) {
        let mut all: Vec<(&ProtectionDomain, &Irq)> = sys
            .pds
            .iter()
            .flat_map(|pd| pd.irqs.iter().map(move |i| (pd, i)))
            .collect();
        all.sort_by_key(|(_, i)| i.pos);
        for (i, (pd, irq)) in all.iter().enumerate() {
            let earlier = &all[..i];
            if let Some((opd, o)) = earlier.iter().find(|(_, o)| o.vector() == irq.vector()) {
                self.error(
                    irq.pos,
                    "irq",
                    format!(
                        "vector {} of \"{}\" is already claimed by \"{}\" (line {})",
                        irq.vector(),
                        pd.name,
                        opd.name,
                        o.pos.line
                    ),
                )
                .help = Some(format!(
                    "each IRQ needs its own vector; pick an unused one in 0..={MAX_IRQ_VECTOR}"
                ));
                continue;
            }
            match irq.kind {
                IrqKind::Ioapic { ioapic, pin, .. } => {
                    let clash = earlier.iter().find(|(_, o)| {
                        matches!(o.kind, IrqKind::Ioapic { ioapic: oa, pin: op, .. } if oa == ioapic && op == pin)
                    });
                    if let Some((opd, o)) = clash {
                        self.error(irq.pos, "irq", format!(
                            "IOAPIC {ioapic} pin {pin} of \"{}\" is already claimed by \"{}\" (line {})",
                            pd.name, opd.name, o.pos.line
                        ))
                        .help = Some("an interrupt line goes to one PD only".into());
                    }
                }
                IrqKind::Msi { pci, handle, .. } => {
                    let clash = earlier.iter().find(|(_, o)| {
                        matches!(o.kind, IrqKind::Msi { pci: op, handle: oh, .. } if op == pci && oh == handle)
                    });
                    if let Some((opd, o)) = clash {
                        self.error(irq.pos, "irq", format!(
                            "MSI handle {handle} of PCI device {pci} of \"{}\" is already claimed by \"{}\" (line {})",
                            pd.name, opd.name, o.pos.line
                        ))
                        .help = Some("each MSI of a device goes to one PD only; use another handle".into());
                    }
                }
            }
        }
    }

    fn physical_regions_disjoint(&mut self, sys: &System) {
        let mut placed: Vec<(&MemoryRegion, u64, u64)> = Vec::new();
        for mr in &sys.memory_regions {
            let Some(start) = mr.phys_addr else { continue };
            let Some(end) = start.checked_add(mr.size) else {
                continue;
            };
            if let Some((o, os, oe)) = placed.iter().find(|(_, s, e)| start < *e && *s < end) {
                self.error(mr.pos, "memory_region", format!(
                    "physical range {start:#x}..{end:#x} of \"{}\" overlaps \"{}\" at {os:#x}..{oe:#x} (line {})",
                    mr.name, o.name, o.pos.line
                ))
                .help = Some("two regions at the same physical address would alias the same memory; map one region several times instead".into());
                continue;
            }
            placed.push((mr, start, end));
        }
    }

    /// Gathers every setvar into its PD and checks symbols are unique.
    fn setvars(&mut self, sys: &mut System, region_paddr: &[crate::parse::RegionPaddrSetVar]) {
        let mut per_pd: Vec<Vec<SetVar>> = vec![Vec::new(); sys.pds.len()];
        for (i, pd) in sys.pds.iter().enumerate() {
            let out = &mut per_pd[i];
            out.extend(pd.setvars.iter().cloned()); // child setvar_ids
            for m in &pd.maps {
                let size = sys.memory_regions.get(m.mr_index).map(|mr| mr.size);
                if let Some(s) = &m.setvar_vaddr {
                    out.push(SetVar {
                        symbol: s.clone(),
                        value: SetVarValue::Vaddr(m.vaddr),
                        pos: m.pos,
                        element: "map",
                    });
                }
                if let (Some(s), Some(size)) = (&m.setvar_size, size) {
                    out.push(SetVar {
                        symbol: s.clone(),
                        value: SetVarValue::Size(size),
                        pos: m.pos,
                        element: "map",
                    });
                }
            }
            for irq in &pd.irqs {
                if let Some(s) = &irq.setvar_id {
                    out.push(SetVar {
                        symbol: s.clone(),
                        value: SetVarValue::Id(irq.id),
                        pos: irq.pos,
                        element: "irq",
                    });
                }
            }
            for p in &pd.ioports {
                if let Some(s) = &p.setvar_id {
                    out.push(SetVar {
                        symbol: s.clone(),
                        value: SetVarValue::Id(p.id),
                        pos: p.pos,
                        element: "ioport",
                    });
                }
                if let Some(s) = &p.setvar_addr {
                    out.push(SetVar {
                        symbol: s.clone(),
                        value: SetVarValue::IoPortAddr(p.addr),
                        pos: p.pos,
                        element: "ioport",
                    });
                }
            }
            if let Some(vm) = &pd.virtual_machine {
                for v in &vm.vcpus {
                    if let Some(s) = &v.setvar_id {
                        out.push(SetVar {
                            symbol: s.clone(),
                            value: SetVarValue::Id(v.id),
                            pos: v.pos,
                            element: "vcpu",
                        });
                    }
                }
            }
        }
        for ch in &sys.channels {
            for e in &ch.ends {
                if let (Some(s), Some(out)) = (&e.setvar_id, per_pd.get_mut(e.pd_index)) {
                    out.push(SetVar {
                        symbol: s.clone(),
                        value: SetVarValue::Id(e.id),
                        pos: e.pos,
                        element: "end",
                    });
                }
            }
        }
        for sv in region_paddr {
            match sys.memory_regions.iter().find(|m| m.name == sv.mr) {
                None => {
                    let help =
                        did_you_mean(&sv.mr, sys.memory_regions.iter().map(|m| m.name.as_str()));
                    self.error(
                        sv.pos,
                        "setvar",
                        format!("memory region \"{}\" is not defined", sv.mr),
                    )
                    .help = help;
                }
                Some(MemoryRegion {
                    phys_addr: None,
                    name,
                    ..
                }) => {
                    self.error(sv.pos, "setvar", format!("memory region \"{name}\" has no phys_addr; on x86_64 region_paddr needs a fixed physical address"))
                        .help = Some(format!("give \"{name}\" a phys_addr"));
                }
                Some(MemoryRegion {
                    phys_addr: Some(pa),
                    ..
                }) => {
                    if let Some(out) = per_pd.get_mut(sv.pd) {
                        out.push(SetVar {
                            symbol: sv.symbol.clone(),
                            value: SetVarValue::Paddr(*pa),
                            pos: sv.pos,
                            element: "setvar",
                        });
                    }
                }
            }
        }
        for (i, mut list) in per_pd.into_iter().enumerate() {
            list.sort_by_key(|s| s.pos);
            let mut seen: HashMap<String, Pos> = HashMap::new();
            let mut kept = Vec::new();
            for sv in list {
                if let Some(first) = seen.get(&sv.symbol) {
                    let line = first.line;
                    let name = &sys.pds[i].name;
                    self.error(
                        sv.pos,
                        sv.element,
                        format!(
                            "setvar symbol \"{}\" of \"{name}\" is already set on line {line}",
                            sv.symbol
                        ),
                    )
                    .help = Some(
                        "a symbol can be patched with one value only; rename one of them".into(),
                    );
                } else {
                    seen.insert(sv.symbol.clone(), sv.pos);
                    kept.push(sv);
                }
            }
            sys.pds[i].setvars = kept;
        }
    }

    fn domains(&mut self, sys: &System, has_domains_element: bool) {
        for pd in &sys.pds {
            match (&sys.domains, &pd.domain) {
                (None, Some(d)) if !has_domains_element => {
                    self.error(pd.pos, "protection_domain", format!("domain \"{d}\" given but the system declares no <domains>"))
                        .help = Some("declare the domains and their schedule in <domains>, or remove the attribute".into());
                }
                (Some(ds), Some(d)) if !ds.domains.iter().any(|x| &x.name == d) => {
                    let help = did_you_mean(d, ds.domains.iter().map(|x| x.name.as_str()));
                    self.error(
                        pd.pos,
                        "protection_domain",
                        format!("no domain named \"{d}\""),
                    )
                    .help = help;
                }
                (Some(_), None) => {
                    self.error(
                        pd.pos,
                        "protection_domain",
                        format!(
                            "\"{}\" has no domain; with <domains> every PD names its domain",
                            pd.name
                        ),
                    )
                    .help = Some("add domain=\"...\"".into());
                }
                _ => {}
            }
        }
    }

    fn unused_regions(&mut self, sys: &System) {
        for (i, mr) in sys.memory_regions.iter().enumerate() {
            let used = sys.pds.iter().any(|pd| {
                pd.maps.iter().any(|m| m.mr_index == i)
                    || pd
                        .virtual_machine
                        .as_ref()
                        .is_some_and(|vm| vm.maps.iter().any(|m| m.mr_index == i))
            });
            if !used {
                self.diags.push(
                    Diagnostic::warning(
                        &self.file,
                        mr.pos,
                        "memory_region",
                        format!("memory region \"{}\" is not mapped anywhere", mr.name),
                    )
                    .with_help("map it into a PD or remove it"),
                );
            }
        }
    }
}
