//! `bulkhead gateway check`: validates a gateway policy against DBC files,
//! compiles it to the binary form the gateway PD loads, and optionally
//! explains it in words; `explain` and `replay` work on the compiled form
//! (`replay` runs a candump log through the PD's own engine). I/O and
//! printing only; the logic is in `gateway-policy` and `gateway-core`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};

/// `bulkhead gateway ...`
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: GatewayCommand,
}

#[derive(Subcommand)]
enum GatewayCommand {
    /// Check a policy file against DBC files; compile it with -o.
    Check {
        /// The policy (TOML).
        policy: PathBuf,
        /// DBC files whose messages and signals the policy names.
        #[arg(long = "dbc", num_args = 1.., required = true)]
        dbc: Vec<PathBuf>,
        /// Write the compiled policy here.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Print the compiled policy in words.
        #[arg(long)]
        explain: bool,
    },
    /// Explain an already compiled policy (.bin).
    Explain {
        /// The compiled policy.
        compiled: PathBuf,
    },
    /// Replay a candump -L log through a compiled policy and count decisions.
    /// Lines on a bus interface are bus traffic; lines on an interface named
    /// like an application are that application's send requests.
    Replay {
        /// The compiled policy.
        compiled: PathBuf,
        /// The log (`(secs.usecs) iface id#data` lines).
        log: PathBuf,
        /// Interfaces that are buses (default: can0 can1 vcan0 vcan1).
        #[arg(long = "bus", num_args = 1..)]
        bus: Vec<String>,
    },
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        GatewayCommand::Check {
            policy,
            dbc,
            output,
            explain,
        } => check(policy, dbc, output, explain),
        GatewayCommand::Explain { compiled } => {
            let p = load(&compiled)?;
            print!("{}", gateway_policy::explain::explain(&p));
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Replay { compiled, log, bus } => {
            let p = load(&compiled)?;
            let text = std::fs::read_to_string(&log)
                .with_context(|| format!("cannot read {}", log.display()))?;
            let bus = if bus.is_empty() {
                vec![
                    "can0".to_string(),
                    "can1".into(),
                    "vcan0".into(),
                    "vcan1".into(),
                ]
            } else {
                bus
            };
            match gateway_policy::replay::replay(&p, &text, |i| bus.iter().any(|b| b == i)) {
                Ok(r) => {
                    print!("{}", r.render());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}:{}: {}", log.display(), e.line, e.message);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn load(compiled: &std::path::Path) -> anyhow::Result<gateway_core::Policy> {
    let bytes =
        std::fs::read(compiled).with_context(|| format!("cannot read {}", compiled.display()))?;
    gateway_core::Policy::from_bytes(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a compiled gateway policy this version can load ({e:?}); recompile it with `bulkhead gateway check ... -o`",
            compiled.display()
        )
    })
}

fn check(
    policy: PathBuf,
    dbc: Vec<PathBuf>,
    output: Option<PathBuf>,
    explain: bool,
) -> anyhow::Result<ExitCode> {
    let db = gateway_policy::Database::load(&dbc)?;
    let text = std::fs::read_to_string(&policy)
        .with_context(|| format!("cannot read {}", policy.display()))?;
    let compiled = match gateway_policy::compile(&policy, &text, &db) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let n = diags
                .iter()
                .filter(|d| d.severity == gateway_policy::Severity::Error)
                .count();
            eprintln!("{}: {n} error(s); nothing written", policy.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &compiled.warnings {
        eprintln!("{w}");
    }
    let bytes = compiled
        .policy
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("cannot encode the policy: {e:?}"))?;
    // Prove the PD can load what we write before writing it.
    gateway_core::Policy::from_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("compiled policy fails to load back: {e:?}"))?;
    if let Some(out) = &output {
        std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    }
    if explain {
        print!("{}", gateway_policy::explain::explain(&compiled.policy));
    }
    let p = &compiled.policy;
    eprintln!(
        "{}: ok: {} application(s), {} CAN rule(s), {} L4 rule(s), {} byte(s) compiled{}",
        policy.display(),
        p.apps.len(),
        p.rules.len(),
        p.l4.len(),
        bytes.len(),
        output
            .map(|o| format!(" to {}", o.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
