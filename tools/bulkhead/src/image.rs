//! `bulkhead image`: one hybrid BIOS+UEFI ISO (GRUB, `grub-mkrescue`) holding
//! the kernel (Multiboot2) and the boot module. The same file boots in QEMU
//! (SeaBIOS and OVMF), in Bochs, and from a USB stick written with `dd`.
//! Needs `grub-mkrescue` with the i386-pc and x86_64-efi platforms,
//! `xorriso` and `mtools` (Debian: grub-pc-bin, grub-efi-amd64-bin,
//! grub-common, xorriso, mtools).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

/// Arguments of `bulkhead image`.
#[derive(clap::Args)]
pub struct Args {
    /// The kernel ELF (Multiboot2).
    #[arg(long)]
    pub kernel: PathBuf,
    /// The boot module written by `bulkhead pack`.
    #[arg(long)]
    pub plan: PathBuf,
    /// The ISO to write.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

/// The GRUB configuration: no menu delay, console on COM1 and screen.
pub const GRUB_CFG: &str = "\
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry \"Bulkhead\" {
    multiboot2 /boot/bulkhead-kernel
    module2 /boot/bulkhead.plan bulkhead.plan
    boot
}
";

/// Runs `bulkhead image`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for (what, p) in [("kernel", &args.kernel), ("plan", &args.plan)] {
        if !p.is_file() {
            bail!(
                "{what} {} does not exist; build it first (`cargo xtask build`)",
                p.display()
            );
        }
    }
    let staging = args.output.with_extension("iso.d");
    let _ = std::fs::remove_dir_all(&staging);
    let boot = staging.join("boot");
    std::fs::create_dir_all(boot.join("grub"))
        .with_context(|| format!("cannot create {}", boot.display()))?;
    std::fs::copy(&args.kernel, boot.join("bulkhead-kernel")).context("cannot copy the kernel")?;
    std::fs::copy(&args.plan, boot.join("bulkhead.plan")).context("cannot copy the plan")?;
    std::fs::write(boot.join("grub").join("grub.cfg"), GRUB_CFG)
        .context("cannot write grub.cfg")?;
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&args.output)
        .arg(&staging)
        .output()
        .context("cannot run grub-mkrescue: install grub-common, grub-pc-bin, grub-efi-amd64-bin, xorriso and mtools (`cargo xtask test` does)")?;
    let _ = std::fs::remove_dir_all(&staging);
    if !out.status.success() {
        bail!(
            "grub-mkrescue failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if !std::path::Path::new("/usr/lib/grub/x86_64-efi").exists() {
        eprintln!("warning: GRUB's x86_64-efi files are missing: the image will not boot under UEFI (install grub-efi-amd64-bin)");
    }
    if !std::path::Path::new("/usr/lib/grub/i386-pc").exists() {
        eprintln!("warning: GRUB's i386-pc files are missing: the image will not boot under BIOS (install grub-pc-bin)");
    }
    println!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}
