//! The platform's trust configuration (TOML) turned into the
//! [`Policy`] the firmware PD embeds (`Policy::encode`).
//!
//! ```toml
//! platform = "qemu-q35"
//! capabilities = ["log", "report", "scratch"]   # what the PD holds
//! critical = ["memtest"]                        # stop the boot if these fail or are missing
//! stop_on_refusal = false                       # stop the boot on any refused container
//! [max_limits]
//! fuel = 1_000_000_000
//! memory_pages = 16
//! wall_clock_ms = 30_000
//! [inspection]
//! required = true
//! accept_findings_up_to = "low"                 # omit: only clean results
//! not_before = "2026-01-01"
//! scanners = ["bulkhead-review"]                # omit or empty: any scanner
//! [[key]]
//! name = "vendor-release"
//! public_key_file = "release.pub"               # relative to this file; or public_key = "<hex>"
//! ```

use std::path::Path;

use serde::Deserialize;

use firmware_core::manifest::{Capability, Date, Limits, Severity};
use firmware_core::verify::{InspectionPolicy, Policy, TrustedKey};
use firmware_core::CapabilitySet;

use crate::{err, keys, unhex, Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    platform: String,
    capabilities: Vec<String>,
    #[serde(default)]
    critical: Vec<String>,
    #[serde(default)]
    stop_on_refusal: bool,
    max_limits: LimitsToml,
    #[serde(default)]
    inspection: InspectionToml,
    #[serde(default)]
    key: Vec<KeyToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsToml {
    fuel: u64,
    memory_pages: u32,
    wall_clock_ms: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InspectionToml {
    #[serde(default)]
    required: bool,
    accept_findings_up_to: Option<String>,
    not_before: Option<String>,
    #[serde(default)]
    scanners: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyToml {
    name: String,
    public_key: Option<String>,
    public_key_file: Option<String>,
}

/// Reads the trust configuration at `path`.
pub fn load(path: &Path) -> Result<Policy> {
    let text = keys::read_text(path)?;
    parse(&text, path)
}

/// Parses trust configuration `text` read from `path` (key files are
/// relative to its directory).
pub fn parse(text: &str, path: &Path) -> Result<Policy> {
    let origin = path.display().to_string();
    let f: File = toml::from_str(text).map_err(|e| Error(format!("{origin}: {e}")))?;
    let mut held = CapabilitySet::EMPTY;
    for c in &f.capabilities {
        let cap = Capability::from_name(c)
            .ok_or_else(|| Error(format!("{origin}: capabilities: `{c}` is not a capability")))?;
        held = held.with(cap);
    }
    let accept = match f.inspection.accept_findings_up_to.as_deref() {
        None => None,
        Some(s) => Some(Severity::from_name(s).ok_or_else(|| Error(format!("{origin}: inspection.accept_findings_up_to `{s}` must be low, medium, high or critical")))?),
    };
    let not_before = match f.inspection.not_before.as_deref() {
        None => None,
        Some(s) => Some(Date::parse(s).ok_or_else(|| {
            Error(format!(
                "{origin}: inspection.not_before `{s}` must be YYYY-MM-DD"
            ))
        })?),
    };
    if f.key.is_empty() {
        return err(format!("{origin}: no [[key]]: a platform that trusts no key refuses every container; add one made by `bulkhead container keygen`"));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut trusted_keys = Vec::new();
    for (i, k) in f.key.iter().enumerate() {
        let public = match (&k.public_key, &k.public_key_file) {
            (Some(h), None) => unhex(h)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    Error(format!(
                        "{origin}: key #{i} `{}`: public_key must be 64 hex digits",
                        k.name
                    ))
                })?,
            (None, Some(file)) => {
                let p = dir.join(file);
                keys::parse_public(&keys::read_text(&p)?, &p.display().to_string())?
            }
            _ => {
                return err(format!(
                    "{origin}: key #{i} `{}`: give exactly one of public_key or public_key_file",
                    k.name
                ))
            }
        };
        trusted_keys.push(TrustedKey {
            name: k.name.clone(),
            public,
        });
    }
    let l = &f.max_limits;
    Ok(Policy {
        platform: f.platform,
        trusted_keys,
        held,
        max_limits: Limits {
            fuel: l.fuel,
            memory_pages: l.memory_pages,
            wall_clock_ms: l.wall_clock_ms,
        },
        inspection: InspectionPolicy {
            required: f.inspection.required,
            accept_findings_up_to: accept,
            not_before,
            scanners: f.inspection.scanners,
        },
        critical: f.critical,
        stop_on_refusal: f.stop_on_refusal,
    })
}

/// A policy that trusts exactly `keys` for `platform` and otherwise accepts
/// what the format allows: what `verify --pubkey` checks against when no
/// trust configuration is given.
pub fn permissive(platform: &str, keys: Vec<TrustedKey>) -> Policy {
    Policy {
        platform: platform.into(),
        trusted_keys: keys,
        held: CapabilitySet::all(),
        max_limits: Limits {
            fuel: u64::MAX,
            memory_pages: firmware_core::manifest::MAX_MEMORY_PAGES,
            wall_clock_ms: u32::MAX,
        },
        inspection: InspectionPolicy {
            accept_findings_up_to: Some(Severity::Critical),
            ..Default::default()
        },
        critical: vec![],
        stop_on_refusal: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_trust_file_shape() {
        let text = r#"
platform = "qemu-q35"
capabilities = ["log", "report"]
critical = ["memtest"]
[max_limits]
fuel = 10
memory_pages = 2
wall_clock_ms = 5
[inspection]
required = true
accept_findings_up_to = "medium"
not_before = "2026-01-01"
[[key]]
name = "k"
public_key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
"#;
        let p = parse(text, Path::new("/x/trust.toml")).unwrap();
        assert_eq!(p.trusted_keys[0].name, "k");
        assert!(p.held.contains(Capability::Report) && !p.held.contains(Capability::Scratch));
        assert_eq!(p.inspection.accept_findings_up_to, Some(Severity::Medium));
        let e = parse(
            &text.replace(
                "public_key =",
                "public_key_file = \"missing.pub\"\npublic_key =",
            ),
            Path::new("/x/trust.toml"),
        )
        .unwrap_err()
        .0;
        assert!(e.contains("key #0") && e.contains("exactly one"), "{e}");
        let e = parse(
            &text.replace("\"report\"", "\"rport\""),
            Path::new("t.toml"),
        )
        .unwrap_err()
        .0;
        assert!(e.contains("`rport` is not a capability"), "{e}");
    }
}

#[cfg(test)]
mod reference_file {
    use super::*;

    /// The reference trust file in the repository parses, with a key file beside it.
    #[test]
    fn reference_trust_toml_loads() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../containers/trust.toml");
        let dir = std::env::temp_dir().join(format!("bulkhead-trust-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("trust.toml");
        std::fs::copy(&src, &copy).unwrap();
        // Without the key file beside it the error names the file.
        let e = load(&copy).unwrap_err().0;
        assert!(e.contains("dev.pub") && e.contains("cannot read"), "{e}");
        let k = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        std::fs::write(dir.join("dev.pub"), keys::public_text(&k.verifying_key())).unwrap();
        let p = load(&copy).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(p.platform, "qemu-q35");
        assert_eq!(p.trusted_keys[0].public, k.verifying_key().to_bytes());
        assert_eq!(p.critical, ["memtest", "pci-inventory"]);
        assert!(p.inspection.required && p.held == CapabilitySet::all());
        // And survives the encoding the PD embeds.
        assert_eq!(Policy::decode(&p.encode()), Ok(p));
    }
}
