//! `bulkhead pack`: compiles a system.xml and its PD images into the
//! kernel's boot module (`<out>/bulkhead.plan`). I/O and printing only; the
//! logic is in `bulkhead-pack`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `bulkhead pack`.
#[derive(clap::Args)]
pub struct Args {
    /// The system description (Microkit SDF).
    pub system: PathBuf,
    /// Directories to find program images in (repeatable; first match wins).
    #[arg(long = "search-path", value_name = "DIR")]
    pub search_path: Vec<PathBuf>,
    /// Output directory; the boot module is written as `bulkhead.plan` there.
    #[arg(short = 'o', long = "output", default_value = "build")]
    pub output: PathBuf,
}

/// Runs `bulkhead pack`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.system)
        .with_context(|| format!("cannot read {}", args.system.display()))?;
    let file = args.system.display().to_string();
    let system = match bulkhead_sdf::parse(&file, &text) {
        Ok(s) => s,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &system.warnings {
        eprintln!("{w}");
    }
    let search: Vec<PathBuf> = if args.search_path.is_empty() {
        vec![args.system.parent().map(PathBuf::from).unwrap_or_default()]
    } else {
        args.search_path.clone()
    };
    let packed = match bulkhead_pack::pack(&system, &search) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &packed.warnings {
        eprintln!("warning: {w}");
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let out = args.output.join("bulkhead.plan");
    std::fs::write(&out, &packed.module)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "packed {} PDs, {} regions, {} channels into {} ({} bytes)",
        packed.plan.pds.len(),
        packed.plan.regions.len(),
        packed.plan.channels.len(),
        out.display(),
        packed.module.len()
    );
    Ok(ExitCode::SUCCESS)
}
