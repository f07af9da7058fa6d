//! Just enough of the WebAssembly binary format to name a module's sections
//! and their byte ranges, so that change-prohibited regions can be given as
//! sections ("code", "data") and `inspect` can say what a region covers.
//!
//! Design rules: reads only the section headers (id + LEB128 size), checks
//! every length against the input, never panics. Validation of the module
//! itself is the runtime's job (wasmi).

use alloc::vec::Vec;

/// A section of a module: its id, and where its payload lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// Section id (0 custom, 1 type, ..., 10 code, 11 data, 12 data count).
    pub id: u8,
    /// Offset of the section header (the id byte).
    pub start: u32,
    /// One past the section's last byte.
    pub end: u32,
}

/// The name of section id `id`.
pub fn section_name(id: u8) -> &'static str {
    match id {
        0 => "custom",
        1 => "type",
        2 => "import",
        3 => "function",
        4 => "table",
        5 => "memory",
        6 => "global",
        7 => "export",
        8 => "start",
        9 => "element",
        10 => "code",
        11 => "data",
        12 => "datacount",
        _ => "unknown",
    }
}

/// The section id called `name`.
pub fn section_id(name: &str) -> Option<u8> {
    (0..=12).find(|&id| section_name(id) == name)
}

fn leb_u32(b: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u32::from(byte & 0x7f).checked_shl(7 * i)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The module's sections in order, or `None` if the header or a section
/// length is broken.
pub fn sections(module: &[u8]) -> Option<Vec<Section>> {
    if module.len() < 8 || module[..4] != *b"\0asm" || module[4..8] != [1, 0, 0, 0] {
        return None;
    }
    let mut out = Vec::new();
    let mut pos = 8usize;
    while pos < module.len() {
        let start = pos;
        let id = module[pos];
        pos += 1;
        let size = leb_u32(module, &mut pos)? as usize;
        let end = pos.checked_add(size)?;
        if end > module.len() {
            return None;
        }
        out.push(Section {
            id,
            start: start as u32,
            end: end as u32,
        });
        pos = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sections_and_refuses_broken_lengths() {
        // header, type section (1 byte payload), code section (2 bytes payload).
        let m = b"\0asm\x01\0\0\0\x01\x01\x00\x0a\x02\x00\x00";
        let s = sections(m).unwrap();
        assert_eq!(
            s,
            [
                Section {
                    id: 1,
                    start: 8,
                    end: 11
                },
                Section {
                    id: 10,
                    start: 11,
                    end: 15
                }
            ]
        );
        assert_eq!(section_name(s[1].id), "code");
        assert_eq!(section_id("data"), Some(11));
        assert!(sections(&m[..14]).is_none());
        assert!(sections(b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\xff").is_none());
        assert!(sections(b"\0asn\x01\0\0\0").is_none());
    }
}
