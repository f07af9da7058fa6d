//! Test fixtures for the VMI area: a real Debian kernel booted in QEMU
//! (TCG, KASLR on) with a busybox initramfs that starts processes with
//! distinctive names, loads two modules from the kernel package and prints
//! its own process and module lists; then its memory is dumped over QMP as
//! an ELF core and a raw `pmemsave` image. Also Volatility 3 for the
//! cross-check, and the fuzz smoke run.
//!
//! Design rules: everything is cached under `.cache/vmi/<kernel package>`
//! and rebuilt only when missing; the guest's own view (serial log) is kept
//! beside the dumps so tests compare against what the guest said, never
//! against numbers written here.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{debian, host, run, Result};

/// Guest RAM: the size the tests and the benchmark expect.
const GUEST_MB: u64 = 256;
/// Printed by the guest once its lists are out and everything is settled.
pub const READY: &str = "BULKHEAD-VMI-READY";
/// Modules the guest loads (path under lib/modules/<abi>/kernel/, no deps);
/// `msr` lets the guest print its own LSTAR, `qemu_fw_cfg` hands the
/// kernel's VMCOREINFO to QEMU's `vmcoreinfo` device.
const MODULES: &[&str] = &[
    "drivers/block/loop.ko",
    "fs/bfs/bfs.ko",
    "arch/x86/kernel/msr.ko",
    "drivers/firmware/qemu_fw_cfg.ko",
];

const INIT: &str = r#"#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /lib/modules/*.ko; do insmod $m; done
/bin/bh-sleeper-a &
/bin/bh-sleeper-b &
/bin/bh-parent &
sleep 3
# The guest's own IA32_LSTAR (0xc0000082), read through the msr driver.
echo "BH-LSTAR $(dd if=/dev/cpu/0/msr bs=8 count=1 iflag=skip_bytes skip=3221225602 2>/dev/null | od -A n -t x8)"
echo BH-PS-BEGIN
for d in /proc/[0-9]*; do read -r l < $d/stat && echo "BH-PS $l"; done
echo BH-PS-END
echo BH-MOD-BEGIN
while read -r l; do echo "BH-MOD $l"; done < /proc/modules
echo BH-MOD-END
echo BULKHEAD-VMI-READY
wait
"#;

const SLEEPER: &str = "#!/bin/sh\nsleep 1000000\n";
const PARENT: &str = "#!/bin/sh\n/bin/bh-child &\nsleep 1000000\n";

fn sh(script: &str) -> Result<()> {
    run(Command::new("sh").arg("-c").arg(script))
}

fn write(path: &Path, data: &str, exec: bool) -> Result<()> {
    std::fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if exec {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Builds the initramfs (cpio newc) from busybox and the kernel's modules.
fn initramfs(work: &Path, kernel_deb: &Path, busybox_deb: &Path) -> Result<PathBuf> {
    let root = work.join("initramfs");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "lib/modules", "tmp"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| format!("mkdir: {e}"))?;
    }
    let bb = work.join("busybox-root");
    let _ = std::fs::remove_dir_all(&bb);
    run(Command::new("dpkg-deb").arg("-x").arg(busybox_deb).arg(&bb))?;
    std::fs::copy(bb.join("bin/busybox"), root.join("bin/busybox"))
        .map_err(|e| format!("copy busybox: {e}"))?;
    std::os::unix::fs::symlink("busybox", root.join("bin/sh"))
        .map_err(|e| format!("symlink: {e}"))?;
    // Only the few module files we need come out of the 70 MB package.
    let kx = work.join("kernel-root");
    let _ = std::fs::remove_dir_all(&kx);
    std::fs::create_dir_all(&kx).map_err(|e| format!("mkdir: {e}"))?;
    let pats: Vec<String> = MODULES
        .iter()
        .map(|m| format!("'./lib/modules/*/kernel/{m}*'"))
        .collect();
    sh(&format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards './boot/vmlinuz-*' {}",
        kernel_deb.display(),
        kx.display(),
        pats.join(" ")
    ))?;
    // Compressed modules (.ko.xz/.ko.zst in newer kernels) are unpacked on
    // the host: busybox insmod may not read them.
    sh(&format!(
        "cd '{0}' && for f in $(find lib -name '*.ko*'); do case $f in *.xz) xz -dc $f > '{1}'/lib/modules/$(basename $f .xz);; *.zst) zstd -qdc $f > '{1}'/lib/modules/$(basename $f .zst);; *) cp $f '{1}'/lib/modules/;; esac; done",
        kx.display(),
        root.display()
    ))?;
    write(&root.join("init"), INIT, true)?;
    write(&root.join("bin/bh-sleeper-a"), SLEEPER, true)?;
    write(&root.join("bin/bh-sleeper-b"), SLEEPER, true)?;
    write(&root.join("bin/bh-parent"), PARENT, true)?;
    write(&root.join("bin/bh-child"), SLEEPER, true)?;
    let cpio = work.join("initramfs.cpio");
    sh(&format!(
        "cd '{}' && find . | cpio -o -H newc --quiet > '{}'",
        root.display(),
        cpio.display()
    ))?;
    let vmlinuz = std::fs::read_dir(kx.join("boot"))
        .map_err(|e| format!("no boot/ in the kernel package: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or("the kernel package has no boot/vmlinuz-*")?;
    std::fs::copy(&vmlinuz, work.join("vmlinuz")).map_err(|e| format!("copy vmlinuz: {e}"))?;
    Ok(cpio)
}

/// A minimal QMP client: one command, one answer (events skipped).
struct Qmp {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Qmp {
    fn connect(sock: &Path) -> Result<Qmp> {
        let s = UnixStream::connect(sock)
            .map_err(|e| format!("QMP connect {}: {e}", sock.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(900))).ok();
        let w = s.try_clone().map_err(|e| format!("QMP: {e}"))?;
        let mut q = Qmp {
            r: BufReader::new(s),
            w,
        };
        let mut greeting = String::new();
        q.r.read_line(&mut greeting)
            .map_err(|e| format!("QMP greeting: {e}"))?;
        q.cmd(r#"{"execute":"qmp_capabilities"}"#)?;
        Ok(q)
    }

    fn cmd(&mut self, json: &str) -> Result<String> {
        writeln!(self.w, "{json}").map_err(|e| format!("QMP send: {e}"))?;
        loop {
            let mut line = String::new();
            let n = self
                .r
                .read_line(&mut line)
                .map_err(|e| format!("QMP read: {e}"))?;
            if n == 0 {
                return Err(format!("QMP closed while waiting for the answer to {json}"));
            }
            if line.contains("\"return\"") {
                return Ok(line);
            }
            if line.contains("\"error\"") {
                return Err(format!("QMP {json}: {}", line.trim()));
            }
        }
    }
}

/// One guest boot: QEMU's CPU model and the files it leaves in `work`.
struct Boot {
    cpu: &'static str,
    devices: &'static [&'static str],
    elf: &'static str,
    raw: Option<&'static str>,
    serial: &'static str,
}

/// The 4-level guest (qemu64) with ELF and raw dumps, and a 5-level one
/// (`-cpu max` has LA57, which the Debian kernel uses) with an ELF dump
/// that also carries the guest's VMCOREINFO note.
const BOOTS: &[Boot] = &[
    Boot {
        cpu: "qemu64",
        devices: &[],
        elf: "mem.elf",
        raw: Some("mem.raw"),
        serial: "serial.log",
    },
    Boot {
        cpu: "max",
        devices: &["vmcoreinfo"],
        elf: "la57.elf",
        raw: None,
        serial: "la57-serial.log",
    },
];

/// Written last: the fixtures of this directory are complete.
const COMPLETE: &str = "fixtures-complete-3";

/// Boots the guest and dumps it. Returns once the boot's dumps and serial
/// log are in `work`.
fn boot_and_dump(work: &Path, boot: &Boot) -> Result<()> {
    // Unix socket paths are limited to 108 bytes: keep it out of the tree.
    let sock = std::env::temp_dir().join(format!("bulkhead-vmi-{}.qmp", std::process::id()));
    let serial = work.join(boot.serial);
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&serial);
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "pc,accel=tcg",
            "-cpu",
            boot.cpu,
            "-smp",
            "1",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-m", &GUEST_MB.to_string()])
        .args(boot.devices.iter().flat_map(|d| ["-device", d]))
        .arg("-kernel")
        .arg(work.join("vmlinuz"))
        .arg("-initrd")
        .arg(work.join("initramfs.cpio"))
        .args(["-append", "console=ttyS0 loglevel=4 panic=-1 rdinit=/init"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    let t0 = Instant::now();
    // TCG is shared with every other test on the machine: be patient.
    let limit = Duration::from_secs(1200);
    let result = (|| {
        loop {
            let log = std::fs::read_to_string(&serial).unwrap_or_default();
            if log.contains(READY) {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!(
                    "QEMU exited ({st}) before the guest printed {READY}; serial log:\n{log}"
                ));
            }
            if t0.elapsed() > limit {
                return Err(format!(
                    "guest did not print {READY} within {limit:?}; serial log:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        eprintln!(
            "xtask: guest ready after {:.0}s, dumping memory",
            t0.elapsed().as_secs_f64()
        );
        let mut q = Qmp::connect(&sock)?;
        q.cmd(r#"{"execute":"stop"}"#)?;
        let elf = work.join(boot.elf);
        q.cmd(&format!(
            r#"{{"execute":"dump-guest-memory","arguments":{{"paging":false,"protocol":"file:{}"}}}}"#,
            elf.display()
        ))?;
        if let Some(raw) = boot.raw {
            q.cmd(&format!(
                r#"{{"execute":"pmemsave","arguments":{{"val":0,"size":{},"filename":"{}"}}}}"#,
                GUEST_MB << 20,
                work.join(raw).display()
            ))?;
        }
        let _ = q.cmd(r#"{"execute":"quit"}"#);
        Ok(())
    })();
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = std::fs::remove_file(&sock);
    result
}

/// Prepares the guest fixtures and Volatility 3; pushes `BULKHEAD_VMI_*`.
pub fn setup(env: &mut Vec<(String, String)>) -> Result<()> {
    host::apt(&["qemu-system-x86", "cpio", "xz-utils", "zstd", "dpkg"])?;
    let pkg = debian::kernel_abi_package()?;
    let kernel_deb = debian::download(&pkg)?;
    let busybox_deb = debian::download("busybox-static")?;
    let stem = kernel_deb
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("kernel")
        .to_string();
    let work = host::cache_dir().join("vmi").join(stem);
    std::fs::create_dir_all(&work).map_err(|e| format!("mkdir {}: {e}", work.display()))?;
    // A run that was interrupted leaves no marker and is redone whole.
    if !work.join(COMPLETE).exists() {
        initramfs(&work, &kernel_deb, &busybox_deb)?;
        for boot in BOOTS {
            boot_and_dump(&work, boot)?;
        }
        write(&work.join(COMPLETE), "", false)?;
    }
    let python = host::python_venv(&["volatility3==2.28.2"])?;
    let vol = python.with_file_name("vol");
    let s = |p: &Path| p.display().to_string();
    env.push(("BULKHEAD_VMI_DEB".into(), s(&kernel_deb)));
    env.push(("BULKHEAD_VMI_ELF".into(), s(&work.join("mem.elf"))));
    env.push(("BULKHEAD_VMI_RAW".into(), s(&work.join("mem.raw"))));
    env.push(("BULKHEAD_VMI_SERIAL".into(), s(&work.join("serial.log"))));
    env.push(("BULKHEAD_VMI_LA57_ELF".into(), s(&work.join("la57.elf"))));
    env.push((
        "BULKHEAD_VMI_LA57_SERIAL".into(),
        s(&work.join("la57-serial.log")),
    ));
    env.push(("BULKHEAD_VMI_VOL".into(), s(&vol)));
    Ok(())
}

/// The monitor PD runs `monitor-core` on bare metal: prove it builds
/// without std; then fuzz smoke runs of images + walkers and of the
/// kernel-image parsers.
pub fn extra() -> Result<()> {
    eprintln!("xtask: monitor-core for x86_64-unknown-none (no std)");
    run(crate::cargo().args([
        "build",
        "--quiet",
        "-p",
        "monitor-core",
        "--target",
        "x86_64-unknown-none",
    ]))?;
    let fuzz = host::root().join("monitor-pd/core/fuzz");
    host::fuzz_smoke(&fuzz, "parse_image", 20)?;
    host::fuzz_smoke(&fuzz, "parse_kernel", 20)
}
