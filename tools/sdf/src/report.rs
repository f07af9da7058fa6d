//! The report of a checked system: what each PD holds, and the information
//! flow between every pair of PDs.
//!
//! Information flow is derived from the SDF alone, the way the kernel will
//! enforce it: PD A can pass information to PD B when A may write a memory
//! region B may read (through its own maps or the guest-physical maps of
//! the VM it runs), when A may notify B, or when A may call B (a protected
//! call carries message registers both ways). A parent also controls its
//! children (it handles their faults and may restart them).
//!
//! [`Report`] is plain data (serde), rendered as text ([`Report::to_text`]),
//! JSON ([`Report::to_json`]) or Graphviz ([`Report::to_dot`]).

use std::fmt::Write as _;

use serde::Serialize;

use crate::model::*;

/// A map, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapInfo {
    /// Region name.
    pub mr: String,
    /// First address (virtual, or guest-physical for VM maps).
    pub vaddr: u64,
    /// Bytes.
    pub size: u64,
    /// `r`, `rw`, `rx`, ...
    pub perms: String,
    /// Cached or device memory.
    pub cached: bool,
    /// The region's fixed physical address, if any.
    pub phys_addr: Option<u64>,
}

/// A channel as seen from one PD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelInfo {
    /// The id this PD uses.
    pub id: u8,
    /// The PD at the other end.
    pub peer: String,
    /// This PD may notify the peer.
    pub may_notify: bool,
    /// This PD may call the peer.
    pub may_call: bool,
    /// The peer may notify this PD.
    pub notified_by_peer: bool,
    /// The peer may call this PD.
    pub called_by_peer: bool,
}

/// An IRQ, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IrqInfo {
    /// Channel id.
    pub id: u8,
    /// Vector.
    pub vector: u8,
    /// `IOAPIC 0 pin 4, edge, high` or `MSI 00:03.0 handle 0`.
    pub source: String,
}

/// An I/O port range, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IoPortInfo {
    /// Id.
    pub id: u8,
    /// First port.
    pub addr: u16,
    /// Number of ports.
    pub size: u32,
}

/// A virtual machine, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmInfo {
    /// Name.
    pub name: String,
    /// vCPU ids.
    pub vcpus: Vec<u8>,
    /// Guest-physical maps.
    pub maps: Vec<MapInfo>,
}

/// Everything about one PD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PdInfo {
    /// Name.
    pub name: String,
    /// Parent PD, if any.
    pub parent: Option<String>,
    /// The id the parent knows it by.
    pub child_id: Option<u8>,
    /// Child PDs.
    pub children: Vec<String>,
    /// Priority.
    pub priority: u8,
    /// Budget in microseconds.
    pub budget: u64,
    /// Period in microseconds.
    pub period: u64,
    /// Passive.
    pub passive: bool,
    /// Stack bytes.
    pub stack_size: u64,
    /// ELF path.
    pub program_image: String,
    /// Maps into its address space.
    pub maps: Vec<MapInfo>,
    /// Its channels.
    pub channels: Vec<ChannelInfo>,
    /// Its IRQs.
    pub irqs: Vec<IrqInfo>,
    /// Its I/O ports.
    pub ioports: Vec<IoPortInfo>,
    /// The VM it runs.
    pub virtual_machine: Option<VmInfo>,
}

/// How information may pass from one PD to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// The PD information leaves.
    pub from: String,
    /// The PD information reaches.
    pub to: String,
    /// Regions `from` may write and `to` may read (`name` or
    /// `name (guest "vm")` when through a VM's guest-physical map).
    pub memory: Vec<String>,
    /// `from` may notify `to`.
    pub notify: bool,
    /// `from` may call `to`.
    pub call: bool,
    /// `from` is the parent of `to`.
    pub parent: bool,
}

impl Flow {
    /// Whether any information may pass.
    pub fn any(&self) -> bool {
        !self.memory.is_empty() || self.notify || self.call || self.parent
    }
}

/// The report of a whole system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The system file.
    pub file: String,
    /// Every PD, in system order.
    pub pds: Vec<PdInfo>,
    /// One entry for every ordered pair of different PDs, row-major
    /// (`from` in system order, then `to`).
    pub flows: Vec<Flow>,
    /// For every PD (in system order), the other PDs it can influence
    /// through a chain of direct flows. A protected call counts both ways:
    /// the caller's message reaches the callee and the reply comes back.
    pub reach: Vec<Reach>,
    /// The typed channels (rings): producer, consumer and their regions.
    pub rings: Vec<crate::rings::RingInfo>,
}

/// The PDs one PD can eventually influence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reach {
    /// The influencing PD.
    pub from: String,
    /// Every PD reachable from it, in system order.
    pub to: Vec<String>,
}

fn map_info(sys: &System, m: &Map) -> MapInfo {
    let mr = sys.memory_regions.get(m.mr_index);
    MapInfo {
        mr: m.mr.clone(),
        vaddr: m.vaddr,
        size: mr.map_or(0, |r| r.size),
        perms: m.perms.to_string(),
        cached: m.cached,
        phys_addr: mr.and_then(|r| r.phys_addr),
    }
}

/// Every (region index, label, perms) a PD can reach.
fn reach(pd: &ProtectionDomain) -> Vec<(usize, String, Perms)> {
    let mut out: Vec<(usize, String, Perms)> = pd
        .maps
        .iter()
        .map(|m| (m.mr_index, m.mr.clone(), m.perms))
        .collect();
    if let Some(vm) = &pd.virtual_machine {
        out.extend(vm.maps.iter().map(|m| {
            (
                m.mr_index,
                format!("{} (guest \"{}\")", m.mr, vm.name),
                m.perms,
            )
        }));
    }
    out
}

impl Report {
    /// Builds the report of a checked system.
    pub fn new(sys: &System) -> Report {
        let name = |i: usize| sys.pds.get(i).map(|p| p.name.clone()).unwrap_or_default();
        let pds = sys
            .pds
            .iter()
            .enumerate()
            .map(|(i, pd)| PdInfo {
                name: pd.name.clone(),
                parent: pd.parent.map(name),
                child_id: pd.child_id,
                children: pd.children.iter().map(|&c| name(c)).collect(),
                priority: pd.priority,
                budget: pd.budget,
                period: pd.period,
                passive: pd.passive,
                stack_size: pd.stack_size,
                program_image: pd.program_image.path.clone(),
                maps: pd.maps.iter().map(|m| map_info(sys, m)).collect(),
                channels: sys
                    .channels_of(i)
                    .map(|(ch, end)| {
                        let (me, peer) = (&ch.ends[end], &ch.ends[1 - end]);
                        ChannelInfo {
                            id: me.id,
                            peer: peer.pd.clone(),
                            may_notify: me.notify,
                            may_call: me.pp,
                            notified_by_peer: peer.notify,
                            called_by_peer: peer.pp,
                        }
                    })
                    .collect(),
                irqs: pd
                    .irqs
                    .iter()
                    .map(|irq| IrqInfo {
                        id: irq.id,
                        vector: irq.vector(),
                        source: match irq.kind {
                            IrqKind::Ioapic {
                                ioapic,
                                pin,
                                trigger,
                                polarity,
                                ..
                            } => format!(
                                "IOAPIC {ioapic} pin {pin}, {}, active {}",
                                match trigger {
                                    Trigger::Level => "level",
                                    Trigger::Edge => "edge",
                                },
                                match polarity {
                                    Polarity::High => "high",
                                    Polarity::Low => "low",
                                }
                            ),
                            IrqKind::Msi { pci, handle, .. } => {
                                format!("MSI of PCI {pci}, handle {handle}")
                            }
                        },
                    })
                    .collect(),
                ioports: pd
                    .ioports
                    .iter()
                    .map(|p| IoPortInfo {
                        id: p.id,
                        addr: p.addr,
                        size: p.size,
                    })
                    .collect(),
                virtual_machine: pd.virtual_machine.as_ref().map(|vm| VmInfo {
                    name: vm.name.clone(),
                    vcpus: vm.vcpus.iter().map(|v| v.id).collect(),
                    maps: vm.maps.iter().map(|m| map_info(sys, m)).collect(),
                }),
            })
            .collect();

        let reaches: Vec<_> = sys.pds.iter().map(reach).collect();
        let n = sys.pds.len();
        // edge[a][b]: information may pass directly from a to b.
        let mut edge = vec![vec![false; n]; n];
        let mut flows = Vec::new();
        for (a, pa) in sys.pds.iter().enumerate() {
            for (b, pb) in sys.pds.iter().enumerate() {
                if a == b {
                    continue;
                }
                let mut memory: Vec<String> = Vec::new();
                for (mr, label, perms) in &reaches[a] {
                    if !perms.write {
                        continue;
                    }
                    if reaches[b].iter().any(|(m, _, p)| m == mr && p.read)
                        && !memory.contains(label)
                    {
                        memory.push(label.clone());
                    }
                }
                let mut notify = false;
                let mut call = false;
                for (ch, end) in sys.channels_of(a) {
                    if ch.ends[1 - end].pd_index == b {
                        notify |= ch.ends[end].notify;
                        call |= ch.ends[end].pp;
                    }
                }
                let flow = Flow {
                    from: pa.name.clone(),
                    to: pb.name.clone(),
                    memory,
                    notify,
                    call,
                    parent: pb.parent == Some(a),
                };
                if flow.any() {
                    edge[a][b] = true;
                }
                if flow.call {
                    edge[b][a] = true; // the reply
                }
                flows.push(flow);
            }
        }
        let reach = (0..n)
            .map(|a| {
                let mut seen = vec![false; n];
                let mut todo = vec![a];
                while let Some(x) = todo.pop() {
                    for y in 0..n {
                        if edge[x][y] && !seen[y] {
                            seen[y] = true;
                            todo.push(y);
                        }
                    }
                }
                Reach {
                    from: name(a),
                    to: (0..n).filter(|&b| b != a && seen[b]).map(name).collect(),
                }
            })
            .collect();
        Report {
            file: sys.file.clone(),
            pds,
            flows,
            reach,
            rings: crate::rings::rings(sys),
        }
    }

    /// The flow from `from` to `to`, if both PDs exist and differ.
    pub fn flow(&self, from: &str, to: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.from == from && f.to == to)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "System {}: {} protection domains",
            self.file,
            self.pds.len()
        );
        for pd in &self.pds {
            let _ = writeln!(o);
            let _ = write!(o, "PD {}", pd.name);
            if let Some(p) = &pd.parent {
                let _ = write!(o, " (child {} of {p})", pd.child_id.unwrap_or(0));
            }
            let _ = writeln!(o, "  [{}]", pd.program_image);
            let _ = writeln!(
                o,
                "  priority {}, budget {} us / period {} us{}, stack {:#x}",
                pd.priority,
                pd.budget,
                pd.period,
                if pd.passive { ", passive" } else { "" },
                pd.stack_size
            );
            if !pd.children.is_empty() {
                let _ = writeln!(o, "  children: {}", pd.children.join(", "));
            }
            for m in &pd.maps {
                let _ = writeln!(o, "  map   {}", fmt_map(m));
            }
            for c in &pd.channels {
                let mut can = Vec::new();
                if c.may_notify {
                    can.push("notify");
                }
                if c.may_call {
                    can.push("call");
                }
                let mut by = Vec::new();
                if c.notified_by_peer {
                    by.push("notify");
                }
                if c.called_by_peer {
                    by.push("call");
                }
                let none = || "neither notify nor call".to_string();
                let _ = writeln!(
                    o,
                    "  ch {:>2} <-> {}: {} may {}; {} may {}",
                    c.id,
                    c.peer,
                    pd.name,
                    if can.is_empty() {
                        none()
                    } else {
                        can.join(", ")
                    },
                    c.peer,
                    if by.is_empty() { none() } else { by.join(", ") },
                );
            }
            for i in &pd.irqs {
                let _ = writeln!(o, "  irq {:>2}  vector {}: {}", i.id, i.vector, i.source);
            }
            for p in &pd.ioports {
                let _ = writeln!(
                    o,
                    "  ioport {:>2}  {:#06x}..{:#06x} ({} ports)",
                    p.id,
                    p.addr,
                    u32::from(p.addr) + p.size,
                    p.size
                );
            }
            if let Some(vm) = &pd.virtual_machine {
                let ids: Vec<String> = vm.vcpus.iter().map(u8::to_string).collect();
                let _ = writeln!(o, "  vm {} (vcpus {})", vm.name, ids.join(", "));
                for m in &vm.maps {
                    let _ = writeln!(o, "    guest map {}", fmt_map(m));
                }
            }
        }

        let _ = writeln!(o);
        let _ = writeln!(o, "Information flow (row may pass information to column):");
        let _ = writeln!(
            o,
            "  W = writes memory the other reads, N = may notify, C = may call, P = parent of"
        );
        let width = self
            .pds
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let _ = write!(o, "  {:width$}", "");
        for p in &self.pds {
            let _ = write!(o, " {:>w$}", p.name, w = p.name.len().max(4));
        }
        let _ = writeln!(o);
        for a in &self.pds {
            let _ = write!(o, "  {:width$}", a.name);
            for b in &self.pds {
                let cell = if a.name == b.name {
                    "·".to_string()
                } else {
                    self.flow(&a.name, &b.name)
                        .map_or_else(|| "-".into(), flags)
                };
                let _ = write!(o, " {:>w$}", cell, w = b.name.len().max(4));
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o);
        for f in self.flows.iter().filter(|f| f.any()) {
            let mut what = Vec::new();
            if !f.memory.is_empty() {
                what.push(format!("writes {} which it reads", f.memory.join(", ")));
            }
            if f.notify {
                what.push("may notify it".into());
            }
            if f.call {
                what.push("may call it (and read its reply)".into());
            }
            if f.parent {
                what.push("is its parent (handles its faults)".into());
            }
            let _ = writeln!(o, "  {} -> {}: {}", f.from, f.to, what.join("; "));
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Transitive reach (through any chain of the flows above):"
        );
        for r in &self.reach {
            let to = if r.to.is_empty() {
                "nobody".to_string()
            } else {
                r.to.join(", ")
            };
            let _ = writeln!(o, "  {} can influence {to}", r.from);
        }
        if !self.rings.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(o, "Typed channels (rings; header region + data region):");
            let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
            for r in &self.rings {
                let _ = writeln!(
                    o,
                    "  {}: {} -> {}  [header {}, data {}]",
                    r.name,
                    opt(&r.producer),
                    opt(&r.consumer),
                    opt(&r.header),
                    opt(&r.data)
                );
            }
        }
        o
    }

    /// A Graphviz digraph: PDs as boxes (with their IRQs, I/O ports and
    /// VM), edges for memory flow (solid, labelled with regions),
    /// notifications (dashed), protected calls (bold) and parenthood
    /// (dotted).
    pub fn to_dot(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "digraph system {{");
        let _ = writeln!(
            o,
            "  label={};",
            quote(&format!("{}: information flow", self.file))
        );
        let _ = writeln!(o, "  labelloc=t; rankdir=LR;");
        let _ = writeln!(
            o,
            "  node [shape=box, style=rounded, fontname=\"Helvetica\"];"
        );
        let _ = writeln!(o, "  edge [fontname=\"Helvetica\", fontsize=10];");
        for pd in &self.pds {
            let mut lines = vec![pd.name.clone(), format!("prio {}", pd.priority)];
            if let Some(vm) = &pd.virtual_machine {
                lines.push(format!("VM {}", vm.name));
            }
            for i in &pd.irqs {
                lines.push(format!("irq {}: {}", i.id, i.source));
            }
            for p in &pd.ioports {
                lines.push(format!("ports {:#x}+{}", p.addr, p.size));
            }
            let _ = writeln!(
                o,
                "  {} [label={}];",
                quote(&pd.name),
                quote(&lines.join("\n"))
            );
        }
        for f in &self.flows {
            let (from, to) = (quote(&f.from), quote(&f.to));
            if !f.memory.is_empty() {
                let _ = writeln!(
                    o,
                    "  {from} -> {to} [label={}];",
                    quote(&f.memory.join("\n"))
                );
            }
            if f.notify {
                let _ = writeln!(o, "  {from} -> {to} [style=dashed, label=\"notify\"];");
            }
            if f.call {
                let _ = writeln!(o, "  {from} -> {to} [style=bold, label=\"call\"];");
            }
            if f.parent {
                let _ = writeln!(
                    o,
                    "  {from} -> {to} [style=dotted, arrowhead=odiamond, label=\"parent\"];"
                );
            }
        }
        let _ = writeln!(o, "}}");
        o
    }
}

fn flags(f: &Flow) -> String {
    let mut s = String::new();
    for (on, c) in [
        (!f.memory.is_empty(), 'W'),
        (f.notify, 'N'),
        (f.call, 'C'),
        (f.parent, 'P'),
    ] {
        if on {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

fn fmt_map(m: &MapInfo) -> String {
    let mut s = format!(
        "{:#014x}..{:#014x} {:<3} {}",
        m.vaddr,
        m.vaddr.saturating_add(m.size),
        m.perms,
        m.mr
    );
    if let Some(pa) = m.phys_addr {
        let _ = write!(s, " @ phys {pa:#x}");
    }
    if !m.cached {
        s.push_str(" uncached");
    }
    s
}

/// A Graphviz double-quoted string; newlines become Graphviz line breaks.
fn quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
