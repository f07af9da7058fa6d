//! The guest code image and its function symbols from a 64-bit ELF file:
//! the first executable `PT_LOAD` segment and the `STT_FUNC` symbols of
//! `.symtab` that lie in it. Enough for the CFI policy; every offset is
//! bounds-checked and a bad file is an error naming what is wrong.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::cfi::Symbol;

/// What is wrong with an ELF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// No ELF magic.
    NotElf,
    /// Not a 64-bit little-endian ELF.
    Not64BitLittleEndian,
    /// A header or table runs past the end of the file.
    Truncated(&'static str),
    /// No executable loadable segment.
    NoExecutableSegment,
}

impl ElfError {
    /// For people.
    pub fn describe(&self) -> &'static str {
        match self {
            ElfError::NotElf => "not an ELF file (no \\x7fELF magic)",
            ElfError::Not64BitLittleEndian => "not a 64-bit little-endian ELF (x86-64 is required)",
            ElfError::Truncated(what) => what,
            ElfError::NoExecutableSegment => "no executable PT_LOAD segment",
        }
    }
}

/// The code image of an ELF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeImage {
    /// Load address of the code.
    pub base: u64,
    /// The segment's bytes (zero-filled to its memory size).
    pub code: Vec<u8>,
    /// Function symbols inside the code.
    pub symbols: Vec<Symbol>,
}

fn rd(b: &[u8], at: usize, n: usize, what: &'static str) -> Result<u64, ElfError> {
    let s = b
        .get(at..at.checked_add(n).ok_or(ElfError::Truncated(what))?)
        .ok_or(ElfError::Truncated(what))?;
    Ok(s.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
}

fn idx(v: u64, what: &'static str) -> Result<usize, ElfError> {
    usize::try_from(v).map_err(|_| ElfError::Truncated(what))
}

/// `base + i * size`, if that lies inside the file (so later small
/// additions to it cannot overflow).
fn entry(
    file: &[u8],
    base: usize,
    i: usize,
    size: usize,
    what: &'static str,
) -> Result<usize, ElfError> {
    i.checked_mul(size)
        .and_then(|o| o.checked_add(base))
        .filter(|&h| h <= file.len())
        .ok_or(ElfError::Truncated(what))
}

/// Reads the code image and function symbols of a 64-bit ELF file.
pub fn parse(file: &[u8]) -> Result<CodeImage, ElfError> {
    if file.get(..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if file.get(4) != Some(&2) || file.get(5) != Some(&1) {
        return Err(ElfError::Not64BitLittleEndian);
    }
    const H: &str = "ELF header truncated";
    let phoff = idx(rd(file, 0x20, 8, H)?, H)?;
    let shoff = idx(rd(file, 0x28, 8, H)?, H)?;
    let phentsize = rd(file, 0x36, 2, H)? as usize;
    let phnum = rd(file, 0x38, 2, H)? as usize;
    let shentsize = rd(file, 0x3a, 2, H)? as usize;
    let shnum = rd(file, 0x3c, 2, H)? as usize;

    const P: &str = "program header table runs past the end of the file";
    let mut seg = None;
    for i in 0..phnum {
        let h = entry(file, phoff, i, phentsize, P)?;
        let (ty, flags) = (rd(file, h, 4, P)?, rd(file, h + 4, 4, P)?);
        if ty == 1 && flags & 1 != 0 {
            seg = Some((
                rd(file, h + 8, 8, P)?,
                rd(file, h + 16, 8, P)?,
                rd(file, h + 32, 8, P)?,
                rd(file, h + 40, 8, P)?,
            ));
            break;
        }
    }
    let (off, vaddr, filesz, memsz) = seg.ok_or(ElfError::NoExecutableSegment)?;
    const S: &str = "executable segment runs past the end of the file";
    let (off, filesz) = (idx(off, S)?, idx(filesz, S)?);
    let bytes = file
        .get(off..off.checked_add(filesz).ok_or(ElfError::Truncated(S))?)
        .ok_or(ElfError::Truncated(S))?;
    // Bound the zero fill: a bogus memsz must not allocate gigabytes.
    let memsz = idx(memsz.max(filesz as u64).min(filesz as u64 + (1 << 24)), S)?;
    let mut code = vec![0u8; memsz];
    code[..filesz].copy_from_slice(bytes);
    let end = vaddr.saturating_add(code.len() as u64);

    const T: &str = "section or symbol table runs past the end of the file";
    let mut symbols = Vec::new();
    for i in 0..shnum {
        let h = entry(file, shoff, i, shentsize, T)?;
        if rd(file, h + 4, 4, T)? != 2 {
            continue; // not SHT_SYMTAB
        }
        let (sym_off, sym_size, link, entsize) = (
            idx(rd(file, h + 24, 8, T)?, T)?,
            idx(rd(file, h + 32, 8, T)?, T)?,
            rd(file, h + 40, 4, T)? as usize,
            idx(rd(file, h + 56, 8, T)?, T)?.max(24),
        );
        let sh = entry(file, shoff, link, shentsize, T)?;
        let (str_off, str_size) = (
            idx(rd(file, sh + 24, 8, T)?, T)?,
            idx(rd(file, sh + 32, 8, T)?, T)?,
        );
        let strtab = file
            .get(str_off..str_off.saturating_add(str_size))
            .ok_or(ElfError::Truncated(T))?;
        for k in 0..sym_size / entsize {
            let s = entry(file, sym_off, k, entsize, T)?;
            let (name, info, value, size) = (
                rd(file, s, 4, T)? as usize,
                rd(file, s + 4, 1, T)?,
                rd(file, s + 8, 8, T)?,
                rd(file, s + 16, 8, T)?,
            );
            if info & 0xf != 2 || value < vaddr || value >= end {
                continue; // not STT_FUNC in the code
            }
            let raw = strtab.get(name..).unwrap_or(&[]);
            let raw = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
            symbols.push(Symbol {
                name: String::from_utf8_lossy(raw).into_owned(),
                addr: value,
                size,
            });
        }
    }
    symbols.sort_by_key(|s| s.addr);
    Ok(CodeImage {
        base: vaddr,
        code,
        symbols,
    })
}
