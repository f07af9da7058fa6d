//! Layout tests, and the archive as GNU cpio reads it.

use std::path::PathBuf;
use std::process::Command;

use super::*;

/// A minimal ELF64 x86_64 executable header with one program header of
/// type `ptype` (1 = LOAD, 3 = INTERP), padded with `tail`.
fn fake_elf(ptype: u32, tail: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 64 + 56];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[6] = 1;
    e[16..18].copy_from_slice(&2u16.to_le_bytes());
    e[18..20].copy_from_slice(&62u16.to_le_bytes());
    e[32..40].copy_from_slice(&64u64.to_le_bytes());
    e[54..56].copy_from_slice(&56u16.to_le_bytes());
    e[56..58].copy_from_slice(&1u16.to_le_bytes());
    e[64..68].copy_from_slice(&ptype.to_le_bytes());
    e.extend_from_slice(tail);
    e
}

fn scripts() -> Vec<Script> {
    vec![
        Script {
            name: "uname.sh".into(),
            body: b"uname -r\n".to_vec(),
        },
        Script {
            name: "a-ps".into(),
            body: b"ps\n".to_vec(),
        },
    ]
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bulkhead-guest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn busybox_must_be_a_static_x86_64_executable() {
    assert_eq!(check_busybox(&fake_elf(1, b"")), Ok(()));
    let why = |b: &[u8]| match check_busybox(b) {
        Err(GuestError::Busybox(w)) => w,
        other => panic!("{other:?}"),
    };
    assert!(why(&fake_elf(3, b"/lib64/ld-linux-x86-64.so.2")).contains("dynamically linked"));
    assert!(why(b"#!/bin/sh\necho not busybox\n").contains("not an ELF"));
    let mut arm = fake_elf(1, b"");
    arm[18] = 183;
    assert!(why(&arm).contains("x86_64"));
    let full = fake_elf(1, b"");
    assert!(why(&full[..66]).contains("outside the file"));
    for n in 0..full.len() {
        let _ = check_busybox(&full[..n]);
    }
    let msg = GuestError::Busybox("not an ELF file".into()).to_string();
    assert!(msg.contains("busybox-static"), "{msg}");
}

#[test]
fn script_names_are_plain_file_names() {
    let bb = fake_elf(1, b"");
    for bad in ["", "a/b", "../x", ".hidden", "with space", "x\0y"] {
        let s = Script {
            name: bad.into(),
            body: vec![],
        };
        assert_eq!(
            build(&bb, &[s]),
            Err(GuestError::ScriptName(bad.into())),
            "{bad:?}"
        );
    }
    let msg = GuestError::ScriptName("a/b".into()).to_string();
    assert!(msg.contains("\"a/b\"") && msg.contains("no `/`"), "{msg}");
    let twice = [scripts()[0].clone(), scripts()[0].clone()];
    assert_eq!(
        build(&bb, &twice),
        Err(GuestError::DuplicateScript("uname.sh".into()))
    );
    let many: Vec<Script> = (0..100)
        .map(|i| Script {
            name: format!("s{i}"),
            body: vec![],
        })
        .collect();
    assert_eq!(build(&bb, &many), Err(GuestError::TooManyScripts(100)));
}

#[test]
fn missing_or_unreadable_files_are_named() {
    let dir = temp("files");
    let bb = dir.join("busybox");
    std::fs::write(&bb, fake_elf(1, b"")).unwrap();
    let script = dir.join("ok.sh");
    std::fs::write(&script, "true\n").unwrap();
    let e = build_from_files(&dir.join("nope"), std::slice::from_ref(&script)).unwrap_err();
    assert!(
        e.to_string().starts_with("cannot read busybox ") && e.to_string().contains("nope"),
        "{e}"
    );
    // A directory cannot be read as a script (unlike a chmod 000 file, also
    // when the tests run as root).
    let e = build_from_files(&bb, &[script.clone(), dir.clone()]).unwrap_err();
    assert!(
        e.to_string().starts_with("cannot read script ")
            && e.to_string().contains("bulkhead-guest-"),
        "{e}"
    );
    let e = build_from_files(&bb, &[dir.join("missing.sh")]).unwrap_err();
    assert!(e.to_string().contains("missing.sh"), "{e}");
    // A package that is not one.
    let fake_deb = dir.join("busybox.deb");
    std::fs::write(&fake_deb, b"!<arch>\njunk").unwrap();
    let e = build_from_files(&fake_deb, &[]).unwrap_err();
    assert!(e.to_string().contains("data.tar"), "{e}");
    let archive = build_from_files(&bb, &[script]).unwrap();
    assert!(archive.starts_with(b"070701"));
}

#[test]
fn init_prints_the_markers_and_runs_every_script() {
    let init = init_script();
    assert!(init.starts_with("#!/bin/sh\n"));
    let ready = init.find("echo BULKHEAD_GUEST_READY").unwrap();
    let mounts = init.find("mount -t devtmpfs devtmpfs /dev").unwrap();
    let run = init.find("for s in /scripts/*").unwrap();
    let done = init.find("echo BULKHEAD_GUEST_DONE").unwrap();
    assert!(mounts < ready && ready < run && run < done);
    assert_eq!(script_path(0, "x.sh"), "scripts/01-x.sh");
    assert_eq!(script_path(98, "x.sh"), "scripts/99-x.sh");
}

/// GNU cpio, as `cargo xtask test` installs it (env `BULKHEAD_GNU_CPIO`).
fn gnu_cpio() -> PathBuf {
    match std::env::var_os("BULKHEAD_GNU_CPIO") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "BULKHEAD_GNU_CPIO is not set: this test reads the archive with GNU cpio; run it via `cargo xtask test` (which installs cpio and sets it)"
        ),
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
#[ignore = "needs GNU cpio: run via cargo xtask test"]
fn gnu_cpio_extracts_every_file_mode_and_symlink() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let cpio = gnu_cpio();
    let dir = temp("gnu-cpio");
    let busybox = fake_elf(1, b"not really busybox");
    let archive = build(&busybox, &scripts()).unwrap();
    let file = dir.join("initramfs.cpio");
    std::fs::write(&file, &archive).unwrap();

    // The listing shows every entry, device nodes with their numbers
    // (extracting those needs root, so they are checked here).
    let list = run(Command::new(&cpio).args(["-itv", "-F"]).arg(&file));
    let line = |name: &str| {
        list.lines()
            .find(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} -> ")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"))
            .to_string()
    };
    assert!(
        line("dev/console").starts_with("crw-------"),
        "{}",
        line("dev/console")
    );
    assert!(
        line("dev/console").contains(" 5,   1 ") || line("dev/console").contains(" 5, 1 "),
        "{}",
        line("dev/console")
    );
    assert!(
        line("dev/null").starts_with("crw-rw-rw-"),
        "{}",
        line("dev/null")
    );
    assert!(
        line("dev/null").contains(" 1,   3 ") || line("dev/null").contains(" 1, 3 "),
        "{}",
        line("dev/null")
    );
    assert!(line("tmp").starts_with("drwxrwxrwt"), "{}", line("tmp"));
    assert!(
        line("bin/sh").starts_with("lrwxrwxrwx"),
        "{}",
        line("bin/sh")
    );

    let out = dir.join("root");
    std::fs::create_dir_all(&out).unwrap();
    let f = std::fs::File::open(&file).unwrap();
    run(Command::new(&cpio)
        .current_dir(&out)
        .args(["-idmv", "--no-absolute-filenames", "--nonmatching", "dev/*"])
        .stdin(f));
    let meta =
        |p: &str| std::fs::symlink_metadata(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mode = |p: &str| meta(p).permissions().mode() & 0o7777;
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "scripts",
    ] {
        assert!(meta(d).is_dir(), "{d}");
        assert_eq!(mode(d), 0o755, "{d}");
    }
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(std::fs::read(out.join("bin/busybox")).unwrap(), busybox);
    assert_eq!(mode("bin/busybox"), 0o755);
    assert!(meta("bin/sh").file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(out.join("bin/sh")).unwrap(),
        PathBuf::from("busybox")
    );
    assert_eq!(
        std::fs::read_to_string(out.join("init")).unwrap(),
        init_script()
    );
    assert_eq!(mode("init"), 0o755);
    assert_eq!(
        std::fs::read(out.join("scripts/01-uname.sh")).unwrap(),
        b"uname -r\n"
    );
    assert_eq!(std::fs::read(out.join("scripts/02-a-ps")).unwrap(), b"ps\n");
    assert_eq!(mode("scripts/02-a-ps"), 0o755);
    // Reproducible: mtime 0 as written, owner root.
    assert_eq!(meta("init").mtime(), 0);
    assert!(!meta("init").file_type().is_char_device());
    let mut names: Vec<String> = std::fs::read_dir(out.join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["01-uname.sh", "02-a-ps"],
        "scripts sort in the order given"
    );
}

/// The real package, as `cargo xtask test` downloads it.
#[test]
#[ignore = "needs Debian's busybox-static package: run via cargo xtask test"]
fn busybox_comes_out_of_the_debian_package() {
    let deb = std::env::var_os("BULKHEAD_GUEST_BUSYBOX_DEB").map(PathBuf::from).unwrap_or_else(|| {
        panic!("BULKHEAD_GUEST_BUSYBOX_DEB is not set: run via `cargo xtask test`, which downloads busybox-static")
    });
    let bb = busybox_from_file(&deb).unwrap();
    check_busybox(&bb).unwrap();
    assert!(
        bb.windows(b"BusyBox v".len()).any(|w| w == b"BusyBox v"),
        "no BusyBox version string in what came out of {}",
        deb.display()
    );
    let archive = build(&bb, &scripts()).unwrap();
    assert!(archive.len() > bb.len());
}
