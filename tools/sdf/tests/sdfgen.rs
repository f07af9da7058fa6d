//! SDFs rendered by `sdfgen` (the Microkit SDF generator from PyPI) for
//! X86_64 must be accepted as they are. Needs Python with sdfgen, which
//! `cargo xtask test` installs into a venv and names in BULKHEAD_PYTHON.

use std::path::PathBuf;
use std::process::Command;

use bulkhead_sdf::parse;

#[test]
#[ignore = "needs sdfgen in a Python venv: run via cargo xtask test"]
fn sdfgen_rendered_x86_64_systems_pass() {
    let python = std::env::var("BULKHEAD_PYTHON").unwrap_or_else(|_| {
        panic!(
            "BULKHEAD_PYTHON is not set: this test needs a Python with sdfgen installed; \
             run it with `cargo xtask test` (which sets it up), or set BULKHEAD_PYTHON to such a python"
        )
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdfgen/render.py");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sdfgen");
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(&python)
        .arg(&script)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(status.success(), "{} failed: {status}", script.display());

    let expect: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("expect.json")).unwrap()).unwrap();
    let files = expect.as_object().unwrap();
    assert_eq!(files.len(), 4);
    for (file, facts) in files {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        let sys = match parse(file, &text) {
            Ok(s) => s,
            Err(d) => panic!(
                "{file} rejected:\n{}\n{text}",
                d.iter().map(|d| format!("{d}\n")).collect::<String>()
            ),
        };
        assert!(sys.warnings.is_empty(), "{file}: {:?}", sys.warnings);
        assert_eq!(
            sys.pds.len() as u64,
            facts["pds"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(
            sys.channels.len() as u64,
            facts["channels"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(
            sys.memory_regions.len() as u64,
            facts["regions"].as_u64().unwrap(),
            "{file}"
        );
    }
}
