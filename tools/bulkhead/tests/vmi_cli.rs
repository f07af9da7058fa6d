//! `bulkhead profile` and `bulkhead vmi` as a user runs them, on the QEMU
//! guest fixtures from `cargo xtask test`: exit codes, JSON output and the
//! error text for broken input (the logic itself is tested in
//! `monitor-pd/profile/tests/guest.rs`).

use std::path::PathBuf;
use std::process::{Command, Output};

const HOW: &str = "run via `cargo xtask test`, which boots the guest and sets BULKHEAD_VMI_*";

fn env(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {HOW}")))
}

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .output()
        .expect("run bulkhead")
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn profile_then_vmi_commands() {
    let dir = std::env::temp_dir().join(format!("bulkhead-vmi-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prof = dir.join("k.bhp");
    let isf = dir.join("k.json");
    let out = bulkhead(&[
        "profile",
        s(&env("BULKHEAD_VMI_DEB")),
        "-o",
        s(&prof),
        "--isf",
        s(&isf),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("symbols from kallsyms"));
    let isf_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&isf).unwrap()).unwrap();
    assert!(isf_json["user_types"]["task_struct"]["fields"]["comm"].is_object());

    let elf = env("BULKHEAD_VMI_ELF");
    let out = bulkhead(&["vmi", s(&elf), "--profile", s(&prof), "--json", "pslist"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["comm"] == "bh-child"));

    for cmd in [
        "check-syscalls",
        "check-idt",
        "check-text",
        "psxview",
        "lsmod",
        "pstree",
    ] {
        let out = bulkhead(&[
            "vmi",
            s(&env("BULKHEAD_VMI_RAW")),
            "--profile",
            s(&prof),
            cmd,
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Without MSRs in the image, check-msr says what to pass.
    let out = bulkhead(&["vmi", s(&elf), "--profile", s(&prof), "check-msr"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lstar"));

    // Broken input: an error naming the file and the problem, no backtrace.
    let cut = dir.join("cut.elf");
    let data = std::fs::read(&elf).unwrap();
    std::fs::write(&cut, &data[..data.len() / 3]).unwrap();
    let out = bulkhead(&["vmi", s(&cut), "--profile", s(&prof), "pslist"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("cut.elf") && err.contains("truncated") && !err.contains("panicked"),
        "{err}"
    );
    let out = bulkhead(&["vmi", s(&elf), "--profile", s(&isf), "pslist"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Bulkhead VMI profile"));
    let _ = std::fs::remove_dir_all(&dir);
}
