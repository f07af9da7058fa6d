//! Checks of the files a system refers to (`bulkhead check --search-path`):
//! every program image exists, is an x86_64 ELF executable and defines
//! every setvar symbol of its PD; every prefill file exists and fits its
//! region.
//!
//! Kept apart from [`crate::parse`] so that checking the SDF itself never
//! touches the file system.

use std::path::{Path, PathBuf};

use object::{Architecture, BinaryFormat, Object, ObjectKind, ObjectSegment, ObjectSymbol};

use crate::diag::Diagnostic;
use crate::model::System;

/// Finds `name` in the search path (an absolute path is taken as is).
pub fn find(name: &str, search: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    search.iter().map(|d| d.join(p)).find(|c| c.is_file())
}

fn dirs(search: &[PathBuf]) -> String {
    let v: Vec<String> = search.iter().map(|d| d.display().to_string()).collect();
    v.join(", ")
}

/// What a PD image provides: its defined symbols (sorted) and the
/// page-rounded address ranges its loadable segments occupy.
struct Image {
    symbols: Vec<String>,
    segments: Vec<(u64, u64)>,
}

/// What is wrong with an ELF file as a PD image, if anything, or what it
/// provides.
fn read_elf(data: &[u8]) -> Result<Image, String> {
    let file = object::File::parse(data).map_err(|e| format!("not an ELF file ({e})"))?;
    if file.format() != BinaryFormat::Elf {
        return Err(format!("a {:?} file, not ELF", file.format()));
    }
    if file.architecture() != Architecture::X86_64 || !file.is_64() {
        return Err(format!("built for {:?}, not x86_64", file.architecture()));
    }
    match file.kind() {
        ObjectKind::Executable | ObjectKind::Dynamic if file.entry() != 0 => {}
        ObjectKind::Relocatable => {
            return Err("a relocatable object, not a linked executable".into())
        }
        ObjectKind::Dynamic => {
            return Err("a shared library (no entry point), not an executable".into())
        }
        k => return Err(format!("not an executable ({k:?})")),
    }
    let mut names: Vec<String> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.is_definition())
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    let segments = file
        .segments()
        .filter(|seg| seg.size() > 0)
        .map(|seg| {
            let start = seg.address() & !0xfff;
            let end = seg
                .address()
                .saturating_add(seg.size())
                .saturating_add(0xfff)
                & !0xfff;
            (start, end)
        })
        .collect();
    Ok(Image {
        symbols: names,
        segments,
    })
}

/// Checks every PD's program image and every prefill file against the
/// search path; returns the problems found (empty when all is well).
pub fn check(sys: &System, search: &[PathBuf]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let file = &sys.file;
    for pd in &sys.pds {
        let img = &pd.program_image;
        let Some(path) = find(&img.path, search) else {
            out.push(
                Diagnostic::error(
                    file,
                    img.pos,
                    "program_image",
                    format!(
                        "program image \"{}\" of \"{}\" not found in the search path ({})",
                        img.path,
                        pd.name,
                        dirs(search)
                    ),
                )
                .with_help(
                    "build the PD first, or pass the directory that holds it with --search-path",
                ),
            );
            continue;
        };
        let image = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|d| read_elf(&d))
        {
            Ok(i) => i,
            Err(why) => {
                out.push(
                    Diagnostic::error(file, img.pos, "program_image", format!("{} is {why}", path.display()))
                        .with_help("a PD image is a linked x86_64 ELF executable (built for x86_64-unknown-none)"),
                );
                continue;
            }
        };
        // A map may not cover the program's own code and data.
        for m in &pd.maps {
            let Some(mr) = sys.memory_regions.get(m.mr_index) else {
                continue;
            };
            let end = m.end(mr);
            if let Some((s, e)) = image
                .segments
                .iter()
                .find(|(s, e)| m.vaddr < *e && *s < end)
            {
                out.push(
                    Diagnostic::error(file, m.pos, "map", format!(
                        "\"{}\" mapped at {:#x}..{end:#x} overlaps the program image {} at {s:#x}..{e:#x}",
                        m.mr, m.vaddr, path.display()
                    ))
                    .with_help("map the region at an address the image does not use"),
                );
            }
        }
        // Stripped images name an unstripped copy for their symbols.
        let (symbols, sym_path) = match &img.path_for_symbols {
            None => (image.symbols, path),
            Some(p) => match find(p, search) {
                None => {
                    out.push(Diagnostic::error(
                        file,
                        img.pos,
                        "program_image",
                        format!(
                            "path_for_symbols \"{p}\" not found in the search path ({})",
                            dirs(search)
                        ),
                    ));
                    continue;
                }
                Some(sp) => match std::fs::read(&sp)
                    .map_err(|e| e.to_string())
                    .and_then(|d| read_elf(&d))
                {
                    Ok(i) => (i.symbols, sp),
                    Err(why) => {
                        out.push(Diagnostic::error(
                            file,
                            img.pos,
                            "program_image",
                            format!("{} is {why}", sp.display()),
                        ));
                        continue;
                    }
                },
            },
        };
        for sv in &pd.setvars {
            if symbols.binary_search(&sv.symbol).is_err() {
                out.push(
                    Diagnostic::error(file, sv.pos, sv.element, format!("setvar symbol \"{}\" is not defined in {} (image of \"{}\")", sv.symbol, sym_path.display(), pd.name))
                        .with_help_opt(
                            crate::diag::did_you_mean(&sv.symbol, symbols.iter().map(String::as_str))
                                .or_else(|| Some("define it as a #[no_mangle] static in the PD (the tool patches its value)".into())),
                        ),
                );
            }
        }
    }
    for mr in &sys.memory_regions {
        let Some(p) = &mr.prefill_path else { continue };
        match find(p, search).map(|f| std::fs::metadata(&f).map(|m| m.len())) {
            None => out.push(Diagnostic::error(
                file,
                mr.pos,
                "memory_region",
                format!(
                    "prefill file \"{p}\" not found in the search path ({})",
                    dirs(search)
                ),
            )),
            Some(Err(e)) => out.push(Diagnostic::error(
                file,
                mr.pos,
                "memory_region",
                format!("prefill file \"{p}\": {e}"),
            )),
            Some(Ok(len)) if len > mr.size => out.push(
                Diagnostic::error(
                    file,
                    mr.pos,
                    "memory_region",
                    format!(
                        "prefill file \"{p}\" has {len:#x} bytes, more than the region's {:#x}",
                        mr.size
                    ),
                )
                .with_help(format!(
                    "make the region at least {:#x} bytes",
                    len.div_ceil(mr.page_size.bytes()) * mr.page_size.bytes()
                )),
            ),
            Some(Ok(_)) => {}
        }
    }
    out
}

/// [`check`] when a search path is given; nothing to check otherwise
/// (`check` of the SDF alone never touches the file system).
pub fn check_if(sys: &System, search: &[PathBuf]) -> Vec<Diagnostic> {
    if search.is_empty() {
        Vec::new()
    } else {
        check(sys, search)
    }
}
