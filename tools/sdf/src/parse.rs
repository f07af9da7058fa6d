//! XML to model: reads every element and attribute of the SDF, resolves
//! numbers and defaults, and reports everything that is wrong *locally*
//! (unknown names, missing or malformed attributes, values out of range).
//!
//! Design rules: never stop at the first error — an element with a bad
//! attribute is still read as far as possible so its children are checked
//! too; never panic, whatever the input. Rules that relate several
//! elements (references, overlaps, uniqueness) live in [`crate::rules`].

use roxmltree::{Document, Node, NodeType, ParsingOptions};

use crate::diag::{did_you_mean, Diagnostic};
use crate::model::*;

/// A `<setvar symbol=".." region_paddr=".."/>`, resolved by the rules once
/// every memory region is known.
pub(crate) struct RegionPaddrSetVar {
    pub pd: usize,
    pub symbol: String,
    pub mr: String,
    pub pos: Pos,
}

/// What the parse stage hands to the rules stage.
pub(crate) struct Parsed {
    pub system: System,
    pub region_paddr: Vec<RegionPaddrSetVar>,
    /// PDs whose scheduling attributes did not parse, so priority rules
    /// would only repeat that error.
    pub bad_priority: Vec<bool>,
    /// Whether the file has a `<domains>` element (even a broken one).
    pub has_domains_element: bool,
    /// Names of memory regions that were declared but did not parse; maps
    /// of them are not reported again as undefined.
    pub broken_mrs: Vec<String>,
}

const SYSTEM_CHILDREN: &[&str] = &["memory_region", "protection_domain", "channel", "domains"];
const PD_CHILDREN: &[&str] = &[
    "program_image",
    "map",
    "irq",
    "ioport",
    "setvar",
    "protection_domain",
    "virtual_machine",
];
const PD_ATTRS: &[&str] = &[
    "name",
    "priority",
    "budget",
    "period",
    "passive",
    "stack_size",
    "cpu",
    "domain",
    "fpu",
    "smc",
];
const CHILD_PD_ATTRS: &[&str] = &[
    "name",
    "priority",
    "budget",
    "period",
    "passive",
    "stack_size",
    "cpu",
    "domain",
    "fpu",
    "smc",
    "id",
    "setvar_id",
];
const MAP_ATTRS: &[&str] = &[
    "mr",
    "vaddr",
    "perms",
    "cached",
    "setvar_vaddr",
    "setvar_size",
];
const VM_MAP_ATTRS: &[&str] = &["mr", "vaddr", "perms", "cached"];
const IOAPIC_ATTRS: &[&str] = &[
    "id",
    "setvar_id",
    "ioapic",
    "pin",
    "trigger",
    "polarity",
    "vector",
];
const MSI_ATTRS: &[&str] = &["id", "setvar_id", "pcidev", "handle", "vector"];
const IOPORT_ATTRS: &[&str] = &["id", "setvar_id", "setvar_addr", "addr", "size"];
const MR_ATTRS: &[&str] = &["name", "size", "page_size", "phys_addr", "prefill_path"];
const END_ATTRS: &[&str] = &["pd", "id", "pp", "notify", "setvar_id"];

/// Highest IOAPIC input pin: the version register's "maximum redirection
/// entry" field allows at most 240 entries.
const MAX_IOAPIC_PIN: u64 = 239;

pub(crate) struct Parser<'d, 'input> {
    pub file: &'d str,
    doc: &'d Document<'input>,
    /// Byte offset of the start of every line, to locate nodes without
    /// rescanning the text for each one.
    line_starts: Vec<usize>,
    pub diags: Vec<Diagnostic>,
}

/// Parses `text`: the model as far as it could be read (none when the
/// XML is not well formed or the root is not `<system>`), and every
/// problem found on the way.
pub(crate) fn parse(file: &str, text: &str) -> (Option<Parsed>, Vec<Diagnostic>) {
    let opts = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    // roxmltree builds the tree recursively: bound the nesting first, so
    // a hostile file gets an error instead of overflowing the stack.
    if let Some(at) = nesting_exceeds(text, MAX_DEPTH) {
        let line = text[..at].matches('\n').count() + 1;
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let pos = Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(text[start..at].chars().count() + 1).unwrap_or(u32::MAX),
        };
        let d = Diagnostic::error(
            file,
            pos,
            "",
            format!("elements are nested more than {MAX_DEPTH} levels deep"),
        )
        .with_help(
            "an SDF nests a few levels (system, PDs and their children); check for unclosed tags",
        );
        return (None, vec![d]);
    }
    let doc = match Document::parse_with_options(text, opts) {
        Ok(doc) => doc,
        Err(e) => {
            let p = e.pos();
            let pos = Pos {
                line: p.row,
                column: p.col,
            };
            let d = Diagnostic::error(file, pos, "", format!("not well-formed XML: {e}"));
            return (None, vec![d]);
        }
    };
    let line_starts = core::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut p = Parser {
        file,
        doc: &doc,
        line_starts,
        diags: Vec::new(),
    };
    let parsed = p.system();
    (parsed, p.diags)
}

impl<'d, 'input> Parser<'d, 'input> {
    /// Line and column (in chars, both from 1) of a byte offset, as
    /// roxmltree counts them.
    pub fn pos_at(&self, byte: usize) -> Pos {
        let text = self.doc.input_text();
        let mut byte = byte.min(text.len());
        while !text.is_char_boundary(byte) {
            byte -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= byte).max(1);
        let start = self
            .line_starts
            .get(line - 1)
            .copied()
            .unwrap_or(0)
            .min(byte);
        let column = text.get(start..byte).map_or(0, |t| t.chars().count()) + 1;
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }

    fn pos(&self, node: Node<'d, 'input>) -> Pos {
        self.pos_at(node.range().start)
    }

    fn err(&mut self, node: Node<'d, 'input>, msg: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::error(self.file, self.pos(node), node.tag_name().name(), msg);
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn attr_err(
        &mut self,
        node: Node<'d, 'input>,
        attr: &str,
        msg: impl Into<String>,
    ) -> &mut Diagnostic {
        let pos = node
            .attributes()
            .find(|a| a.name() == attr)
            .map(|a| self.pos_at(a.range().start))
            .unwrap_or_else(|| self.pos(node));
        let d = Diagnostic::error(self.file, pos, node.tag_name().name(), msg);
        self.diags.push(d);
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    /// Reports attributes not in `allowed`, with a suggestion.
    fn check_attrs(&mut self, node: Node<'d, 'input>, allowed: &[&str]) {
        for a in node.attributes() {
            if a.namespace().is_some() || !allowed.contains(&a.name()) {
                let pos = self.pos_at(a.range().start);
                let mut d = Diagnostic::error(
                    self.file,
                    pos,
                    node.tag_name().name(),
                    format!("unknown attribute \"{}\"", a.name()),
                );
                d.help = did_you_mean(a.name(), allowed.iter().copied())
                    .or_else(|| Some(format!("allowed here: {}", allowed.join(", "))));
                self.diags.push(d);
            }
        }
    }

    fn unknown_element(&mut self, node: Node<'d, 'input>, allowed: &[&str], parent: &str) {
        let name = node.tag_name().name();
        let help = if allowed.is_empty() {
            format!("<{parent}> has no child elements")
        } else {
            did_you_mean(name, allowed.iter().copied())
                .unwrap_or_else(|| format!("<{parent}> may contain: {}", allowed.join(", ")))
        };
        self.err(node, format!("unknown element inside <{parent}>"))
            .help = Some(help);
    }

    /// Reports element children of an element that has none.
    fn leaf(&mut self, node: Node<'d, 'input>) {
        let parent = node.tag_name().name().to_string();
        for c in node.children().filter(|n| n.is_element()) {
            self.unknown_element(c, &[], &parent);
        }
    }

    /// A required, non-empty string attribute.
    fn required(&mut self, node: Node<'d, 'input>, attr: &str) -> Option<&'d str> {
        match node.attribute(attr) {
            Some(v) if v.trim().is_empty() => {
                self.attr_err(node, attr, format!("\"{attr}\" is empty"));
                None
            }
            Some(v) => Some(v),
            None => {
                self.err(node, format!("missing required attribute \"{attr}\""));
                None
            }
        }
    }

    /// An optional number attribute, checked against `lo..=hi`.
    fn number(
        &mut self,
        node: Node<'d, 'input>,
        attr: &str,
        lo: u64,
        hi: u64,
    ) -> Option<Option<u64>> {
        let Some(text) = node.attribute(attr) else {
            return Some(None);
        };
        match parse_number(text) {
            Some(v) if v >= lo && v <= hi => Some(Some(v)),
            Some(v) => {
                let range = if hi == u64::MAX {
                    format!("at least {lo}")
                } else if hi > 0xffff {
                    format!("{lo:#x}..={hi:#x}")
                } else {
                    format!("{lo}..={hi}")
                };
                self.attr_err(node, attr, format!("{attr} {v} is out of range"))
                    .help = Some(format!("{attr} must be {range}"));
                None
            }
            None => {
                self.attr_err(node, attr, format!("{attr} \"{text}\" is not a number"))
                    .help = Some(
                    "write a decimal number or a hex number with a 0x prefix (underscores may separate digits)"
                        .into(),
                );
                None
            }
        }
    }

    /// A required number attribute, checked against `lo..=hi`.
    fn required_number(
        &mut self,
        node: Node<'d, 'input>,
        attr: &str,
        lo: u64,
        hi: u64,
    ) -> Option<u64> {
        if node.attribute(attr).is_none() {
            self.err(node, format!("missing required attribute \"{attr}\""));
            return None;
        }
        self.number(node, attr, lo, hi).flatten()
    }

    fn boolean(&mut self, node: Node<'d, 'input>, attr: &str, default: bool) -> bool {
        match node.attribute(attr) {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                let help = did_you_mean(other, ["true", "false"])
                    .unwrap_or_else(|| "write \"true\" or \"false\"".into());
                self.attr_err(
                    node,
                    attr,
                    format!("{attr} must be \"true\" or \"false\", not \"{other}\""),
                )
                .help = Some(help);
                default
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        node: Node<'d, 'input>,
        attr: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(v) = node.attribute(attr) else {
            return default;
        };
        if let Some((_, t)) = options.iter().find(|(n, _)| *n == v) {
            return *t;
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let help = did_you_mean(v, names.iter().copied())
            .unwrap_or_else(|| format!("write one of: {}", names.join(", ")));
        self.attr_err(node, attr, format!("{attr} \"{v}\" is not valid"))
            .help = Some(help);
        default
    }

    /// Reports non-whitespace text anywhere inside `node`.
    fn check_no_text(&mut self, node: Node<'d, 'input>) {
        for d in node.descendants() {
            if d.node_type() == NodeType::Text {
                if let Some(t) = d.text() {
                    if !t.trim().is_empty() {
                        let lead = t.len() - t.trim_start().len();
                        let pos = self.pos_at(d.range().start + lead);
                        let parent = d.parent().map(|p| p.tag_name().name()).unwrap_or("");
                        self.diags.push(
                            Diagnostic::error(self.file, pos, parent, "unexpected text")
                                .with_help("the SDF carries everything in elements and attributes; use <!-- comments --> for notes"),
                        );
                    }
                }
            }
        }
    }

    fn system(&mut self) -> Option<Parsed> {
        let root = self.doc.root_element();
        if root.tag_name().name() != "system" || root.tag_name().namespace().is_some() {
            self.err(root, "the root element must be <system>").help =
                Some("wrap the description in <system> ... </system>".into());
            return None;
        }
        self.check_no_text(root);
        self.check_attrs(root, &[]);

        let mut system = System {
            file: self.file.to_string(),
            memory_regions: Vec::new(),
            pds: Vec::new(),
            channels: Vec::new(),
            domains: None,
            warnings: Vec::new(),
        };
        let mut region_paddr = Vec::new();
        let mut bad_priority = Vec::new();
        let mut channel_nodes = Vec::new();
        let mut has_domains_element = false;
        let mut broken_mrs = Vec::new();

        for child in root.children().filter(|n| n.is_element()) {
            match child.tag_name().name() {
                "memory_region" => match self.memory_region(child) {
                    Some(mr) => system.memory_regions.push(mr),
                    None => broken_mrs.extend(child.attribute("name").map(str::to_string)),
                },
                "protection_domain" => {
                    self.protection_domain(
                        child,
                        None,
                        &mut system.pds,
                        &mut region_paddr,
                        &mut bad_priority,
                    );
                }
                "channel" => channel_nodes.push(child),
                "domains" => {
                    if has_domains_element {
                        self.err(child, "<domains> may appear only once");
                    } else {
                        has_domains_element = true;
                        system.domains = self.domains(child);
                    }
                }
                "virtual_machine" => {
                    self.err(child, "a virtual machine must be declared inside the <protection_domain> of its VMM")
                        .help = Some("move it into the VMM's <protection_domain>".into());
                }
                "io_address_space" | "cspace" => {
                    self.err(child, "not supported by Bulkhead (IOMMU address spaces and extra capabilities are not implemented)");
                }
                _ => self.unknown_element(child, SYSTEM_CHILDREN, "system"),
            }
        }
        // Channels name PDs that may be declared after them.
        for node in channel_nodes {
            if let Some(ch) = self.channel(node, &system.pds) {
                system.channels.push(ch);
            }
        }
        Some(Parsed {
            system,
            region_paddr,
            bad_priority,
            has_domains_element,
            broken_mrs,
        })
    }

    fn memory_region(&mut self, node: Node<'d, 'input>) -> Option<MemoryRegion> {
        self.check_attrs(node, MR_ATTRS);
        if node.attribute("prefill_bootinfo").is_some() {
            // Reported by check_attrs; say why.
            if let Some(d) = self.diags.last_mut() {
                d.help = Some(
                    "boot-info prefill (x86_vbe, x86_mbmmap, ...) is not supported by Bulkhead"
                        .into(),
                );
            }
        }
        self.leaf(node);
        let name = self.required(node, "name").map(str::to_string);
        let page_size = match self.number(node, "page_size", 0, u64::MAX) {
            Some(Some(b)) => match PageSize::from_bytes(b) {
                Some(p) => Some(p),
                None => {
                    self.attr_err(
                        node,
                        "page_size",
                        format!("page size {b:#x} is not supported"),
                    )
                    .help = Some("x86_64 maps 4 KiB (0x1000) and 2 MiB (0x200000) pages".into());
                    None
                }
            },
            Some(None) => Some(PageSize::Small),
            None => None,
        };
        let size = self.required_number(node, "size", 0, u64::MAX);
        let phys_addr = self.number(node, "phys_addr", 0, u64::MAX);
        let prefill_path = node.attribute("prefill_path").map(str::to_string);
        let (name, size, page_size, phys_addr) = (name?, size?, page_size?, phys_addr?);
        let pb = page_size.bytes();
        if size == 0 {
            self.attr_err(node, "size", "size must not be 0").help =
                Some(format!("give the region at least one page ({pb:#x} bytes)"));
        } else if !size.is_multiple_of(pb) {
            let up = size.div_ceil(pb).saturating_mul(pb);
            self.attr_err(
                node,
                "size",
                format!("size {size:#x} is not a multiple of the page size {pb:#x}"),
            )
            .help = Some(format!("round it up to {up:#x}"));
        }
        if let Some(pa) = phys_addr {
            if !pa.is_multiple_of(pb) {
                self.attr_err(
                    node,
                    "phys_addr",
                    format!("phys_addr {pa:#x} is not aligned to the page size {pb:#x}"),
                )
                .help = Some(format!(
                    "use an address that is a multiple of {pb:#x}, e.g. {:#x}",
                    pa - pa % pb
                ));
            } else if pa.checked_add(size).is_none() {
                self.attr_err(
                    node,
                    "phys_addr",
                    "phys_addr + size overflows the address space",
                );
            }
        }
        if phys_addr.is_some() && prefill_path.is_some() {
            self.attr_err(
                node,
                "prefill_path",
                "a region with phys_addr (device memory) cannot have prefill_path",
            )
            .help = Some(
                "the kernel fills only RAM regions at boot; remove phys_addr or prefill_path"
                    .into(),
            );
        }
        Some(MemoryRegion {
            name,
            size,
            page_size,
            phys_addr,
            prefill_path,
            pos: self.pos(node),
        })
    }

    #[allow(clippy::too_many_lines)]
    fn protection_domain(
        &mut self,
        node: Node<'d, 'input>,
        parent: Option<usize>,
        pds: &mut Vec<ProtectionDomain>,
        region_paddr: &mut Vec<RegionPaddrSetVar>,
        bad_priority: &mut Vec<bool>,
    ) -> usize {
        let is_child = parent.is_some();
        self.check_attrs(node, if is_child { CHILD_PD_ATTRS } else { PD_ATTRS });
        if !is_child {
            if let Some(a) = node.attributes().find(|a| a.name() == "id") {
                let pos = self.pos_at(a.range().start);
                // check_attrs already flagged it; make the help specific.
                if let Some(d) = self.diags.iter_mut().rev().find(|d| d.pos() == pos) {
                    d.help = Some("only a PD nested inside another PD has an id (the id its parent knows it by)".into());
                }
            }
        }
        let name = self.required(node, "name").unwrap_or("").to_string();
        if name.chars().count() > MAX_PD_NAME {
            self.attr_err(
                node,
                "name",
                format!(
                    "PD name is {} characters long, at most {MAX_PD_NAME}",
                    name.chars().count()
                ),
            )
            .help = Some(
                "the kernel keeps PD names (for debugging) in a fixed-size field; shorten it"
                    .into(),
            );
        }
        let priority = self.number(node, "priority", 0, u64::from(MAX_PRIORITY));
        let budget = self.number(node, "budget", 0, u64::MAX);
        let period = self.number(node, "period", 0, u64::MAX);
        let stack_size = self.number(node, "stack_size", 0, u64::MAX);
        let cpu = self.number(node, "cpu", 0, 255);
        let passive = self.boolean(node, "passive", false);
        let fpu = self.boolean(node, "fpu", true);
        if self.boolean(node, "smc", false) {
            self.attr_err(
                node,
                "smc",
                "smc (Arm SMC forwarding) does not exist on x86_64",
            )
            .help = Some("remove the attribute".into());
        }
        let domain = node.attribute("domain").map(str::to_string);
        let child_id = if is_child {
            if node.attribute("id").is_none() {
                self.err(node, "missing required attribute \"id\"").help = Some(format!(
                    "a nested PD needs id=\"N\" (0..={MAX_ID}): the id its parent knows it by"
                ));
                None
            } else {
                self.number(node, "id", 0, u64::from(MAX_ID))
                    .flatten()
                    .map(|v| v as u8)
            }
        } else {
            None
        };
        let setvar_id = if is_child {
            node.attribute("setvar_id").map(str::to_string)
        } else {
            None
        };

        let budget_v = budget.flatten().unwrap_or(DEFAULT_BUDGET_US);
        let period_v = period.flatten().unwrap_or(budget_v);
        if budget.is_some() && period.is_some() && budget_v > period_v {
            self.attr_err(
                node,
                "budget",
                format!("budget ({budget_v} us) is greater than period ({period_v} us)"),
            )
            .help = Some(
                "a PD cannot run longer than its period; lower the budget or raise the period"
                    .into(),
            );
        }
        let stack = stack_size.flatten().unwrap_or(DEFAULT_STACK_SIZE);
        if stack_size.is_some() {
            if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&stack) {
                self.attr_err(
                    node,
                    "stack_size",
                    format!("stack_size {stack:#x} is outside 4 KiB..=16 MiB"),
                )
                .help = Some("use a multiple of 0x1000 between 0x1000 and 0x1000000".into());
            } else if !stack.is_multiple_of(0x1000) {
                self.attr_err(
                    node,
                    "stack_size",
                    format!("stack_size {stack:#x} is not a multiple of the page size 0x1000"),
                )
                .help = Some(format!(
                    "round it up to {:#x}",
                    stack.div_ceil(0x1000) * 0x1000
                ));
            }
        }

        let idx = pds.len();
        pds.push(ProtectionDomain {
            name,
            priority: priority.flatten().unwrap_or(0) as u8,
            budget: budget_v,
            period: period_v,
            passive,
            stack_size: stack,
            cpu: cpu.flatten().unwrap_or(0) as u8,
            fpu,
            domain,
            child_id,
            parent,
            children: Vec::new(),
            program_image: ProgramImage {
                path: String::new(),
                path_for_symbols: None,
                pos: self.pos(node),
            },
            maps: Vec::new(),
            irqs: Vec::new(),
            ioports: Vec::new(),
            setvars: Vec::new(),
            virtual_machine: None,
            pos: self.pos(node),
        });
        bad_priority.push(priority.is_none());

        let mut program_image: Option<ProgramImage> = None;
        let mut maps = Vec::new();
        let mut irqs = Vec::new();
        let mut ioports = Vec::new();
        let mut vm: Option<VirtualMachine> = None;
        let mut children = Vec::new();
        for c in node.children().filter(|n| n.is_element()) {
            match c.tag_name().name() {
                "program_image" => {
                    self.leaf(c);
                    self.check_attrs(c, &["path", "path_for_symbols"]);
                    let path = self.required(c, "path").unwrap_or("").to_string();
                    let img = ProgramImage {
                        path,
                        path_for_symbols: c.attribute("path_for_symbols").map(str::to_string),
                        pos: self.pos(c),
                    };
                    if program_image.is_some() {
                        self.err(c, "a PD has exactly one <program_image>").help =
                            Some("remove this one".into());
                    } else {
                        program_image = Some(img);
                    }
                }
                "map" => {
                    if let Some(m) = self.map(c, false) {
                        maps.push(m);
                    }
                }
                "irq" => {
                    if let Some(i) = self.irq(c) {
                        irqs.push(i);
                    }
                }
                "ioport" => {
                    if let Some(p) = self.ioport(c) {
                        ioports.push(p);
                    }
                }
                "setvar" => {
                    self.leaf(c);
                    self.check_attrs(c, &["symbol", "region_paddr"]);
                    let symbol = self.required(c, "symbol");
                    let mr = self.required(c, "region_paddr");
                    if let (Some(symbol), Some(mr)) = (symbol, mr) {
                        region_paddr.push(RegionPaddrSetVar {
                            pd: idx,
                            symbol: symbol.to_string(),
                            mr: mr.to_string(),
                            pos: self.pos(c),
                        });
                    }
                }
                "protection_domain" => {
                    let ci = self.protection_domain(c, Some(idx), pds, region_paddr, bad_priority);
                    children.push(ci);
                }
                "virtual_machine" => {
                    let v = self.virtual_machine(c);
                    if vm.is_some() {
                        self.err(c, "a PD runs at most one virtual machine").help =
                            Some("give the second VM its own VMM PD".into());
                    } else {
                        vm = v;
                    }
                }
                _ => self.unknown_element(c, PD_CHILDREN, "protection_domain"),
            }
        }
        if program_image.is_none() {
            self.err(node, "missing <program_image>").help = Some(format!(
                "add <program_image path=\"{}.elf\" /> naming the PD's ELF",
                pds[idx].name
            ));
        }
        let pd = &mut pds[idx];
        if let Some(img) = program_image {
            pd.program_image = img;
        }
        pd.maps = maps;
        pd.irqs = irqs;
        pd.ioports = ioports;
        pd.virtual_machine = vm;
        pd.children = children;
        if let Some(sv) = setvar_id {
            // The parent's image gets the child's id.
            if let (Some(p), Some(id)) = (parent, child_id) {
                let pos = self.pos(node);
                pds[p].setvars.push(SetVar {
                    symbol: sv,
                    value: SetVarValue::Id(id),
                    pos,
                    element: "protection_domain",
                });
            }
        }
        idx
    }

    /// The `<?bulkhead allow_wx reason="..."?>` right before `node`, if any.
    fn allow_wx(&mut self, node: Node<'d, 'input>) -> Option<String> {
        let mut prev = node.prev_sibling();
        while let Some(p) = prev {
            match p.node_type() {
                NodeType::Text if p.text().is_some_and(|t| t.trim().is_empty()) => {}
                NodeType::Comment => {}
                NodeType::PI => {
                    let pi = p.pi()?;
                    if pi.target != "bulkhead" {
                        return None;
                    }
                    let value = pi.value.unwrap_or("").trim();
                    let reason = value
                        .strip_prefix("allow_wx")
                        .map(str::trim_start)
                        .and_then(|r| r.strip_prefix("reason="))
                        .and_then(|r| {
                            let q = r.chars().next()?;
                            if q != '"' && q != '\'' {
                                return None;
                            }
                            let rest = &r[1..];
                            let end = rest.find(q)?;
                            Some(rest[..end].trim().to_string())
                        });
                    return match reason {
                        Some(r) if !r.is_empty() => Some(r),
                        _ => {
                            let pos = self.pos_at(p.range().start);
                            self.diags.push(
                                Diagnostic::error(self.file, pos, "", format!("malformed processing instruction <?bulkhead {value}?>"))
                                    .with_help("write <?bulkhead allow_wx reason=\"why this map must be writable and executable\"?>"),
                            );
                            None
                        }
                    };
                }
                _ => return None,
            }
            prev = p.prev_sibling();
        }
        None
    }

    fn map(&mut self, node: Node<'d, 'input>, in_vm: bool) -> Option<Map> {
        self.leaf(node);
        self.check_attrs(node, if in_vm { VM_MAP_ATTRS } else { MAP_ATTRS });
        if in_vm {
            for a in ["setvar_vaddr", "setvar_size"] {
                if let Some(at) = node.attributes().find(|x| x.name() == a) {
                    let pos = self.pos_at(at.range().start);
                    if let Some(d) = self.diags.iter_mut().rev().find(|d| d.pos() == pos) {
                        d.help = Some("a guest-physical map has no program image to patch; put the setvar on the VMM's own map of the region".into());
                    }
                }
            }
        }
        let mr = self.required(node, "mr").map(str::to_string);
        let vaddr = self.required_number(node, "vaddr", 0, u64::MAX);
        let perms = match node.attribute("perms") {
            None => Some(Perms::RW),
            Some(s) => {
                let mut p = Perms::default();
                let mut ok = !s.is_empty();
                for c in s.chars() {
                    match c {
                        'r' => p.read = true,
                        'w' => p.write = true,
                        'x' => p.execute = true,
                        _ => ok = false,
                    }
                }
                if !ok {
                    self.attr_err(
                        node,
                        "perms",
                        format!("perms \"{s}\" is not a combination of r, w and x"),
                    )
                    .help = Some("write e.g. \"r\", \"rw\" or \"rx\"".into());
                    None
                } else if p.write && !p.read {
                    self.attr_err(
                        node,
                        "perms",
                        format!(
                            "perms \"{s}\" is write-only, which x86_64 page tables cannot express"
                        ),
                    )
                    .help = Some("add r: \"rw\"".into());
                    None
                } else {
                    Some(p)
                }
            }
        };
        let cached = self.boolean(node, "cached", true);
        let allow_wx = if in_vm { None } else { self.allow_wx(node) };
        Some(Map {
            mr: mr?,
            mr_index: usize::MAX,
            vaddr: vaddr?,
            perms: perms?,
            cached,
            setvar_vaddr: if in_vm {
                None
            } else {
                node.attribute("setvar_vaddr").map(str::to_string)
            },
            setvar_size: if in_vm {
                None
            } else {
                node.attribute("setvar_size").map(str::to_string)
            },
            allow_wx,
            pos: self.pos(node),
        })
    }

    fn irq(&mut self, node: Node<'d, 'input>) -> Option<Irq> {
        self.leaf(node);
        let has_pin = node.attribute("pin").is_some();
        let has_pci = node.attribute("pcidev").is_some();
        if node.attribute("irq").is_some() {
            self.attr_err(node, "irq", "\"irq\" is the Arm/RISC-V form of <irq>; x86_64 has IOAPIC pins and MSIs")
                .help = Some("write <irq id=\"..\" pin=\"..\" vector=\"..\"/> (IOAPIC) or <irq id=\"..\" pcidev=\"bus:dev.fn\" handle=\"..\" vector=\"..\"/> (MSI)".into());
            return None;
        }
        if has_pin && has_pci {
            self.err(
                node,
                "an <irq> is either an IOAPIC pin (pin) or an MSI (pcidev), not both",
            )
            .help = Some("split it into two <irq>s with different ids".into());
            return None;
        }
        if !has_pin && !has_pci {
            self.err(node, "missing \"pin\" (IOAPIC) or \"pcidev\" (MSI)")
                .help = Some("write <irq id=\"..\" pin=\"..\" vector=\"..\"/> (IOAPIC) or <irq id=\"..\" pcidev=\"bus:dev.fn\" handle=\"..\" vector=\"..\"/> (MSI)".into());
            return None;
        }
        self.check_attrs(node, if has_pin { IOAPIC_ATTRS } else { MSI_ATTRS });
        let id = self.required_number(node, "id", 0, u64::from(MAX_ID));
        let vector = self.required_number(node, "vector", 0, u64::from(MAX_IRQ_VECTOR));
        if vector.is_none() && node.attribute("vector").is_some() {
            if let Some(d) = self.diags.last_mut() {
                if d.message.contains("out of range") {
                    d.help = Some(format!(
                        "vectors count from the kernel's first user vector; 0..={MAX_IRQ_VECTOR} are usable"
                    ));
                }
            }
        }
        let kind = if has_pin {
            let ioapic = self.number(node, "ioapic", 0, 255);
            let pin = self.required_number(node, "pin", 0, MAX_IOAPIC_PIN);
            let trigger = self.choice(
                node,
                "trigger",
                &[("level", Trigger::Level), ("edge", Trigger::Edge)],
                Trigger::Level,
            );
            let polarity = self.choice(
                node,
                "polarity",
                &[("high", Polarity::High), ("low", Polarity::Low)],
                Polarity::High,
            );
            IrqKind::Ioapic {
                ioapic: ioapic?.unwrap_or(0),
                pin: pin?,
                trigger,
                polarity,
                vector: vector? as u8,
            }
        } else {
            let text = node.attribute("pcidev").unwrap_or("");
            let pci = match parse_pci(text) {
                Ok(p) => Some(p),
                Err(why) => {
                    self.attr_err(node, "pcidev", format!("pcidev \"{text}\": {why}"))
                        .help = Some("write bus:device.function in hex, e.g. \"00:03.0\"".into());
                    None
                }
            };
            let handle = self.required_number(node, "handle", 0, u64::MAX);
            IrqKind::Msi {
                pci: pci?,
                handle: handle?,
                vector: vector? as u8,
            }
        };
        Some(Irq {
            id: id? as u8,
            setvar_id: node.attribute("setvar_id").map(str::to_string),
            kind,
            pos: self.pos(node),
        })
    }

    fn ioport(&mut self, node: Node<'d, 'input>) -> Option<IoPort> {
        self.leaf(node);
        self.check_attrs(node, IOPORT_ATTRS);
        let id = self.required_number(node, "id", 0, u64::from(MAX_ID));
        let addr = self.required_number(node, "addr", 0, 0xffff);
        let size = self.required_number(node, "size", 1, u64::from(IO_PORT_SPACE));
        let (id, addr, size) = (id?, addr?, size?);
        if addr + size > u64::from(IO_PORT_SPACE) {
            self.attr_err(
                node,
                "size",
                format!(
                    "ports {addr:#x}..{:#x} run past the end of the I/O port space (0x10000)",
                    addr + size
                ),
            )
            .help = Some(format!(
                "at most {:#x} ports fit after {addr:#x}",
                0x1_0000 - addr
            ));
            return None;
        }
        Some(IoPort {
            id: id as u8,
            addr: addr as u16,
            size: size as u32,
            setvar_id: node.attribute("setvar_id").map(str::to_string),
            setvar_addr: node.attribute("setvar_addr").map(str::to_string),
            pos: self.pos(node),
        })
    }

    fn virtual_machine(&mut self, node: Node<'d, 'input>) -> Option<VirtualMachine> {
        self.check_attrs(node, &["name"]);
        let name = self.required(node, "name").map(str::to_string);
        let mut vcpus: Vec<Vcpu> = Vec::new();
        let mut maps = Vec::new();
        for c in node.children().filter(|n| n.is_element()) {
            match c.tag_name().name() {
                "vcpu" => {
                    self.leaf(c);
                    self.check_attrs(c, &["id", "setvar_id", "cpu"]);
                    let id = self.required_number(c, "id", 0, u64::from(MAX_ID));
                    let cpu = self.number(c, "cpu", 0, 255);
                    if let (Some(id), Some(cpu)) = (id, cpu) {
                        if let Some(first) = vcpus.iter().find(|v| u64::from(v.id) == id) {
                            let line = first.pos.line;
                            self.attr_err(
                                c,
                                "id",
                                format!("duplicate vcpu id {id} (first used on line {line})"),
                            )
                            .help = Some("give every vcpu of a VM its own id".into());
                        } else {
                            vcpus.push(Vcpu {
                                id: id as u8,
                                cpu: cpu.map(|c| c as u8),
                                setvar_id: c.attribute("setvar_id").map(str::to_string),
                                pos: self.pos(c),
                            });
                        }
                    }
                }
                "map" => {
                    if let Some(m) = self.map(c, true) {
                        maps.push(m);
                    }
                }
                _ => self.unknown_element(c, &["vcpu", "map"], "virtual_machine"),
            }
        }
        if vcpus.is_empty() && !node.children().any(|c| c.has_tag_name("vcpu")) {
            self.err(node, "a virtual machine needs at least one <vcpu>")
                .help = Some("add <vcpu id=\"0\" />".into());
        }
        Some(VirtualMachine {
            name: name?,
            vcpus,
            maps,
            pos: self.pos(node),
        })
    }

    fn channel(&mut self, node: Node<'d, 'input>, pds: &[ProtectionDomain]) -> Option<Channel> {
        self.check_attrs(node, &[]);
        let mut ends = Vec::new();
        let mut count = 0;
        let mut all_ok = true;
        for c in node.children().filter(|n| n.is_element()) {
            if c.tag_name().name() != "end" {
                self.unknown_element(c, &["end"], "channel");
                continue;
            }
            count += 1;
            self.leaf(c);
            self.check_attrs(c, END_ATTRS);
            let pd = self.required(c, "pd");
            let id = self.required_number(c, "id", 0, u64::from(MAX_ID));
            let pp = self.boolean(c, "pp", false);
            let notify = self.boolean(c, "notify", true);
            let pd_index = match pd {
                Some(name) => match pds.iter().position(|p| p.name == name) {
                    Some(i) => Some(i),
                    None => {
                        let help = did_you_mean(name, pds.iter().map(|p| p.name.as_str()))
                            .unwrap_or_else(|| {
                                "declare the PD with <protection_domain> or fix the name".into()
                            });
                        self.attr_err(c, "pd", format!("no protection domain named \"{name}\""))
                            .help = Some(help);
                        None
                    }
                },
                None => None,
            };
            match (pd, pd_index, id) {
                (Some(pd), Some(pd_index), Some(id)) => ends.push(ChannelEnd {
                    pd: pd.to_string(),
                    pd_index,
                    id: id as u8,
                    notify,
                    pp,
                    setvar_id: c.attribute("setvar_id").map(str::to_string),
                    pos: self.pos(c),
                }),
                _ => all_ok = false,
            }
        }
        if count != 2 {
            self.err(
                node,
                format!("a channel has exactly two <end>s, this one has {count}"),
            )
            .help = Some("a channel connects two PDs; declare one <channel> per pair".into());
            return None;
        }
        if !all_ok {
            return None;
        }
        let [a, b]: [ChannelEnd; 2] = ends.try_into().ok()?;
        if a.pd_index == b.pd_index {
            self.err(node, format!("both ends of the channel are \"{}\"", a.pd))
                .help = Some("a channel connects two different PDs".into());
            return None;
        }
        if a.pp && b.pp {
            self.err(
                node,
                "pp is set on both ends; protected calls go one way only",
            )
            .help = Some(
                "keep pp=\"true\" on the caller's end (the callee has the higher priority)".into(),
            );
            return None;
        }
        Some(Channel {
            ends: [a, b],
            pos: self.pos(node),
        })
    }

    fn domains(&mut self, node: Node<'d, 'input>) -> Option<Domains> {
        self.check_attrs(node, &[]);
        let mut domains: Vec<Domain> = Vec::new();
        let mut schedule = Vec::new();
        let mut sched_node: Option<Node<'d, 'input>> = None;
        for c in node.children().filter(|n| n.is_element()) {
            match c.tag_name().name() {
                "domain" => {
                    self.leaf(c);
                    self.check_attrs(c, &["name", "id"]);
                    let name = self.required(c, "name");
                    let id = self.number(c, "id", 0, 255);
                    if let (Some(name), Some(id)) = (name, id) {
                        if let Some(first) = domains.iter().find(|d| d.name == name) {
                            let line = first.pos.line;
                            self.attr_err(c, "name", format!("duplicate domain name \"{name}\" (first declared on line {line})"));
                        } else if let Some(first) = domains
                            .iter()
                            .find(|d| id.is_some() && d.id.map(u64::from) == id)
                        {
                            let line = first.pos.line;
                            self.attr_err(
                                c,
                                "id",
                                format!(
                                    "duplicate domain id {} (first used on line {line})",
                                    id.unwrap_or(0)
                                ),
                            );
                        } else {
                            domains.push(Domain {
                                name: name.to_string(),
                                id: id.map(|i| i as u8),
                                pos: self.pos(c),
                            });
                        }
                    }
                }
                "domain_schedule" => {
                    if sched_node.is_some() {
                        self.err(c, "<domain_schedule> may appear only once");
                    } else {
                        sched_node = Some(c);
                    }
                }
                _ => self.unknown_element(c, &["domain", "domain_schedule"], "domains"),
            }
        }
        let Some(sn) = sched_node else {
            self.err(node, "missing <domain_schedule>")
                .help = Some("list the order in which domains run: <domain_schedule><schedule_entry domain=\"..\" duration=\"1000 us\"/></domain_schedule>".into());
            return None;
        };
        self.check_attrs(sn, &["index_shift", "start_index"]);
        let start_index = self
            .number(sn, "start_index", 0, u64::MAX)
            .flatten()
            .unwrap_or(0);
        let index_shift = self.number(sn, "index_shift", 0, u64::MAX).flatten();
        for c in sn.children().filter(|n| n.is_element()) {
            match c.tag_name().name() {
                "schedule_entry" => {
                    self.leaf(c);
                    self.check_attrs(c, &["domain", "duration"]);
                    let dom = self.required(c, "domain");
                    let dur = self.required(c, "duration");
                    if let Some(d) = dom {
                        if !domains.iter().any(|x| x.name == d) {
                            let help = did_you_mean(d, domains.iter().map(|x| x.name.as_str()));
                            self.attr_err(c, "domain", format!("no domain named \"{d}\""))
                                .help = help;
                        }
                    }
                    let duration = dur.and_then(|s| match parse_duration(s) {
                        Ok(d) => Some(d),
                        Err(why) => {
                            self.attr_err(c, "duration", format!("duration \"{s}\": {why}"))
                                .help = Some("write a non-zero number and a unit, e.g. \"1000 us\" or \"10 ticks\"".into());
                            None
                        }
                    });
                    if let (Some(d), Some(duration)) = (dom, duration) {
                        schedule.push(ScheduleEntry::Run {
                            domain: d.to_string(),
                            duration,
                        });
                    }
                }
                "schedule_end_marker" => {
                    self.leaf(c);
                    self.check_attrs(c, &[]);
                    schedule.push(ScheduleEntry::EndMarker);
                }
                _ => self.unknown_element(
                    c,
                    &["schedule_entry", "schedule_end_marker"],
                    "domain_schedule",
                ),
            }
        }
        if start_index >= schedule.len() as u64 && !schedule.is_empty() {
            self.attr_err(
                sn,
                "start_index",
                format!(
                    "start_index {start_index} is past the end of the schedule ({} entries)",
                    schedule.len()
                ),
            );
        }
        if schedule.is_empty() {
            self.err(sn, "the domain schedule is empty").help =
                Some("add at least one <schedule_entry>".into());
        }
        Some(Domains {
            domains,
            schedule,
            start_index,
            index_shift,
            pos: self.pos(node),
        })
    }
}

/// Deepest element nesting accepted (child PDs included).
const MAX_DEPTH: usize = 64;

/// Byte offset of the first start tag nested deeper than `limit`, by a
/// scan that understands comments, processing instructions, CDATA, DTDs
/// and quoted attribute values (well-formedness is roxmltree's job).
fn nesting_exceeds(text: &str, limit: usize) -> Option<usize> {
    let b = text.as_bytes();
    let find = |from: usize, pat: &[u8]| -> usize {
        b.get(from..)
            .and_then(|rest| rest.windows(pat.len()).position(|w| w == pat))
            .map_or(b.len(), |i| from + i + pat.len())
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = find(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = find(i + 2, b"?>");
        } else if rest.starts_with(b"<!") || rest.starts_with(b"</") {
            if rest.starts_with(b"</") {
                depth = depth.saturating_sub(1);
            }
            i = find(i + 2, b">");
        } else {
            let start = i;
            let mut j = i + 1;
            let mut quote = None;
            while j < b.len() {
                match (quote, b[j]) {
                    (None, q @ (b'"' | b'\'')) => quote = Some(q),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if j < b.len() && b[j - 1] != b'/' {
                depth += 1;
                if depth > limit {
                    return Some(start);
                }
            }
            i = j + 1;
        }
    }
    None
}

/// Parses a number as Microkit does: decimal, or hex with a `0x` prefix;
/// underscores may separate digits.
pub fn parse_number(s: &str) -> Option<u64> {
    let cleaned: String = s.chars().filter(|c| *c != '_').collect();
    let (digits, radix) = match cleaned.strip_prefix("0x") {
        Some(rest) => (rest, 16),
        None => (cleaned.as_str(), 10),
    };
    // from_str_radix accepts a leading '+', Microkit's spelling does not matter here.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn parse_pci(s: &str) -> Result<PciAddress, String> {
    let (bus, rest) = s
        .split_once(':')
        .ok_or_else(|| "expected bus:device.function".to_string())?;
    let (dev, func) = rest
        .split_once('.')
        .ok_or_else(|| "expected bus:device.function".to_string())?;
    let field = |t: &str, what: &str, max: u64| -> Result<u8, String> {
        let t = t.trim();
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{what} \"{t}\" is not a hex number"));
        }
        match u64::from_str_radix(t, 16) {
            Ok(v) if v <= max => Ok(v as u8),
            _ => Err(format!("{what} must be 0..={max:#x}")),
        }
    };
    Ok(PciAddress {
        bus: field(bus, "bus", 0xff)?,
        device: field(dev, "device", 0x1f)?,
        function: field(func, "function", 7)?,
    })
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .split_once(' ')
        .ok_or_else(|| "needs a value and a unit".to_string())?;
    let n = parse_number(n.trim()).ok_or_else(|| format!("\"{n}\" is not a number"))?;
    if n == 0 {
        return Err("must not be zero".into());
    }
    match unit.trim() {
        "us" => Ok(Duration::Us(n)),
        "ticks" => Ok(Duration::Ticks(n)),
        u => Err(format!("unit \"{u}\" is neither \"us\" nor \"ticks\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_match_roxmltree() {
        let text = "<system>\n  <a x=\"é\"/><b/>\n\n\t<c/>\r\n <d/></system>";
        let doc = Document::parse(text).unwrap();
        let (parsed, _) = parse("t", text);
        assert!(parsed.is_some());
        let p = Parser {
            file: "t",
            doc: &doc,
            line_starts: core::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            diags: Vec::new(),
        };
        for byte in 0..=text.len() {
            if !text.is_char_boundary(byte) {
                continue;
            }
            let r = doc.text_pos_at(byte);
            assert_eq!(
                p.pos_at(byte),
                Pos {
                    line: r.row,
                    column: r.col
                },
                "byte {byte}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "<a x='>'>".repeat(n), "</a>".repeat(n));
        assert_eq!(nesting_exceeds(&deep(64), 64), None);
        assert_eq!(nesting_exceeds(&deep(65), 64), Some(64 * 9));
        // Self-closing tags, comments, PIs and CDATA do not nest.
        let flat = "<s><!-- <a> --><?pi <a>?><![CDATA[<a>]]><b/><c x=\"/>\"/></s>";
        assert_eq!(nesting_exceeds(flat, 1), None);
        let (parsed, diags) = parse("t", &format!("<system>{}</system>", deep(100)));
        assert!(parsed.is_none());
        assert_eq!(
            diags[0].message,
            "elements are nested more than 64 levels deep"
        );
        assert_eq!((diags[0].line, diags[0].column), (1, 9 + 63 * 9));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("4096"), Some(4096));
        assert_eq!(parse_number("0x1000"), Some(4096));
        assert_eq!(parse_number("0x20_0000"), Some(0x20_0000));
        assert_eq!(parse_number("1_000"), Some(1000));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("+5"), None);
        assert_eq!(parse_number("-5"), None);
        assert_eq!(parse_number("0X10"), None);
        assert_eq!(parse_number("12a"), None);
        assert_eq!(parse_number("0xffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_number("0x1_0000_0000_0000_0000"), None);
    }

    #[test]
    fn pci() {
        assert_eq!(
            parse_pci("0:3.0"),
            Ok(PciAddress {
                bus: 0,
                device: 3,
                function: 0
            })
        );
        assert_eq!(
            parse_pci("ff:1f.7"),
            Ok(PciAddress {
                bus: 0xff,
                device: 0x1f,
                function: 7
            })
        );
        assert!(parse_pci("0:20.0").is_err());
        assert!(parse_pci("0:1.8").is_err());
        assert!(parse_pci("0.1:2").is_err());
        assert!(parse_pci("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1000 us"), Ok(Duration::Us(1000)));
        assert_eq!(parse_duration("3 ticks"), Ok(Duration::Ticks(3)));
        assert!(parse_duration("0 us").is_err());
        assert!(parse_duration("10ms").is_err());
        assert!(parse_duration("10 ms").is_err());
    }
}
