//! VMI benchmark on the QEMU guest fixtures (`cargo xtask test` prepares
//! them; the same `BULKHEAD_VMI_*` variables): our `pslist` and
//! `check-syscalls` on the 256 MiB image beside Volatility 3's
//! `linux.pslist` on the same image in the same run, and the time to build
//! a profile from the kernel package. Prints medians and the ratio.
//!
//! Ours is measured end to end in-process: open the image file (read on
//! demand), find the kernel (page tables, slide, banner check) and walk;
//! the profile is loaded beforehand, as the monitor has it. Volatility
//! is run as its command (`vol -f IMAGE linux.pslist`) with our ISF.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use monitor_core::checks;
use monitor_core::linux::Linux;
use monitor_core::mem::Image;

fn env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).map(PathBuf::from)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() -> ExitCode {
    let (Some(deb), Some(elf), Some(vol)) = (
        env("BULKHEAD_VMI_DEB"),
        env("BULKHEAD_VMI_ELF"),
        env("BULKHEAD_VMI_VOL"),
    ) else {
        eprintln!("vmi bench: BULKHEAD_VMI_DEB/ELF/VOL are not set; run `cargo xtask test` once, then `cargo bench -p monitor-profile` with the variables it prints");
        return ExitCode::FAILURE;
    };
    let deb_bytes = std::fs::read(&deb).expect("read .deb");
    let build = time(3, || {
        let k = monitor_profile::load_kernel(&deb_bytes, None).expect("kernel");
        k.profile().expect("profile")
    });
    let kernel = monitor_profile::load_kernel(&deb_bytes, None).expect("kernel");
    let profile = kernel.profile().expect("profile");
    let bytes = profile.to_bytes();
    let load = time(10, || {
        monitor_core::profile::Profile::from_bytes(&bytes)
            .expect("load")
            .symbols
            .len()
    });
    let image_mb = std::fs::metadata(&elf).map(|m| m.len() >> 20).unwrap_or(0);

    let pslist = time(10, || {
        let img = monitor_profile::file_image::open(&elf).expect("open");
        let l = Linux::attach(&img, &profile, img.regs, None).expect("attach");
        l.tasks().expect("tasks").len()
    });
    let syscalls = time(10, || {
        let img = monitor_profile::file_image::open(&elf).expect("open");
        let l = Linux::attach(&img, &profile, img.regs, None).expect("attach");
        checks::check_syscalls(&l).expect("check").len()
    });
    let data = std::fs::read(&elf).expect("image");
    let img = Image::parse(&data).expect("open");
    let l = Linux::attach(&img, &profile, img.regs, None).expect("attach");
    let walk_only = time(50, || l.tasks().expect("tasks").len());

    let dir = std::env::temp_dir().join(format!("bulkhead-bench-isf-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("linux")).expect("isf dir");
    std::fs::write(
        dir.join("linux/bulkhead.json"),
        monitor_profile::isf::to_isf(&kernel),
    )
    .expect("isf");
    let volt = time(3, || {
        let out = Command::new(&vol)
            .args(["-q", "-r", "json", "-s"])
            .arg(&dir)
            .arg("-f")
            .arg(&elf)
            .arg("linux.pslist")
            .output()
            .expect("run vol");
        assert!(
            out.status.success(),
            "vol failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let _ = std::fs::remove_dir_all(&dir);

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("image: {} ({image_mb} MiB, QEMU ELF core)", elf.display());
    println!(
        "profile build from .deb          {:>10.1} ms (median of 3)",
        ms(build)
    );
    println!(
        "bulkhead pslist (open+find+walk) {:>10.1} ms (median of 10)",
        ms(pslist)
    );
    println!(
        "bulkhead pslist (walk only)      {:>10.3} ms (median of 50)",
        ms(walk_only)
    );
    println!(
        "bulkhead check-syscalls          {:>10.1} ms (median of 10)",
        ms(syscalls)
    );
    println!(
        "profile file load (postcard)     {:>10.1} ms (median of 10)",
        ms(load)
    );
    println!(
        "volatility3 linux.pslist         {:>10.1} ms (median of 3)",
        ms(volt)
    );
    println!(
        "ratio volatility / bulkhead pslist: {:.1}x",
        volt.as_secs_f64() / pslist.as_secs_f64()
    );
    ExitCode::SUCCESS
}
