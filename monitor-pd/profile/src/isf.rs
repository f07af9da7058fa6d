//! Volatility 3 ISF (intermediate symbol format) JSON from the same data
//! the profile is built from: every BTF type (typedefs and qualifiers
//! resolved, anonymous aggregates named `unnamed_<id>`), every kallsyms
//! symbol, and `linux_banner`'s bytes so Volatility can identify the image.
//!
//! Design rules: BTF carries no types for ordinary global variables, so the
//! few symbols Volatility's Linux plugins dereference get their type from
//! [`SYMBOL_TYPES`]; everything else is address-only, as in a System.map ISF.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::btf::{Btf, Kind};
use crate::Kernel;

/// Typed symbols: (symbol, struct name or "array:<elem struct>:<n>" /
/// "ptrarray:<n>"); a count of `auto` is the distance to the next symbol.
pub const SYMBOL_TYPES: &[(&str, &str)] = &[
    ("init_task", "task_struct"),
    ("init_mm", "mm_struct"),
    ("init_pid_ns", "pid_namespace"),
    ("modules", "list_head"),
    ("init_files", "files_struct"),
    ("init_fs", "fs_struct"),
    ("init_nsproxy", "nsproxy"),
    ("init_net", "net"),
    ("mod_tree", "mod_tree_root"),
    ("idt_table", "array:gate_struct:256"),
    ("taint_flags", "array:taint_flag:auto"),
    ("sys_call_table", "ptrarray:auto"),
];

struct Conv<'a> {
    btf: &'a Btf,
    /// type id -> user type name for aggregates that were named
    names: BTreeMap<u32, String>,
}

impl<'a> Conv<'a> {
    fn agg_name(&self, id: u32) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("unnamed_{id}"))
    }

    fn desc(&self, id: u32, depth: u32) -> Value {
        if depth > 32 {
            return json!({"kind": "base", "name": "void"});
        }
        let id = self.btf.resolve(id);
        let Some(t) = self.btf.get(id) else {
            return json!({"kind": "base", "name": "void"});
        };
        match t.kind {
            Kind::Void => json!({"kind": "base", "name": "void"}),
            Kind::Int | Kind::Float => json!({"kind": "base", "name": t.name}),
            Kind::Ptr => {
                json!({"kind": "pointer", "subtype": self.desc(t.size_or_type, depth + 1)})
            }
            Kind::Array => {
                let (e, n) = t.array.unwrap_or((0, 0));
                json!({"kind": "array", "count": n, "subtype": self.desc(e, depth + 1)})
            }
            Kind::Struct => json!({"kind": "struct", "name": self.agg_name(id)}),
            Kind::Union => json!({"kind": "union", "name": self.agg_name(id)}),
            Kind::Fwd => json!({"kind": "struct", "name": t.name}),
            Kind::Enum | Kind::Enum64 => json!({"kind": "enum", "name": self.agg_name(id)}),
            Kind::FuncProto | Kind::Func => json!({"kind": "function"}),
            _ => json!({"kind": "base", "name": "void"}),
        }
    }
}

fn base_for_size(size: u32, signed: bool) -> &'static str {
    match (size, signed) {
        (1, true) => "signed char",
        (1, false) => "unsigned char",
        (2, true) => "short int",
        (2, false) => "short unsigned int",
        (4, true) => "int",
        (4, false) => "unsigned int",
        (_, true) => "long int",
        (_, false) => "long unsigned int",
    }
}

/// Writes the ISF JSON for `k`.
pub fn to_isf(k: &Kernel) -> String {
    let btf = &k.btf;
    let mut names = BTreeMap::new();
    let mut taken = std::collections::BTreeSet::new();
    for (i, t) in btf.types.iter().enumerate() {
        if matches!(
            t.kind,
            Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64
        ) {
            let complete = !t.members.is_empty() || t.size_or_type > 0;
            if !t.name.is_empty() && complete && taken.insert(t.name.clone()) {
                names.insert(i as u32, t.name.clone());
            }
        }
    }
    // Duplicate definitions of a name resolve to the first one.
    let by_name: BTreeMap<String, u32> = names.iter().map(|(id, n)| (n.clone(), *id)).collect();
    for (i, t) in btf.types.iter().enumerate() {
        if matches!(
            t.kind,
            Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64
        ) && !t.name.is_empty()
            && !names.contains_key(&(i as u32))
            && by_name.contains_key(&t.name)
        {
            names.insert(i as u32, t.name.clone());
        }
    }
    let conv = Conv { btf, names };

    let mut base_types = Map::new();
    base_types.insert(
        "pointer".into(),
        json!({"size": 8, "signed": false, "kind": "int", "endian": "little"}),
    );
    base_types.insert(
        "void".into(),
        json!({"size": 0, "signed": false, "kind": "void", "endian": "little"}),
    );
    let mut user_types = Map::new();
    let mut enums = Map::new();
    for (i, t) in btf.types.iter().enumerate() {
        let id = i as u32;
        match t.kind {
            Kind::Int => {
                let (enc, _) = t.int.unwrap_or((0, 0));
                let kind = if enc & 4 != 0 {
                    "bool"
                } else if t.name.contains("char") {
                    "char"
                } else {
                    "int"
                };
                base_types.insert(t.name.clone(), json!({"size": t.size_or_type, "signed": enc & 1 != 0, "kind": kind, "endian": "little"}));
            }
            Kind::Float => {
                base_types.insert(t.name.clone(), json!({"size": t.size_or_type, "signed": true, "kind": "float", "endian": "little"}));
            }
            Kind::Struct | Kind::Union => {
                let name = conv.agg_name(id);
                if user_types.contains_key(&name) {
                    continue;
                }
                let mut fields = Map::new();
                for (mi, m) in t.members.iter().enumerate() {
                    let bits = m.offset_or_value as u64;
                    let (fname, anon) = if m.name.is_empty() {
                        (format!("unnamed_field_{mi}"), true)
                    } else {
                        (m.name.clone(), false)
                    };
                    let mut f = if m.bitfield != 0 {
                        let under = btf.resolve(m.type_id);
                        let unit = btf.size_of(under).max(1);
                        let off = bits / (unit * 8) * unit;
                        let ty = conv.desc(under, 0);
                        json!({"type": {"kind": "bitfield", "bit_position": bits - off * 8, "bit_length": m.bitfield, "type": ty}, "offset": off})
                    } else {
                        json!({"type": conv.desc(m.type_id, 0), "offset": bits / 8})
                    };
                    if anon {
                        f["anonymous"] = json!(true);
                    }
                    fields.insert(fname, f);
                }
                let kind = if t.kind == Kind::Union {
                    "union"
                } else {
                    "struct"
                };
                user_types.insert(
                    name,
                    json!({"kind": kind, "size": t.size_or_type, "fields": fields}),
                );
            }
            Kind::Enum | Kind::Enum64 => {
                let name = conv.agg_name(id);
                let signed = t.members.iter().any(|m| m.offset_or_value < 0);
                let constants: Map<String, Value> = t
                    .members
                    .iter()
                    .map(|m| (m.name.clone(), json!(m.offset_or_value)))
                    .collect();
                enums.insert(name, json!({"size": t.size_or_type, "base": base_for_size(t.size_or_type, signed), "constants": constants}));
            }
            _ => {}
        }
    }
    // Forward declarations never defined: an empty struct, so references resolve.
    for t in btf.types.iter().filter(|t| t.kind == Kind::Fwd) {
        user_types
            .entry(t.name.clone())
            .or_insert_with(|| json!({"kind": "struct", "size": 0, "fields": {}}));
    }
    for (n, s, g) in [
        ("signed char", 1, true),
        ("unsigned char", 1, false),
        ("short int", 2, true),
        ("short unsigned int", 2, false),
        ("int", 4, true),
        ("unsigned int", 4, false),
        ("long int", 8, true),
        ("long unsigned int", 8, false),
    ] {
        base_types
            .entry(n)
            .or_insert_with(|| json!({"size": s, "signed": g, "kind": "int", "endian": "little"}));
    }

    let mut symbols = Map::new();
    for s in &k.symbols {
        symbols
            .entry(s.name.clone())
            .or_insert_with(|| json!({"address": s.addr}));
    }
    let mut addrs: Vec<u64> = k.symbols.iter().map(|s| s.addr).collect();
    addrs.sort_unstable();
    for (sym, ty) in SYMBOL_TYPES {
        let Some(addr) = symbols.get(*sym).and_then(|e| e["address"].as_u64()) else {
            continue;
        };
        let span = addrs
            .iter()
            .find(|&&a| a > addr)
            .map(|&a| a - addr)
            .unwrap_or(0);
        let count = |n: &str, size: u64| -> u64 {
            if n == "auto" {
                span / size.max(1)
            } else {
                n.parse().unwrap_or(0)
            }
        };
        let Some(entry) = symbols.get_mut(*sym) else {
            continue;
        };
        let desc = if let Some(rest) = ty.strip_prefix("array:") {
            let mut it = rest.split(':');
            let (e, n) = (it.next().unwrap_or(""), it.next().unwrap_or("0"));
            let Some(size) = user_types.get(e).and_then(|u| u["size"].as_u64()) else {
                continue;
            };
            json!({"kind": "array", "count": count(n, size), "subtype": {"kind": "struct", "name": e}})
        } else if let Some(n) = ty.strip_prefix("ptrarray:") {
            json!({"kind": "array", "count": count(n, 8), "subtype": {"kind": "pointer", "subtype": {"kind": "function"}}})
        } else {
            if !user_types.contains_key(*ty) {
                continue;
            }
            json!({"kind": "struct", "name": ty})
        };
        entry["type"] = desc;
    }
    if let Some(b) = symbols.get_mut("linux_banner") {
        let mut bytes = k.banner.as_bytes().to_vec();
        bytes.push(0);
        b["constant_data"] = json!(base64(&bytes));
        b["type"] = json!({"kind": "array", "count": bytes.len(), "subtype": {"kind": "base", "name": "char"}});
    }
    let isf = json!({
        "metadata": {
            "format": "6.2.0",
            "producer": {"name": "bulkhead-profile", "version": env!("CARGO_PKG_VERSION")},
            "linux": {"symbols": [{"kind": "symtab", "name": "kallsyms"}], "types": [{"kind": "dwarf", "name": "BTF"}]}
        },
        "base_types": base_types,
        "user_types": user_types,
        "enums": enums,
        "symbols": symbols,
    });
    isf.to_string()
}

fn base64(d: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in d.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_known_values() {
        assert_eq!(super::base64(b"Linux"), "TGludXg=");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b"abc"), "YWJj");
    }
}
