//! Integrity checks on a running Linux kernel: system-call table, IDT,
//! syscall-entry MSRs, kernel text, and the cross-view process check
//! (psxview).
//!
//! Design rules: a check returns every finding, each naming what is wrong
//! (which entry, where it points, which symbol or module that is) — never
//! just "dirty". Code addresses are legitimate only inside the kernel's
//! text or a listed module's core.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::linux::{gate_target, Linux, Module, Task, VmiError};
use crate::profile::SymbolIndex;
use crate::text::{page_hash, PAGE};

/// Where a code pointer points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Kernel text: symbol + offset.
    Kernel(String, u64),
    /// The kernel's init text (freed after boot; Linux leaves reserved
    /// exception vectors pointing at their early handlers there).
    InitText(String, u64),
    /// A listed module.
    Module(String),
    /// Nowhere legitimate.
    Unknown,
}

impl core::fmt::Display for Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Target::Kernel(s, 0) => write!(f, "{s}"),
            Target::Kernel(s, o) => write!(f, "{s}+{o:#x}"),
            Target::InitText(s, o) => write!(f, "{s}+{o:#x} (init text)"),
            Target::Module(m) => write!(f, "module {m}"),
            Target::Unknown => f.write_str("outside kernel text and every module"),
        }
    }
}

/// One table entry (syscall or IDT gate) and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index in the table.
    pub index: u32,
    /// Runtime address it holds.
    pub addr: u64,
    /// Where that is.
    pub target: Target,
    /// What a clean kernel would have here, when known.
    pub expected: Option<String>,
    /// `false` when the entry is hooked.
    pub ok: bool,
}

/// Classifies code addresses.
pub struct Classifier<'a> {
    linux: &'a Linux<'a>,
    index: SymbolIndex,
    text: (u64, u64),
    init_text: (u64, u64),
    modules: Vec<Module>,
}

impl<'a> Classifier<'a> {
    /// Builds the classifier (reads the module list once).
    pub fn new(linux: &'a Linux<'a>) -> Result<Classifier<'a>, VmiError> {
        let text = (linux.symbol("_stext")?, linux.symbol("_etext")?);
        let init_text = (
            linux.symbol("_sinittext").unwrap_or(0),
            linux.symbol("_einittext").unwrap_or(0),
        );
        Ok(Classifier {
            linux,
            index: linux.profile.address_index(),
            text,
            init_text,
            modules: linux.modules().unwrap_or_default(),
        })
    }

    /// Where `addr` (runtime) points.
    pub fn classify(&self, addr: u64) -> Target {
        if addr >= self.text.0 && addr < self.text.1 {
            let link = addr.wrapping_sub(self.linux.slide);
            if let Some((s, o)) = self.index.lookup(self.linux.profile, link) {
                return Target::Kernel(s.to_string(), o);
            }
            return Target::Kernel("_stext".into(), addr - self.text.0);
        }
        if addr >= self.init_text.0 && addr < self.init_text.1 {
            let link = addr.wrapping_sub(self.linux.slide);
            if let Some((s, o)) = self.index.lookup(self.linux.profile, link) {
                return Target::InitText(s.to_string(), o);
            }
        }
        for m in &self.modules {
            if addr >= m.base && addr - m.base < m.size {
                return Target::Module(m.name.clone());
            }
        }
        Target::Unknown
    }
}

/// Checks every `sys_call_table` entry: it must point at the start of the
/// handler the image's own table holds there (the profile keeps those
/// names), or of some `__x64_sys_*` function when the profile has none.
pub fn check_syscalls(linux: &Linux) -> Result<Vec<Entry>, VmiError> {
    let table = linux.symbol("sys_call_table")?;
    let c = Classifier::new(linux)?;
    // The table's length is the distance to the next symbol.
    let link = table.wrapping_sub(linux.slide);
    let next = linux
        .profile
        .symbols
        .iter()
        .filter(|s| s.addr > link)
        .map(|s| s.addr)
        .min()
        .unwrap_or(link + 8 * 512);
    let mut n = ((next - link) / 8).clamp(1, 1024) as u32;
    // Alignment padding after the table reads as zero entries.
    while n > 1 && linux.u64(table.wrapping_add(8 * (n as u64 - 1)))? == 0 {
        n -= 1;
    }
    let expected = &linux.profile.syscalls;
    if !expected.is_empty() {
        n = n.max(expected.len() as u32);
    }
    let mut out = Vec::new();
    for i in 0..n {
        let addr = linux.u64(table.wrapping_add(8 * i as u64))?;
        let target = c.classify(addr);
        let want = expected.get(i as usize).filter(|(a, _)| *a != 0);
        // With the image's own table known, each entry must be exactly the
        // handler it was built with — a swap between two real system calls
        // is a hook too. Without it, any system-call entry point passes.
        let ok = match (&target, want) {
            (_, Some((a, _))) => a.wrapping_add(linux.slide) == addr,
            (Target::Kernel(s, 0), None) => s.starts_with("__x64_sys_"),
            _ => false,
        };
        out.push(Entry {
            index: i,
            addr,
            target,
            expected: want.map(|(_, n)| n.clone()),
            ok,
        });
    }
    Ok(out)
}

/// Checks every present IDT gate: its handler must be in kernel text.
pub fn check_idt(linux: &Linux, idt_base: Option<u64>) -> Result<Vec<Entry>, VmiError> {
    let base = match idt_base.filter(|&b| b != 0) {
        Some(b) => b,
        None => linux.symbol("idt_table")?,
    };
    let c = Classifier::new(linux)?;
    let mut out = Vec::new();
    for i in 0..256u32 {
        let mut g = [0u8; 16];
        linux.read(base.wrapping_add(16 * i as u64), &mut g)?;
        if g[5] & 0x80 == 0 {
            continue;
        }
        let addr = gate_target(&g);
        let target = c.classify(addr);
        // Reserved exception vectors keep their early handler (init text).
        let ok = match &target {
            Target::Kernel(..) => true,
            Target::InitText(s, _) => i < 32 && s == "early_idt_handler_array",
            _ => false,
        };
        out.push(Entry {
            index: i,
            addr,
            target,
            expected: None,
            ok,
        });
    }
    Ok(out)
}

/// Checks syscall-entry MSRs when their values are known: LSTAR must be
/// `entry_SYSCALL_64`.
pub fn check_msr(linux: &Linux, lstar: u64) -> Result<Vec<Entry>, VmiError> {
    let c = Classifier::new(linux)?;
    let target = c.classify(lstar);
    let ok = lstar == linux.symbol("entry_SYSCALL_64")?
        || linux
            .profile
            .symbol("entry_SYSCALL_64_trampoline")
            .is_some_and(|t| lstar == t.wrapping_add(linux.slide));
    Ok(alloc::vec![Entry {
        index: 0xc000_0082,
        addr: lstar,
        target,
        expected: Some("entry_SYSCALL_64".into()),
        ok
    }])
}

/// One kernel text page whose contents differ from the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextDiff {
    /// Page index from the start of text.
    pub page: u32,
    /// Runtime address of the page.
    pub addr: u64,
    /// First differing byte (runtime address) and the symbol there.
    pub first: Option<(u64, String)>,
    /// `false` when the page could not be read.
    pub readable: bool,
}

/// Hashes every kernel text page (canonical form) against the profile;
/// returns the number of pages and those that differ (named by the symbol
/// at the page start). [`diff_page`] narrows a page to its changed bytes
/// when the image itself is at hand.
pub fn check_text(linux: &Linux) -> Result<(u32, Vec<TextDiff>), VmiError> {
    let t = &linux.profile.text;
    let idx = linux.profile.address_index();
    let mut out = Vec::new();
    let mut buf = alloc::vec![0u8; PAGE];
    for p in 0..t.pages {
        let link = t.start + p as u64 * PAGE as u64;
        let va = link.wrapping_add(linux.slide);
        if linux.read(va, &mut buf).is_err() {
            out.push(TextDiff {
                page: p,
                addr: va,
                first: None,
                readable: false,
            });
            continue;
        }
        let h = page_hash(t, p, &buf, linux.slide);
        if t.page_hashes.get(p as usize) != Some(&h) {
            let name = idx
                .lookup(linux.profile, link)
                .map(|(s, o)| alloc::format!("{s}+{o:#x}"))
                .unwrap_or_default();
            out.push(TextDiff {
                page: p,
                addr: va,
                first: Some((va, name)),
                readable: true,
            });
        }
    }
    Ok((t.pages, out))
}

/// Narrows a differing page to the changed bytes against the image's own
/// canonical page (`image_page`, link-time bytes), naming the symbol.
pub fn diff_page(
    linux: &Linux,
    page: u32,
    image_page: &[u8],
) -> Result<Vec<(u64, String)>, VmiError> {
    let t = &linux.profile.text;
    let idx = linux.profile.address_index();
    let link = t.start + page as u64 * PAGE as u64;
    let mut live = alloc::vec![0u8; PAGE];
    linux.read(link.wrapping_add(linux.slide), &mut live)?;
    crate::text::canonicalise(t, page, &mut live, linux.slide);
    let mut img = image_page.to_vec();
    img.resize(PAGE, 0);
    crate::text::canonicalise(t, page, &mut img, 0);
    let mut out = Vec::new();
    for (i, (a, b)) in live.iter().zip(&img).enumerate() {
        if a != b {
            let l = link + i as u64;
            let name = idx
                .lookup(linux.profile, l)
                .map(|(s, o)| alloc::format!("{s}+{o:#x}"))
                .unwrap_or_default();
            out.push((l.wrapping_add(linux.slide), name));
        }
    }
    Ok(out)
}

/// One process in the cross view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XView {
    /// The task.
    pub task: Task,
    /// Found by walking the task list.
    pub in_list: bool,
    /// Found through the PID IDR.
    pub in_idr: bool,
    /// Found by scanning memory.
    pub in_scan: bool,
}

impl XView {
    /// Hidden: reachable through the PID IDR (so alive and known to the
    /// kernel) but missing from the task list.
    pub fn hidden(&self) -> bool {
        self.in_idr && !self.in_list
    }
}

/// The psxview row of `t`'s task address, made by whichever view finds it first.
fn seen(by_addr: &mut BTreeMap<u64, XView>, t: Task) -> &mut XView {
    by_addr.entry(t.addr).or_insert(XView {
        task: t,
        in_list: false,
        in_idr: false,
        in_scan: false,
    })
}

/// psxview: tasks by list, by PID IDR, by scan.
pub fn psxview(linux: &Linux) -> Result<Vec<XView>, VmiError> {
    let mut by_addr: BTreeMap<u64, XView> = BTreeMap::new();
    for t in linux.tasks()? {
        seen(&mut by_addr, t).in_list = true;
    }
    for t in linux.idr_tasks()? {
        seen(&mut by_addr, t).in_idr = true;
    }
    for t in linux.scan_tasks()? {
        seen(&mut by_addr, t).in_scan = true;
    }
    let mut v: Vec<XView> = by_addr.into_values().collect();
    v.sort_by_key(|x| (x.task.pid, x.task.addr));
    Ok(v)
}
