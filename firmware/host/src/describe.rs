//! `bulkhead container inspect`: everything in a container, in words.

use std::fmt::Write;

use firmware_core::manifest::InspectionResult;
use firmware_core::{wasm, Container};

use crate::hex;

/// Whether a container still carries the placeholder signature `build` leaves.
pub fn is_unsigned(c: &Container) -> bool {
    c.signer == [0; 32] && c.signature == [0; 64]
}

/// The words for `c`.
pub fn describe(c: &Container) -> String {
    let m = &c.manifest;
    let mut s = String::new();
    let _ = writeln!(s, "Firmware container `{}` version {}", m.name, m.version);
    let _ = writeln!(s, "  built for platform: {}", m.platform);
    let _ = writeln!(s, "  entry point: exported function `{}`", m.entry);
    let _ = writeln!(
        s,
        "  critical: {}",
        if m.critical {
            "yes — if it does not pass, the boot stops"
        } else {
            "no — a failure is reported, the boot goes on"
        }
    );
    if m.capabilities.iter().next().is_none() {
        let _ = writeln!(s, "  capabilities: none (it can only compute)");
    } else {
        let _ = writeln!(s, "  capabilities (it may only call these host functions):");
        for cap in m.capabilities.iter() {
            let _ = writeln!(s, "    - {}: {}", cap.name(), cap.describe());
        }
    }
    let l = &m.limits;
    let _ = writeln!(s, "  limits:");
    let _ = writeln!(
        s,
        "    - fuel: {} units (about one per Wasm instruction)",
        l.fuel
    );
    let _ = writeln!(
        s,
        "    - memory: at most {} pages of 64 KiB ({} KiB)",
        l.memory_pages,
        l.memory_pages as u64 * 64
    );
    let _ = writeln!(s, "    - wall-clock budget: {} ms", l.wall_clock_ms);
    let _ = writeln!(
        s,
        "  module: {} bytes, SHA-256 {}",
        m.module_len,
        hex(&m.module_sha256)
    );
    if c.module.len() != m.module_len as usize {
        let _ = writeln!(
            s,
            "    WARNING: the module in the file is {} bytes, not what the manifest says",
            c.module.len()
        );
    }
    let sections = wasm::sections(&c.module);
    if m.regions.is_empty() {
        let _ = writeln!(s, "  change-prohibited regions: none");
    } else {
        let _ = writeln!(
            s,
            "  change-prohibited regions (must not change without a new inspection):"
        );
        for (i, r) in m.regions.iter().enumerate() {
            let end = r.offset as u64 + r.len as u64;
            let covers = sections
                .as_ref()
                .and_then(|secs| {
                    secs.iter()
                        .find(|x| x.start == r.offset && x.end as u64 == end)
                })
                .map(|x| format!(" = the `{}` section", wasm::section_name(x.id)))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "    #{i}: bytes {}..{} ({} bytes){covers}, SHA-256 {}",
                r.offset,
                end,
                r.len,
                hex(&r.sha256)
            );
        }
    }
    match &m.inspection {
        None => {
            let _ = writeln!(s, "  vulnerability inspection: none recorded");
        }
        Some(ins) => {
            let result = match ins.result {
                InspectionResult::Clean => "clean (no known vulnerability)".to_string(),
                InspectionResult::Findings { count, worst } => {
                    format!("{count} finding(s), the worst {}", worst.name())
                }
            };
            let _ = writeln!(
                s,
                "  vulnerability inspection: by {} on {}: {result}",
                ins.scanner, ins.date
            );
        }
    }
    if is_unsigned(c) {
        let _ = writeln!(
            s,
            "  signature: none yet (made by `build`; sign it with `bulkhead container sign`)"
        );
    } else {
        let _ = writeln!(s, "  signed by ed25519 key {}", hex(&c.signer));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0\x01\x01\x00\x0a\x02\x00\x00";

    #[test]
    fn words_cover_every_field() {
        let text = r#"
name = "memtest"
version = "1.2.3"
platform = "qemu-q35"
critical = true
capabilities = ["scratch"]
[limits]
fuel = 1000
memory_pages = 2
wall_clock_ms = 100
[[protected]]
section = "code"
[inspection]
scanner = "lab"
date = "2026-11-21"
result = "findings"
findings = 3
worst = "medium"
"#;
        let m = crate::manifest_toml::build(text, "m.toml", MODULE).unwrap();
        let c = Container {
            manifest_bytes: m.encode().unwrap(),
            manifest: m.clone(),
            module: MODULE.to_vec(),
            signer: [0; 32],
            signature: [0; 64],
        };
        let words = describe(&c);
        for expected in [
            "`memtest` version 1.2.3",
            "platform: qemu-q35",
            "if it does not pass, the boot stops",
            "scratch: read and write the scratch memory region",
            "at most 2 pages of 64 KiB (128 KiB)",
            "wall-clock budget: 100 ms",
            "#0: bytes 11..15 (4 bytes) = the `code` section",
            "by lab on 2026-11-21: 3 finding(s), the worst medium",
            "signature: none yet",
        ] {
            assert!(
                words.contains(expected),
                "missing {expected:?} in:\n{words}"
            );
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let signed = Container::sign(&m, MODULE.to_vec(), &key).unwrap();
        assert!(describe(&signed).contains(&format!(
            "signed by ed25519 key {}",
            hex(key.verifying_key().as_bytes())
        )));
    }
}
