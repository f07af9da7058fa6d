//! The manifest as people write it (TOML), turned into the signed binary
//! [`Manifest`] for a given module: the tool computes the module's length
//! and SHA-256 and each change-prohibited region's SHA-256, so a person
//! never copies a hash by hand.
//!
//! Regions are either a whole section of the module (`section = "code"`) or
//! a byte range (`offset`, `len`). Unknown keys are errors (a misspelt
//! `critcal` must not silently mean "not critical").

use serde::Deserialize;
use sha2::{Digest, Sha256};

use firmware_core::manifest::{
    Capability, Date, Inspection, InspectionResult, Limits, Manifest, ProtectedRegion, Severity,
    Version,
};
use firmware_core::wasm;

use crate::{err, Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    version: String,
    platform: String,
    #[serde(default = "default_entry")]
    entry: String,
    #[serde(default)]
    critical: bool,
    capabilities: Vec<String>,
    limits: LimitsToml,
    #[serde(default)]
    protected: Vec<RegionToml>,
    inspection: Option<InspectionToml>,
}

fn default_entry() -> String {
    "run".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsToml {
    fuel: u64,
    memory_pages: u32,
    wall_clock_ms: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionToml {
    section: Option<String>,
    offset: Option<u32>,
    len: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InspectionToml {
    scanner: String,
    date: String,
    result: String,
    findings: Option<u16>,
    worst: Option<String>,
}

/// Builds the manifest described by `text` (the file named `origin`) for `module`.
pub fn build(text: &str, origin: &str, module: &[u8]) -> Result<Manifest> {
    let f: File = toml::from_str(text).map_err(|e| Error(format!("{origin}: {e}")))?;
    let version = Version::parse(&f.version).ok_or_else(|| {
        Error(format!(
            "{origin}: version `{}` must be MAJOR.MINOR.PATCH, e.g. 1.0.0",
            f.version
        ))
    })?;
    let mut capabilities = firmware_core::CapabilitySet::EMPTY;
    for c in &f.capabilities {
        let cap = Capability::from_name(c).ok_or_else(|| {
            let known: Vec<_> = Capability::ALL.iter().map(|c| c.name()).collect();
            Error(format!(
                "{origin}: capabilities: `{c}` is not a capability; known: {}",
                known.join(", ")
            ))
        })?;
        capabilities = capabilities.with(cap);
    }
    let module_len = u32::try_from(module.len())
        .map_err(|_| Error(format!("{origin}: the module is larger than 4 GiB")))?;
    let sections = wasm::sections(module);
    let mut regions = Vec::new();
    for (i, r) in f.protected.iter().enumerate() {
        let (offset, len) = match (&r.section, r.offset, r.len) {
            (Some(name), None, None) => {
                let id = wasm::section_id(name)
                    .ok_or_else(|| Error(format!("{origin}: protected #{i}: `{name}` is not a section name (type, import, function, table, memory, global, export, start, element, code, data, datacount, custom)")))?;
                let secs = sections.as_ref().ok_or_else(|| Error(format!("{origin}: protected #{i}: the module is not a well-formed Wasm binary, so it has no sections")))?;
                let s = secs
                    .iter()
                    .find(|s| s.id == id)
                    .ok_or_else(|| Error(format!("{origin}: protected #{i}: the module has no `{name}` section")))?;
                (s.start, s.end - s.start)
            }
            (None, Some(o), Some(l)) => (o, l),
            _ => return err(format!("{origin}: protected #{i}: give either `section = \"code\"` or both `offset` and `len`")),
        };
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= module_len && len > 0);
        let Some(end) = end else {
            return err(format!("{origin}: protected #{i}: bytes {offset}..{} are empty or outside the {module_len}-byte module", offset as u64 + len as u64));
        };
        regions.push(ProtectedRegion {
            offset,
            len,
            sha256: Sha256::digest(&module[offset as usize..end as usize]).into(),
        });
    }
    let inspection = match f.inspection {
        None => None,
        Some(i) => {
            let date = Date::parse(&i.date).ok_or_else(|| {
                Error(format!(
                    "{origin}: inspection.date `{}` must be an existing day as YYYY-MM-DD",
                    i.date
                ))
            })?;
            let result = match (i.result.as_str(), i.findings, i.worst.as_deref()) {
                ("clean", None, None) => InspectionResult::Clean,
                ("findings", Some(count), Some(w)) if count > 0 => InspectionResult::Findings {
                    count,
                    worst: Severity::from_name(w).ok_or_else(|| Error(format!("{origin}: inspection.worst `{w}` must be low, medium, high or critical")))?,
                },
                _ => return err(format!("{origin}: inspection: write `result = \"clean\"`, or `result = \"findings\"` with `findings = N` (N > 0) and `worst = \"low\"|\"medium\"|\"high\"|\"critical\"`")),
            };
            Some(Inspection {
                scanner: i.scanner,
                date,
                result,
            })
        }
    };
    let m = Manifest {
        name: f.name,
        version,
        platform: f.platform,
        entry: f.entry,
        critical: f.critical,
        capabilities,
        limits: Limits {
            fuel: f.limits.fuel,
            memory_pages: f.limits.memory_pages,
            wall_clock_ms: f.limits.wall_clock_ms,
        },
        module_len,
        module_sha256: Sha256::digest(module).into(),
        regions,
        inspection,
    };
    m.validate().map_err(|e| Error(format!("{origin}: {e}")))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0\x01\x01\x00\x0a\x02\x00\x00";
    const GOOD: &str = r#"
name = "memtest"
version = "1.0.0"
platform = "qemu-q35"
capabilities = ["scratch", "report"]
[limits]
fuel = 1000
memory_pages = 2
wall_clock_ms = 100
[[protected]]
section = "code"
[[protected]]
offset = 0
len = 8
[inspection]
scanner = "s"
date = "2026-11-21"
result = "findings"
findings = 2
worst = "low"
"#;

    #[test]
    fn builds_hashes_and_regions() {
        let m = build(GOOD, "m.toml", MODULE).unwrap();
        assert_eq!(m.entry, "run");
        assert_eq!((m.regions[0].offset, m.regions[0].len), (11, 4));
        assert_eq!(
            m.regions[1].sha256,
            <[u8; 32]>::from(Sha256::digest(&MODULE[..8]))
        );
        assert_eq!(m.module_len, 15);
        assert_eq!(
            m.inspection.unwrap().result,
            InspectionResult::Findings {
                count: 2,
                worst: Severity::Low
            }
        );
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = |text: &str| build(text, "m.toml", MODULE).unwrap_err().0;
        assert!(
            e(&GOOD.replace("\"report\"", "\"reboot\"")).contains("`reboot` is not a capability")
        );
        assert!(e(&GOOD.replace("section = \"code\"", "section = \"data\""))
            .contains("no `data` section"));
        assert!(e(&GOOD.replace("len = 8", "len = 80")).contains("protected #1"));
        assert!(e(&GOOD.replace("version = \"1.0.0\"", "version = \"1\""))
            .contains("MAJOR.MINOR.PATCH"));
        assert!(
            e(&GOOD.replace("date = \"2026-11-21\"", "date = \"2026-02-30\""))
                .contains("inspection.date")
        );
        let typo = e(&GOOD.replace("platform =", "critcal = true\nplatform ="));
        assert!(
            typo.contains("m.toml") && typo.contains("critcal"),
            "{typo}"
        );
        assert!(e(&GOOD.replace("fuel = 1000", "fuel = 0")).contains("limits"));
    }
}
