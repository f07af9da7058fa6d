//! `bulkhead pt`: Intel Processor Trace tools.
//!
//! - `dump <trace>`: every packet, one per line with its offset, in the
//!   spirit of libipt's ptdump; decoding errors are printed where they occur
//!   and decoding resumes at the next PSB.
//! - `check --elf <program> <trace>`: the monitor's CFI check on a recorded
//!   trace: fast path over the whole trace as one check window, then the
//!   slow path if anything is suspicious; names the first illegal edge.
//!
//! I/O and printing only; decoding and checking live in `bulkhead-pt`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use bulkhead_pt::cfi::{slow_check, CheckConfig, Checker, Gate, Policy};
use bulkhead_pt::{Config, Decoder, Item};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Print every packet of a raw PT trace with its offset.
    Dump {
        /// The trace file (raw PT packets, e.g. from perf's AUX area or a ring buffer dump).
        trace: PathBuf,
        /// Decode as libipt 2.0 does: no BBP/BIP/BEP block packets.
        #[arg(long)]
        no_block_packets: bool,
    },
    /// Check a trace against the control-flow policy of an ELF program.
    Check {
        /// The traced program (64-bit ELF with a symbol table).
        #[arg(long)]
        elf: PathBuf,
        /// The trace file.
        trace: PathBuf,
        /// Edges with less credit (0-100) go to the slow path.
        #[arg(long, default_value_t = 60)]
        threshold: u8,
        /// A known-good trace of the program: the indirect edges it takes
        /// get full credit (repeatable).
        #[arg(long = "trust")]
        trust: Vec<PathBuf>,
    },
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Dump {
            trace,
            no_block_packets,
        } => dump(&trace, no_block_packets),
        Cmd::Check {
            elf,
            trace,
            threshold,
            trust,
        } => check(&elf, &trace, threshold, &trust),
    }
}

fn dump(path: &PathBuf, no_block_packets: bool) -> anyhow::Result<ExitCode> {
    let bytes = read(path, "trace")?;
    let cfg = Config {
        block_packets: !no_block_packets,
    };
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let (mut packets, mut errors) = (0u64, 0u64);
    for item in Decoder::new(&bytes, cfg).items() {
        let line = match item {
            Item::Packet(d) => {
                packets += 1;
                format!("{d}")
            }
            Item::Error { error, resync } => {
                errors += 1;
                match resync {
                    Some(at) => format!("{error}; resynchronised at {at:016x}"),
                    None => format!("{error}; no further PSB"),
                }
            }
            Item::Skipped {
                first_psb: Some(at),
            } => format!("{:016x}  [skipped {at:#x} bytes before the first psb]", 0),
            Item::Skipped { first_psb: None } => {
                format!("{:016x}  [no psb in the trace: nothing to decode]", 0)
            }
        };
        if writeln!(out, "{}", line.trim_end()).is_err() {
            return Ok(ExitCode::SUCCESS); // stdout closed (e.g. `| head`)
        }
    }
    drop(out);
    eprintln!(
        "{}: {} bytes, {packets} packets, {errors} decoding errors",
        path.display(),
        bytes.len()
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check(
    elf: &PathBuf,
    trace: &PathBuf,
    threshold: u8,
    trust: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let file = read(elf, "program")?;
    let image = bulkhead_pt::elf::parse(&file)
        .map_err(|e| anyhow!("{}: {}", elf.display(), e.describe()))?;
    if image.symbols.is_empty() {
        eprintln!("warning: {} has no function symbols: only direct call targets count as function entries", elf.display());
    }
    let nsyms = image.symbols.len();
    let policy = Policy::build(image.base, image.code, image.symbols)
        .map_err(|e| anyhow!("{}: cannot build the policy: {e:?}", elf.display()))?;
    let bytes = read(trace, "trace")?;
    let cfg = CheckConfig {
        threshold,
        ..CheckConfig::default()
    };
    let mut policy = policy;
    for good in trust {
        let edges = bulkhead_pt::cfi::learn(&policy, &read(good, "known-good trace")?, cfg);
        println!(
            "trusting {} indirect edges seen in {}",
            edges.len(),
            good.display()
        );
        policy.trust_edges(&edges);
    }
    let policy = policy;
    let mut checker = Checker::new(&policy, cfg);
    checker.enter_controlled();
    checker.feed(&bytes);
    let gate = checker.gate();
    let w = checker.leave_controlled().expect("the window opened above");
    println!(
        "fast path: {} packets, {} edges judged, {} syscalls, {} decoding errors ({} functions in {})",
        checker.packets(),
        w.edges,
        w.syscalls,
        w.decode_errors,
        nsyms,
        elf.display()
    );
    if let Some(e) = w.first_decode_error {
        println!("first decoding error: {e}");
    }
    if gate == Gate::Allow {
        println!("clean: no edge below credit {threshold}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(e) = w.first_suspicious {
        println!(
            "suspicious: {:?} {:#x} -> {:#x} (credit {}) at trace offset {:#x}",
            e.kind, e.source, e.target, e.credit, e.offset
        );
    }
    let slow = slow_check(
        &policy,
        &bytes[w.replay_from as usize..w.end as usize],
        w.replay_from,
        (w.start, w.end),
        cfg,
    );
    println!(
        "slow path: {} instructions reconstructed, {} edges judged",
        slow.instructions, slow.edges
    );
    match slow.violation {
        Some(v) => {
            println!("VIOLATION: {}", v.describe(&policy));
            Ok(ExitCode::FAILURE)
        }
        None => {
            println!("clean: the slow path cleared every suspicious edge");
            Ok(ExitCode::SUCCESS)
        }
    }
}
