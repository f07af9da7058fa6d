//! `--search-path` checks against small ELF files written by the test.

use std::path::PathBuf;

use bulkhead_sdf::{images, parse};

/// A minimal ELF64 file: header, one loadable segment at 0x400000..0x402000
/// and a symbol table defining `symbols`.
fn elf(e_type: u16, machine: u16, symbols: &[&str]) -> Vec<u8> {
    let mut strtab = vec![0u8];
    let mut syms = vec![0u8; 24]; // the null symbol
    for s in symbols {
        let name = strtab.len() as u32;
        strtab.extend_from_slice(s.as_bytes());
        strtab.push(0);
        let mut sym = Vec::new();
        sym.extend_from_slice(&name.to_le_bytes());
        sym.push(0x11); // STB_GLOBAL, STT_OBJECT
        sym.push(0);
        sym.extend_from_slice(&1u16.to_le_bytes()); // defined in section 1
        sym.extend_from_slice(&0x40_1000u64.to_le_bytes());
        sym.extend_from_slice(&8u64.to_le_bytes());
        syms.extend(sym);
    }
    let shstrtab = b"\0.strtab\0.symtab\0.shstrtab\0".to_vec();
    let strtab_off = 64u64 + 56; // after the ELF header and one program header
    let symtab_off = strtab_off + strtab.len() as u64;
    let shstr_off = symtab_off + syms.len() as u64;
    let sh_off = (shstr_off + shstrtab.len() as u64).next_multiple_of(8);
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&e_type.to_le_bytes());
    f.extend_from_slice(&machine.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&0x40_1000u64.to_le_bytes()); // entry
    f.extend_from_slice(&64u64.to_le_bytes()); // phoff
    f.extend_from_slice(&sh_off.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 64, 4, 3] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    // PT_LOAD, R+X, file offset 0, vaddr 0x400000, 0x1800 in memory.
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&0x40_0000u64.to_le_bytes());
    f.extend_from_slice(&0x40_0000u64.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes()); // filesz
    f.extend_from_slice(&0x1800u64.to_le_bytes()); // memsz
    f.extend_from_slice(&0x1000u64.to_le_bytes());
    f.extend_from_slice(&strtab);
    f.extend_from_slice(&syms);
    f.extend_from_slice(&shstrtab);
    f.resize(sh_off as usize, 0);
    let mut sh = |name: u32, ty: u32, off: u64, size: u64, link: u32, info: u32, entsize: u64| {
        f.extend_from_slice(&name.to_le_bytes());
        f.extend_from_slice(&ty.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // flags
        f.extend_from_slice(&0u64.to_le_bytes()); // addr
        f.extend_from_slice(&off.to_le_bytes());
        f.extend_from_slice(&size.to_le_bytes());
        f.extend_from_slice(&link.to_le_bytes());
        f.extend_from_slice(&info.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&entsize.to_le_bytes());
    };
    sh(0, 0, 0, 0, 0, 0, 0);
    sh(1, 3, strtab_off, strtab.len() as u64, 0, 0, 0);
    sh(9, 2, symtab_off, syms.len() as u64, 1, 1, 24);
    sh(17, 3, shstr_off, shstrtab.len() as u64, 0, 0, 0);
    f
}

const SYSTEM: &str = r#"<system>
    <memory_region name="buf" size="0x1000" />
    <protection_domain name="a">
        <program_image path="a.elf" />
        <map mr="buf" vaddr="0x1000000" perms="rw" setvar_vaddr="buf_vaddr" />
    </protection_domain>
    <protection_domain name="b">
        <program_image path="b.elf" />
        <map mr="buf" vaddr="0x1000000" perms="r" setvar_vaddr="buf" />
    </protection_domain>
</system>"#;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bulkhead-sdf-images-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn check(d: &std::path::Path) -> Vec<(u32, String)> {
    let sys = parse("s.xml", SYSTEM).unwrap();
    images::check(&sys, &[d.to_path_buf()])
        .into_iter()
        .map(|d| (d.line, d.message))
        .collect()
}

#[test]
fn good_images_pass() {
    let d = dir("good");
    std::fs::write(d.join("a.elf"), elf(2, 62, &["buf_vaddr", "main"])).unwrap();
    std::fs::write(d.join("b.elf"), elf(2, 62, &["buf"])).unwrap();
    assert_eq!(check(&d), vec![]);
}

#[test]
fn missing_wrong_and_incomplete_images_are_reported() {
    let d = dir("bad");
    // a.elf: relocatable object, b.elf missing.
    std::fs::write(d.join("a.elf"), elf(1, 62, &["buf_vaddr"])).unwrap();
    let errs = check(&d);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].0, 4);
    assert!(
        errs[0]
            .1
            .ends_with("a.elf is a relocatable object, not a linked executable"),
        "{}",
        errs[0].1
    );
    assert_eq!(errs[1].0, 8);
    assert!(
        errs[1]
            .1
            .starts_with("program image \"b.elf\" of \"b\" not found in the search path"),
        "{}",
        errs[1].1
    );

    // Wrong architecture (AArch64), and a missing setvar symbol.
    std::fs::write(d.join("a.elf"), elf(2, 183, &["buf_vaddr"])).unwrap();
    std::fs::write(d.join("b.elf"), elf(2, 62, &["bfu"])).unwrap();
    let sys = parse("s.xml", SYSTEM).unwrap();
    let ds = images::check(&sys, std::slice::from_ref(&d));
    assert_eq!(ds.len(), 2);
    assert!(
        ds[0]
            .message
            .ends_with("a.elf is built for Aarch64, not x86_64"),
        "{}",
        ds[0].message
    );
    assert_eq!(ds[1].line, 9);
    assert!(
        ds[1]
            .message
            .starts_with("setvar symbol \"buf\" is not defined in"),
        "{}",
        ds[1].message
    );
    assert_eq!(ds[1].help.as_deref(), Some("did you mean \"bfu\"?"));

    // Not ELF at all.
    std::fs::write(d.join("b.elf"), b"#!/bin/sh\n").unwrap();
    let errs = check(&d);
    assert!(errs[1].1.contains("b.elf is not an ELF file"), "{errs:?}");
}

#[test]
fn a_map_over_the_program_image_is_reported() {
    let d = dir("overlap");
    std::fs::write(d.join("a.elf"), elf(2, 62, &["buf_vaddr"])).unwrap();
    std::fs::write(d.join("b.elf"), elf(2, 62, &["buf"])).unwrap();
    let system = SYSTEM.replace(
        "vaddr=\"0x1000000\" perms=\"r\"",
        "vaddr=\"0x401000\" perms=\"r\"",
    );
    let sys = parse("s.xml", &system).unwrap();
    let errs: Vec<(u32, String)> = images::check(&sys, std::slice::from_ref(&d))
        .into_iter()
        .map(|d| (d.line, d.message))
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, 9);
    assert!(
        errs[0]
            .1
            .starts_with("\"buf\" mapped at 0x401000..0x402000 overlaps the program image")
            && errs[0].1.ends_with("b.elf at 0x400000..0x402000"),
        "{}",
        errs[0].1
    );
}
