//! The guest OS profile: what the monitor needs to know about one kernel
//! build — its symbols (unslid link-time addresses), the layouts of the
//! structures the walkers read, and a fingerprint of its text for
//! `check-text`.
//!
//! Design rules: the file is a small magic + version header followed by a
//! postcard body, so a profile from another version is refused with a clear
//! error before any decoding. Lookups never panic: a missing symbol or field
//! is an `Err` naming what was looked for.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// First bytes of every profile file.
pub const PROFILE_MAGIC: &[u8; 8] = b"BHVMIPRF";
/// Format version written by this build; a different one is refused.
pub const PROFILE_VERSION: u32 = 1;

/// One kernel symbol at its link-time (unslid) address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    /// Symbol name.
    pub name: String,
    /// Link-time virtual address.
    pub addr: u64,
    /// The kallsyms / System.map type letter (`T`, `t`, `D`, ...).
    pub kind: u8,
}

/// One member of a structure, with anonymous unions/structs flattened in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Member name.
    pub name: String,
    /// Byte offset from the start of the structure.
    pub offset: u32,
    /// Size in bytes (0 when unknown, e.g. a flexible array).
    pub size: u32,
    /// A readable C type name (`struct list_head`, `int`, `char[16]`).
    pub type_name: String,
}

/// The layout of one structure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructLayout {
    /// Structure name without the `struct` keyword.
    pub name: String,
    /// `sizeof`.
    pub size: u32,
    /// Members in offset order.
    pub fields: Vec<Field>,
}

/// Kernel text fingerprint: per-page hashes of the image's `.text` as it
/// would be at slide 0, with bytes the kernel legitimately patches at boot
/// (alternatives, ftrace sites, jump labels, ...) masked to zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextImage {
    /// Link-time start of the hashed range (page aligned).
    pub start: u64,
    /// Number of 4 KiB pages hashed.
    pub pages: u32,
    /// SHA-256 of each masked page.
    pub page_hashes: Vec<[u8; 32]>,
    /// Offsets (from `start`) of 32-bit fields the loader adds the slide to.
    pub relocs32: Vec<u32>,
    /// Offsets of 32-bit fields the loader subtracts the slide from.
    pub relocs32_inv: Vec<u32>,
    /// Offsets of 64-bit fields the loader adds the slide to.
    pub relocs64: Vec<u32>,
    /// Runtime-patched byte ranges (offset from `start`, length), sorted.
    pub masks: Vec<(u32, u16)>,
}

/// A complete profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The kernel's `linux_banner` ("Linux version ...").
    pub banner: String,
    /// Symbols sorted by name (then address).
    pub symbols: Vec<Symbol>,
    /// Structure layouts sorted by name.
    pub structs: Vec<StructLayout>,
    /// Text fingerprint (empty when the image had no text to hash).
    pub text: TextImage,
    /// The image's own `sys_call_table`: each entry's link-time handler
    /// address and its symbol (empty when unknown).
    pub syscalls: Vec<(u64, String)>,
}

/// Why a profile could not be decoded or a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileError {
    /// The data does not start with [`PROFILE_MAGIC`].
    NotAProfile,
    /// The profile was written by another format version.
    Version(u32),
    /// The postcard body is malformed or truncated.
    Corrupt,
}

impl core::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProfileError::NotAProfile => f.write_str("not a Bulkhead VMI profile (bad magic)"),
            ProfileError::Version(v) => write!(
                f,
                "profile format version {v}, this build reads version {PROFILE_VERSION}: rebuild the profile with `bulkhead profile`"
            ),
            ProfileError::Corrupt => f.write_str("profile is truncated or corrupt"),
        }
    }
}

impl Profile {
    /// Serialises to the versioned file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(PROFILE_MAGIC);
        out.extend_from_slice(&PROFILE_VERSION.to_le_bytes());
        // Serialising owned data into a Vec cannot fail; an empty body would
        // be rejected on load anyway.
        if let Ok(body) = postcard::to_allocvec(self) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Parses the versioned file format.
    pub fn from_bytes(data: &[u8]) -> Result<Profile, ProfileError> {
        if data.len() < 12 || &data[..8] != PROFILE_MAGIC {
            return Err(ProfileError::NotAProfile);
        }
        let v = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
        if v != PROFILE_VERSION {
            return Err(ProfileError::Version(v));
        }
        let mut p: Profile =
            postcard::from_bytes(&data[12..]).map_err(|_| ProfileError::Corrupt)?;
        p.normalise();
        Ok(p)
    }

    /// Sorts symbols and structs so lookups can binary-search.
    pub fn normalise(&mut self) {
        self.symbols
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.addr.cmp(&b.addr)));
        self.structs.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Link-time address of a symbol.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let i = self.symbols.partition_point(|s| s.name.as_str() < name);
        self.symbols
            .get(i)
            .filter(|s| s.name == name)
            .map(|s| s.addr)
    }

    /// Layout of `struct name`.
    pub fn layout(&self, name: &str) -> Option<&StructLayout> {
        let i = self.structs.partition_point(|s| s.name.as_str() < name);
        self.structs.get(i).filter(|s| s.name == name)
    }

    /// Offset of `field` in `struct st`.
    pub fn offset(&self, st: &str, field: &str) -> Option<u32> {
        self.layout(st)?.field(field).map(|f| f.offset)
    }

    /// An index of symbols by address for naming code addresses.
    pub fn address_index(&self) -> SymbolIndex {
        // Aliases share an address (`__do_sys_getpid` and `__x64_sys_getpid`):
        // the global one sorts last and is the one lookups return.
        let mut by_addr: Vec<(u64, bool, u32)> = self
            .symbols
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.kind, b'T' | b't' | b'W' | b'w'))
            .map(|(i, s)| (s.addr, matches!(s.kind, b'T' | b'W'), i as u32))
            .collect();
        by_addr.sort_unstable();
        let by_addr = by_addr.into_iter().map(|(a, _, i)| (a, i)).collect();
        SymbolIndex { by_addr }
    }
}

impl StructLayout {
    /// The member called `name` (first match; dotted names are not used).
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Text symbols sorted by address.
#[derive(Clone, Debug, Default)]
pub struct SymbolIndex {
    by_addr: Vec<(u64, u32)>,
}

impl SymbolIndex {
    /// The text symbol at or below `addr` (link-time) and the offset into it.
    pub fn lookup<'p>(&self, profile: &'p Profile, addr: u64) -> Option<(&'p str, u64)> {
        let i = self.by_addr.partition_point(|&(a, _)| a <= addr);
        let (a, idx) = *self.by_addr.get(i.checked_sub(1)?)?;
        let s = profile.symbols.get(idx as usize)?;
        Some((s.name.as_str(), addr - a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn sample() -> Profile {
        let mut p = Profile {
            banner: "Linux version 6.1.0".to_string(),
            symbols: vec![
                Symbol {
                    name: "init_task".into(),
                    addr: 0xffff_ffff_8200_0000,
                    kind: b'D',
                },
                Symbol {
                    name: "_stext".into(),
                    addr: 0xffff_ffff_8100_0000,
                    kind: b'T',
                },
                Symbol {
                    name: "do_sys".into(),
                    addr: 0xffff_ffff_8100_1000,
                    kind: b'T',
                },
            ],
            structs: vec![StructLayout {
                name: "list_head".into(),
                size: 16,
                fields: vec![
                    Field {
                        name: "next".into(),
                        offset: 0,
                        size: 8,
                        type_name: "struct list_head *".into(),
                    },
                    Field {
                        name: "prev".into(),
                        offset: 8,
                        size: 8,
                        type_name: "struct list_head *".into(),
                    },
                ],
            }],
            text: TextImage::default(),
            syscalls: vec![(0xffff_ffff_8100_1000, "do_sys".into())],
        };
        p.normalise();
        p
    }

    #[test]
    fn roundtrip_and_lookup() {
        let p = sample();
        let q = Profile::from_bytes(&p.to_bytes()).unwrap();
        assert_eq!(p, q);
        assert_eq!(q.symbol("init_task"), Some(0xffff_ffff_8200_0000));
        assert_eq!(q.symbol("nope"), None);
        assert_eq!(q.offset("list_head", "prev"), Some(8));
        let idx = q.address_index();
        assert_eq!(
            idx.lookup(&q, 0xffff_ffff_8100_1010),
            Some(("do_sys", 0x10))
        );
        assert_eq!(idx.lookup(&q, 0x10), None);
    }

    #[test]
    fn rejects_bad_files() {
        let p = sample();
        let mut b = p.to_bytes();
        assert_eq!(
            Profile::from_bytes(b"garbage"),
            Err(ProfileError::NotAProfile)
        );
        b[8] = 9;
        assert_eq!(Profile::from_bytes(&b), Err(ProfileError::Version(9)));
        let mut b = p.to_bytes();
        b.truncate(b.len() - 5);
        assert_eq!(Profile::from_bytes(&b), Err(ProfileError::Corrupt));
    }
}
