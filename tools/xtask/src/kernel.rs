//! The kernel area: building the kernel and every PD for the target, making
//! boot images, running them in QEMU (SeaBIOS or OVMF) and Bochs, the
//! kernel's system tests (`tests/<scenario>/system.xml`) and its bench.
//!
//! Tests pass or fail by QEMU's isa-debug-exit code (the judging PD writes
//! 0x10 = pass, exit status 33) plus a `TEST_PASS` marker, with a timeout;
//! Bochs has no exit port, so there the serial log's markers decide.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{cargo, host, run, Result};

/// The bare-metal target of the kernel and the PDs.
pub const TARGET: &str = "x86_64-unknown-none";
/// Packages built for the target.
const TARGET_PACKAGES: &[&str] = &[
    "bulkhead-kernel",
    "bulkhead-test-pds",
    "bulkhead-placeholder-pds",
    "bulkhead-linux-pingpong",
    "bulkhead-supervisor",
    "bulkhead-channel-test-pds",
    "monitor-pd",
    "bulkhead-vmm",
];
/// PD packages built by a cargo run of their own: they use `alloc`, and
/// building them with the kernel would unify dependency features (e.g.
/// postcard's `alloc`) into the kernel, which has no allocator.
const SEPARATE_TARGET_PACKAGES: &[&str] = &["bulkhead-gateway-pd"];
/// RUSTFLAGS of the target build. PDs are loaded at their link address:
/// static, non-PIE executables. The serial curve25519 backend: with the
/// default SIMD one, rustc crashes compiling `curve25519-dalek` (the firmware
/// PD's signature check) for this target. Every target build uses the same
/// flags, so the separate cargo runs share one build cache.
pub const PD_RUSTFLAGS: &str =
    "-C relocation-model=static --cfg curve25519_dalek_backend=\"serial\"";
/// QEMU exit status when the judging PD wrote the pass value.
pub const QEMU_PASS: i32 = 33;
/// The marker the reference system's supervisor prints once every PD is up.
pub const REFERENCE_MARKER: &str = "REFERENCE_SYSTEM_UP";
/// The marker it prints instead when every PD is up but the firmware's POST
/// stopped the boot (a board the POST policy is not for, such as Bochs).
pub const REFERENCE_HALTED_MARKER: &str = "REFERENCE_SYSTEM_HALTED";

/// The system tests: scenario directory under `tests/`, its time limit,
/// console lines the kernel itself must print (beside the PDs' TEST_PASS),
/// and extra QEMU arguments (devices the scenario drives).
const SCENARIOS: &[(&str, u64, &[&str], &[&str])] = &[
    ("hello", 60, &[], &[]),
    (
        "isolation",
        60,
        &["bulkhead: PD 'loner' stopped: write fault at address 0x8, RIP 0x"],
        &[],
    ),
    ("restart", 60, &[], &[]),
    ("scheduling", 90, &[], &[]),
    ("irq", 60, &[], &[]),
    ("msi", 60, &[], &["-device", "edu,addr=0x10"]),
    ("syscall-fuzz", 120, &[], &[]),
];

/// QEMU exit status when the kernel refuses to boot (it writes 0x7e).
pub const QEMU_BOOT_FAILED: i32 = 0x7e * 2 + 1;

/// Debian packages the kernel's build and tests need.
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub-common",
    "xorriso",
    "mtools",
    "ovmf",
    "bochs",
    "bochsbios",
    "vgabios",
];

/// Test setup: emulators, GRUB for both platforms, firmware.
pub fn setup(_env: &mut Vec<(String, String)>) -> Result<()> {
    host::apt(PACKAGES)
}

/// Fuzz smoke runs of the boot-time decoders, the system tests and the
/// reference boots (QEMU SeaBIOS, OVMF, Bochs).
pub fn extra() -> Result<()> {
    let fuzz = host::root().join("kernel").join("core").join("fuzz");
    for target in ["decode_plan", "boot_info"] {
        host::fuzz_smoke(&fuzz, target, 20)?;
    }
    build()?;
    let mut failed = Vec::new();
    for (scenario, secs, expect, qemu_args) in SCENARIOS {
        if let Err(e) = system_test(scenario, *secs, expect, qemu_args) {
            eprintln!("xtask: kernel test {scenario}: FAILED: {e}");
            failed.push(*scenario);
        }
    }
    if let Err(e) = corrupt_plan_test() {
        eprintln!("xtask: kernel test corrupt-plan: FAILED: {e}");
        failed.push("corrupt-plan");
    }
    let iso = reference_image()?;
    for (name, r) in [
        ("reference (QEMU SeaBIOS)", reference_boot_qemu(&iso, false)),
        ("reference (QEMU OVMF)", reference_boot_qemu(&iso, true)),
        ("reference (Bochs)", reference_boot_bochs(&iso)),
    ] {
        match r {
            Ok(()) => eprintln!("xtask: kernel test {name}: ok"),
            Err(e) => {
                eprintln!("xtask: kernel test {name}: FAILED: {e}");
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("kernel system tests failed: {}", failed.join(", ")))
    }
}

fn target_dir() -> PathBuf {
    host::root().join("target").join(TARGET).join("release")
}

/// Where the PD images are collected (`<name>.elf`) for `bulkhead pack`.
pub fn pd_dir() -> PathBuf {
    host::root().join("build").join("pds")
}

/// The kernel ELF.
pub fn kernel_elf() -> PathBuf {
    target_dir().join("bulkhead-kernel")
}

/// Builds the kernel, every PD and the host tool; collects PD images as
/// `build/pds/<name>.elf` (placeholder PDs lose their `placeholder-` prefix;
/// a real PD binary with the same name replaces its placeholder). PD crates
/// of other areas join by being listed in `TARGET_PACKAGES`.
pub fn build() -> Result<()> {
    let mut c = cargo();
    c.args(["build", "--release", "--target", TARGET]);
    for p in TARGET_PACKAGES {
        c.args(["--package", p]);
    }
    c.env("RUSTFLAGS", PD_RUSTFLAGS);
    run(&mut c)?;
    for p in SEPARATE_TARGET_PACKAGES {
        let mut c = cargo();
        c.args(["build", "--release", "--target", TARGET, "--package", p]);
        c.env("RUSTFLAGS", PD_RUSTFLAGS);
        run(&mut c)?;
    }
    // Its own cargo run too: built together, its alloc features would reach the kernel.
    crate::fwpd::build_pd(false)?;
    run(cargo().args(["build", "--release", "--package", "bulkhead"]))?;
    let out = pd_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let entries = std::fs::read_dir(target_dir())
        .map_err(|e| format!("cannot list {}: {e}", target_dir().display()))?;
    let mut bins: Vec<(PathBuf, String)> = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if !path.is_file()
            || name.contains('.')
            || name == "bulkhead-kernel"
            || name == "linux-pingpong"
        {
            continue;
        }
        let mut magic = [0u8; 4];
        let is_elf = std::fs::File::open(&path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic == *b"\x7fELF";
        if is_elf {
            bins.push((path, name));
        }
    }
    // Placeholders first, so a real PD binary of the same name wins.
    bins.sort_by_key(|(_, name)| !name.starts_with("placeholder-"));
    for (path, name) in bins {
        let elf = format!("{}.elf", name.strip_prefix("placeholder-").unwrap_or(&name));
        std::fs::copy(&path, out.join(&elf)).map_err(|e| format!("cannot copy {name}: {e}"))?;
    }
    Ok(())
}

fn bulkhead_bin() -> PathBuf {
    host::root().join("target").join("release").join("bulkhead")
}

/// Packs `system` and makes `build/<name>/<name>.iso`.
pub fn image(system: &Path, name: &str) -> Result<PathBuf> {
    let dir = host::root().join("build").join(name);
    run(Command::new(bulkhead_bin())
        .arg("pack")
        .arg(system)
        .arg("--search-path")
        .arg(pd_dir())
        // Prefill files: fixtures a scenario's test writes into its own
        // build directory (first, so a scenario may bring its own guest
        // images), then the guest images.
        .arg("--search-path")
        .arg(&dir)
        .arg("--search-path")
        .arg(crate::guest::dir())
        .arg("-o")
        .arg(&dir))?;
    let iso = dir.join(format!("{name}.iso"));
    run(Command::new(bulkhead_bin())
        .arg("image")
        .arg("--kernel")
        .arg(kernel_elf())
        .arg("--plan")
        .arg(dir.join("bulkhead.plan"))
        .arg("-o")
        .arg(&iso))?;
    Ok(iso)
}

/// What an emulator run produced.
pub struct RunResult {
    /// Exit status, if it exited by itself.
    pub code: Option<i32>,
    /// Serial output.
    pub output: String,
    /// Whether the time limit ended it.
    pub timed_out: bool,
}

/// Runs `cmd`, collecting stdout (echoed if `echo`), until it exits, `stop`
/// appears in the output (then it is killed), or `limit` passes.
pub fn run_collect(
    cmd: &mut Command,
    limit: Duration,
    stop: Option<&str>,
    echo: bool,
) -> Result<RunResult> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let buf = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let sink = Arc::clone(&buf);
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if echo {
                use std::io::Write;
                let _ = std::io::stdout().write_all(&chunk[..n]);
                let _ = std::io::stdout().flush();
            }
            sink.lock()
                .map(|mut b| b.extend_from_slice(&chunk[..n]))
                .ok();
        }
    });
    let start = Instant::now();
    let (code, timed_out) = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break (status.code(), false);
        }
        let seen = stop.is_some_and(|m| {
            buf.lock()
                .map(|b| String::from_utf8_lossy(&b).contains(m))
                .unwrap_or(false)
        });
        if seen {
            let _ = child.kill();
            let _ = child.wait();
            break (None, false);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    let output =
        String::from_utf8_lossy(&buf.lock().map(|b| b.clone()).unwrap_or_default()).to_string();
    Ok(RunResult {
        code,
        output,
        timed_out,
    })
}

/// A QEMU (TCG) command booting `iso`, serial on stdout.
pub fn qemu_command(iso: &Path, uefi: bool) -> Result<Command> {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-machine",
        "q35",
        "-cpu",
        "max",
        "-m",
        "1024",
        "-display",
        "none",
        "-serial",
        "stdio",
        // COM2, for the firmware PD's UART loopback test.
        "-serial",
        "null",
        "-no-reboot",
    ])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .arg("-cdrom")
    .arg(iso);
    if uefi {
        let code = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
        let vars = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
        if !code.exists() || !vars.exists() {
            return Err(
                "OVMF firmware missing: install the `ovmf` package (cargo xtask test does)".into(),
            );
        }
        // A fresh copy per run: OVMF writes its variables store.
        let copy = host::cache_dir().join(format!("OVMF_VARS_4M.{}.fd", std::process::id()));
        std::fs::copy(vars, &copy).map_err(|e| format!("cannot copy OVMF vars: {e}"))?;
        c.arg("-drive").arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            code.display()
        ));
        c.arg("-drive").arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            copy.display()
        ));
    }
    Ok(c)
}

/// Boots one scenario; passes on exit status 33 with a TEST_PASS marker and
/// every line of `expect` in the console output.
pub fn system_test(scenario: &str, secs: u64, expect: &[&str], qemu_args: &[&str]) -> Result<()> {
    let system = host::root().join("tests").join(scenario).join("system.xml");
    let iso = image(&system, scenario)?;
    eprintln!("xtask: kernel test {scenario}: booting {}", iso.display());
    let mut qemu = qemu_command(&iso, false)?;
    qemu.args(qemu_args);
    let r = run_collect(&mut qemu, Duration::from_secs(secs), None, false)?;
    let log = host::root().join("build").join(scenario).join("serial.log");
    let _ = std::fs::write(&log, &r.output);
    let missing: Vec<&&str> = expect.iter().filter(|m| !r.output.contains(**m)).collect();
    if r.code == Some(QEMU_PASS) && r.output.contains("TEST_PASS") && missing.is_empty() {
        eprintln!("xtask: kernel test {scenario}: ok");
        return Ok(());
    }
    if !missing.is_empty() {
        eprintln!("xtask: kernel test {scenario}: missing console lines: {missing:?}");
    }
    eprintln!(
        "---- serial output of {scenario} ----\n{}\n----",
        r.output.trim_end()
    );
    if r.timed_out {
        Err(format!("timed out after {secs} s (log: {})", log.display()))
    } else {
        Err(format!(
            "QEMU exit status {:?}, expected {QEMU_PASS} (log: {})",
            r.code,
            log.display()
        ))
    }
}

/// A damaged boot module must stop the kernel with a clear message (and
/// QEMU exit status 253), never run anything: flips one byte of the hello
/// scenario's module.
pub fn corrupt_plan_test() -> Result<()> {
    let good = host::root()
        .join("build")
        .join("hello")
        .join("bulkhead.plan");
    let mut bytes = std::fs::read(&good)
        .map_err(|e| format!("{}: {e} (hello must run first)", good.display()))?;
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    let dir = host::root().join("build").join("corrupt-plan");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let plan = dir.join("bulkhead.plan");
    std::fs::write(&plan, &bytes).map_err(|e| e.to_string())?;
    let iso = dir.join("corrupt-plan.iso");
    run(Command::new(bulkhead_bin())
        .arg("image")
        .arg("--kernel")
        .arg(kernel_elf())
        .arg("--plan")
        .arg(&plan)
        .arg("-o")
        .arg(&iso))?;
    let r = run_collect(
        &mut qemu_command(&iso, false)?,
        Duration::from_secs(60),
        None,
        false,
    )?;
    let want = "bulkhead: boot failed: boot plan rejected: boot module checksum mismatch";
    if r.code == Some(QEMU_BOOT_FAILED) && r.output.contains(want) && !r.output.contains("client|")
    {
        eprintln!("xtask: kernel test corrupt-plan: ok");
        Ok(())
    } else {
        eprintln!("---- serial output ----\n{}\n----", r.output.trim_end());
        Err(format!(
            "expected exit {QEMU_BOOT_FAILED} and '{want}', got exit {:?}",
            r.code
        ))
    }
}

/// The reference system's image (placeholder PDs until the real ones land).
pub fn reference_image() -> Result<PathBuf> {
    // Its VMM's guest_kernel and guest_initrd regions are prefilled from them.
    crate::guest::ensure_images()?;
    image(&host::root().join("system.xml"), "reference")
}

fn reference_boot_qemu(iso: &Path, uefi: bool) -> Result<()> {
    let r = run_collect(
        &mut qemu_command(iso, uefi)?,
        Duration::from_secs(120),
        Some(REFERENCE_MARKER),
        false,
    )?;
    if r.output.contains(REFERENCE_MARKER) {
        Ok(())
    } else {
        eprintln!("---- serial output ----\n{}\n----", r.output.trim_end());
        Err(format!(
            "no {REFERENCE_MARKER} marker (exit {:?}, timed out: {})",
            r.code, r.timed_out
        ))
    }
}

/// The headless Bochs configuration (VT-x capable CPU, COM1 to a file).
/// Sound is off: without a sound card Bochs 2.7's mixer thread aborts
/// ("buffer overflow detected") right at start.
fn bochsrc(iso: &Path, serial: &Path) -> String {
    format!(
        "megs: 1024
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
cpu: model=corei7_icelake_u, ips=50000000
ata0-master: type=cdrom, path=\"{}\", status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=\"{}\"
display_library: rfb, options=\"timeout=0\"
sound: driver=dummy
speaker: enabled=0
log: -
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
clock: sync=none, time0=local
",
        iso.display(),
        serial.display()
    )
}

/// Boots `iso` in Bochs until `marker` appears in the serial log or
/// `limit` passes; returns the log. Bochs's own exit status is always 1.
pub fn bochs_until(iso: &Path, marker: &str, limit: Duration, echo: bool) -> Result<String> {
    let dir = host::cache_dir().join("bochs");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let serial = dir.join("com1.log");
    let _ = std::fs::remove_file(&serial);
    let rc = dir.join("bochsrc");
    let cont = dir.join("continue.rc");
    std::fs::write(&rc, bochsrc(iso, &serial)).map_err(|e| e.to_string())?;
    std::fs::write(&cont, "c\n").map_err(|e| e.to_string())?;
    let mut child = Command::new("bochs")
        .arg("-q")
        .arg("-f")
        .arg(&rc)
        .arg("-rc")
        .arg(&cont)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start bochs (install bochs, bochsbios, vgabios): {e}"))?;
    let start = Instant::now();
    let mut shown = 0;
    let log = loop {
        let log = std::fs::read_to_string(&serial).unwrap_or_default();
        if echo && log.len() > shown {
            print!("{}", &log[shown..]);
            shown = log.len();
        }
        if log.contains(marker)
            || start.elapsed() > limit
            || child.try_wait().ok().flatten().is_some()
        {
            break log;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(log)
}

fn reference_boot_bochs(iso: &Path) -> Result<()> {
    // Bochs's board is an i440FX, not the q35 the reference POST policy is
    // for: the firmware's critical pci-inventory container finds the i440FX
    // host bridge and rightly stops the boot. Every PD must still come up.
    let log = bochs_until(iso, "REFERENCE_SYSTEM_", Duration::from_secs(300), false)?;
    if log.contains(REFERENCE_MARKER)
        || (log.contains(REFERENCE_HALTED_MARKER) && log.contains("found 8086:1237 instead"))
    {
        Ok(())
    } else {
        eprintln!("---- Bochs serial output ----\n{}\n----", log.trim_end());
        Err(format!(
            "no {REFERENCE_MARKER} marker in Bochs within 300 s"
        ))
    }
}

/// `cargo xtask run [--uefi]`: builds everything, boots the reference system
/// in QEMU with the serial console on stdout (Ctrl-C ends it).
pub fn run_reference(args: &[String]) -> Result<()> {
    let uefi = match args {
        [] => false,
        [a] if a == "--uefi" => true,
        _ => return Err(format!("usage: cargo xtask run [--uefi], got {args:?}")),
    };
    build()?;
    let iso = reference_image()?;
    eprintln!(
        "xtask: booting {} in QEMU ({}), serial below; Ctrl-C to stop",
        iso.display(),
        if uefi { "OVMF" } else { "SeaBIOS" }
    );
    let mut c = qemu_command(&iso, uefi)?;
    c.stdin(Stdio::inherit());
    let status = c
        .status()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    eprintln!("xtask: QEMU exited with {status}");
    Ok(())
}

/// `cargo xtask bochs`: boots the reference system in Bochs, serial on stdout.
pub fn bochs(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        return Err(format!("usage: cargo xtask bochs, got {args:?}"));
    }
    build()?;
    let iso = reference_image()?;
    eprintln!("xtask: booting {} in Bochs (headless); stops at the {REFERENCE_MARKER} or {REFERENCE_HALTED_MARKER} marker or after 600 s", iso.display());
    let log = bochs_until(&iso, "REFERENCE_SYSTEM_", Duration::from_secs(600), true)?;
    if log.contains(REFERENCE_MARKER) || log.contains(REFERENCE_HALTED_MARKER) {
        Ok(())
    } else {
        Err("the reference system did not come up in Bochs".into())
    }
}

/// `cargo xtask bench`: boots `tests/bench` in QEMU with `-icount shift=0`
/// (the TSC then advances one tick per guest instruction, so cycle counts
/// are instruction counts and reproducible), then a Debian kernel with the
/// pipe ping-pong (`kernel/linux-pingpong`) as its `/init` under the same
/// QEMU settings, and prints both with their ratio, beside seL4's published
/// x86_64 figures.
pub fn bench(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        return Err(format!("usage: cargo xtask bench, got {args:?}"));
    }
    build()?;
    let iso = image(
        &host::root().join("tests").join("bench").join("system.xml"),
        "bench",
    )?;
    let mut c = qemu_command(&iso, false)?;
    c.args(["-icount", "shift=0"]);
    let r = run_collect(&mut c, Duration::from_secs(300), None, false)?;
    let lines: Vec<&str> = r.output.lines().filter(|l| l.contains("BENCH ")).collect();
    if r.code != Some(QEMU_PASS) || lines.len() != 2 {
        eprintln!("{}", r.output);
        return Err(format!("bench did not complete (QEMU exit {:?})", r.code));
    }
    let linux = linux_pingpong()?;
    println!("Kernel IPC bench (QEMU TCG, -icount shift=0: 1 TSC tick = 1 guest instruction)");
    for l in &lines {
        println!(
            "  bulkhead {}",
            l.split("BENCH ").nth(1).unwrap_or(l).trim()
        );
    }
    println!("  linux    {}", linux.trim());
    let ppc = mean_of(lines[0]);
    let pipe = mean_of(&linux);
    if let (Some(ppc), Some(pipe)) = (ppc, pipe) {
        println!(
            "  ratio: Linux pipe round trip / Bulkhead PPC round trip = {:.1}",
            pipe as f64 / ppc as f64
        );
    }
    println!("  hardware anchor: seL4 x86_64 MCS on Skylake (published): call 744 cycles, reply 638 cycles");
    crate::channels::bench(ppc)
}

fn mean_of(line: &str) -> Option<u64> {
    line.split("mean=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A Debian kernel (downloaded once with `apt-get download` into `.cache`).
fn debian_kernel() -> Result<PathBuf> {
    let dir = host::cache_dir().join("linux-guest");
    let found = |dir: &Path| -> Option<PathBuf> {
        std::fs::read_dir(dir.join("boot"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
    };
    if let Some(k) = found(&dir) {
        return Ok(k);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The same package, download and index check as the VMI fixtures use.
    let deb = crate::debian::download(&crate::debian::kernel_abi_package()?)?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    let _ = std::fs::remove_dir_all(dir.join("lib"));
    found(&dir).ok_or_else(|| "the kernel package holds no boot/vmlinuz-*".to_string())
}

/// A newc cpio archive: `/dev/console` and `/init`.
fn initramfs(init: &[u8]) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let header =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino, mode, 0, 0, 1, 0, data.len(), 0, 0, rdev.0, rdev.1, name.len() + 1, 0
        );
        out.extend_from_slice(header.as_bytes());
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
    let mut out = Vec::new();
    entry(&mut out, 1, "dev", 0o040755, (0, 0), &[]);
    entry(&mut out, 2, "dev/console", 0o020600, (5, 1), &[]);
    entry(&mut out, 3, "init", 0o100755, (0, 0), init);
    entry(&mut out, 4, "TRAILER!!!", 0, (0, 0), &[]);
    out
}

/// Boots the Debian kernel with the ping-pong as `/init`; returns its line.
fn linux_pingpong() -> Result<String> {
    let kernel = debian_kernel()?;
    let init = std::fs::read(target_dir().join("linux-pingpong"))
        .map_err(|e| format!("linux-pingpong not built: {e}"))?;
    let cpio = host::cache_dir().join("linux-guest").join("pingpong.cpio");
    std::fs::write(&cpio, initramfs(&init)).map_err(|e| e.to_string())?;
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-machine",
        "q35",
        "-cpu",
        "max",
        "-m",
        "512",
        "-display",
        "none",
        "-serial",
        "stdio",
        // COM2, for the firmware PD's UART loopback test.
        "-serial",
        "null",
        "-no-reboot",
    ])
    .args(["-icount", "shift=0"])
    .arg("-kernel")
    .arg(&kernel)
    .arg("-initrd")
    .arg(&cpio)
    .args(["-append", "console=ttyS0 quiet panic=-1"]);
    let r = run_collect(&mut c, Duration::from_secs(600), Some("n=1000"), false)?;
    r.output
        .lines()
        .find(|l| l.contains("LINUX pipe_round_trip_cycles"))
        .map(|l| l.replace("LINUX ", ""))
        .ok_or_else(|| format!("the Linux ping-pong printed no result:\n{}", r.output))
}
