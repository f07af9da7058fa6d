//! Pack tests on hand-built ELF images and systems parsed from SDF text.

use super::*;

/// A minimal ELF64 executable: segments (vaddr, memsz, bytes, flags) and
/// symbols (name, value, size).
fn elf(
    entry: u64,
    segs: &[(u64, u64, Vec<u8>, u32)],
    syms: &[(&str, u64, u64)],
    et: u16,
) -> Vec<u8> {
    let phoff = 64u64;
    let mut out = vec![0u8; 64 + 56 * segs.len()];
    let mut offsets = Vec::new();
    for (_, _, bytes, _) in segs {
        while !out.len().is_multiple_of(16) {
            out.push(0);
        }
        offsets.push(out.len() as u64);
        out.extend_from_slice(bytes);
    }
    // strtab
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    for (name, value, size) in syms {
        let off = strtab.len() as u32;
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
        let mut s = Vec::new();
        s.extend_from_slice(&off.to_le_bytes());
        s.push(0x11); // global object
        s.push(0);
        s.extend_from_slice(&0xfff1u16.to_le_bytes());
        s.extend_from_slice(&value.to_le_bytes());
        s.extend_from_slice(&size.to_le_bytes());
        symtab.extend(s);
    }
    let shstrtab = b"\0.symtab\0.strtab\0.shstrtab\0".to_vec();
    let align = |out: &mut Vec<u8>| {
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
    };
    align(&mut out);
    let symtab_off = out.len() as u64;
    out.extend_from_slice(&symtab);
    let strtab_off = out.len() as u64;
    out.extend_from_slice(&strtab);
    let shstr_off = out.len() as u64;
    out.extend_from_slice(&shstrtab);
    align(&mut out);
    let shoff = out.len() as u64;
    let sh = |name: u32, ty: u32, off: u64, size: u64, link: u32, info: u32, entsize: u64| {
        let mut s = Vec::new();
        s.extend_from_slice(&name.to_le_bytes());
        s.extend_from_slice(&ty.to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        s.extend_from_slice(&0u64.to_le_bytes());
        s.extend_from_slice(&off.to_le_bytes());
        s.extend_from_slice(&size.to_le_bytes());
        s.extend_from_slice(&link.to_le_bytes());
        s.extend_from_slice(&info.to_le_bytes());
        s.extend_from_slice(&8u64.to_le_bytes());
        s.extend_from_slice(&entsize.to_le_bytes());
        s
    };
    out.extend(vec![0u8; 64]);
    out.extend(sh(1, 2, symtab_off, symtab.len() as u64, 2, 1, 24));
    out.extend(sh(9, 3, strtab_off, strtab.len() as u64, 0, 0, 0));
    out.extend(sh(17, 3, shstr_off, shstrtab.len() as u64, 0, 0, 0));
    // header
    let mut h = Vec::new();
    h.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    h.extend_from_slice(&et.to_le_bytes());
    h.extend_from_slice(&62u16.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&entry.to_le_bytes());
    h.extend_from_slice(&phoff.to_le_bytes());
    h.extend_from_slice(&shoff.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, segs.len() as u16, 64, 4, 3] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    out[..64].copy_from_slice(&h);
    for (i, (vaddr, memsz, bytes, flags)) in segs.iter().enumerate() {
        let mut p = Vec::new();
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        p.extend_from_slice(&offsets[i].to_le_bytes());
        p.extend_from_slice(&vaddr.to_le_bytes());
        p.extend_from_slice(&vaddr.to_le_bytes());
        p.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        p.extend_from_slice(&memsz.to_le_bytes());
        p.extend_from_slice(&0x1000u64.to_le_bytes());
        let at = 64 + 56 * i;
        out[at..at + 56].copy_from_slice(&p);
    }
    out
}

const RX: u32 = 5;
const RW: u32 = 6;

fn good_image() -> Vec<u8> {
    elf(
        0x20_0000,
        &[
            (0x20_0000, 0x100, vec![0xcc; 0x100], RX),
            (0x20_1000, 0x2000, vec![0xff; 0x10], RW),
        ],
        &[
            ("buf_vaddr", 0x20_1008, 8),
            ("in_bss", 0x20_1800, 8),
            ("short", 0x20_1000, 4),
        ],
        2,
    )
}

#[test]
fn patches_setvars_in_data() {
    let img = load_image(
        &good_image(),
        None,
        &[("buf_vaddr".into(), 0x1234_5678)],
        "t.elf",
    )
    .unwrap();
    assert_eq!(img.entry, 0x20_0000);
    assert_eq!(img.segments.len(), 2);
    let data = &img.segments[1].bytes;
    assert_eq!(&data[8..16], &0x1234_5678u64.to_le_bytes());
    assert_eq!(&data[0..8], &[0xff; 8], "bytes around the symbol untouched");
}

#[test]
fn refuses_bad_setvars_with_a_reason() {
    let e = load_image(&good_image(), None, &[("missing".into(), 1)], "t.elf").unwrap_err();
    assert!(e.message.contains("'missing' is not in the image"), "{e}");
    let e = load_image(&good_image(), None, &[("in_bss".into(), 1)], "t.elf").unwrap_err();
    assert!(e.message.contains("not in initialised data"), "{e}");
    let e = load_image(&good_image(), None, &[("short".into(), 1)], "t.elf").unwrap_err();
    assert!(e.message.contains("not 8"), "{e}");
}

#[test]
fn refuses_wx_shared_pages_pie_and_junk() {
    let wx = elf(0x20_0000, &[(0x20_0000, 0x10, vec![0; 0x10], 7)], &[], 2);
    assert!(load_image(&wx, None, &[], "t")
        .unwrap_err()
        .message
        .contains("W^X"));
    let shared = elf(
        0x20_0000,
        &[
            (0x20_0000, 0x100, vec![0; 0x10], RX),
            (0x20_0800, 0x100, vec![0; 0x10], RW),
        ],
        &[],
        2,
    );
    assert!(load_image(&shared, None, &[], "t")
        .unwrap_err()
        .message
        .contains("share a page"));
    let pie = elf(0x20_0000, &[(0x20_0000, 0x10, vec![0; 0x10], RX)], &[], 3);
    assert!(load_image(&pie, None, &[], "t")
        .unwrap_err()
        .message
        .contains("static executable"));
    assert!(load_image(b"not an elf", None, &[], "t")
        .unwrap_err()
        .message
        .contains("ELF"));
    let good = good_image();
    for cut in [10, 63, 100, 200] {
        assert!(load_image(&good[..cut], None, &[], "t").is_err());
    }
}

fn system(xml: &str) -> System {
    match bulkhead_sdf::parse("test.xml", xml) {
        Ok(s) => s,
        Err(d) => panic!("{d:?}"),
    }
}

fn search_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bulkhead-pack-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.elf"), good_image()).unwrap();
    std::fs::write(dir.join("b.elf"), good_image()).unwrap();
    dir
}

const SYSTEM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
    <memory_region name="shared" size="0x1000" />
    <protection_domain name="a" priority="10">
        <program_image path="a.elf" />
        <map mr="shared" vaddr="MAPADDR" perms="rw" setvar_vaddr="buf_vaddr" />
        <protection_domain name="b" priority="20" id="4">
            <program_image path="b.elf" />
            <map mr="shared" vaddr="0x400000" perms="r" cached="false" />
        </protection_domain>
    </protection_domain>
    <channel>
        <end pd="a" id="1" pp="true" />
        <end pd="b" id="2" />
    </channel>
</system>
"#;

#[test]
fn packs_a_system_the_kernel_accepts() {
    let dir = search_dir("ok");
    let s = system(&SYSTEM.replace("MAPADDR", "0x300000"));
    let packed = pack(&s, &[dir]).unwrap();
    let (plan, data) = plan::decode(&packed.module).unwrap();
    assert_eq!(plan, packed.plan);
    assert_eq!(plan.pds.len(), 2);
    assert_eq!(plan.pds[1].parent, Some(0));
    assert_eq!(plan.pds[1].child_id, 4);
    assert!(!plan.pds[1].maps[0].cached);
    assert!(plan.channels[0].a.pp);
    // setvar patched in a's data segment, not in b's (b declares none).
    let seg = plan.pds[0].segments[1];
    let bytes = &data[seg.data_offset as usize..(seg.data_offset + seg.data_len) as usize];
    assert_eq!(&bytes[8..16], &0x30_0000u64.to_le_bytes());
    let seg = plan.pds[1].segments[1];
    let bytes = &data[seg.data_offset as usize..(seg.data_offset + seg.data_len) as usize];
    assert_eq!(&bytes[8..16], &[0xff; 8]);
}

#[test]
fn refuses_a_map_colliding_with_a_segment() {
    let dir = search_dir("collide");
    let s = system(&SYSTEM.replace("MAPADDR", "0x202000"));
    let e = pack(&s, &[dir]).unwrap_err();
    assert!(e.at.starts_with("test.xml:6"), "{e}");
    assert!(e.message.contains("collides with segment"), "{e}");
}

#[test]
fn missing_image_names_the_search_path() {
    let s = system(&SYSTEM.replace("MAPADDR", "0x300000"));
    let e = pack(&s, &[PathBuf::from("/nonexistent")]).unwrap_err();
    assert!(
        e.message.contains("'a.elf'") && e.message.contains("/nonexistent"),
        "{e}"
    );
}

const VM_SYSTEM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
    <memory_region name="ram" size="0x20_0000" />
    <memory_region name="rom" size="0x1000" />
    <protection_domain name="vmm" priority="10">
        <program_image path="a.elf" />
        <virtual_machine name="guest">
            <vcpu id="0" />
            <vcpu id="1" />
            <map mr="ram" vaddr="0x0" perms="rwx" />
            <map mr="rom" vaddr="0xffff_f000" perms="PERMS" />
        </virtual_machine>
    </protection_domain>
</system>
"#;

#[test]
fn packs_a_virtual_machine_into_the_plan() {
    let dir = search_dir("vm");
    let s = system(&VM_SYSTEM.replace("PERMS", "rx"));
    let packed = pack(&s, std::slice::from_ref(&dir)).unwrap();
    assert!(packed.warnings.is_empty(), "{:?}", packed.warnings);
    let (plan, _) = plan::decode(&packed.module).unwrap();
    assert_eq!(plan.vms.len(), 1);
    let vm = &plan.vms[0];
    assert_eq!((vm.name.as_str(), vm.owner), ("guest", 0));
    assert_eq!(vm.vcpus.as_slice(), &[0, 1]);
    assert_eq!(vm.maps[1].vaddr, 0xffff_f000);
    assert_eq!(vm.maps[1].perms, PERM_R | PERM_X);
    assert_eq!(vm.maps[0].perms, PERM_R | PERM_W | PERM_X);
    // A guest map the nested tables cannot express is refused with where
    // and what to change.
    let e = pack(&system(&VM_SYSTEM.replace("PERMS", "x")), &[dir]).unwrap_err();
    assert!(e.at.contains("test.xml:"), "{}", e.at);
    assert!(e.message.contains("no read right"), "{}", e.message);
}

const PREFILL_SYSTEM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<system>
    <memory_region name="blob" size="0x2000" prefill_path="FILE" />
    <protection_domain name="a" priority="10">
        <program_image path="a.elf" />
        <map mr="blob" vaddr="0x300000" perms="r" />
    </protection_domain>
</system>
"#;

fn prefill_pack(name: &str, contents: Option<&[u8]>) -> Result<Packed, PackError> {
    let dir = search_dir(name);
    if let Some(c) = contents {
        std::fs::write(dir.join("blob.bin"), c).unwrap();
    }
    pack(&system(&PREFILL_SYSTEM.replace("FILE", "blob.bin")), &[dir])
}

#[test]
fn prefill_file_is_found_and_its_bytes_recorded() {
    let contents: Vec<u8> = (0..0x1234u32).map(|i| (i * 13 + 1) as u8).collect();
    let packed = prefill_pack("prefill-ok", Some(&contents)).unwrap();
    let (plan, data) = plan::decode(&packed.module).unwrap();
    let f = plan.regions[0]
        .prefill
        .expect("the region records its prefill");
    assert_eq!(f.data_len, 0x1234);
    let bytes = &data[f.data_offset as usize..(f.data_offset + f.data_len) as usize];
    assert_eq!(bytes, &contents[..]);
    // The PD's segments still point at their own bytes.
    let seg = plan.pds[0].segments[0];
    assert_eq!(
        &data[seg.data_offset as usize..(seg.data_offset + seg.data_len) as usize],
        &[0xcc; 0x100][..]
    );
}

#[test]
fn prefill_of_exactly_the_region_size_is_accepted() {
    let contents = vec![0x5a; 0x2000];
    let packed = prefill_pack("prefill-exact", Some(&contents)).unwrap();
    let (plan, _) = plan::decode(&packed.module).unwrap();
    assert_eq!(plan.regions[0].prefill.map(|f| f.data_len), Some(0x2000));
}

#[test]
fn prefill_larger_than_the_region_is_refused_with_the_line() {
    let e = prefill_pack("prefill-big", Some(&vec![1; 0x2001])).unwrap_err();
    assert_eq!(e.at, "test.xml:3", "{e}");
    assert!(
        e.message.contains("0x2001 bytes") && e.message.contains("'blob'"),
        "{e}"
    );
    assert!(e.message.contains("at least 0x3000"), "{e}");
}

#[test]
fn missing_prefill_file_is_refused_with_the_search_path() {
    let e = prefill_pack("prefill-missing", None).unwrap_err();
    assert_eq!(e.at, "test.xml:3", "{e}");
    assert!(
        e.message.contains("prefill file 'blob.bin'") && e.message.contains("prefill-missing"),
        "{e}"
    );
}

#[test]
fn prefill_of_a_device_region_is_refused() {
    let dir = search_dir("prefill-device");
    std::fs::write(dir.join("blob.bin"), [1, 2, 3]).unwrap();
    // `bulkhead check` refuses this SDF already; pack does not rely on it.
    let mut s = system(&PREFILL_SYSTEM.replace("FILE", "blob.bin"));
    s.memory_regions[0].phys_addr = Some(0xfeb0_0000);
    let e = pack(&s, &[dir]).unwrap_err();
    assert!(e.message.contains("both phys_addr and prefill_path"), "{e}");
}
