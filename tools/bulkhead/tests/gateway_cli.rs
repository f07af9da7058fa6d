//! `bulkhead gateway`: the example policy checks and compiles to a file the
//! PD's loader accepts; a broken policy fails with located errors and
//! writes nothing; a missing DBC file is a plain error, not a backtrace.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prius() -> PathBuf {
    let root = root().canonicalize().unwrap();
    root.ancestors()
        .skip(1)
        .map(|d| d.join("shared/data/dbc/toyota_prius_2010_pt.dbc"))
        .find(|p| p.is_file())
        .expect("shared/data/dbc beside the repository")
}

fn bulkhead(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_compiles_and_explains() {
    let dir = std::env::temp_dir().join(format!("bulkhead-gw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("example.bin");
    let dbc = prius();
    let (code, stdout, stderr) = bulkhead(&[
        "gateway",
        "check",
        "gateway-pd/policies/example.toml",
        "--dbc",
        dbc.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--explain",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("ok: 3 application(s), 9 CAN rule(s), 2 L4 rule(s)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("rule #0 `lka-steer`: may send id 0x2E4"),
        "{stdout}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let p = gateway_core::Policy::from_bytes(&bytes).unwrap();
    assert_eq!(p.rules.len(), 9);
    let (code, stdout2, _) = bulkhead(&["gateway", "explain", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout2, stdout,
        "explaining the .bin differs from explaining at compile time"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_policy_fails_with_locations_and_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("bulkhead-gw-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("bad.toml");
    std::fs::write(&policy, "[[app]]\nname = \"a\"\n\n[[can]]\nname = \"r\"\napp = \"a\"\ndir = \"send\"\nmessage = \"SPEEDD\"\n").unwrap();
    let out = dir.join("bad.bin");
    let dbc = prius();
    let (code, _, stderr) = bulkhead(&[
        "gateway",
        "check",
        policy.to_str().unwrap(),
        "--dbc",
        dbc.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bad.toml:8:11: error: unknown message `SPEEDD`"),
        "{stderr}"
    );
    assert!(stderr.contains("help: did you mean `SPEED`?"), "{stderr}");
    assert!(!out.exists());
    let (code, _, stderr) = bulkhead(&[
        "gateway",
        "check",
        policy.to_str().unwrap(),
        "--dbc",
        "/nonexistent.dbc",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent.dbc: cannot read"), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    std::fs::write(dir.join("junk.bin"), b"not a policy").unwrap();
    let (code, _, stderr) =
        bulkhead(&["gateway", "explain", dir.join("junk.bin").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a compiled gateway policy"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
