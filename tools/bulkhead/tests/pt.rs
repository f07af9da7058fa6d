//! `bulkhead pt dump` and `bulkhead pt check` on files: the PT end-to-end
//! program written as an ELF, and traces of its clean and attacked runs.

#[path = "../../../monitor-pd/pt/tests/e2e_support/mod.rs"]
mod e2e_support;

use std::path::PathBuf;
use std::process::{Command, Output};

use e2e_support::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bulkhead-pt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bulkhead(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .arg("pt")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn dump_lists_packets_with_offsets_and_errors() {
    let d = dir("dump");
    let p = program();
    let (flows, _) = execute(&p, Attack::None);
    let trace = synthesize(p.at("main"), &flows, TraceOpts::default());
    let f = d.join("clean.pt");
    std::fs::write(&f, &trace).unwrap();
    let o = bulkhead(&[std::ffi::OsStr::new("dump"), f.as_os_str()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let first: Vec<&str> = out.lines().take(2).collect();
    assert_eq!(first[0], "0000000000000000  psb");
    assert!(
        first[1].starts_with("0000000000000010  mode.exec 64-bit"),
        "{}",
        first[1]
    );
    assert!(out.contains("tip.pge"));
    assert!(
        out.contains(&format!("{:016x}", p.at("main"))),
        "the reconstructed entry IP is shown"
    );
    // Make the first TNT an unknown opcode: an error line at its offset.
    let at = bulkhead_pt::Decoder::new(&trace, bulkhead_pt::Config::default())
        .items()
        .find_map(|i| match i {
            bulkhead_pt::Item::Packet(d) if matches!(d.packet, bulkhead_pt::Packet::Tnt { .. }) => {
                Some(d.offset)
            }
            _ => None,
        })
        .unwrap();
    let mut bad = trace.clone();
    bad[at as usize] = 0x05;
    let f = d.join("bad.pt");
    std::fs::write(&f, &bad).unwrap();
    let o = bulkhead(&[std::ffi::OsStr::new("dump"), f.as_os_str()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("{at:016x}  error: unknown opcode;")),
        "{}",
        text(&o)
    );
    // A missing file is an error naming it.
    let o = bulkhead(&[std::ffi::OsStr::new("dump"), d.join("nope.pt").as_os_str()]);
    assert!(
        !o.status.success() && text(&o).contains("nope.pt"),
        "{}",
        text(&o)
    );
}

#[test]
fn check_passes_clean_runs_and_names_the_rop_edge() {
    let d = dir("check");
    let p = program();
    let exe = d.join("prog.elf");
    std::fs::write(&exe, elf(&p)).unwrap();
    for (attack, ok, needle) in [
        (Attack::None, true, "clean".to_string()),
        (
            Attack::Rop,
            false,
            format!(
                "VIOLATION: return to an address no call precedes (ROP): {:#x} <vuln+",
                p.at("vuln_ret")
            ),
        ),
        (Attack::Jop, false, "<handler_a+0x5>".to_string()),
        (Attack::Pivot, false, "stack pivot".to_string()),
    ] {
        let (flows, _) = execute(&p, attack);
        let f = d.join(format!("{attack:?}.pt"));
        std::fs::write(&f, synthesize(p.at("main"), &flows, TraceOpts::default())).unwrap();
        let o = bulkhead(&[
            std::ffi::OsStr::new("check"),
            std::ffi::OsStr::new("--elf"),
            exe.as_os_str(),
            f.as_os_str(),
        ]);
        let out = text(&o);
        assert_eq!(o.status.success(), ok, "{attack:?}: {out}");
        assert!(out.contains(&needle), "{attack:?}: {out}");
    }
    // A strict threshold defers every indirect call; the slow path clears
    // them. Trusting a known-good run's edges clears them in the fast path.
    let strict = |extra: &[&std::ffi::OsStr]| {
        let mut a = vec![
            std::ffi::OsStr::new("check"),
            std::ffi::OsStr::new("--threshold"),
            std::ffi::OsStr::new("80"),
            std::ffi::OsStr::new("--elf"),
            exe.as_os_str(),
        ];
        a.extend_from_slice(extra);
        a.push(d.join("None.pt").into_os_string().leak());
        text(&bulkhead(&a))
    };
    let out = strict(&[]);
    assert!(
        out.contains("clean: the slow path cleared every suspicious edge"),
        "{out}"
    );
    let good = d.join("None.pt");
    let out = strict(&[std::ffi::OsStr::new("--trust"), good.as_os_str()]);
    assert!(
        out.contains("trusting 2 indirect edges") && out.contains("clean: no edge below credit 80"),
        "{out}"
    );
    let o = bulkhead(&[
        std::ffi::OsStr::new("check"),
        std::ffi::OsStr::new("--elf"),
        d.join("None.pt").as_os_str(),
        d.join("None.pt").as_os_str(),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("not an ELF file"),
        "{}",
        text(&o)
    );
}
