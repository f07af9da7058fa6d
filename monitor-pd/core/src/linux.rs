//! Linux introspection: finding the kernel in guest memory (page-table
//! root, paging mode, KASLR slide) and walking its task list, PID IDR and
//! module list.
//!
//! Design rules: every structure offset comes from the profile (a missing
//! one is [`VmiError::MissingLayout`] naming it); every list walk is capped
//! and stops on a revisited node, so a corrupted or malicious guest list
//! cannot loop the monitor; every guest pointer is translated through the
//! page tables before use.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use crate::mem::{CpuRegs, MemError, PhysMem};
use crate::paging::{AddressSpace, WalkError};
use crate::profile::Profile;

/// Link-time base of the kernel image mapping (`__START_KERNEL_map`).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Upper bound on any list walk.
pub const MAX_WALK: usize = 1 << 16;
/// `PF_KTHREAD` in `task_struct.flags`.
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// Why introspection failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmiError {
    /// The profile lacks a symbol the operation needs.
    MissingSymbol(&'static str),
    /// The profile lacks a structure or member.
    MissingLayout(&'static str, &'static str),
    /// No page-table root maps this kernel (wrong profile, or not Linux).
    KernelNotFound,
    /// The kernel was found but its banner differs from the profile's.
    BannerMismatch(String),
    /// A guest read failed.
    Walk(WalkError),
}

impl From<WalkError> for VmiError {
    fn from(e: WalkError) -> Self {
        VmiError::Walk(e)
    }
}
impl From<MemError> for VmiError {
    fn from(e: MemError) -> Self {
        VmiError::Walk(WalkError::Mem(e))
    }
}

impl core::fmt::Display for VmiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VmiError::MissingSymbol(s) => write!(f, "the profile has no symbol `{s}`"),
            VmiError::MissingLayout(s, m) => write!(f, "the profile has no layout for `struct {s}` member `{m}`"),
            VmiError::KernelNotFound => f.write_str(
                "no kernel page tables matching this profile were found in the image (wrong profile, not a Linux guest, or the image is damaged)",
            ),
            VmiError::BannerMismatch(b) => write!(f, "the image's kernel banner does not match the profile: image says {b:?}"),
            VmiError::Walk(WalkError::NonCanonical(a)) => write!(f, "guest pointer {a:#x} is not a canonical address"),
            VmiError::Walk(WalkError::NotPresent { va, level }) => {
                write!(f, "guest address {va:#x} is not mapped (level-{level} entry not present)")
            }
            VmiError::Walk(WalkError::Mem(MemError::NotPresent(pa))) => {
                write!(f, "physical address {pa:#x} is not in the image (truncated image?)")
            }
        }
    }
}

/// How the KASLR slide was established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlideSource {
    /// The VMCOREINFO note's KERNELOFFSET.
    Vmcoreinfo,
    /// The first kernel-image mapping in the page tables.
    PageTables,
    /// IDT gate handlers against their symbols.
    Idt,
    /// IA32_LSTAR against `entry_SYSCALL_64`.
    Lstar,
}

/// Resolved offsets the walkers use, looked up once.
#[derive(Clone, Copy, Debug)]
pub struct Offsets {
    tasks: u64,
    pid: u64,
    tgid: u64,
    comm: u64,
    real_parent: u64,
    state: u64,
    flags: u64,
    mm: u64,
    real_cred: u64,
    cred_uid: u64,
    thread_pid: u64,
    pid_links: u64,
    upid_nr: u64,
    pid_numbers: u64,
    pid_tasks: u64,
    mod_list: u64,
    mod_name: u64,
    mod_core_base: u64,
    mod_core_size: u64,
    mod_init_size: Option<u64>,
    mod_state: u64,
}

fn off(p: &Profile, s: &'static str, m: &'static str) -> Result<u64, VmiError> {
    p.offset(s, m)
        .map(u64::from)
        .ok_or(VmiError::MissingLayout(s, m))
}

impl Offsets {
    /// Looks every needed member up in the profile.
    pub fn new(p: &Profile) -> Result<Offsets, VmiError> {
        let t = "task_struct";
        let state = off(p, t, "__state").or_else(|_| off(p, t, "state"))?;
        // Module memory: `core_layout` (up to 6.3) or `mem[MOD_TEXT]` (6.4+).
        let (core_base, core_size, init_size) = match off(p, "module", "core_layout") {
            Ok(cl) => {
                let b = off(p, "module_layout", "base")?;
                let s = off(p, "module_layout", "size")?;
                let il = off(p, "module", "init_layout").ok().map(|il| il + s);
                (cl + b, cl + s, il)
            }
            Err(_) => {
                let m = off(p, "module", "mem")?;
                (
                    m + off(p, "module_memory", "base")?,
                    m + off(p, "module_memory", "size")?,
                    None,
                )
            }
        };
        Ok(Offsets {
            tasks: off(p, t, "tasks")?,
            pid: off(p, t, "pid")?,
            tgid: off(p, t, "tgid")?,
            comm: off(p, t, "comm")?,
            real_parent: off(p, t, "real_parent")?,
            state,
            flags: off(p, t, "flags")?,
            mm: off(p, t, "mm")?,
            real_cred: off(p, t, "real_cred")?,
            cred_uid: off(p, "cred", "uid")?,
            thread_pid: off(p, t, "thread_pid")?,
            pid_links: off(p, t, "pid_links")?,
            upid_nr: off(p, "upid", "nr")?,
            pid_numbers: off(p, "pid", "numbers")?,
            pid_tasks: off(p, "pid", "tasks")?,
            mod_list: off(p, "module", "list")?,
            mod_name: off(p, "module", "name")?,
            mod_core_base: core_base,
            mod_core_size: core_size,
            mod_init_size: init_size,
            mod_state: off(p, "module", "state")?,
        })
    }
}

/// One task (thread-group leader) as seen by a walker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Address of the `task_struct`.
    pub addr: u64,
    /// PID (the kernel's `pid`; for a leader, the process id).
    pub pid: i32,
    /// Thread-group id.
    pub tgid: i32,
    /// Parent's PID (`real_parent->tgid`).
    pub ppid: i32,
    /// Real UID.
    pub uid: u32,
    /// Command name.
    pub comm: String,
    /// `__state`.
    pub state: u32,
    /// `true` for kernel threads (`PF_KTHREAD`).
    pub kthread: bool,
    /// `mm` pointer (0 for kernel threads).
    pub mm: u64,
}

impl Task {
    /// A ps-style state letter.
    pub fn state_char(&self) -> char {
        match self.state {
            0 => 'R',
            s if s & 0x402 == 0x402 => 'I',
            s if s & 1 != 0 => 'S',
            s if s & 2 != 0 => 'D',
            s if s & 4 != 0 => 'T',
            s if s & 8 != 0 => 't',
            s if s & 0x20 != 0 => 'Z',
            s if s & 0x10 != 0 => 'X',
            _ => '?',
        }
    }
}

/// One loaded module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Address of `struct module`.
    pub addr: u64,
    /// Name.
    pub name: String,
    /// Core text base.
    pub base: u64,
    /// Core size (+ init size while initialising), as `/proc/modules` shows.
    pub size: u64,
    /// `module.state` (0 live, 1 coming, 2 going, 3 unformed).
    pub state: u32,
}

/// A live view of a Linux guest.
pub struct Linux<'m> {
    /// Guest physical memory.
    pub mem: &'m dyn PhysMem,
    /// The profile.
    pub profile: &'m Profile,
    /// The kernel address space.
    pub space: AddressSpace,
    /// Virtual KASLR slide (runtime address − link-time address).
    pub slide: u64,
    /// Where the slide came from.
    pub slide_source: SlideSource,
    /// Offsets.
    pub off: Offsets,
}

fn sym(p: &Profile, s: &'static str) -> Result<u64, VmiError> {
    p.symbol(s).ok_or(VmiError::MissingSymbol(s))
}

/// The first mapped 2 MiB slot of the kernel-image region (−2 GiB .. −1 GiB
/// when KASLR is on): `_text` at runtime, since the kernel unmaps the
/// slots before it.
fn first_kernel_mapping(mem: &dyn PhysMem, space: &AddressSpace) -> Option<u64> {
    (0..512u64)
        .map(|i| START_KERNEL_MAP + i * 0x20_0000)
        .find(|&va| space.translate(mem, va).is_ok())
}

impl<'m> Linux<'m> {
    /// Finds the kernel: page-table root (from the CPU state when known,
    /// otherwise by trying each 2 MiB-aligned physical load address for
    /// `init_top_pgt`), paging mode and slide; checks the banner.
    pub fn attach(
        mem: &'m dyn PhysMem,
        profile: &'m Profile,
        regs: Option<CpuRegs>,
        vmcoreinfo: Option<&str>,
    ) -> Result<Linux<'m>, VmiError> {
        let off = Offsets::new(profile)?;
        let text = sym(profile, "_text")?;
        let banner = sym(profile, "linux_banner")?;
        let vmci_slide = vmcoreinfo.and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("KERNELOFFSET="))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        });
        let mut candidates: Vec<(AddressSpace, u64, SlideSource)> = Vec::new();
        if let Some(r) = regs.filter(|r| r.cr3 != 0) {
            let space = AddressSpace::from_cr3(r.cr3, r.cr4 & (1 << 12) != 0);
            if let Some(s) = vmci_slide {
                candidates.push((space, s, SlideSource::Vmcoreinfo));
            }
            if let Some(va) = first_kernel_mapping(mem, &space) {
                candidates.push((space, va.wrapping_sub(text), SlideSource::PageTables));
            }
            if let Some(s) = idt_slide(mem, profile, &space, r.idt_base) {
                candidates.push((space, s, SlideSource::Idt));
            }
            if let Some(s) = lstar_slide(profile, r.lstar) {
                candidates.push((space, s, SlideSource::Lstar));
            }
        }
        let mut last_err = VmiError::KernelNotFound;
        for (space, slide, src) in candidates {
            match Self::verify(mem, profile, space, slide, banner) {
                Ok(()) => {
                    return Ok(Linux {
                        mem,
                        profile,
                        space,
                        slide,
                        slide_source: src,
                        off,
                    })
                }
                Err(e) => last_err = e,
            }
        }
        // No usable registers: find init_top_pgt by trying each physical
        // load address of the image.
        let pgd = profile
            .symbol("init_top_pgt")
            .or_else(|| profile.symbol("swapper_pg_dir"))
            .ok_or(VmiError::MissingSymbol("init_top_pgt"))?;
        let pgd_off = pgd.wrapping_sub(text);
        let end = mem.phys_end();
        let mut phys = 0u64;
        while phys < end {
            for levels in [4u8, 5] {
                let space = AddressSpace {
                    root: phys.wrapping_add(pgd_off),
                    levels,
                };
                let mut e = [0u8; 8];
                if mem
                    .read_phys(space.root.wrapping_add(511 * 8), &mut e)
                    .is_err()
                    || u64::from_le_bytes(e) & 1 == 0
                {
                    continue;
                }
                if let Some(va) = first_kernel_mapping(mem, &space) {
                    if space.translate(mem, va) == Ok(phys) {
                        let slide = va.wrapping_sub(text);
                        if Self::verify(mem, profile, space, slide, banner).is_ok() {
                            return Ok(Linux {
                                mem,
                                profile,
                                space,
                                slide,
                                slide_source: SlideSource::PageTables,
                                off,
                            });
                        }
                    }
                }
            }
            phys += 0x20_0000;
        }
        Err(last_err)
    }

    fn verify(
        mem: &dyn PhysMem,
        profile: &Profile,
        space: AddressSpace,
        slide: u64,
        banner: u64,
    ) -> Result<(), VmiError> {
        let want = profile.banner.as_bytes();
        let mut got = alloc::vec![0u8; want.len().min(256)];
        space
            .read(mem, banner.wrapping_add(slide), &mut got)
            .map_err(|_| VmiError::KernelNotFound)?;
        if got != want[..got.len()] {
            let e = got
                .iter()
                .position(|&b| b == 0 || b == b'\n')
                .unwrap_or(got.len());
            return Err(VmiError::BannerMismatch(
                String::from_utf8_lossy(&got[..e]).into_owned(),
            ));
        }
        Ok(())
    }

    /// Runtime address of a profile symbol.
    pub fn symbol(&self, name: &'static str) -> Result<u64, VmiError> {
        Ok(sym(self.profile, name)?.wrapping_add(self.slide))
    }

    /// Reads kernel virtual memory.
    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), VmiError> {
        Ok(self.space.read(self.mem, va, buf)?)
    }

    /// Reads a u64 at `va`.
    pub fn u64(&self, va: u64) -> Result<u64, VmiError> {
        Ok(self.space.read_u64(self.mem, va)?)
    }

    /// Reads a u32 at `va`.
    pub fn u32(&self, va: u64) -> Result<u32, VmiError> {
        Ok(self.space.read_u32(self.mem, va)?)
    }

    /// Reads a NUL-terminated string of at most `max` bytes.
    pub fn cstr(&self, va: u64, max: usize) -> Result<String, VmiError> {
        let mut b = alloc::vec![0u8; max];
        self.read(va, &mut b)?;
        let e = b.iter().position(|&c| c == 0).unwrap_or(max);
        Ok(String::from_utf8_lossy(&b[..e]).into_owned())
    }

    /// Follows a `list_head` from `head`, returning each node address
    /// (not `head`). Stops on revisits and after [`MAX_WALK`] nodes.
    pub fn list(&self, head: u64) -> Result<Vec<u64>, VmiError> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut cur = self.u64(head)?;
        while cur != head && out.len() < MAX_WALK && seen.insert(cur) {
            out.push(cur);
            cur = self.u64(cur)?;
        }
        Ok(out)
    }

    /// Reads one task.
    pub fn task(&self, addr: u64) -> Result<Task, VmiError> {
        let o = &self.off;
        let pid = self.u32(addr.wrapping_add(o.pid))? as i32;
        let tgid = self.u32(addr.wrapping_add(o.tgid))? as i32;
        let parent = self.u64(addr.wrapping_add(o.real_parent))?;
        let ppid = if parent == 0 || parent == addr {
            0
        } else {
            self.u32(parent.wrapping_add(o.tgid)).unwrap_or(0) as i32
        };
        let cred = self.u64(addr.wrapping_add(o.real_cred))?;
        let uid = if cred == 0 {
            0
        } else {
            self.u32(cred.wrapping_add(o.cred_uid)).unwrap_or(u32::MAX)
        };
        let flags = self.u32(addr.wrapping_add(o.flags))?;
        Ok(Task {
            addr,
            pid,
            tgid,
            // init_task is its own parent; the swapper shows ppid 0.
            ppid: if pid == 0 { 0 } else { ppid },
            uid,
            comm: self.cstr(addr.wrapping_add(o.comm), 16)?,
            state: self.u32(addr.wrapping_add(o.state))?,
            kthread: flags & PF_KTHREAD != 0,
            mm: self.u64(addr.wrapping_add(o.mm))?,
        })
    }

    /// The task list from `init_task` (thread-group leaders), `init_task`
    /// (the swapper, pid 0) first.
    pub fn tasks(&self) -> Result<Vec<Task>, VmiError> {
        let init = self.symbol("init_task")?;
        let mut out = alloc::vec![self.task(init)?];
        for node in self.list(init.wrapping_add(self.off.tasks))? {
            out.push(self.task(node.wrapping_sub(self.off.tasks))?);
        }
        Ok(out)
    }

    /// Tasks reachable from the PID IDR of the initial namespace (every
    /// `struct pid` → its `PIDTYPE_PID` task), i.e. what `/proc` shows.
    pub fn idr_tasks(&self) -> Result<Vec<Task>, VmiError> {
        let ns = self.symbol("init_pid_ns")?;
        let idr = off(self.profile, "pid_namespace", "idr")?;
        let xa_head = off(self.profile, "xarray", "xa_head")?;
        let slots = off(self.profile, "xa_node", "slots")?;
        let shift = off(self.profile, "xa_node", "shift")?;
        let head = self.u64(ns.wrapping_add(idr).wrapping_add(xa_head))?;
        let mut pids = Vec::new();
        let mut stack = alloc::vec![(head, 0u32)];
        let mut visited = BTreeSet::new();
        while let Some((entry, depth)) = stack.pop() {
            if entry == 0 || depth > 12 || pids.len() >= MAX_WALK {
                continue;
            }
            // Internal xarray entries (nodes) are tagged ...10 and above 4096.
            if entry & 3 == 2 && entry > 4096 {
                let node = entry - 2;
                if !visited.insert(node) {
                    continue;
                }
                let _ = self.u32(node.wrapping_add(shift))?;
                for i in 0..64u64 {
                    let e = self.u64(node.wrapping_add(slots + 8 * i))?;
                    if e != 0 {
                        stack.push((e, depth + 1));
                    }
                }
            } else if entry & 3 == 0 {
                pids.push(entry);
            }
        }
        let mut out = Vec::new();
        for pid in pids {
            let first = self.u64(pid.wrapping_add(self.off.pid_tasks))?;
            if first == 0 {
                continue;
            }
            let task = first.wrapping_sub(self.off.pid_links);
            let nr = self.u32(
                pid.wrapping_add(self.off.pid_numbers)
                    .wrapping_add(self.off.upid_nr),
            )? as i32;
            if let Ok(t) = self.task(task) {
                // Only thread-group leaders, as in the task list, and only
                // when the pid's own number agrees with the task.
                if t.pid == t.tgid && t.pid == nr {
                    out.push(t);
                }
            }
        }
        out.sort_by_key(|t| t.pid);
        Ok(out)
    }

    /// Tasks found by scanning all of physical memory through the direct
    /// map for structures that look like a `task_struct` whose `struct pid`
    /// points back to it — finds tasks no list links to any more.
    pub fn scan_tasks(&self) -> Result<Vec<Task>, VmiError> {
        let pob = self.u64(self.symbol("page_offset_base")?)?;
        let o = self.off;
        let end = self.mem.phys_end();
        let mut out = Vec::new();
        let mut page = alloc::vec![0u8; 0x10000];
        let mut pa = 0u64;
        let rd = |b: &[u8], i: usize| -> Option<u64> {
            b.get(i..i + 8).map(|s| {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_le_bytes(a)
            })
        };
        while pa < end {
            if self.mem.read_phys(pa, &mut page).is_err() {
                pa += 0x10000;
                continue;
            }
            let mut i = 0usize;
            while i + 64 <= page.len() {
                // Cheap filters on the copy in hand, exact checks via reads.
                let comm = o.comm as usize + i;
                let ok = page.get(comm..comm + 16).is_some_and(|c| {
                    let n = c.iter().position(|&b| b == 0).unwrap_or(16);
                    n > 0 && n < 16 && c[..n].iter().all(|&b| (0x20..0x7f).contains(&b))
                });
                if ok {
                    let va = pob.wrapping_add(pa + i as u64);
                    let tp = rd(&page, o.thread_pid as usize + i);
                    if let Some(tp) = tp.filter(|&p| p >> 47 == 0x1ffff) {
                        // The task's struct pid must list this task first.
                        if self.u64(tp.wrapping_add(o.pid_tasks)).ok()
                            == Some(va.wrapping_add(o.pid_links))
                        {
                            let nr = self
                                .u32(tp.wrapping_add(o.pid_numbers).wrapping_add(o.upid_nr))
                                .ok()
                                .map(|n| n as i32);
                            if let Ok(t) = self.task(va) {
                                if t.pid > 0 && t.pid == t.tgid && Some(t.pid) == nr {
                                    out.push(t);
                                }
                            }
                        }
                    }
                }
                i += 64;
            }
            pa += page.len() as u64;
        }
        out.sort_by_key(|t| t.pid);
        out.dedup_by_key(|t| t.addr);
        Ok(out)
    }

    /// The module list (`modules`).
    pub fn modules(&self) -> Result<Vec<Module>, VmiError> {
        let head = self.symbol("modules")?;
        let o = &self.off;
        let mut out = Vec::new();
        for node in self.list(head)? {
            let m = node.wrapping_sub(o.mod_list);
            let core = self.u32(m.wrapping_add(o.mod_core_size))? as u64;
            let init = match o.mod_init_size {
                Some(i) => self.u32(m.wrapping_add(i))? as u64,
                None => 0,
            };
            out.push(Module {
                addr: m,
                name: self.cstr(m.wrapping_add(o.mod_name), 56)?,
                base: self.u64(m.wrapping_add(o.mod_core_base))?,
                size: core.saturating_add(init),
                state: self.u32(m.wrapping_add(o.mod_state))?,
            });
        }
        Ok(out)
    }
}

/// Slide from the IDT: the divide-error gate (vector 0) points at
/// `asm_exc_divide_error`.
pub fn idt_slide(
    mem: &dyn PhysMem,
    p: &Profile,
    space: &AddressSpace,
    idt_base: u64,
) -> Option<u64> {
    if idt_base == 0 {
        return None;
    }
    let mut g = [0u8; 16];
    space.read(mem, idt_base, &mut g).ok()?;
    let handler = gate_target(&g);
    let sym = p.symbol("asm_exc_divide_error")?;
    Some(handler.wrapping_sub(sym))
}

/// Slide from IA32_LSTAR (0 = unknown), which holds `entry_SYSCALL_64`
/// when page-table isolation is off.
pub fn lstar_slide(p: &Profile, lstar: u64) -> Option<u64> {
    if lstar == 0 {
        return None;
    }
    Some(lstar.wrapping_sub(p.symbol("entry_SYSCALL_64")?))
}

/// The handler address of a 64-bit IDT gate.
pub fn gate_target(g: &[u8; 16]) -> u64 {
    let lo = u16::from_le_bytes([g[0], g[1]]) as u64;
    let mid = u16::from_le_bytes([g[6], g[7]]) as u64;
    let hi = u32::from_le_bytes([g[8], g[9], g[10], g[11]]) as u64;
    lo | (mid << 16) | (hi << 32)
}
