//! `bulkhead`: the host tool. Each subcommand lives in its own module with a
//! `clap::Args` struct and a `run` function; `main` only dispatches.
//!
//! Errors for bad input say what and where (file, line, element) and what would
//! fix it; they are never a backtrace (CONVENTIONS.md §9).

#![forbid(unsafe_code)]

mod profile;
mod vmi;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bulkhead", version, about = "The Bulkhead host tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a VMI profile from a Debian kernel package or bzImage.
    Profile(profile::Args),
    /// Introspect a guest memory image with a VMI profile.
    Vmi(vmi::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Profile(a) => profile::run(a),
        Command::Vmi(a) => vmi::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
