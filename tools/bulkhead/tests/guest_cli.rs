//! `bulkhead guest` end to end: writes the archive, and refuses bad input
//! with a message naming the input and a failing exit status, writing
//! nothing.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bulkhead(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(args)
        .output()
        .expect("run bulkhead")
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bulkhead-guest-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A minimal static x86_64 ELF header (one PT_LOAD): enough for the checks.
fn fake_busybox() -> Vec<u8> {
    let mut e = vec![0u8; 64 + 56];
    e[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    e[16] = 2;
    e[18] = 62;
    e[32] = 64;
    e[54] = 56;
    e[56] = 1;
    e[64] = 1;
    e
}

#[test]
fn writes_an_initramfs_with_the_scripts() {
    let d = temp("ok");
    std::fs::write(d.join("busybox"), fake_busybox()).unwrap();
    std::fs::write(d.join("smoke.sh"), "echo hi\n").unwrap();
    let out = d.join("sub/initramfs.cpio");
    let o = bulkhead(&[
        "guest",
        "--busybox",
        d.join("busybox").to_str().unwrap(),
        "--script",
        d.join("smoke.sh").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cpio = std::fs::read(&out).unwrap();
    assert!(cpio.starts_with(b"070701"));
    let has = |s: &[u8]| cpio.windows(s.len()).any(|w| w == s);
    assert!(has(b"scripts/01-smoke.sh\0") && has(b"echo hi\n") && has(b"TRAILER!!!\0"));
}

#[test]
fn bad_input_fails_with_a_message_and_writes_nothing() {
    let d = temp("bad");
    std::fs::write(d.join("busybox"), b"#!/bin/sh\n").unwrap();
    let out = d.join("initramfs.cpio");
    let o = bulkhead(&[
        "guest",
        "--busybox",
        d.join("busybox").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("busybox: not an ELF file") && err.contains("busybox-static"),
        "{err}"
    );
    assert!(!out.exists());

    std::fs::write(d.join("busybox"), fake_busybox()).unwrap();
    let o = bulkhead(&[
        "guest",
        "--busybox",
        d.join("busybox").to_str().unwrap(),
        "--script",
        d.join("nope.sh").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("cannot read script") && err.contains("nope.sh"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !out.exists(), "{err}");
}
