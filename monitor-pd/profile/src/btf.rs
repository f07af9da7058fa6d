//! A reader for the kernel's `.BTF` section (BPF Type Format): every type
//! the kernel was built with, which is where the profile takes structure
//! layouts from instead of DWARF debug info.
//!
//! Design rules: the whole section is parsed into a type table up front with
//! every length checked; type references are resolved lazily and every
//! resolution is depth-bounded, so a malformed or cyclic section gives an
//! error or a placeholder name, never a panic or a hang.

use monitor_core::profile::{Field, StructLayout};

/// BTF type kinds (`BTF_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Kind {
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

/// One member of a struct/union, enum value, or function parameter.
#[derive(Clone, Debug)]
pub struct Member {
    /// Name (may be empty for anonymous members).
    pub name: String,
    /// Referenced type id (struct members, params) — 0 for enum values.
    pub type_id: u32,
    /// Bit offset for members; the value for enumerators.
    pub offset_or_value: i64,
    /// Bitfield width in bits (0 = not a bitfield).
    pub bitfield: u32,
}

/// One BTF type.
#[derive(Clone, Debug)]
pub struct Type {
    /// Kind.
    pub kind: Kind,
    /// Name (empty for anonymous types).
    pub name: String,
    /// `size` for sized kinds, the referenced type id for reference kinds.
    pub size_or_type: u32,
    /// Members/enumerators/params.
    pub members: Vec<Member>,
    /// For arrays: (element type, element count).
    pub array: Option<(u32, u32)>,
    /// For ints: (encoding bits, bit size).
    pub int: Option<(u32, u32)>,
}

/// A parsed `.BTF` section. Type id `i` is `types[i]` (id 0 is void).
#[derive(Debug)]
pub struct Btf {
    /// All types, indexed by id.
    pub types: Vec<Type>,
}

/// Why a `.BTF` section could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BtfError {
    /// Wrong magic: not BTF, or big-endian BTF.
    BadMagic,
    /// A header or type record runs past the section.
    Truncated(&'static str),
    /// A kind number this reader does not know.
    UnknownKind(u32),
}

impl std::fmt::Display for BtfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BtfError::BadMagic => write!(
                f,
                ".BTF section has a bad magic (expected 0xeb9f little-endian)"
            ),
            BtfError::Truncated(what) => write!(f, ".BTF section is truncated in its {what}"),
            BtfError::UnknownKind(k) => write!(f, ".BTF section has unknown type kind {k}"),
        }
    }
}

fn u32_at(d: &[u8], off: usize, what: &'static str) -> Result<u32, BtfError> {
    d.get(off..off + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(BtfError::Truncated(what))
}

fn cstr(strings: &[u8], off: u32) -> String {
    let s = strings.get(off as usize..).unwrap_or(&[]);
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

impl Btf {
    /// Parses a raw `.BTF` section.
    pub fn parse(d: &[u8]) -> Result<Btf, BtfError> {
        if d.len() < 24 || d[0] != 0x9f || d[1] != 0xeb {
            return Err(BtfError::BadMagic);
        }
        let hdr_len = u32_at(d, 4, "header")? as usize;
        let type_off = u32_at(d, 8, "header")? as usize;
        let type_len = u32_at(d, 12, "header")? as usize;
        let str_off = u32_at(d, 16, "header")? as usize;
        let str_len = u32_at(d, 20, "header")? as usize;
        let tstart = hdr_len
            .checked_add(type_off)
            .ok_or(BtfError::Truncated("header"))?;
        let tsec = d
            .get(tstart..tstart.saturating_add(type_len))
            .filter(|s| s.len() == type_len)
            .ok_or(BtfError::Truncated("type section"))?;
        let sstart = hdr_len.saturating_add(str_off);
        let strings = d
            .get(sstart..sstart.saturating_add(str_len))
            .filter(|s| s.len() == str_len)
            .ok_or(BtfError::Truncated("string section"))?;

        let mut types = vec![Type {
            kind: Kind::Void,
            name: String::new(),
            size_or_type: 0,
            members: Vec::new(),
            array: None,
            int: None,
        }];
        let mut p = 0usize;
        while p < tsec.len() {
            let name_off = u32_at(tsec, p, "type records")?;
            let info = u32_at(tsec, p + 4, "type records")?;
            let size_or_type = u32_at(tsec, p + 8, "type records")?;
            p += 12;
            let vlen = (info & 0xffff) as usize;
            let kind_no = (info >> 24) & 0x1f;
            let kflag = info >> 31 != 0;
            let kind = match kind_no {
                1 => Kind::Int,
                2 => Kind::Ptr,
                3 => Kind::Array,
                4 => Kind::Struct,
                5 => Kind::Union,
                6 => Kind::Enum,
                7 => Kind::Fwd,
                8 => Kind::Typedef,
                9 => Kind::Volatile,
                10 => Kind::Const,
                11 => Kind::Restrict,
                12 => Kind::Func,
                13 => Kind::FuncProto,
                14 => Kind::Var,
                15 => Kind::Datasec,
                16 => Kind::Float,
                17 => Kind::DeclTag,
                18 => Kind::TypeTag,
                19 => Kind::Enum64,
                k => return Err(BtfError::UnknownKind(k)),
            };
            let mut t = Type {
                kind,
                name: cstr(strings, name_off),
                size_or_type,
                members: Vec::new(),
                array: None,
                int: None,
            };
            match kind {
                Kind::Int => {
                    let v = u32_at(tsec, p, "int record")?;
                    t.int = Some(((v >> 24) & 0xf, v & 0xff));
                    p += 4;
                }
                Kind::Array => {
                    let elem = u32_at(tsec, p, "array record")?;
                    let n = u32_at(tsec, p + 8, "array record")?;
                    t.array = Some((elem, n));
                    p += 12;
                }
                Kind::Struct | Kind::Union => {
                    for _ in 0..vlen {
                        let n = u32_at(tsec, p, "struct members")?;
                        let ty = u32_at(tsec, p + 4, "struct members")?;
                        let off = u32_at(tsec, p + 8, "struct members")?;
                        let (bits, bitfield) = if kflag {
                            (off & 0xff_ffff, off >> 24)
                        } else {
                            (off, 0)
                        };
                        t.members.push(Member {
                            name: cstr(strings, n),
                            type_id: ty,
                            offset_or_value: bits as i64,
                            bitfield,
                        });
                        p += 12;
                    }
                }
                Kind::Enum => {
                    for _ in 0..vlen {
                        let n = u32_at(tsec, p, "enum values")?;
                        let v = u32_at(tsec, p + 4, "enum values")?;
                        let val = if kflag { v as i32 as i64 } else { v as i64 };
                        t.members.push(Member {
                            name: cstr(strings, n),
                            type_id: 0,
                            offset_or_value: val,
                            bitfield: 0,
                        });
                        p += 8;
                    }
                }
                Kind::Enum64 => {
                    for _ in 0..vlen {
                        let n = u32_at(tsec, p, "enum64 values")?;
                        let lo = u32_at(tsec, p + 4, "enum64 values")? as u64;
                        let hi = u32_at(tsec, p + 8, "enum64 values")? as u64;
                        t.members.push(Member {
                            name: cstr(strings, n),
                            type_id: 0,
                            offset_or_value: ((hi << 32) | lo) as i64,
                            bitfield: 0,
                        });
                        p += 12;
                    }
                }
                Kind::FuncProto => {
                    for _ in 0..vlen {
                        let n = u32_at(tsec, p, "function parameters")?;
                        let ty = u32_at(tsec, p + 4, "function parameters")?;
                        t.members.push(Member {
                            name: cstr(strings, n),
                            type_id: ty,
                            offset_or_value: 0,
                            bitfield: 0,
                        });
                        p += 8;
                    }
                }
                Kind::Var | Kind::DeclTag => p += 4,
                Kind::Datasec => p += 12 * vlen,
                _ => {}
            }
            types.push(t);
        }
        if p != tsec.len() {
            return Err(BtfError::Truncated("type records"));
        }
        Ok(Btf { types })
    }

    /// The type with id `id`.
    pub fn get(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..64 {
            match self.get(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        Kind::Typedef
                            | Kind::Volatile
                            | Kind::Const
                            | Kind::Restrict
                            | Kind::TypeTag
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => return id,
            }
        }
        id
    }

    /// `sizeof` the type (0 when it has none or is malformed).
    pub fn size_of(&self, id: u32) -> u64 {
        self.size_depth(id, 0)
    }

    fn size_depth(&self, id: u32, depth: u32) -> u64 {
        if depth > 64 {
            return 0;
        }
        let id = self.resolve(id);
        match self.get(id) {
            Some(t) => match t.kind {
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Float => t.size_or_type as u64,
                Kind::Ptr => 8,
                Kind::Array => t
                    .array
                    .map(|(e, n)| self.size_depth(e, depth + 1).saturating_mul(n as u64))
                    .unwrap_or(0),
                _ => 0,
            },
            None => 0,
        }
    }

    /// A C-like name of the type (`struct list_head *`, `char[16]`).
    pub fn type_name(&self, id: u32) -> String {
        self.name_depth(id, 0)
    }

    fn name_depth(&self, id: u32, depth: u32) -> String {
        if depth > 32 {
            return "?".into();
        }
        let Some(t) = self.get(id) else {
            return "?".into();
        };
        let anon = |s: &str| {
            if t.name.is_empty() {
                format!("{s} <anonymous>")
            } else {
                format!("{s} {}", t.name)
            }
        };
        match t.kind {
            Kind::Void => "void".into(),
            Kind::Int | Kind::Float | Kind::Typedef => t.name.clone(),
            Kind::Ptr => format!("{} *", self.name_depth(t.size_or_type, depth + 1)),
            Kind::Array => match t.array {
                Some((e, n)) => format!("{}[{n}]", self.name_depth(e, depth + 1)),
                None => "?".into(),
            },
            Kind::Struct => anon("struct"),
            Kind::Union => anon("union"),
            Kind::Enum | Kind::Enum64 => anon("enum"),
            Kind::Fwd => format!("struct {}", t.name),
            Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => {
                self.name_depth(t.size_or_type, depth + 1)
            }
            Kind::FuncProto => "func".into(),
            _ => t.name.clone(),
        }
    }

    /// Finds a named struct (or union) with members; a forward declaration
    /// of the same name is skipped.
    pub fn find_struct(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| {
                matches!(t.kind, Kind::Struct | Kind::Union)
                    && t.name == name
                    && !t.members.is_empty()
            })
            .map(|i| i as u32)
    }

    /// The layout of type `id`, with anonymous struct/union members
    /// flattened in (as C lets code name them).
    pub fn layout(&self, id: u32) -> Option<StructLayout> {
        let t = self.get(id)?;
        let mut fields = Vec::new();
        self.flatten(id, 0, &mut fields, 0);
        fields.sort_by_key(|f: &Field| f.offset);
        Some(StructLayout {
            name: t.name.clone(),
            size: t.size_or_type,
            fields,
        })
    }

    fn flatten(&self, id: u32, base_bits: u64, out: &mut Vec<Field>, depth: u32) {
        if depth > 16 {
            return;
        }
        let Some(t) = self.get(id) else { return };
        for m in &t.members {
            let bits = base_bits + m.offset_or_value as u64;
            let rid = self.resolve(m.type_id);
            let is_aggr = self
                .get(rid)
                .map(|t| matches!(t.kind, Kind::Struct | Kind::Union))
                .unwrap_or(false);
            if m.name.is_empty() {
                if is_aggr {
                    self.flatten(rid, bits, out, depth + 1);
                }
                continue;
            }
            let size = if m.bitfield != 0 {
                0
            } else {
                self.size_of(m.type_id) as u32
            };
            out.push(Field {
                name: m.name.clone(),
                offset: (bits / 8) as u32,
                size,
                type_name: self.type_name(m.type_id),
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a small BTF blob: int, struct list_head { next, prev }, and
    /// struct task { int pid; union { struct list_head tasks; }; char comm[16]; }.
    pub fn sample_btf() -> Vec<u8> {
        let mut strs = b"\0int\0list_head\0next\0prev\0task\0pid\0tasks\0comm\0char\0".to_vec();
        let off = |s: &str, strs: &[u8]| {
            let needle = [s.as_bytes(), b"\0"].concat();
            strs.windows(needle.len())
                .position(|w| w == needle.as_slice())
                .unwrap() as u32
        };
        let (o_int, o_lh, o_next, o_prev, o_task, o_pid, o_tasks, o_comm, o_char) = (
            off("int", &strs),
            off("list_head", &strs),
            off("next", &strs),
            off("prev", &strs),
            off("task", &strs),
            off("pid", &strs),
            off("tasks", &strs),
            off("comm", &strs),
            off("char", &strs),
        );
        let mut ty = Vec::new();
        let mut rec = |v: &[u32]| {
            v.iter()
                .for_each(|x| ty.extend_from_slice(&x.to_le_bytes()))
        };
        // 1: int
        rec(&[o_int, 1 << 24, 4, (1 << 24) | 32]);
        // 2: struct list_head * ; 3: struct list_head
        rec(&[0, 2 << 24, 3]);
        rec(&[o_lh, (4 << 24) | 2, 16, o_next, 2, 0, o_prev, 2, 64]);
        // 4: anonymous union { struct list_head tasks; }
        rec(&[0, (5 << 24) | 1, 16, o_tasks, 3, 0]);
        // 5: char; 6: char[16]
        rec(&[o_char, 1 << 24, 1, (1 << 24) | 8]);
        rec(&[0, 3 << 24, 0, 5, 1, 16]);
        // 7: struct task
        rec(&[
            o_task,
            (4 << 24) | 3,
            40,
            o_pid,
            1,
            0,
            0,
            4,
            64,
            o_comm,
            6,
            192,
        ]);
        strs.push(0);
        let mut d = Vec::new();
        d.extend_from_slice(&[0x9f, 0xeb, 1, 0]);
        d.extend_from_slice(&24u32.to_le_bytes());
        d.extend_from_slice(&0u32.to_le_bytes());
        d.extend_from_slice(&(ty.len() as u32).to_le_bytes());
        d.extend_from_slice(&(ty.len() as u32).to_le_bytes());
        d.extend_from_slice(&(strs.len() as u32).to_le_bytes());
        d.extend_from_slice(&ty);
        d.extend_from_slice(&strs);
        d
    }

    #[test]
    fn parses_and_flattens() {
        let btf = Btf::parse(&sample_btf()).unwrap();
        let id = btf.find_struct("task").unwrap();
        let l = btf.layout(id).unwrap();
        assert_eq!(l.size, 40);
        let names: Vec<_> = l
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.offset, f.size))
            .collect();
        assert_eq!(
            names,
            vec![("pid", 0, 4), ("tasks", 8, 16), ("comm", 24, 16)]
        );
        assert_eq!(l.field("tasks").unwrap().type_name, "struct list_head");
        assert_eq!(l.field("comm").unwrap().type_name, "char[16]");
        let lh = btf.layout(btf.find_struct("list_head").unwrap()).unwrap();
        assert_eq!(lh.field("prev").unwrap().type_name, "struct list_head *");
    }

    #[test]
    fn rejects_malformed() {
        let d = sample_btf();
        assert_eq!(Btf::parse(&d[..10]).unwrap_err(), BtfError::BadMagic);
        assert!(matches!(
            Btf::parse(&d[..d.len() - 30]),
            Err(BtfError::Truncated(_))
        ));
        let mut bad = d.clone();
        bad[24 + 7] = 31; // kind byte of the first type record
        assert_eq!(Btf::parse(&bad).unwrap_err(), BtfError::UnknownKind(31));
        // Every prefix is an error or a parse, never a panic.
        for n in 0..d.len() {
            let _ = Btf::parse(&d[..n]);
        }
    }
}
