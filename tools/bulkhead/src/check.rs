//! `bulkhead check`: validates a `system.xml` (Microkit 2.3 SDF for
//! x86_64) and, on request, describes it. I/O and printing only; the
//! parser, the rules and the report live in `bulkhead-sdf`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bulkhead_sdf::report::Report;

/// Check a system description; print its report.
#[derive(clap::Args)]
pub struct Args {
    /// The system description to check.
    pub system: PathBuf,
    /// Also check program images (and prefill files) found in DIR: they
    /// exist, are x86_64 ELF executables and define every setvar symbol.
    /// May be given several times.
    #[arg(long = "search-path", value_name = "DIR")]
    pub search_path: Vec<PathBuf>,
    /// Print every PD's resources and the information flow between PDs.
    #[arg(long)]
    pub report: bool,
    /// Print the report as JSON on stdout (and, on errors, the errors).
    #[arg(long)]
    pub json: bool,
    /// Write the information-flow graph in Graphviz format to FILE.
    #[arg(long, value_name = "FILE")]
    pub dot: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.system)
        .with_context(|| format!("cannot read {}", args.system.display()))?;
    let label = args.system.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{label}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let result = bulkhead_sdf::parse(&label, &text).and_then(|sys| {
        let problems = bulkhead_sdf::images::check_if(&sys, &args.search_path);
        if problems.iter().any(|d| d.is_error()) {
            let mut all = sys.warnings.clone();
            all.extend(problems);
            Err(all)
        } else {
            Ok(sys)
        }
    });
    let sys = match result {
        Ok(sys) => sys,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let n = diags.iter().filter(|d| d.is_error()).count();
            eprintln!("{label}: {n} error{}", if n == 1 { "" } else { "s" });
            if args.json {
                let v = serde_json::json!({ "ok": false, "diagnostics": diags });
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &sys.warnings {
        eprintln!("{w}");
    }
    let report = Report::new(&sys);
    if let Some(path) = &args.dot {
        std::fs::write(path, report.to_dot())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else if args.report {
        print!("{}", report.to_text());
    } else {
        println!(
            "{label}: ok ({} protection domains, {} memory regions, {} channels)",
            sys.pds.len(),
            sys.memory_regions.len(),
            sys.channels.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
