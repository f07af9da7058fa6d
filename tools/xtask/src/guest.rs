//! The guest area: the Linux guest's images for the VMM (issue #6) and the
//! kernel's `prefill_path` system test that carries them.
//!
//! - setup: installs GNU cpio (the tests read our archives with it),
//!   downloads Debian's kernel and `busybox-static` packages (verified
//!   against the package index, cached in `.cache/debian`), extracts the
//!   bzImage to `build/guest/bzImage`, builds `build/guest/initramfs.cpio`
//!   with `bulkhead guest` (smoke script: `uname -r`, `ps`), and exports
//!   `BULKHEAD_GUEST_KERNEL` / `BULKHEAD_GUEST_INITRAMFS` for the fixture
//!   tests of every crate;
//! - extra: boots those images directly in QEMU (TCG) and checks the
//!   guest's own output; runs `tests/prefill`.
//!
//! Design rules: `build/guest` is on the search path of every image xtask
//! packs (see `kernel::image`), so the reference system's `guest_kernel`
//! and `guest_initrd` regions find their prefill files there; [`images`]
//! is idempotent and cheap once cached, so `cargo xtask run` calls it too.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{debian, host, kernel, Result};

/// Where the guest images are written (on every pack's search path).
pub fn dir() -> PathBuf {
    host::root().join("build").join("guest")
}

/// The guest images.
pub struct Images {
    /// Debian's bzImage.
    pub kernel: PathBuf,
    /// The initramfs `bulkhead guest` built.
    pub initramfs: PathBuf,
    /// The busybox-static package it took busybox from.
    pub busybox_deb: PathBuf,
}

/// Fetches, extracts and builds the guest images into `build/guest`.
pub fn images() -> Result<Images> {
    let out = dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let bz = debian::kernel_bzimage()?;
    let kernel = out.join("bzImage");
    std::fs::copy(&bz, &kernel).map_err(|e| format!("cannot copy {}: {e}", bz.display()))?;
    let busybox_deb = debian::busybox_static()?;
    let initramfs = out.join("initramfs.cpio");
    let script = host::root().join("tools/guest/scripts/system-info.sh");
    crate::bulkhead(&[
        "guest",
        "--busybox",
        &busybox_deb.display().to_string(),
        "--script",
        &script.display().to_string(),
        "--out",
        &initramfs.display().to_string(),
    ])?;
    Ok(Images {
        kernel,
        initramfs,
        busybox_deb,
    })
}

/// The guest images, built only if `build/guest` lacks them: `cargo xtask
/// run` then needs no package index (`cargo xtask test` refreshes them in
/// its setup).
pub fn ensure_images() -> Result<()> {
    let d = dir();
    if !d.join("bzImage").is_file() || !d.join("initramfs.cpio").is_file() {
        images()?;
    }
    Ok(())
}

/// The first `cpio` on PATH.
fn gnu_cpio() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("cpio"))
        .find(|p| p.is_file())
        .ok_or_else(|| "cpio is not on PATH after installing it".to_string())
}

/// Test setup: GNU cpio, QEMU, the guest images and their env vars.
pub fn setup(env: &mut Vec<(String, String)>) -> Result<()> {
    host::apt(&["cpio", "qemu-system-x86"])?;
    env.push((
        "BULKHEAD_GNU_CPIO".into(),
        gnu_cpio()?.display().to_string(),
    ));
    let img = images()?;
    for (k, v) in [
        ("BULKHEAD_GUEST_KERNEL", &img.kernel),
        ("BULKHEAD_GUEST_INITRAMFS", &img.initramfs),
        ("BULKHEAD_GUEST_BUSYBOX_DEB", &img.busybox_deb),
    ] {
        env.push((k.into(), v.display().to_string()));
    }
    Ok(())
}

/// The guest booted directly (no Bulkhead): markers and the smoke
/// script's output, with the initramfs as built and zero-padded to its
/// region's size; then the prefill system test.
pub fn extra() -> Result<()> {
    let img = images()?;
    let boot = direct_boot(&img.kernel, &img.initramfs, &[], Duration::from_secs(300))?;
    let log = dir().join("direct-boot.log");
    let _ = std::fs::write(&log, &boot.output);
    check_smoke(&boot)?;
    eprintln!(
        "xtask: guest direct boot: ok (ready after {:.1} s, done after {:.1} s)",
        boot.ready.unwrap_or_default().as_secs_f64(),
        boot.done.unwrap_or_default().as_secs_f64()
    );
    // The VMM may hand the whole guest_initrd region to Linux as the
    // initrd: the archive, then zeroes up to the region's size.
    let size = region_size("guest_initrd")?;
    let mut padded = std::fs::read(&img.initramfs)
        .map_err(|e| format!("cannot read {}: {e}", img.initramfs.display()))?;
    if padded.len() as u64 > size {
        return Err(format!(
            "{} ({} bytes) does not fit the guest_initrd region ({size:#x} bytes) of system.xml",
            img.initramfs.display(),
            padded.len()
        ));
    }
    padded.resize(size as usize, 0);
    let padded_path = dir().join("initramfs-region.cpio");
    std::fs::write(&padded_path, &padded)
        .map_err(|e| format!("cannot write {}: {e}", padded_path.display()))?;
    let boot = direct_boot(&img.kernel, &padded_path, &[], Duration::from_secs(300))?;
    check_smoke(&boot)?;
    eprintln!("xtask: guest direct boot with the initrd zero-padded to its region: ok");
    kernel::build()?;
    prefill_test()
}

/// The size of memory region `name` in the reference system.xml.
fn region_size(name: &str) -> Result<u64> {
    let path = host::root().join("system.xml");
    let xml = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tag = format!("<memory_region name=\"{name}\"");
    let size = xml
        .lines()
        .find(|l| l.trim_start().starts_with(&tag))
        .and_then(|l| l.split("size=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .map(|v| v.replace('_', ""))
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| format!("{}: no hex size for memory region '{name}'", path.display()))?;
    Ok(size)
}

/// What a direct boot printed, and when.
pub struct DirectBoot {
    /// Everything on the serial console.
    pub output: String,
    /// Time from QEMU's start to the `BULKHEAD_GUEST_READY` line.
    pub ready: Option<Duration>,
    /// Time from QEMU's start to the `BULKHEAD_GUEST_DONE` line.
    pub done: Option<Duration>,
}

/// Boots `kernel` with `initrd` directly in QEMU (TCG, 512 MiB, serial
/// console), with `extra_args` added (e.g. `-icount shift=0` for a
/// benchmark), until the guest prints `BULKHEAD_GUEST_DONE`, QEMU exits or
/// `limit` passes. The reference the VMM's guest boot is compared with.
pub fn direct_boot(
    kernel: &Path,
    initrd: &Path,
    extra_args: &[&str],
    limit: Duration,
) -> Result<DirectBoot> {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-m", "512", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 pci=off acpi=off nolapic"])
        .args(extra_args);
    let timed = run_timed(&mut c, limit, bulkhead_guest_marker::DONE)?;
    Ok(DirectBoot {
        ready: timed.first(bulkhead_guest_marker::READY),
        done: timed.first(bulkhead_guest_marker::DONE),
        output: timed.output(),
    })
}

/// A process's console, line by line, with the time each line arrived
/// (measured from the process's start).
pub struct Timed {
    /// (time since start, line without its newline)
    pub lines: Vec<(Duration, String)>,
}

impl Timed {
    /// When the first line containing `marker` came.
    pub fn first(&self, marker: &str) -> Option<Duration> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(marker))
            .map(|(t, _)| *t)
    }

    /// Everything, newline-separated.
    pub fn output(&self) -> String {
        let mut out = String::new();
        for (_, l) in &self.lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// Runs `c` (stdout piped) until a line contains `stop`, it exits, or
/// `limit` passes; then kills it.
pub fn run_timed(c: &mut Command, limit: Duration, stop: &str) -> Result<Timed> {
    run_typing(c, limit, &[], stop)
}

/// As [`run_timed`], typing on its standard input: for each `(marker,
/// text)` in order, `text` once a line contains `marker`.
pub fn run_typing(
    c: &mut Command,
    limit: Duration,
    typing: &[(&str, &str)],
    stop: &str,
) -> Result<Timed> {
    use std::io::Write as _;
    c.stdin(if typing.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = c
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", c.get_program()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stdin = child.stdin.take();
    let mut typing = typing.iter().peekable();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        while r
            .read_until(b'\n', &mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if tx.send((Instant::now(), text)).is_err() {
                break;
            }
            line.clear();
        }
    });
    let mut timed = Timed { lines: Vec::new() };
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok((at, line)) => {
                if let (Some((marker, text)), Some(input)) = (typing.peek(), stdin.as_mut()) {
                    if line.contains(marker) {
                        input
                            .write_all(text.as_bytes())
                            .and_then(|()| input.flush())
                            .map_err(|e| format!("cannot type into {:?}: {e}", c.get_program()))?;
                        typing.next();
                    }
                }
                let done = line.contains(stop);
                timed.lines.push((at - start, line));
                if done {
                    break;
                }
            }
            // Timed out, or the process exited and the reader ended.
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(timed)
}

/// The markers `/init` prints (bulkhead-guest's `READY_MARKER` and
/// `DONE_MARKER`; xtask has no dependencies, so they are spelled here: a
/// mismatch fails the direct boot's smoke check).
mod bulkhead_guest_marker {
    pub const READY: &str = "BULKHEAD_GUEST_READY";
    pub const DONE: &str = "BULKHEAD_GUEST_DONE";
}

/// The smoke script ran: the kernel says its release (the package's ABI),
/// `ps` lists init, and the markers came in order.
fn check_smoke(boot: &DirectBoot) -> Result<()> {
    let out = &boot.output;
    let fail = |why: String| {
        eprintln!("---- guest serial output ----\n{}\n----", out.trim_end());
        Err(why)
    };
    let pkg = debian::kernel_abi_package()?;
    let release = pkg.strip_prefix("linux-image-").unwrap_or(&pkg).to_string();
    let (Some(ready), Some(done)) = (boot.ready, boot.done) else {
        return fail(format!(
            "the guest printed no {} / {} line",
            bulkhead_guest_marker::READY,
            bulkhead_guest_marker::DONE
        ));
    };
    if ready > done {
        return fail("DONE came before READY".into());
    }
    let uname = format!("guest uname -r: {release}");
    if !out.lines().any(|l| l.trim_end() == uname) {
        return fail(format!("no `{uname}` line (the package's kernel release)"));
    }
    let ps_header = out
        .lines()
        .any(|l| l.trim_start().starts_with("PID") && l.contains("COMMAND"));
    let ps_init = out
        .lines()
        .any(|l| l.trim_start().starts_with("1 ") && l.contains("/init"));
    if !ps_header || !ps_init {
        return fail("no `ps` listing with PID 1 /init".into());
    }
    if !out.contains("BULKHEAD_GUEST_SCRIPT_EXIT 01-system-info.sh 0") {
        return fail("the smoke script did not exit 0".into());
    }
    Ok(())
}

/// A test file for `tests/prefill`: `BHPREFIL | payload length | FNV-1a 64
/// of the payload | payload`, `total` bytes long, payload from `seed`.
fn prefill_file(total: usize, seed: u64) -> Vec<u8> {
    let n = total - 24;
    // xorshift needs a non-zero state.
    let mut x = (seed ^ 0x9e37_79b9_7f4a_7c15).max(1);
    let payload: Vec<u8> = (0..n)
        .map(|_| {
            // xorshift64: fresh bytes each run, so only a real copy passes.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &payload {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut out = b"BHPREFIL".to_vec();
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(&hash.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// `tests/prefill`: fresh prefill files in `build/prefill` (on that
/// scenario's search path), then the system test.
pub fn prefill_test() -> Result<()> {
    let out = host::root().join("build").join("prefill");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5eed);
    // Not a page multiple, in a 16 KiB region; and exactly its 4 KiB region.
    for (name, len, seed) in [
        ("prefill-partial.bin", 0x2345, seed),
        ("prefill-exact.bin", 0x1000, !seed),
    ] {
        let p = out.join(name);
        std::fs::write(&p, prefill_file(len, seed))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    kernel::system_test(
        "prefill",
        60,
        &[
            "region 'partial': 9029 file bytes match",
            "region 'exact': 4096 file bytes match",
        ],
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::prefill_file;

    #[test]
    fn the_reference_initrd_region_size_is_read_from_system_xml() {
        assert_eq!(super::region_size("guest_initrd"), Ok(0x80_0000));
        assert!(super::region_size("no_such_region").is_err());
    }

    #[test]
    fn prefill_files_describe_themselves() {
        let f = prefill_file(0x100, 42);
        assert_eq!(f.len(), 0x100);
        assert_eq!(&f[..8], b"BHPREFIL");
        assert_eq!(u64::from_le_bytes(f[8..16].try_into().unwrap()), 0x100 - 24);
        assert_ne!(prefill_file(0x100, 42), prefill_file(0x100, 43));
    }
}
