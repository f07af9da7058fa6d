//! Builds a VMI [`Profile`] from the kernel itself: a Debian
//! `linux-image-*.deb` or a bare bzImage. Layouts come from the image's
//! `.BTF` section, symbols from its embedded kallsyms tables (or a
//! System.map), and the text fingerprint from its `.text` and the patch-site
//! tables the kernel applies at boot.
//!
//! Design rules: host-only (std), but every parser is bounds-checked and
//! returns an error naming the layer that failed; no input panics.

#![forbid(unsafe_code)]

pub mod btf;
pub mod file_image;
pub mod image;
pub mod isf;
pub mod kallsyms;
pub mod xz;

use monitor_core::profile::{Profile, StructLayout, Symbol, TextImage};
use monitor_core::text;

/// Structures the walkers and checks read.
pub const WANTED_STRUCTS: &[&str] = &[
    "task_struct",
    "list_head",
    "hlist_head",
    "hlist_node",
    "mm_struct",
    "module",
    "module_layout",
    "module_memory",
    "cred",
    "pid",
    "upid",
    "pid_namespace",
    "idr",
    "xarray",
    "xa_node",
    "signal_struct",
    "kernel_symbol",
    "alt_instr",
    "paravirt_patch_site",
    "jump_entry",
    "static_call_site",
    "callthunk_sites",
    "qstr",
    "thread_info",
    "sched_entity",
    "rb_node",
    "kobject",
    "module_kobject",
];

/// What the builder read, for the report.
#[derive(Debug, Default)]
pub struct BuildInfo {
    /// Where symbols came from.
    pub symbol_source: &'static str,
    /// Number of BTF types.
    pub btf_types: usize,
    /// Compressed payload format / input kind.
    pub input: String,
}

/// Everything the profile and ISF writers need from one kernel.
pub struct Kernel {
    /// The decompressed vmlinux (+ relocs).
    pub vmlinux: Vec<u8>,
    /// Parsed BTF.
    pub btf: btf::Btf,
    /// Symbols (kallsyms or System.map).
    pub symbols: Vec<Symbol>,
    /// The banner string.
    pub banner: String,
    /// Build information.
    pub info: BuildInfo,
}

/// Parses a System.map (`address type name` per line).
pub fn parse_system_map(text: &str) -> Result<Vec<Symbol>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut it = line.split_whitespace();
        let (Some(a), Some(k), Some(name)) = (it.next(), it.next(), it.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!(
                "System.map line {}: expected `address type name`, got {line:?}",
                n + 1
            ));
        };
        let addr = u64::from_str_radix(a, 16)
            .map_err(|_| format!("System.map line {}: bad hex address {a:?}", n + 1))?;
        out.push(Symbol {
            name: name.to_string(),
            addr,
            kind: k.bytes().next().unwrap_or(b'?'),
        });
    }
    if out.len() < 1000 || !out.iter().any(|s| s.name == "init_task") {
        return Err(format!(
            "System.map has {} symbols and no init_task: it is a stub (Debian ships the real one in the -dbg package); leave --system-map out to use the kernel's own kallsyms",
            out.len()
        ));
    }
    Ok(out)
}

/// Reads a kernel from a .deb or bzImage.
pub fn load_kernel(input: &[u8], system_map: Option<&str>) -> Result<Kernel, String> {
    let (bz, kind) = if input.starts_with(b"!<arch>\n") {
        let (name, bz) = image::vmlinuz_from_deb(input)?;
        (bz, format!("Debian package ({name})"))
    } else {
        (input.to_vec(), "bzImage".to_string())
    };
    let vmlinux = if bz.starts_with(b"\x7fELF") {
        bz
    } else {
        image::vmlinux_from_bzimage(&bz)?
    };
    let elf = image::Elf::parse(&vmlinux)?;
    let btf_raw = elf
        .bytes(".BTF")
        .ok_or("the kernel has no .BTF section (it needs CONFIG_DEBUG_INFO_BTF=y); structure layouts cannot be taken from it")?;
    let btf = btf::Btf::parse(btf_raw).map_err(|e| e.to_string())?;
    let (symbols, source) = match system_map {
        Some(m) => (parse_system_map(m)?, "System.map"),
        None => {
            let ro = elf
                .bytes(".rodata")
                .ok_or("the kernel has no .rodata section")?;
            (kallsyms::parse(ro).map_err(|e| e.to_string())?, "kallsyms")
        }
    };
    let banner_addr = symbols
        .iter()
        .find(|s| s.name == "linux_banner")
        .map(|s| s.addr)
        .ok_or("no linux_banner symbol")?;
    let banner = elf
        .at_va(banner_addr, 512)
        .or_else(|| elf.at_va(banner_addr, 128))
        .map(|b| {
            let e = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..e]).into_owned()
        })
        .ok_or("linux_banner is not inside the image's sections")?;
    if !banner.starts_with("Linux version ") {
        return Err(format!("linux_banner does not read `Linux version ...` but {banner:?}: symbols do not match this image"));
    }
    let info = BuildInfo {
        symbol_source: source,
        btf_types: btf.types.len(),
        input: kind,
    };
    Ok(Kernel {
        vmlinux,
        btf,
        symbols,
        banner,
        info,
    })
}

impl Kernel {
    /// The struct layouts in [`WANTED_STRUCTS`] that this kernel has.
    pub fn layouts(&self) -> Vec<StructLayout> {
        WANTED_STRUCTS
            .iter()
            .filter_map(|n| self.btf.find_struct(n).and_then(|id| self.btf.layout(id)))
            .collect()
    }

    fn sym(&self, name: &str) -> Option<u64> {
        self.symbols.iter().find(|s| s.name == name).map(|s| s.addr)
    }

    /// The text fingerprint: `_stext`..`_etext`, relocations and boot-time
    /// patch sites recorded, every page hashed in canonical form.
    pub fn text_image(&self) -> Result<TextImage, String> {
        let elf = image::Elf::parse(&self.vmlinux)?;
        let (Some(stext), Some(etext)) = (self.sym("_stext"), self.sym("_etext")) else {
            return Ok(TextImage::default());
        };
        let start = stext & !0xfff;
        let pages = ((etext + 0xfff - start) / 0x1000) as u32;
        let len = pages as u64 * 0x1000;
        let in_text = |a: u64| a >= start && a < start + len;
        let off = |a: u64| (a - start) as u32;
        let (r32, rinv, r64) = image::relocs(&self.vmlinux, elf.end);
        let mut t = TextImage {
            start,
            pages,
            ..Default::default()
        };
        let mut masks: Vec<(u32, u16)> = Vec::new();
        // A relocated field that straddles a page boundary cannot be undone
        // page by page: mask it instead.
        let put = |list: &[u64], width: u32, out: &mut Vec<u32>, masks: &mut Vec<(u32, u16)>| {
            for &a in list.iter().filter(|&&a| in_text(a)) {
                let o = off(a);
                if o / 4096 != (o + width - 1) / 4096 {
                    masks.push((o, width as u16));
                } else {
                    out.push(o);
                }
            }
            out.sort_unstable();
        };
        put(&r32, 4, &mut t.relocs32, &mut masks);
        put(&rinv, 4, &mut t.relocs32_inv, &mut masks);
        put(&r64, 8, &mut t.relocs64, &mut masks);

        // Patch-site tables: their own output section when the linker
        // kept one, else the `__start_*`/`__stop_*` range inside .init.data.
        let bounds: &[(&str, &str, &str)] = &[
            ("__mcount_loc", "__start_mcount_loc", "__stop_mcount_loc"),
            (
                "__jump_table",
                "__start___jump_table",
                "__stop___jump_table",
            ),
            (
                ".static_call_sites",
                "__start_static_call_sites",
                "__stop_static_call_sites",
            ),
            (
                ".altinstructions",
                "__alt_instructions",
                "__alt_instructions_end",
            ),
            (
                ".parainstructions",
                "__parainstructions",
                "__parainstructions_end",
            ),
            (
                ".retpoline_sites",
                "__retpoline_sites",
                "__retpoline_sites_end",
            ),
            (".return_sites", "__return_sites", "__return_sites_end"),
            (".smp_locks", "__smp_locks", "__smp_locks_end"),
            (".call_sites", "__call_sites", "__call_sites_end"),
            (
                ".ibt_endbr_seal",
                "__ibt_endbr_seal",
                "__ibt_endbr_seal_end",
            ),
        ];
        let sec = |n: &str| -> Option<(u64, &[u8])> {
            if let Some((_, a, b)) = bounds.iter().find(|(s, _, _)| *s == n) {
                if let (Some(a), Some(b)) = (self.sym(a), self.sym(b)) {
                    if b > a {
                        return elf.at_va(a, (b - a) as usize).map(|d| (a, d));
                    }
                }
            }
            elf.section(n)
                .filter(|s| !s.nobits)
                .map(|s| (s.addr, elf.bytes(n).unwrap_or(&[])))
        };
        let rel32 = |base: u64, d: &[u8], i: usize| -> Option<u64> {
            let v = i32::from_le_bytes(d.get(i..i + 4)?.try_into().ok()?);
            Some(base.wrapping_add(i as u64).wrapping_add(v as i64 as u64))
        };
        let mask_at = |a: u64, len: u16, masks: &mut Vec<(u32, u16)>| {
            if in_text(a) {
                masks.push((off(a), len));
            }
        };
        // alternatives: struct alt_instr { s32 instr_offset; ...; u8 instrlen; }
        if let (Some((base, d)), Some(l)) = (
            sec(".altinstructions"),
            self.btf
                .find_struct("alt_instr")
                .and_then(|i| self.btf.layout(i)),
        ) {
            let sz = l.size as usize;
            let il = l.field("instrlen").map(|f| f.offset as usize);
            {
                for i in (0..d.len().checked_div(sz).unwrap_or(0)).map(|k| k * sz) {
                    let len = il.and_then(|o| d.get(i + o)).copied().unwrap_or(16);
                    if let Some(a) = rel32(base, d, i) {
                        mask_at(a, len.max(1) as u16, &mut masks);
                    }
                }
            }
        }
        // paravirt: struct paravirt_patch_site { u8 *instr; u8 type; u8 len; }
        if let (Some((_, d)), Some(l)) = (
            sec(".parainstructions"),
            self.btf
                .find_struct("paravirt_patch_site")
                .and_then(|i| self.btf.layout(i)),
        ) {
            let sz = l.size as usize;
            let lo = l.field("len").map(|f| f.offset as usize).unwrap_or(9);
            {
                for i in (0..d.len().checked_div(sz).unwrap_or(0)).map(|k| k * sz) {
                    let a = d
                        .get(i..i + 8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_le_bytes);
                    if let (Some(a), Some(&len)) = (a, d.get(i + lo)) {
                        mask_at(a, len.max(1) as u16, &mut masks);
                    }
                }
            }
        }
        // ftrace call sites: absolute addresses of 5-byte calls.
        if let Some((_, d)) = sec("__mcount_loc") {
            for c in d.chunks_exact(8) {
                mask_at(
                    u64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
                    5,
                    &mut masks,
                );
            }
        }
        // jump labels: struct jump_entry { s32 code; s32 target; long key; }
        if let Some((base, d)) = sec("__jump_table") {
            for i in (0..d.len() / 16).map(|k| k * 16) {
                if let Some(a) = rel32(base, d, i) {
                    mask_at(a, 5, &mut masks);
                }
            }
        }
        // static calls: struct static_call_site { s32 addr; s32 key; }
        if let Some((base, d)) = sec(".static_call_sites") {
            for i in (0..d.len() / 8).map(|k| k * 8) {
                if let Some(a) = rel32(base, d, i) {
                    mask_at(a, 5, &mut masks);
                }
            }
        }
        // Lists of s32 self-relative sites: (section, bytes patched).
        for (name, len) in [
            (".retpoline_sites", 6u16),
            (".return_sites", 5),
            (".smp_locks", 1),
            (".call_sites", 5),
            (".ibt_endbr_seal", 4),
        ] {
            if let Some((base, d)) = sec(name) {
                for i in (0..d.len() / 4).map(|k| k * 4) {
                    if let Some(a) = rel32(base, d, i) {
                        mask_at(a, len, &mut masks);
                    }
                }
            }
        }
        // Static-call trampolines are rewritten whenever their target changes.
        for s in self
            .symbols
            .iter()
            .filter(|s| s.name.starts_with("__SCT__"))
        {
            mask_at(s.addr, 8, &mut masks);
        }
        masks.sort_unstable();
        t.masks = masks;
        let tsec = elf.section(".text").ok_or("kernel has no .text section")?;
        let (tbase, tbytes) = (tsec.addr, elf.bytes(".text").unwrap_or(&[]));
        for p in 0..pages {
            let va = start + p as u64 * 0x1000;
            let mut page = [0u8; 4096];
            for (i, b) in page.iter_mut().enumerate() {
                let a = va + i as u64;
                if a >= tbase {
                    if let Some(&v) = tbytes.get((a - tbase) as usize) {
                        *b = v;
                    }
                }
            }
            t.page_hashes.push(text::page_hash(&t, p, &page, 0));
        }
        Ok(t)
    }

    /// Handler names of the image's `sys_call_table`, entry by entry (the
    /// table's link-time pointers, named by symbol).
    pub fn syscall_names(&self) -> Vec<(u64, String)> {
        let Ok(elf) = image::Elf::parse(&self.vmlinux) else {
            return Vec::new();
        };
        let Some(table) = self.sym("sys_call_table") else {
            return Vec::new();
        };
        let next = self
            .symbols
            .iter()
            .map(|s| s.addr)
            .filter(|&a| a > table)
            .min()
            .unwrap_or(table + 8 * 512);
        let n = ((next - table) / 8).min(1024) as usize;
        let Some(bytes) = elf.at_va(table, n * 8) else {
            return Vec::new();
        };
        // Aliases share an address: prefer the global symbol (`__x64_sys_*`
        // over the static `__do_sys_*`), which sorts last per address.
        let mut by_addr: Vec<(u64, bool, &str)> = self
            .symbols
            .iter()
            .filter(|s| matches!(s.kind, b'T' | b't'))
            .map(|s| (s.addr, s.kind == b'T', s.name.as_str()))
            .collect();
        by_addr.sort_unstable();
        let mut names: Vec<(u64, String)> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .map(|a| {
                let i = by_addr.partition_point(|&(x, _, _)| x <= a);
                let name = i
                    .checked_sub(1)
                    .and_then(|i| by_addr.get(i))
                    .filter(|(x, _, _)| *x == a)
                    .map(|(_, _, n)| n.to_string());
                (a, name.unwrap_or_default())
            })
            .collect();
        while names.last().is_some_and(|(a, _)| *a == 0) {
            names.pop();
        }
        names
    }

    /// The complete profile.
    pub fn profile(&self) -> Result<Profile, String> {
        let mut p = Profile {
            banner: self.banner.clone(),
            symbols: self.symbols.clone(),
            structs: self.layouts(),
            text: self.text_image()?,
            syscalls: self.syscall_names(),
        };
        for need in ["task_struct", "list_head", "module"] {
            if p.structs.iter().all(|s| s.name != need) {
                return Err(format!("the kernel's BTF has no `struct {need}`"));
            }
        }
        p.normalise();
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_map_parsing_and_stub_rejection() {
        let stub =
            "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n";
        assert!(parse_system_map(stub).unwrap_err().contains("stub"));
        let mut real = String::from("ffffffff81000000 T _text\nffffffff82a0c840 D init_task\n");
        for i in 0..1200 {
            real.push_str(&format!(
                "{:x} t fn_{i}\n",
                0xffff_ffff_8100_1000u64 + i * 16
            ));
        }
        let syms = parse_system_map(&real).unwrap();
        assert_eq!(syms.len(), 1202);
        assert_eq!(
            (syms[1].name.as_str(), syms[1].addr, syms[1].kind),
            ("init_task", 0xffff_ffff_82a0_c840, b'D')
        );
        let bad = real.replace("ffffffff82a0c840 D", "zz D");
        assert!(parse_system_map(&bad).unwrap_err().contains("line 2"));
    }
}
