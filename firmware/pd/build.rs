//! Embeds the POST bundle: the policy bytes and the signed containers, in
//! run order, from the directory `BULKHEAD_FW_BUNDLE` names (`policy.bin`
//! and `order.txt`, one container file name per line). `cargo xtask`
//! prepares it (see tools/xtask/src/fwpd.rs). A host build (tests) without
//! it embeds an empty bundle; a target build without it is an error, since
//! a firmware PD with nothing to verify would stop every boot.

use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=BULKHEAD_FW_BUNDLE");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let mut code = String::new();
    match std::env::var("BULKHEAD_FW_BUNDLE") {
        Ok(dir) => {
            let dir = PathBuf::from(dir);
            let order = dir.join("order.txt");
            println!("cargo:rerun-if-changed={}", order.display());
            let list = std::fs::read_to_string(&order).unwrap_or_else(|e| {
                panic!("{}: cannot read the container order: {e} (`cargo xtask run` or `cargo xtask test` prepare it)", order.display())
            });
            let policy = dir.join("policy.bin");
            println!("cargo:rerun-if-changed={}", policy.display());
            let _ = writeln!(code, "pub static POLICY: &[u8] = include_bytes!({:?});", policy.display().to_string());
            code.push_str("pub static CONTAINERS: &[&[u8]] = &[\n");
            for name in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let file = dir.join(name);
                if !file.is_file() {
                    panic!("{}: listed in {} but missing", file.display(), order.display());
                }
                println!("cargo:rerun-if-changed={}", file.display());
                let _ = writeln!(code, "    include_bytes!({:?}),", file.display().to_string());
            }
            code.push_str("];\n");
        }
        Err(_) if target_os != "none" => {
            code.push_str("pub static POLICY: &[u8] = &[];\npub static CONTAINERS: &[&[u8]] = &[];\n");
        }
        Err(_) => panic!(
            "BULKHEAD_FW_BUNDLE is not set: the firmware PD embeds its policy and signed containers at build time; build it with `cargo xtask run` (or `cargo xtask test`), which signs the containers and sets it"
        ),
    }
    std::fs::write(out.join("bundle.rs"), code).expect("cannot write bundle.rs");
}
