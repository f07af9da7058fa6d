//! Host tests of the boot loader: synthetic bzImages built here field by
//! field, every refusal, the placement rules, the zero page read back at
//! the offsets the protocol documents (spelled as literals, not through our
//! constants), and a walk of the page tables we build.

use super::*;
use bulkhead_abi::vcpu::{Register, Segment, SegmentField};

const MIB: u64 = 1 << 20;
const PAYLOAD: usize = 8192;

fn w16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn w32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn w64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn r16(b: &[u8], at: u64) -> u16 {
    let at = at as usize;
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn r32(b: &[u8], at: u64) -> u32 {
    let at = at as usize;
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn r64(b: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A bzImage as the 6.1 kernel lays it out: 4 setup sectors after the
/// boot sector, protocol 2.15, 64-bit, relocatable, then PAYLOAD bytes of
/// protected-mode code with a recognisable pattern, then zero padding.
fn bzimage() -> Vec<u8> {
    let setup = 5 * 512;
    let mut b = vec![0u8; setup + PAYLOAD + 4096];
    b[0x1f1] = 4;
    w32(&mut b, 0x1f4, (PAYLOAD / 16) as u32);
    w16(&mut b, 0x1fa, 0xffff);
    w16(&mut b, 0x1fe, 0xaa55);
    b[0x200] = 0xeb;
    b[0x201] = 0x6a; // header ends at 0x26c
    b[0x202..0x206].copy_from_slice(b"HdrS");
    w16(&mut b, 0x206, 0x020f);
    b[0x211] = 0x01; // LOADED_HIGH
    w32(&mut b, 0x214, 0x10_0000);
    w32(&mut b, 0x22c, 0x7fff_ffff);
    w32(&mut b, 0x230, 0x20_0000);
    b[0x234] = 1;
    b[0x235] = 21;
    w16(&mut b, 0x236, 0x7f);
    w32(&mut b, 0x238, 2047);
    w64(&mut b, 0x258, 0x100_0000);
    w32(&mut b, 0x260, 0x40_0000);
    w32(&mut b, 0x264, 0x1234);
    w32(&mut b, 0x268, 0x5678);
    // Something past the header that must not be copied into boot_params.
    b[0x26c] = 0xcc;
    for (i, x) in b[setup..setup + PAYLOAD].iter_mut().enumerate() {
        *x = (i % 251) as u8 + 1;
    }
    b
}

fn cfg<'a>(cmdline: &'a [u8], initrd: Initrd<'a>) -> BootConfig<'a> {
    BootConfig {
        cmdline,
        initrd,
        vendor: Vendor::Svm,
    }
}

#[test]
fn header_parses() {
    let h = parse_header(&bzimage()).unwrap();
    assert_eq!(h.version, 0x020f);
    assert_eq!(h.setup_sects, 4);
    assert_eq!(h.payload_offset_in_image, 5 * 512);
    assert_eq!(h.payload_len, PAYLOAD as u64);
    assert_eq!(h.header_end, 0x26c);
    assert_eq!(h.kernel_alignment, 0x20_0000);
    assert_eq!(h.pref_address, 0x100_0000);
    assert_eq!(h.init_size, 0x40_0000);
    assert_eq!(h.cmdline_size, 2047);
    assert_eq!(h.initrd_addr_max, 0x7fff_ffff);
    assert!(h.relocatable);
    // setup_sects 0 means 4.
    let mut b = bzimage();
    b[0x1f1] = 0;
    assert_eq!(parse_header(&b).unwrap().setup_sects, 4);
    // 2 sectors: the payload starts at 3 * 512.
    b[0x1f1] = 2;
    assert_eq!(parse_header(&b).unwrap().payload_offset_in_image, 3 * 512);
}

#[test]
fn every_bad_header_field_is_refused_by_name() {
    type Mutate = fn(&mut Vec<u8>);
    let cases: &[(Mutate, BootError)] = &[
        (|b| w16(b, 0x1fe, 0x55aa), BootError::BadBootFlag(0x55aa)),
        (
            |b| b[0x202..0x206].copy_from_slice(b"HdrX"),
            BootError::BadHeaderMagic(u32::from_le_bytes(*b"HdrX")),
        ),
        (|b| w16(b, 0x206, 0x020b), BootError::ProtocolTooOld(0x020b)),
        (|b| b[0x201] = 0x10, BootError::BadHeaderLength(0x212)),
        (|b| b[0x201] = 0x90, BootError::BadHeaderLength(0x292)),
        (
            |b| b[0x211] = 0x80,
            BootError::NotBzImage { loadflags: 0x80 },
        ),
        (
            |b| w16(b, 0x236, 0x7e),
            BootError::No64BitEntry { xloadflags: 0x7e },
        ),
        (|b| b[0x234] = 0, BootError::NotRelocatable),
        (
            |b| w32(b, 0x230, 0x30_0000),
            BootError::BadKernelAlignment(0x30_0000),
        ),
        (
            |b| w32(b, 0x230, 0x800),
            BootError::BadKernelAlignment(0x800),
        ),
        (|b| w32(b, 0x1f4, 0), BootError::BadSyssize(0)),
        (
            |b| w32(b, 0x260, 0x1000),
            BootError::BadInitSize {
                init_size: 0x1000,
                payload_len: PAYLOAD as u64,
            },
        ),
        (
            |b| w64(b, 0x258, 0x100_1000),
            BootError::BadPrefAddress(0x100_1000),
        ),
        (|b| w64(b, 0x258, 0), BootError::BadPrefAddress(0)),
        (|b| w32(b, 0x238, 0), BootError::BadCmdlineSize(0)),
        (
            |b| w32(b, 0x22c, 0xffff),
            BootError::BadInitrdAddrMax(0xffff),
        ),
        (
            // syssize claims more code than the image holds.
            |b| w32(b, 0x1f4, 0x10_0000),
            BootError::ImageTooShort {
                len: 5 * 512 + PAYLOAD + 4096,
                needed: 5 * 512 + 0x100_0000,
            },
        ),
        (
            |b| b.truncate(0x100),
            BootError::ImageTooShort {
                len: 0x100,
                needed: 0x200,
            },
        ),
    ];
    for (i, (mutate, want)) in cases.iter().enumerate() {
        let mut b = bzimage();
        mutate(&mut b);
        assert_eq!(parse_header(&b), Err(*want), "case {i}");
        // And load refuses it the same way, touching nothing.
        let mut ram = vec![0xa5u8; 32 * MIB as usize];
        assert_eq!(
            load_linux(&mut ram, &b, &cfg(b"", Initrd::None)).map(|_| ()),
            Err(*want),
            "case {i}"
        );
        assert!(ram.iter().all(|&x| x == 0xa5), "case {i} wrote to RAM");
    }
}

#[test]
fn loads_kernel_cmdline_initrd_and_zero_page() {
    let img = bzimage();
    let initrd: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8 + 1).collect();
    let mut ram = vec![0xa5u8; 64 * MIB as usize];
    let cmdline = b"console=ttyS0 pci=off acpi=off nolapic tsc_early_khz=2000000";
    let info = load_linux(&mut ram, &img, &cfg(cmdline, Initrd::Copy(&initrd))).unwrap();

    // The protected-mode code at pref_address, byte for byte.
    assert_eq!(info.kernel_addr, 0x100_0000);
    assert_eq!(info.kernel_end, 0x140_0000);
    let k = info.kernel_addr as usize;
    assert_eq!(&ram[k..k + PAYLOAD], &img[5 * 512..5 * 512 + PAYLOAD]);
    assert_eq!(info.state.rip, 0x100_0200);

    // The initramfs: page-aligned, as high as possible (RAM end here).
    let (ia, il) = info.initrd.unwrap();
    assert_eq!(il, initrd.len() as u64);
    assert_eq!(ia % 4096, 0);
    assert!(ia + il <= 64 * MIB && ia + il + 4096 > 64 * MIB);
    assert_eq!(&ram[ia as usize..(ia + il) as usize], &initrd[..]);

    // The zero page, at the protocol's literal offsets.
    let bp = info.boot_params;
    assert_eq!(info.state.rsi, bp);
    let z = |o: u64| bp + o;
    // The setup header copied from 0x1f1 up to its declared end (0x26c)...
    for o in 0x1f1..0x26c {
        if !(0x210..0x211).contains(&o)
            && !(0x218..0x220).contains(&o)
            && !(0x228..0x22c).contains(&o)
        {
            assert_eq!(ram[z(o) as usize], img[o as usize], "header byte {o:#x}");
        }
    }
    // ...and nothing past it.
    assert_eq!(ram[z(0x26c) as usize], 0);
    assert_eq!(ram[z(0x210) as usize], 0xff, "type_of_loader");
    assert_eq!(r16(&ram, z(0x1fe)), 0xaa55);
    assert_eq!(r64(&ram, z(0x258)), 0x100_0000, "pref_address");
    assert_eq!(r32(&ram, z(0x260)), 0x40_0000, "init_size");
    assert_eq!(ram[z(0x1ef) as usize], 0, "sentinel");
    let cmd = r32(&ram, z(0x228)) as u64 | (r32(&ram, z(0xc8)) as u64) << 32;
    assert_eq!(cmd, info.cmdline);
    let c = cmd as usize;
    assert_eq!(&ram[c..c + cmdline.len()], cmdline);
    assert_eq!(ram[c + cmdline.len()], 0, "NUL terminated");
    assert_eq!(r32(&ram, z(0x218)) as u64, ia, "ramdisk_image");
    assert_eq!(r32(&ram, z(0x21c)) as u64, il, "ramdisk_size");
    assert_eq!(r32(&ram, z(0xc0)), 0, "ext_ramdisk_image");
    assert_eq!(r32(&ram, z(0xc4)), 0, "ext_ramdisk_size");

    // e820 at 0x1e8 (count) and 0x2d0 (20-byte entries).
    assert_eq!(ram[z(0x1e8) as usize], 3);
    let e = |i: u64| {
        let o = z(0x2d0 + i * 20);
        (r64(&ram, o), r64(&ram, o + 8), r32(&ram, o + 16))
    };
    assert_eq!(e(0), (0, 0x9_fc00, 1));
    assert_eq!(e(1), (0x9_fc00, 0x10_0000 - 0x9_fc00, 2));
    assert_eq!(e(2), (0x10_0000, 63 * MIB, 1));
    assert_eq!(e(3), (0, 0, 0));

    // Low memory outside our structures is zeroed (the 0xa5 fill is gone:
    // no stale BDA/EBDA/MP-table bytes for the kernel to find).
    assert!(ram[0x9_0000..0x10_0000].iter().all(|&x| x == 0));
    // Above 1 MiB, untouched except kernel and initramfs.
    assert_eq!(ram[0x10_0000], 0xa5);
    assert_eq!(ram[k + PAYLOAD], 0xa5);
}

/// Translates a virtual address through 4-level tables in `ram`, as the
/// MMU would (4 KiB, 2 MiB and 1 GiB leaves).
fn walk(ram: &[u8], cr3: u64, va: u64) -> Option<u64> {
    let mut table = cr3 & cpu::PTE_ADDR;
    for level in (0..4).rev() {
        let idx = (va >> (12 + 9 * level)) & 0x1ff;
        let e = r64(ram, table + idx * 8);
        if e & cpu::PTE_P == 0 {
            return None;
        }
        if level == 0 || (level < 3 && e & cpu::PTE_PS != 0) {
            let page = 1u64 << (12 + 9 * level);
            return Some((e & cpu::PTE_ADDR & !(page - 1)) | (va & (page - 1)));
        }
        table = e & cpu::PTE_ADDR;
    }
    None
}

#[test]
fn page_tables_identity_map_everything_the_kernel_touches() {
    let img = bzimage();
    let initrd = vec![1u8; 5000];
    let mut ram = vec![0u8; 64 * MIB as usize];
    let info = load_linux(&mut ram, &img, &cfg(b"x", Initrd::Copy(&initrd))).unwrap();
    let cr3 = info.state.cr3;
    let (ia, il) = info.initrd.unwrap();
    let must = [
        info.kernel_addr,
        info.state.rip,
        info.kernel_end - 1,
        info.boot_params,
        info.boot_params + 0xfff,
        info.cmdline,
        ia,
        ia + il - 1,
        info.state.gdt_base,
        0,
        64 * MIB - 1,
        (4 << 30) - 1,
    ];
    for va in must {
        assert_eq!(walk(&ram, cr3, va), Some(va), "{va:#x}");
    }
    // Every 2 MiB page of the first 4 GiB, and nothing beyond.
    for page in 0..2048u64 {
        let va = page << 21 | 0x1234;
        assert_eq!(walk(&ram, cr3, va), Some(va));
    }
    assert_eq!(walk(&ram, cr3, 4 << 30), None);
    // The tables themselves lie in low memory, clear of boot_params and
    // the command line.
    let tables = layout::PAGE_TABLES..layout::PAGE_TABLES + cpu::PAGE_TABLES_SIZE;
    assert!(tables.end <= 0x9_d000);
    assert!(!tables.contains(&info.boot_params) && !tables.contains(&info.cmdline));
    assert!(!(info.boot_params..info.boot_params + 0x1000).contains(&tables.start));
}

#[test]
fn initial_state_follows_the_64_bit_protocol() {
    let img = bzimage();
    for vendor in [Vendor::Svm, Vendor::Vmx] {
        let mut ram = vec![0u8; 32 * MIB as usize];
        let c = BootConfig {
            cmdline: b"",
            initrd: Initrd::None,
            vendor,
        };
        let info = load_linux(&mut ram, &img, &c).unwrap();
        let s = info.state;
        assert_eq!(s.rflags & (1 << 9), 0, "IF clear");
        assert_eq!(s.rflags & 2, 2);
        assert_eq!(s.cr0 & 0x8000_0001, 0x8000_0001, "PG and PE");
        assert_eq!(s.cr0 & (1 << 5), 1 << 5, "NE, VT-x requires it");
        assert_eq!(s.cr4 & (1 << 5), 1 << 5, "PAE");
        assert_eq!(s.efer & 0x500, 0x500, "LME and LMA");
        assert_eq!(s.efer & (1 << 12) != 0, vendor == Vendor::Svm, "SVME");
        assert_eq!(info.initrd, None);
        assert_eq!(r32(&ram, info.boot_params + 0x218), 0);

        // Segments: CS = 0x10 and DS/ES/SS = 0x18, and their hidden
        // attributes are what the GDT in guest memory says (the guest
        // reloads from it).
        let gdt = |sel: u16| r64(&ram, s.gdt_base + (sel as u64 & !7));
        assert!(s.gdt_limit as u64 >= 0x1f);
        for (seg, st) in s.segments {
            match seg {
                Segment::Cs => {
                    assert_eq!(st.selector, 0x10);
                    assert_eq!(st.attributes, 0xa09b, "code, P, S, L, G");
                    assert_eq!(st.attributes, cpu::descriptor_attributes(gdt(0x10)));
                }
                Segment::Ds | Segment::Es | Segment::Ss | Segment::Fs | Segment::Gs => {
                    assert_eq!(st.selector, 0x18);
                    assert_eq!(st.attributes, 0xc093, "data RW, P, S, D/B, G");
                    assert_eq!(st.attributes, cpu::descriptor_attributes(gdt(0x18)));
                }
                Segment::Ldtr => assert_eq!(st.attributes & (1 << 16), 1 << 16),
                Segment::Tr => assert_eq!(st.attributes & 0x8f, 0x8b),
            }
            assert_eq!(st.base, 0);
        }
        // The writes cover each register once and decode back.
        let w = s.register_writes();
        for (i, (r, _)) in w.iter().enumerate() {
            assert_eq!(Register::from_raw(r.to_raw()), Some(*r));
            assert!(w[..i].iter().all(|(q, _)| q != r), "{r:?} twice");
        }
        let get = |r: Register| w.iter().find(|(q, _)| *q == r).map(|x| x.1);
        assert_eq!(get(Register::Rip), Some(info.kernel_addr + 0x200));
        assert_eq!(
            get(Register::Gpr(bulkhead_abi::vcpu::Gpr::Rsi)),
            Some(info.boot_params)
        );
        assert_eq!(get(Register::Cr3), Some(layout::PAGE_TABLES));
        assert_eq!(
            get(Register::Segment(Segment::Cs, SegmentField::Selector)),
            Some(0x10)
        );
        assert_eq!(
            get(Register::Segment(Segment::Ss, SegmentField::Limit)),
            Some(0xffff_ffff)
        );
        assert_eq!(get(Register::Efer), Some(s.efer));
    }
}

#[test]
fn command_line_with_the_tsc_frequency() {
    let mut buf = [0u8; 128];
    let c = cmdline_with_tsc(&mut buf, DEFAULT_CMDLINE, 2_000_000).unwrap();
    assert_eq!(
        c,
        b"console=ttyS0 pci=off acpi=off nolapic tsc_early_khz=2000000"
    );
    let c = cmdline_with_tsc(&mut buf, b"a", u32::MAX).unwrap();
    assert_eq!(c, b"a tsc_early_khz=4294967295");
    let c = cmdline_with_tsc(&mut buf, b"a", 7).unwrap();
    assert_eq!(c, b"a tsc_early_khz=7");
    assert_eq!(cmdline_with_tsc(&mut buf, b"a b", 0).unwrap(), b"a b");
    // Exactly fitting, and one byte short.
    let mut exact = [0u8; 18];
    assert_eq!(
        cmdline_with_tsc(&mut exact, b"a", 10).unwrap(),
        b"a tsc_early_khz=10"
    );
    let mut short = [0u8; 17];
    assert_eq!(
        cmdline_with_tsc(&mut short, b"a", 10),
        Err(BootError::CmdlineTooLong { len: 18, max: 17 })
    );
}

#[test]
fn e820_is_a_pc_memory_map() {
    let (e, n) = e820_map(256 * MIB);
    assert_eq!(n, 3);
    assert_eq!(
        e,
        [
            E820Entry {
                addr: 0,
                size: 0x9_fc00,
                kind: 1
            },
            E820Entry {
                addr: 0x9_fc00,
                size: 0x6_0400,
                kind: 2
            },
            E820Entry {
                addr: 0x10_0000,
                size: 255 * MIB,
                kind: 1
            },
        ]
    );
    // Entries are sorted and disjoint, and the RAM adds up to the VM's
    // RAM minus the hole.
    for ram in [2 * MIB, 16 * MIB + 4096, 3 << 30] {
        let (e, n) = e820_map(ram);
        let e = &e[..n];
        assert!(e.windows(2).all(|w| w[0].addr + w[0].size <= w[1].addr));
        let total: u64 = e.iter().filter(|x| x.kind == 1).map(|x| x.size).sum();
        assert_eq!(total, ram - (0x10_0000 - 0x9_fc00));
    }
}

#[test]
fn ram_too_small_and_cmdline_errors_leave_ram_untouched() {
    let img = bzimage();
    let cases: [(u64, &[u8], BootError); 4] = [
        (
            20 * MIB - 1,
            b"",
            BootError::RamTooSmall {
                needed: 20 * MIB,
                have: 20 * MIB - 1,
            },
        ),
        (
            512 * 1024,
            b"",
            BootError::RamTooSmall {
                needed: 20 * MIB,
                have: 512 * 1024,
            },
        ),
        (
            32 * MIB,
            &[b'a'; 2048],
            BootError::CmdlineTooLong {
                len: 2048,
                max: 2047,
            },
        ),
        (
            32 * MIB,
            b"root=/dev/vda\0init=/x",
            BootError::CmdlineHasNul { at: 13 },
        ),
    ];
    for (ram_size, cmdline, want) in cases {
        let mut ram = vec![0x5au8; ram_size as usize];
        let got = load_linux(&mut ram, &img, &cfg(cmdline, Initrd::None)).map(|_| ());
        assert_eq!(got, Err(want));
        assert!(ram.iter().all(|&x| x == 0x5a));
    }
    // Exactly cmdline_size bytes is fine; exactly enough RAM too.
    let mut ram = vec![0u8; 20 * MIB as usize];
    let info = load_linux(&mut ram, &img, &cfg(&[b'a'; 2047], Initrd::None)).unwrap();
    assert_eq!(ram[info.cmdline as usize + 2047], 0);
}

#[test]
fn initrd_placement_rules() {
    let mut img = bzimage();
    let ram_size = 64 * MIB;
    let load = |img: &[u8], initrd: Initrd<'_>| {
        let mut ram = vec![0u8; ram_size as usize];
        load_linux(&mut ram, img, &cfg(b"", initrd))
    };
    let big = vec![7u8; 45 * MIB as usize];
    // 45 MiB fits above the kernel (20..64 MiB is 44 MiB: no), so it goes
    // below... where 1..16 MiB is too small too: refused.
    assert_eq!(
        load(&img, Initrd::Copy(&big)).map(|_| ()),
        Err(BootError::InitrdDoesNotFit { len: 45 * MIB })
    );
    assert_eq!(
        load(&img, Initrd::Copy(&[])).map(|_| ()),
        Err(BootError::InitrdEmpty)
    );
    // 44 MiB fits exactly above the kernel.
    let fits = vec![7u8; 44 * MIB as usize];
    let info = load(&img, Initrd::Copy(&fits)).unwrap();
    assert_eq!(info.initrd, Some((20 * MIB, 44 * MIB)));

    // initrd_addr_max below the kernel: the initrd goes under it.
    w32(&mut img, 0x22c, (12 * MIB - 1) as u32);
    let small = vec![9u8; 3 * 4096 + 5];
    let info = load(&img, Initrd::Copy(&small)).unwrap();
    let (a, l) = info.initrd.unwrap();
    assert_eq!(a % 4096, 0);
    assert!(a + l <= 12 * MIB && a + l + 4096 > 12 * MIB, "{a:#x}");
    // initrd_addr_max between kernel start and end: still below the kernel.
    w32(&mut img, 0x22c, (18 * MIB - 1) as u32);
    let info = load(&img, Initrd::Copy(&small)).unwrap();
    let (a, l) = info.initrd.unwrap();
    assert!(a + l <= 16 * MIB, "{a:#x}");

    // In place: outside RAM, below 1 MiB, above the limit, empty.
    let img = bzimage();
    for (addr, len) in [(60 * MIB, 8 * MIB), (0x8_0000, 4096), (u64::MAX - 10, 20)] {
        assert_eq!(
            load(&img, Initrd::InPlace { addr, len }).map(|_| ()),
            Err(BootError::InitrdOutsideRam { addr, len })
        );
    }
    assert_eq!(
        load(
            &img,
            Initrd::InPlace {
                addr: 2 * MIB,
                len: 0
            }
        )
        .map(|_| ()),
        Err(BootError::InitrdEmpty)
    );
    let mut low_max = bzimage();
    w32(&mut low_max, 0x22c, (32 * MIB - 1) as u32);
    assert_eq!(
        load(
            &low_max,
            Initrd::InPlace {
                addr: 30 * MIB,
                len: 4 * MIB
            }
        )
        .map(|_| ()),
        Err(BootError::InitrdAboveMax {
            end: 34 * MIB,
            limit: 32 * MIB
        })
    );
    // In place where the kernel wants to go: the kernel moves past it, to
    // the next kernel_alignment boundary.
    let info = load(
        &img,
        Initrd::InPlace {
            addr: 17 * MIB,
            len: MIB + 5,
        },
    )
    .unwrap();
    assert_eq!(info.initrd, Some((17 * MIB, MIB + 5)));
    assert_eq!(info.kernel_addr, 20 * MIB);
    assert_eq!(info.state.rip, 20 * MIB + 0x200);
    // In place elsewhere: the kernel stays at pref_address.
    let info = load(
        &img,
        Initrd::InPlace {
            addr: 40 * MIB,
            len: MIB,
        },
    )
    .unwrap();
    assert_eq!(info.kernel_addr, 16 * MIB);
    // In place so large the kernel no longer fits after it.
    assert_eq!(
        load(
            &img,
            Initrd::InPlace {
                addr: 16 * MIB,
                len: 46 * MIB
            }
        )
        .map(|_| ()),
        Err(BootError::RamTooSmall {
            needed: 66 * MIB,
            have: 64 * MIB
        })
    );
}

/// A small xorshift generator: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn placement_invariants_hold_for_random_layouts() {
    // Small kernels and RAM so that every branch (fits above, below, not
    // at all, in place before/after/over the kernel) is hit often.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut oks = 0;
    let mut errs = 0;
    let mut kinds = [0; 3];
    for round in 0..500 {
        let mut img = bzimage();
        let align = 0x1000u64 << rng.below(10); // 4 KiB .. 2 MiB
        let pref = (MIB + rng.below(8 * MIB)) & !(align - 1);
        let pref = pref.max(align).max(MIB);
        let init = PAYLOAD as u64 + rng.below(4 * MIB);
        let max = MIB + rng.below(16 * MIB);
        w32(&mut img, 0x230, align as u32);
        w64(&mut img, 0x258, pref);
        w32(&mut img, 0x260, init as u32);
        w32(&mut img, 0x22c, max as u32);
        let ram_size = (MIB + rng.below(14 * MIB)) as usize;
        let fill = 0x5au8;
        let mut ram = vec![fill; ram_size];
        let data = vec![0xc3u8; 1 + rng.below(3 * MIB) as usize];
        let in_place = (MIB / 2 + rng.below(15 * MIB), 1 + rng.below(3 * MIB));
        let initrd = match rng.below(3) {
            0 => Initrd::None,
            1 => Initrd::Copy(&data),
            _ => Initrd::InPlace {
                addr: in_place.0,
                len: in_place.1,
            },
        };
        let cmd = vec![b'x'; rng.below(2100) as usize];
        match load_linux(&mut ram, &img, &cfg(&cmd, initrd)) {
            Err(_) => {
                errs += 1;
                assert!(
                    ram.iter().all(|&b| b == fill),
                    "round {round}: RAM written on error"
                );
            }
            Ok(info) => {
                oks += 1;
                let ram_size = ram_size as u64;
                let (k, ke) = (info.kernel_addr, info.kernel_end);
                assert_eq!(k % align, 0, "round {round}");
                assert!(k >= pref && k >= MIB && ke == k + init && ke <= ram_size);
                assert_eq!(info.state.rip, k + 0x200);
                assert!(cmd.len() <= 2047);
                let limit = (max + 1).min(ram_size);
                kinds[match initrd {
                    Initrd::None => 0,
                    Initrd::Copy(_) => 1,
                    Initrd::InPlace { .. } => 2,
                }] += 1;
                match (initrd, info.initrd) {
                    (Initrd::None, None) => {}
                    (Initrd::Copy(d), Some((a, l))) => {
                        assert_eq!(l, d.len() as u64);
                        assert_eq!(a % 4096, 0);
                        assert!(a >= MIB && a + l <= limit, "round {round}");
                        assert!(a + l <= k || a >= ke, "round {round}: initrd over kernel");
                        assert_eq!(&ram[a as usize..(a + l) as usize], d);
                        // As high as possible: one page higher would break a rule.
                        let up = a + 4096;
                        assert!(
                            up + l > limit || (up < ke && up + l > k),
                            "round {round}: {a:#x} not the highest place"
                        );
                    }
                    (Initrd::InPlace { addr, len }, Some((a, l))) => {
                        assert_eq!((a, l), (addr, len));
                        assert!(a >= MIB && a + l <= limit);
                        assert!(a + l <= k || a >= ke, "round {round}: kernel over initrd");
                        // Not clobbered by the kernel copy.
                        assert!(ram[a as usize..(a + l) as usize].iter().all(|&b| b == fill));
                    }
                    other => panic!("round {round}: {other:?}"),
                }
                // Low memory is the loader's; the kernel's code is where it says.
                assert_eq!(
                    &ram[k as usize..k as usize + PAYLOAD],
                    &img[5 * 512..5 * 512 + PAYLOAD]
                );
            }
        }
    }
    // Both outcomes are exercised, so the invariants above were tested.
    assert!(oks > 50 && errs > 50, "ok {oks}, err {errs}");
    assert!(
        kinds.iter().all(|&n| n > 10),
        "successes by initrd kind {kinds:?}"
    );
}

// --- cpio ---------------------------------------------------------------

fn cpio_record(out: &mut Vec<u8>, name: &str, data: &[u8], magic: &[u8; 6]) {
    out.extend_from_slice(magic);
    let namesize = name.len() + 1;
    let fields = [1, 0o100644, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, namesize, 0];
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut a = Vec::new();
    for (n, d) in files {
        cpio_record(&mut a, n, d, initramfs::MAGIC_NEWC);
    }
    cpio_record(&mut a, "TRAILER!!!", &[], initramfs::MAGIC_NEWC);
    a
}

#[test]
fn initramfs_length_is_found_in_padded_regions() {
    let a = archive(&[
        ("init", b"#!/bin/sh\necho hi\n"),
        ("bin", b""),
        ("x", &[0u8; 37]),
    ]);
    let true_len = a.len();
    let mut region = a.clone();
    region.resize(1 << 20, 0);
    assert_eq!(initramfs_len(&region), Ok(true_len));
    // Exactly the archive, no padding.
    assert_eq!(initramfs_len(&a), Ok(true_len));
    // A file full of zeros inside does not end the walk early.
    let z = archive(&[("zeros", &[0u8; 4096]), ("after", b"1")]);
    let mut region = z.clone();
    region.resize(z.len() + 999, 0);
    assert_eq!(initramfs_len(&region), Ok(z.len()));
    // Two archives with padding between them (as the kernel accepts).
    let mut two = a.clone();
    two.resize(a.len() + 512, 0);
    let b = archive(&[("second", b"2")]);
    two.extend_from_slice(&b);
    let end = two.len();
    two.resize(end + 4096, 0);
    assert_eq!(initramfs_len(&two), Ok(end));
    // The CRC variant of the magic.
    let mut crc = Vec::new();
    cpio_record(&mut crc, "f", b"abc", initramfs::MAGIC_CRC);
    cpio_record(&mut crc, "TRAILER!!!", &[], initramfs::MAGIC_CRC);
    assert_eq!(initramfs_len(&crc), Ok(crc.len()));
}

#[test]
fn corrupt_initramfs_is_an_error_with_its_offset() {
    let a = archive(&[("init", b"hello")]);
    let mut padded = a.clone();
    padded.resize(4096, 0);
    assert_eq!(initramfs_len(&[0u8; 4096][..]), Err(CpioError::Empty));
    assert_eq!(initramfs_len(&[0u8; 0][..]), Err(CpioError::Empty));
    // No trailer: the region ends (in zeros) first.
    let mut no_trailer = Vec::new();
    cpio_record(&mut no_trailer, "init", b"x", initramfs::MAGIC_NEWC);
    let rec_len = no_trailer.len();
    no_trailer.resize(4096, 0);
    assert_eq!(initramfs_len(&no_trailer), Err(CpioError::NoTrailer));
    // Bad magic in the second record.
    let mut bad = padded.clone();
    let second = a.len() - 124; // the trailer record: 110 + 11 name + pad
    assert_eq!(&bad[second..second + 6], b"070701");
    bad[second] = b'X';
    assert_eq!(
        initramfs_len(&bad),
        Err(CpioError::BadMagic { offset: second })
    );
    // A non-hex digit in c_filesize (field 6).
    let mut bad = padded.clone();
    bad[6 + 6 * 8 + 3] = b'g';
    assert_eq!(
        initramfs_len(&bad),
        Err(CpioError::BadField {
            offset: 0,
            field: 6
        })
    );
    // A file size that runs past the region.
    let mut bad = padded.clone();
    bad[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"FFFFFFFF");
    assert_eq!(initramfs_len(&bad), Err(CpioError::Truncated { offset: 0 }));
    // Cut inside a header.
    assert_eq!(rec_len, 120);
    assert_eq!(
        initramfs_len(&a[..second + 50]),
        Err(CpioError::Truncated { offset: second })
    );
    // Compressed archives: gzip, xz, zstd.
    for magic in [&[0x1f, 0x8b, 8][..], b"\xfd7zXZ\0", b"\x28\xb5\x2f\xfd"] {
        let mut c = magic.to_vec();
        c.resize(100, 0xee);
        assert_eq!(initramfs_len(&c), Err(CpioError::Compressed { offset: 0 }));
        // After a plain archive too.
        let mut after = a.clone();
        after.extend_from_slice(&c);
        assert_eq!(
            initramfs_len(&after),
            Err(CpioError::Compressed { offset: a.len() })
        );
    }
    // Garbage after an archive is not silently ignored.
    let mut junk = a.clone();
    junk.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
    junk.resize(a.len() + 200, 0);
    assert_eq!(
        initramfs_len(&junk),
        Err(CpioError::BadMagic {
            offset: a.len() + 4
        })
    );
}

#[test]
fn loader_never_panics_on_mangled_images() {
    // Flip bytes of the header area, one at a time, to every value class:
    // each load either succeeds or returns an error.
    let base = bzimage();
    let mut ram = vec![0u8; 24 * MIB as usize];
    for at in 0x1f0..0x270 {
        for v in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut b = base.clone();
            b[at] = v;
            let _ = load_linux(&mut ram, &b, &cfg(b"a", Initrd::Copy(b"xy")));
        }
    }
    for len in [0, 1, 0x1f1, 0x200, 0x26b, 0x26c, 0xa00, 0xa01] {
        let _ = load_linux(&mut ram, &base[..len], &cfg(b"", Initrd::None));
    }
}

/// The real Debian kernel: only the header checks here (the boot itself is
/// the Linux system test's).
#[test]
#[ignore = "needs BULKHEAD_GUEST_KERNEL: run via cargo xtask test"]
fn real_debian_bzimage() {
    let Ok(path) = std::env::var("BULKHEAD_GUEST_KERNEL") else {
        panic!(
            "BULKHEAD_GUEST_KERNEL is not set: run `cargo xtask test`, which fetches \
             Debian's linux-image-<abi>-amd64 and sets it, or set it to a \
             vmlinuz-*-amd64 extracted with `apt-get download` + `dpkg-deb -x`"
        );
    };
    let image = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let h = parse_header(&image).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    assert!(h.version >= 0x020c, "protocol {:#x}", h.version);
    assert!(h.xloadflags & header::XLF_KERNEL_64 != 0);
    assert!(h.relocatable);
    assert!(h.init_size as u64 >= h.payload_len);
    assert!(
        (16 << 20..256 << 20).contains(&(h.init_size as u64)),
        "init_size {:#x}",
        h.init_size
    );
    assert!(h.cmdline_size >= 255);
    // Loads into 256 MiB with an initramfs, as the VMM will.
    let mut ram = vec![0u8; 256 * MIB as usize];
    let initrd = archive(&[("init", b"#!/bin/sh\n")]);
    let info = load_linux(
        &mut ram,
        &image,
        &cfg(b"console=ttyS0", Initrd::Copy(&initrd)),
    )
    .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    assert_eq!(info.kernel_addr, h.pref_address);
    let (ia, il) = info.initrd.unwrap();
    assert!(ia >= info.kernel_end && ia + il <= 256 * MIB);
    // The entry point holds code, not padding.
    let rip = info.state.rip as usize;
    assert!(ram[rip..rip + 16].iter().any(|&b| b != 0));
}

/// A 64 KiB BIOS that takes the CPU from the reset vector to the kernel's
/// 64-bit entry with the state the loader returned, read from a parameter
/// block at 0x6f00 (+0 CR0, +8 CR3, +16 CR4, +24 EFER, +32 RIP, +40 RSI,
/// +48 GDTR as limit u16 then base u64). Assembled from:
///
/// ```text
/// .code16                            ; at 0xf0000
///   cli
///   lgdtl %cs:(gdtr - 0xf0000)       ; a ROM GDT: 0x08 code32, 0x10 code64, 0x18 data
///   mov %cr0,%eax; or $1,%eax; mov %eax,%cr0
///   ljmpl $0x08, $pm32
/// .code32
/// pm32:
///   mov $0x18,%ax; mov %ax,%ds; mov %ax,%es; mov %ax,%ss
///   mov 0x6f10,%eax; mov %eax,%cr4
///   mov 0x6f08,%eax; mov %eax,%cr3
///   mov $0xc0000080,%ecx; mov 0x6f18,%eax; and $~0x400,%eax; mov 0x6f1c,%edx; wrmsr
///   mov 0x6f00,%eax; mov %eax,%cr0   ; paging on: long mode
///   ljmp $0x10, $lm64
/// .code64
/// lm64:
///   lgdt 0x6f30                      ; the loader's GDT
///   mov $0x18,%eax; mov %eax,%ds; ... %es, %ss, %fs, %gs
///   mov $0x6f00,%esp
///   mov 0x6f20,%rax; mov 0x6f28,%rsi
///   pushq $0x10; pushq %rax; lretq   ; CS from the loader's GDT, jump to RIP
/// gdt: .quad 0, 0x00cf9b000000ffff, 0x00af9b000000ffff, 0x00cf93000000ffff
/// gdtr: .word 31; .long gdt
/// .org 0xfff0: ljmp $0xf000, $0      ; the reset vector
/// ```
const STUB_BIOS: &str = "fa2e660f0116b0000f20c06683c8010f22c066ea1a000f00080066b818008ed88ec08ed0\
a1106f00000f22e0a1086f00000f22d8b9800000c0a1186f000025fffbffff8b151c6f00000f30a1006f00000f22c0\
ea5a000f0010000f011425306f0000b8180000008ed88ec08ed08ee08ee8bc006f0000488b0425206f0000488b3425\
286f00006a105048cb8db40000900000000000000000ffff0000009bcf00ffff0000009baf00ffff00000093cf001f\
0090000f";
/// At the reset vector (0xffff0): `ljmp $0xf000, $0`.
const STUB_RESET: [u8; 5] = [0xea, 0x00, 0x00, 0x00, 0xf0];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Boots the real Debian kernel from what the loader put in RAM, in plain
/// QEMU TCG (no VMM in between, QEMU's own CPUID): the kernel must print
/// our e820 map and command line, find the initramfs where we put it and
/// get as far as running `/init` (which then fails: it is a script with no
/// shell; the panic reboots and `-no-reboot` ends QEMU).
#[test]
#[ignore = "needs BULKHEAD_GUEST_KERNEL and qemu-system-x86_64: run via cargo xtask test"]
fn real_debian_kernel_boots_from_the_loaders_memory_in_qemu() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let Ok(path) = std::env::var("BULKHEAD_GUEST_KERNEL") else {
        panic!(
            "BULKHEAD_GUEST_KERNEL is not set: run `cargo xtask test`, which fetches \
             Debian's linux-image-<abi>-amd64 and sets it"
        );
    };
    let image = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    const RAM: usize = 128 << 20;
    let mut ram = vec![0u8; RAM];
    let initrd = archive(&[("init", b"#!/bin/sh\necho never\n")]);
    let cmdline = "console=ttyS0 pci=off acpi=off nolapic tsc_early_khz=2000000 panic=-1";
    let info = load_linux(
        &mut ram,
        &image,
        &BootConfig {
            cmdline: cmdline.as_bytes(),
            initrd: Initrd::Copy(&initrd),
            vendor: Vendor::Vmx,
        },
    )
    .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    let s = info.state;
    // The stub hard-codes the protocol's selectors; check the state agrees.
    let cs = s.segments.iter().find(|x| x.0 == Segment::Cs).unwrap().1;
    assert_eq!(cs.selector, 0x10);
    let block = 0x6f00;
    for (i, v) in [s.cr0, s.cr3, s.cr4, s.efer, s.rip, s.rsi]
        .iter()
        .enumerate()
    {
        ram[block + i * 8..block + i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    ram[block + 48..block + 50].copy_from_slice(&s.gdt_limit.to_le_bytes());
    ram[block + 50..block + 58].copy_from_slice(&s.gdt_base.to_le_bytes());

    let dir = std::env::temp_dir().join(format!("vmm-core-boot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bios = vec![0u8; 0x1_0000];
    let stub = unhex(STUB_BIOS);
    bios[..stub.len()].copy_from_slice(&stub);
    bios[0xfff0..0xfff5].copy_from_slice(&STUB_RESET);
    let (ia, il) = info.initrd.unwrap();
    let parts = [
        ("low.bin", 0u64, 0xa_0000u64),
        ("kernel.bin", info.kernel_addr, info.header.payload_len),
        ("initrd.bin", ia, il),
    ];
    std::fs::write(dir.join("bios.bin"), &bios).unwrap();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "pc", "-cpu", "qemu64,-apic", "-m", "128"])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
        ])
        .arg("-bios")
        .arg(dir.join("bios.bin"));
    for (name, at, len) in parts {
        let f = dir.join(name);
        std::fs::write(&f, &ram[at as usize..(at + len) as usize]).unwrap();
        cmd.arg("-device").arg(format!(
            "loader,file={},addr={at:#x},force-raw=on",
            f.display()
        ));
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting qemu-system-x86_64: {e} (install qemu-system-x86, or run via cargo xtask test)")
        });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = std::fs::remove_dir_all(&dir);
    let want = [
        format!("Command line: {cmdline}"),
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable".into(),
        "BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved".into(),
        format!(
            "BIOS-e820: [mem 0x0000000000100000-{:#018x}] usable",
            RAM - 1
        ),
        format!(
            "RAMDISK: [mem {ia:#010x}-{:#010x}]",
            ((ia + il + 0xfff) & !0xfff) - 1
        ),
        "Run /init as init process".into(),
    ];
    for w in want {
        assert!(
            out.contains(&w),
            "the guest did not print {w:?}; serial output:\n{out}\nqemu stderr:\n{err}"
        );
    }
}
