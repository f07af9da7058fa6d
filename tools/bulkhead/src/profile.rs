//! `bulkhead profile`: builds a VMI profile (and optionally a Volatility 3
//! ISF) from a Debian kernel package or a bzImage. I/O and printing only;
//! the work is in `monitor-profile`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

/// Arguments of `bulkhead profile`.
#[derive(clap::Args)]
pub struct Args {
    /// A `linux-image-*.deb` or a bzImage (`vmlinuz`).
    input: PathBuf,
    /// A System.map whose symbols override the kernel's own kallsyms.
    #[arg(long)]
    system_map: Option<PathBuf>,
    /// Where to write the profile.
    #[arg(short, long)]
    output: PathBuf,
    /// Also write a Volatility 3 ISF JSON file here.
    #[arg(long)]
    isf: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let t0 = Instant::now();
    let input = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let map = match &args.system_map {
        Some(p) => Some(
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        None => None,
    };
    let kernel = monitor_profile::load_kernel(&input, map.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
    let profile = kernel
        .profile()
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
    let bytes = profile.to_bytes();
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if let Some(isf) = &args.isf {
        let json = monitor_profile::isf::to_isf(&kernel);
        std::fs::write(isf, json).with_context(|| format!("cannot write {}", isf.display()))?;
    }
    println!(
        "{}: {} ({}), {} symbols from {}, {} BTF types, {} structs, {} text pages; profile {} bytes in {:.2}s",
        args.output.display(),
        kernel.banner.trim_end(),
        kernel.info.input,
        profile.symbols.len(),
        kernel.info.symbol_source,
        kernel.info.btf_types,
        profile.structs.len(),
        profile.text.pages,
        bytes.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
