//! `bulkhead check` as a user runs it: located errors and a non-zero exit
//! for a bad file, the report for the reference system.

use std::process::Command;

fn bulkhead() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn bad_file_gets_located_errors_and_fails() {
    let dir = std::env::temp_dir().join(format!("bulkhead-check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.xml");
    std::fs::write(
        &file,
        "<system>\n  <protection_domain name=\"a\" priority=\"999\">\n    <program_image path=\"a.elf\" />\n    <map mr=\"nowhere\" vaddr=\"0x1000\" />\n  </protection_domain>\n</system>\n",
    )
    .unwrap();
    let out = bulkhead().arg("check").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    assert!(err.contains(&format!("{f}:2:31: error: <protection_domain>: priority 999 is out of range\n  help: priority must be 0..=254")), "{err}");
    assert!(
        err.contains(&format!(
            "{f}:4:5: error: <map>: memory region \"nowhere\" is not defined"
        )),
        "{err}"
    );
    assert!(err.contains("2 errors"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // --json gives the same errors to machines.
    let out = bulkhead()
        .args(["check", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["diagnostics"][0]["line"], 2);

    // Missing and non-UTF-8 files are errors too, not panics.
    let out = bulkhead()
        .arg("check")
        .arg(dir.join("absent.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    std::fs::write(dir.join("bin.xml"), [0xff, 0xfe, 0x00]).unwrap();
    let out = bulkhead()
        .arg("check")
        .arg(dir.join("bin.xml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
}

#[test]
fn reference_system_report() {
    let dot = std::env::temp_dir().join(format!("bulkhead-ref-{}.dot", std::process::id()));
    let out = bulkhead()
        .current_dir(root())
        .args(["check", "system.xml", "--report", "--dot"])
        .arg(&dot)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("System system.xml: 5 protection domains"),
        "{text}"
    );
    assert!(text.contains("Information flow"), "{text}");
    let dot = std::fs::read_to_string(&dot).unwrap();
    assert!(
        dot.contains("\"supervisor\" -> \"gateway\" [style=dotted"),
        "{dot}"
    );
}
