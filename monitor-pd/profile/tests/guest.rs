//! End-to-end VMI tests on a real Debian kernel booted in QEMU (fixtures
//! from `cargo xtask test`): the profile built from the kernel package, the
//! walkers against what the guest printed about itself, the checks on the
//! clean image and on copies the tests tamper with, broken images, and a
//! cross-check with Volatility 3 using the ISF we write.
//!
//! Kernel threads: the guest's `/proc/<pid>/stat` shows a worker's comm
//! with its current workqueue appended (`kworker/0:2-events`), a kernel
//! thread's full name where comm keeps 15 bytes, and kworkers
//! come and go between the guest's print and the dump; so kernel threads
//! are compared by pid/ppid with the comm as a prefix, and kworkers that
//! appeared or vanished in between are tolerated. User processes must match
//! exactly.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use monitor_core::checks::{self, Target};
use monitor_core::linux::Linux;
use monitor_core::mem::{Image, ImageError};
use monitor_core::profile::Profile;

const HOW: &str = "run via `cargo xtask test`, which boots the guest and sets BULKHEAD_VMI_*";

fn env(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {HOW}")))
}

struct Fixture {
    kernel: monitor_profile::Kernel,
    profile: Profile,
    elf: Vec<u8>,
    raw: Vec<u8>,
    serial: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let deb = std::fs::read(env("BULKHEAD_VMI_DEB")).expect("read kernel .deb");
        let kernel = monitor_profile::load_kernel(&deb, None).expect("load kernel");
        let profile = kernel.profile().expect("build profile");
        // Through the file format, as the monitor would get it.
        let profile = Profile::from_bytes(&profile.to_bytes()).expect("profile round trip");
        Fixture {
            kernel,
            profile,
            elf: std::fs::read(env("BULKHEAD_VMI_ELF")).expect("read ELF dump"),
            raw: std::fs::read(env("BULKHEAD_VMI_RAW")).expect("read raw dump"),
            serial: std::fs::read_to_string(env("BULKHEAD_VMI_SERIAL")).expect("read serial log"),
        }
    })
}

fn attach<'a>(img: &'a Image<'a>, p: &'a Profile) -> Linux<'a> {
    Linux::attach(img, p, img.regs, img.vmcoreinfo.as_deref()).expect("attach")
}

/// (pid, ppid, comm) the guest printed from /proc/<pid>/stat.
fn guest_ps(serial: &str) -> Vec<(i32, i32, String)> {
    serial
        .lines()
        .filter_map(|l| l.strip_prefix("BH-PS "))
        .map(|l| {
            let open = l.find('(').expect("stat comm");
            let close = l.rfind(')').expect("stat comm");
            let pid = l[..open].trim().parse().expect("pid");
            let comm = l[open + 1..close].to_string();
            let rest: Vec<&str> = l[close + 1..].split_whitespace().collect();
            (pid, rest[1].parse().expect("ppid"), comm)
        })
        .collect()
}

fn guest_modules(serial: &str) -> BTreeSet<(String, u64, u64)> {
    serial
        .lines()
        .filter_map(|l| l.strip_prefix("BH-MOD "))
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let base = u64::from_str_radix(f[5].trim_start_matches("0x"), 16).expect("module base");
            (f[0].to_string(), f[1].parse().expect("size"), base)
        })
        .collect()
}

fn compare_ps(linux: &Linux, serial: &str) {
    let ours = linux.tasks().expect("tasks");
    assert_eq!(ours[0].pid, 0, "init_task (swapper) comes first");
    let guest = guest_ps(serial);
    assert!(guest.len() > 20, "guest printed its process list");
    let ours_user: BTreeSet<(i32, i32, String)> = ours
        .iter()
        .filter(|t| !t.kthread)
        .map(|t| (t.pid, t.ppid, t.comm.clone()))
        .collect();
    let guest_user: BTreeSet<(i32, i32, String)> = guest
        .iter()
        .filter(|(pid, ppid, _)| *pid != 2 && *ppid != 2)
        .cloned()
        .collect();
    assert_eq!(
        ours_user, guest_user,
        "user processes: ours vs. the guest's own /proc"
    );
    for want in ["bh-sleeper-a", "bh-sleeper-b", "bh-parent", "bh-child"] {
        assert!(ours_user.iter().any(|(_, _, c)| c == want), "{want} listed");
    }
    // Kernel threads (documented above).
    for (pid, ppid, comm) in guest
        .iter()
        .filter(|(pid, ppid, _)| *pid == 2 || *ppid == 2)
    {
        match ours.iter().find(|t| t.pid == *pid) {
            Some(t) => {
                assert!(t.kthread, "pid {pid} is a kernel thread");
                assert_eq!(t.ppid, *ppid, "ppid of kernel thread {pid}");
                // /proc shows the full kthread name (ours is the 15-byte comm) and
                // appends a worker's workqueue.
                assert!(
                    comm.starts_with(&t.comm),
                    "comm of {pid}: {comm} vs {}",
                    t.comm
                );
            }
            None => assert!(
                comm.starts_with("kworker/"),
                "kernel thread {pid} ({comm}) missing"
            ),
        }
    }
    for t in ours.iter().filter(|t| t.kthread && t.pid != 0) {
        assert!(
            guest.iter().any(|g| g.0 == t.pid) || t.comm.starts_with("kworker/"),
            "extra kernel thread {}",
            t.pid
        );
    }
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn pslist_matches_the_guests_own_ps_on_elf_and_raw() {
    let f = fixture();
    let img = Image::parse(&f.elf).unwrap();
    assert!(img.regs.is_some(), "QEMU ELF core carries CPU state");
    let linux = attach(&img, &f.profile);
    assert_ne!(linux.slide, 0, "KASLR is on in the guest");
    compare_ps(&linux, &f.serial);
    // The guest's panic-free log does not print the offset; cross-check the
    // slide from the page tables against the one from the IDT.
    let raw = Image::parse(&f.raw).unwrap();
    assert!(raw.regs.is_none());
    let linux_raw =
        Linux::attach(&raw, &f.profile, None, None).expect("automatic page-table discovery");
    assert_eq!(linux_raw.slide, linux.slide);
    compare_ps(&linux_raw, &f.serial);
    // The file-backed image (what `bulkhead vmi` uses) sees the same.
    let file = monitor_profile::file_image::open(&env("BULKHEAD_VMI_ELF")).unwrap();
    let linux_file = Linux::attach(&file, &f.profile, file.regs, None).unwrap();
    assert_eq!(linux_file.tasks().unwrap(), linux.tasks().unwrap());
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn lsmod_matches_proc_modules() {
    let f = fixture();
    let img = Image::parse(&f.elf).unwrap();
    let linux = attach(&img, &f.profile);
    let ours: BTreeSet<(String, u64, u64)> = linux
        .modules()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.size, m.base))
        .collect();
    let guest = guest_modules(&f.serial);
    for m in ["loop", "bfs", "msr"] {
        assert!(guest.iter().any(|g| g.0 == m), "guest loaded {m}");
    }
    assert_eq!(ours, guest);
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn checks_are_clean_on_the_clean_guest() {
    let f = fixture();
    let img = Image::parse(&f.elf).unwrap();
    let linux = attach(&img, &f.profile);
    let sc = checks::check_syscalls(&linux).unwrap();
    assert!(sc.len() > 400, "whole table checked");
    assert!(sc.iter().all(|e| e.ok), "{:?}", sc.iter().find(|e| !e.ok));
    let idt = checks::check_idt(&linux, img.regs.map(|r| r.idt_base)).unwrap();
    assert!(idt.len() > 200);
    assert!(idt.iter().all(|e| e.ok), "{:?}", idt.iter().find(|e| !e.ok));
    let (pages, diffs) = checks::check_text(&linux).unwrap();
    assert!(pages > 1000);
    assert!(
        diffs.is_empty(),
        "{} text pages differ, first {:?}",
        diffs.len(),
        diffs.first()
    );
    let xv = checks::psxview(&linux).unwrap();
    assert!(xv.iter().all(|x| !x.hidden()));
    assert!(
        xv.iter()
            .filter(|x| x.in_list)
            .all(|x| x.task.pid == 0 || x.in_idr),
        "every listed task is in the PID IDR"
    );
    assert!(
        xv.iter().any(|x| x.in_scan && x.task.comm == "bh-child"),
        "scan finds tasks too"
    );
    let lstar = linux.symbol("entry_SYSCALL_64").unwrap();
    assert!(checks::check_msr(&linux, lstar).unwrap()[0].ok);
    assert!(!checks::check_msr(&linux, lstar + 0x40).unwrap()[0].ok);
}

/// Physical-address patches computed on the clean image, applied to a copy.
fn tamper(f: &Fixture, edit: impl Fn(&Linux, &Image) -> Vec<(u64, Vec<u8>)>) -> Vec<u8> {
    let img = Image::parse(&f.elf).unwrap();
    let linux = attach(&img, &f.profile);
    let patches: Vec<(usize, Vec<u8>)> = edit(&linux, &img)
        .into_iter()
        .map(|(va, bytes)| {
            let pa = linux
                .space
                .translate(&img, va)
                .expect("patch address mapped");
            (
                img.file_offset(pa).expect("patch address in the image"),
                bytes,
            )
        })
        .collect();
    let mut copy = f.elf.clone();
    for (off, bytes) in patches {
        copy[off..off + bytes.len()].copy_from_slice(&bytes);
    }
    copy
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn redirected_syscall_entries_are_named() {
    let f = fixture();
    let patched = tamper(f, |l, _| {
        let table = l.symbol("sys_call_table").unwrap();
        let loop_base = l
            .modules()
            .unwrap()
            .iter()
            .find(|m| m.name == "loop")
            .unwrap()
            .base;
        vec![
            (table + 8 * 59, (loop_base + 0x40).to_le_bytes().to_vec()), // execve -> module
            (
                table + 8 * 62,
                0xffff_ffff_c0ff_0000u64.to_le_bytes().to_vec(),
            ), // kill -> nowhere
            (
                table,
                l.symbol("do_sys_open")
                    .unwrap()
                    .wrapping_add(0x10)
                    .to_le_bytes()
                    .to_vec(),
            ), // read -> mid-function
            (
                table + 8 * 39,
                l.symbol("__x64_sys_getuid").unwrap().to_le_bytes().to_vec(),
            ), // getpid -> another real system call
        ]
    });
    let img = Image::parse(&patched).unwrap();
    let linux = attach(&img, &f.profile);
    let bad: Vec<_> = checks::check_syscalls(&linux)
        .unwrap()
        .into_iter()
        .filter(|e| !e.ok)
        .collect();
    assert_eq!(
        bad.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![0, 39, 59, 62]
    );
    assert_eq!(bad[0].target, Target::Kernel("do_sys_open".into(), 0x10));
    assert_eq!(bad[0].expected.as_deref(), Some("__x64_sys_read"));
    assert_eq!(bad[1].target, Target::Kernel("__x64_sys_getuid".into(), 0));
    assert_eq!(bad[1].expected.as_deref(), Some("__x64_sys_getpid"));
    assert_eq!(bad[2].target, Target::Module("loop".into()));
    assert_eq!(bad[3].target, Target::Unknown);
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn redirected_idt_gate_is_named() {
    let f = fixture();
    let evil = 0xffff_ffff_c0ee_1230u64;
    let patched = tamper(f, |_, img| {
        let base = img.regs.unwrap().idt_base;
        let mut g = Vec::new();
        g.extend_from_slice(&(evil as u16).to_le_bytes());
        vec![
            (base + 16 * 14, g),
            (
                base + 16 * 14 + 6,
                ((evil >> 16) as u16).to_le_bytes().to_vec(),
            ),
            (
                base + 16 * 14 + 8,
                ((evil >> 32) as u32).to_le_bytes().to_vec(),
            ),
        ]
    });
    let img = Image::parse(&patched).unwrap();
    let linux = attach(&img, &f.profile);
    let bad: Vec<_> = checks::check_idt(&linux, img.regs.map(|r| r.idt_base))
        .unwrap()
        .into_iter()
        .filter(|e| !e.ok)
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(
        (bad[0].index, bad[0].addr, &bad[0].target),
        (14, evil, &Target::Unknown)
    );
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn task_unlinked_from_the_task_list_is_hidden_but_found() {
    let f = fixture();
    let patched = tamper(f, |l, _| {
        let victim = l
            .tasks()
            .unwrap()
            .into_iter()
            .find(|t| t.comm == "bh-sleeper-b")
            .unwrap();
        let tasks_off = f.profile.offset("task_struct", "tasks").unwrap() as u64;
        let node = victim.addr + tasks_off;
        let next = l.u64(node).unwrap();
        let prev = l.u64(node + 8).unwrap();
        vec![
            (prev, next.to_le_bytes().to_vec()),
            (next + 8, prev.to_le_bytes().to_vec()),
        ]
    });
    let img = Image::parse(&patched).unwrap();
    let linux = attach(&img, &f.profile);
    assert!(
        linux
            .tasks()
            .unwrap()
            .iter()
            .all(|t| t.comm != "bh-sleeper-b"),
        "gone from pslist"
    );
    let xv = checks::psxview(&linux).unwrap();
    let hidden: Vec<_> = xv.iter().filter(|x| x.hidden()).collect();
    assert_eq!(hidden.len(), 1);
    assert_eq!(hidden[0].task.comm, "bh-sleeper-b");
    assert!(hidden[0].in_idr && hidden[0].in_scan && !hidden[0].in_list);
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn changed_kernel_text_byte_is_detected_and_named() {
    let f = fixture();
    let patched = tamper(f, |l, _| {
        let at = l.symbol("commit_creds").unwrap() + 0x20;
        let old = l.u64(at).unwrap() as u8;
        vec![(at, vec![old ^ 0xff])]
    });
    let img = Image::parse(&patched).unwrap();
    let linux = attach(&img, &f.profile);
    let (_, diffs) = checks::check_text(&linux).unwrap();
    assert_eq!(diffs.len(), 1, "exactly one page changed");
    let elf = monitor_profile::image::Elf::parse(&f.kernel.vmlinux).unwrap();
    let link = f.profile.text.start + diffs[0].page as u64 * 4096;
    let page = elf.at_va(link, 4096).unwrap();
    let changed = checks::diff_page(&linux, diffs[0].page, page).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, linux.symbol("commit_creds").unwrap() + 0x20);
    assert_eq!(changed[0].1, "commit_creds+0x20");
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn truncated_and_garbage_images_give_errors() {
    let f = fixture();
    assert_eq!(
        Image::parse(&f.elf[..f.elf.len() / 2]).err(),
        Some(ImageError::Truncated)
    );
    assert_eq!(
        Image::parse(&f.elf[..3000]).err(),
        Some(ImageError::Truncated)
    );
    assert_eq!(
        Image::parse(&f.raw[..f.raw.len() - 100]).err(),
        Some(ImageError::RawNotPageMultiple)
    );
    // A raw image cut before the kernel: parses, but no kernel is found.
    let short = Image::parse(&f.raw[..8 << 20]).unwrap();
    assert!(Linux::attach(&short, &f.profile, None, None).is_err());
    // Garbage of a plausible size.
    let mut x = 0x1234_5678_9abc_def0u64;
    let garbage: Vec<u8> = (0..(4 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let g = Image::parse(&garbage).unwrap();
    assert!(Linux::attach(&g, &f.profile, None, None).is_err());
    // A damaged CR3 in the notes falls back to the search and still works.
    let img = Image::parse(&f.elf).unwrap();
    let mut regs = img.regs.unwrap();
    regs.cr3 = 0x1000;
    let l = Linux::attach(&img, &f.profile, Some(regs), None).expect("fallback search");
    assert!(l.tasks().unwrap().len() > 20);
}

/// Runs Volatility 3 with the ISF we write; returns its JSON rows.
fn volatility(plugin: &str, isf_dir: &std::path::Path) -> Vec<serde_json::Value> {
    let vol = env("BULKHEAD_VMI_VOL");
    let out = std::process::Command::new(&vol)
        .args(["-q", "-r", "json", "-s"])
        .arg(isf_dir)
        .arg("-f")
        .arg(env("BULKHEAD_VMI_ELF"))
        .arg(plugin)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} ({HOW})", vol.display()));
    assert!(
        out.status.success(),
        "vol {plugin} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("vol {plugin} output is not JSON: {e}"))
}

#[test]
#[ignore = "needs the QEMU guest fixtures and Volatility 3: run via cargo xtask test"]
fn volatility3_with_our_isf_agrees_on_pslist_and_lsmod() {
    let f = fixture();
    let dir = std::env::temp_dir().join(format!("bulkhead-isf-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("linux")).unwrap();
    std::fs::write(
        dir.join("linux/bulkhead.json"),
        monitor_profile::isf::to_isf(&f.kernel),
    )
    .unwrap();
    let img = Image::parse(&f.elf).unwrap();
    let linux = attach(&img, &f.profile);
    // Volatility prints virtual offsets without the sign-extended top bits.
    let low = |a: u64| a & 0xffff_ffff_ffff;

    let ours: BTreeSet<(i64, i64, String, u64)> = linux
        .tasks()
        .unwrap()
        .into_iter()
        .filter(|t| t.pid != 0) // Volatility starts after init_task.
        .map(|t| (t.pid as i64, t.ppid as i64, t.comm, low(t.addr)))
        .collect();
    let theirs: BTreeSet<(i64, i64, String, u64)> = volatility("linux.pslist", &dir)
        .iter()
        .map(|r| {
            (
                r["PID"].as_i64().unwrap(),
                r["PPID"].as_i64().unwrap(),
                r["COMM"].as_str().unwrap().to_string(),
                low(r["OFFSET (V)"].as_u64().unwrap()),
            )
        })
        .collect();
    assert!(theirs.len() > 20);
    assert_eq!(ours, theirs, "linux.pslist rows");

    let ours: BTreeSet<(String, u64, u64)> = linux
        .modules()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.size, low(m.addr)))
        .collect();
    let theirs: BTreeSet<(String, u64, u64)> = volatility("linux.lsmod", &dir)
        .iter()
        .map(|r| {
            (
                r["Module Name"].as_str().unwrap().to_string(),
                r["Code Size"].as_u64().unwrap(),
                low(r["Offset"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(ours, theirs, "linux.lsmod entries");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn five_level_paging_guest_with_vmcoreinfo_on_elf_and_flattened_raw() {
    use monitor_core::mem::PhysMem;
    let f = fixture();
    let data = std::fs::read(env("BULKHEAD_VMI_LA57_ELF")).expect("read LA57 dump");
    let serial =
        std::fs::read_to_string(env("BULKHEAD_VMI_LA57_SERIAL")).expect("read LA57 serial log");
    let img = Image::parse(&data).unwrap();
    assert_ne!(
        img.regs.unwrap().cr4 & (1 << 12),
        0,
        "the guest runs with CR4.LA57"
    );
    assert!(
        img.vmcoreinfo.is_some(),
        "the LA57 guest has QEMU's vmcoreinfo device"
    );
    let linux = attach(&img, &f.profile);
    assert_eq!(linux.space.levels, 5);
    assert_eq!(
        linux.slide_source,
        monitor_core::linux::SlideSource::Vmcoreinfo
    );
    compare_ps(&linux, &serial);
    let (_, diffs) = checks::check_text(&linux).unwrap();
    assert!(
        diffs.is_empty(),
        "text clean on another CPU model (other alternatives applied)"
    );
    // Flatten the core into a raw dump: discovery must find the 5-level root.
    let mut raw = vec![0u8; img.phys_end() as usize];
    for (pa, len) in img.ranges() {
        img.read_phys(pa, &mut raw[pa as usize..(pa + len) as usize])
            .unwrap();
    }
    let raw_img = Image::parse(&raw).unwrap();
    let found = Linux::attach(&raw_img, &f.profile, None, None).expect("5-level discovery");
    assert_eq!((found.space.levels, found.slide), (5, linux.slide));
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn slide_from_idt_and_from_the_guests_own_lstar_agree_and_check_msr_is_clean() {
    let f = fixture();
    let lstar = f
        .serial
        .lines()
        .find_map(|l| l.strip_prefix("BH-LSTAR"))
        .map(|h| u64::from_str_radix(h.trim(), 16).expect("LSTAR hex"))
        .expect("guest printed its LSTAR");
    let img = Image::parse(&f.elf).unwrap();
    let linux = attach(&img, &f.profile);
    assert_eq!(
        monitor_core::linux::lstar_slide(&f.profile, lstar),
        Some(linux.slide)
    );
    let idt =
        monitor_core::linux::idt_slide(&img, &f.profile, &linux.space, img.regs.unwrap().idt_base);
    assert_eq!(idt, Some(linux.slide));
    let e = &checks::check_msr(&linux, lstar).unwrap()[0];
    assert!(e.ok, "{e:?}");
    // A hooked LSTAR (into a module) is named.
    let base = linux.modules().unwrap()[0].base;
    let e = &checks::check_msr(&linux, base + 0x10).unwrap()[0];
    assert!(!e.ok);
    assert!(matches!(e.target, Target::Module(_)));
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn system_map_overrides_kallsyms() {
    let f = fixture();
    let deb = std::fs::read(env("BULKHEAD_VMI_DEB")).unwrap();
    // A System.map with one symbol moved: the override must win.
    let mut map = String::new();
    for s in &f.kernel.symbols {
        let addr = if s.name == "init_task" {
            s.addr + 0x40
        } else {
            s.addr
        };
        map.push_str(&format!("{addr:016x} {} {}\n", s.kind as char, s.name));
    }
    let k = monitor_profile::load_kernel(&deb, Some(&map)).unwrap();
    assert_eq!(k.info.symbol_source, "System.map");
    assert_eq!(k.symbols.len(), f.kernel.symbols.len());
    let it = k.symbols.iter().find(|s| s.name == "init_task").unwrap();
    assert_eq!(
        Some(it.addr),
        f.profile.symbol("init_task").map(|a| a + 0x40)
    );
}

#[test]
#[ignore = "needs the QEMU guest fixtures: run via cargo xtask test"]
fn kernels_without_btf_or_readable_kallsyms_give_clear_errors() {
    let f = fixture();
    // The bare ELF is accepted as input too.
    assert!(monitor_profile::load_kernel(&f.kernel.vmlinux, None).is_ok());
    let elf = monitor_profile::image::Elf::parse(&f.kernel.vmlinux).unwrap();
    let shstr = elf.sections.iter().find(|s| s.name == ".shstrtab").unwrap();
    let (off, size) = (shstr.offset, shstr.size);
    let ro = elf.section(".rodata").unwrap();
    let (ro_off, ro_size) = (ro.offset, ro.size);

    let mut no_btf = f.kernel.vmlinux.clone();
    let names = &mut no_btf[off..off + size];
    let at = names.windows(5).position(|w| w == b".BTF\0").unwrap();
    names[at + 1] = b'X';
    let e = monitor_profile::load_kernel(&no_btf, None).err().unwrap();
    assert!(
        e.contains("no .BTF section") && e.contains("CONFIG_DEBUG_INFO_BTF"),
        "{e}"
    );

    let mut no_kallsyms = f.kernel.vmlinux.clone();
    no_kallsyms[ro_off..ro_off + ro_size].fill(0);
    let e = monitor_profile::load_kernel(&no_kallsyms, None)
        .err()
        .unwrap();
    assert!(
        e.contains("cannot read the kernel's kallsyms tables") && e.contains("--system-map"),
        "{e}"
    );
}
