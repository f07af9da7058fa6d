//! `bulkhead guest`: builds the Linux guest's initramfs (cpio newc):
//! busybox, an `/init` that prints `BULKHEAD_GUEST_READY`, runs the given
//! scripts in order and prints `BULKHEAD_GUEST_DONE`. I/O and printing
//! only; the layout is in `bulkhead-guest`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `bulkhead guest`.
#[derive(clap::Args)]
pub struct Args {
    /// Static busybox: the binary, or Debian's busybox-static .deb.
    #[arg(long, value_name = "FILE")]
    pub busybox: PathBuf,
    /// A test script to run at boot (repeatable; run in the order given,
    /// stored as /scripts/NN-<file name>).
    #[arg(long = "script", value_name = "FILE")]
    pub scripts: Vec<PathBuf>,
    /// Where to write the initramfs (cpio newc).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `bulkhead guest`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cpio = match bulkhead_guest::initramfs::build_from_files(&args.busybox, &args.scripts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&args.out, &cpio)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} ({} bytes, {} script(s))",
        args.out.display(),
        cpio.len(),
        args.scripts.len()
    );
    Ok(ExitCode::SUCCESS)
}
