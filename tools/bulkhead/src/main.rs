//! `bulkhead`: the host tool. Each subcommand lives in its own module with a
//! `clap::Args` struct and a `run` function; `main` only dispatches.
//!
//! Errors for bad input say what and where (file, line, element) and what would
//! fix it; they are never a backtrace (CONVENTIONS.md §9).

#![forbid(unsafe_code)]

mod check;
mod container;
mod image;
mod pack;
mod profile;
mod pt;
mod vmi;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod gateway;
mod guest;

#[derive(Parser)]
#[command(name = "bulkhead", version, about = "The Bulkhead host tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a system.xml (Microkit SDF) and describe it.
    Check(check::Args),
    /// Intel Processor Trace: dump packets, check control flow.
    Pt(pt::Args),
    /// Gateway policies: check, compile, explain, replay CAN logs.
    Gateway(gateway::Args),
    /// Firmware containers: keygen, build, sign, verify, inspect, policy.
    Container(container::Args),
    /// Compile a system.xml and its PD images into the kernel's boot module.
    Pack(pack::Args),
    /// Make a bootable hybrid BIOS+UEFI ISO from the kernel and a boot module.
    Image(image::Args),
    /// Build a VMI profile from a Debian kernel package or bzImage.
    Profile(profile::Args),
    /// Introspect a guest memory image with a VMI profile.
    Vmi(vmi::Args),
    /// Build the Linux guest's initramfs (busybox + test scripts).
    Guest(guest::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Pt(args) => pt::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::Container(args) => container::run(args),
        Command::Pack(args) => pack::run(args),
        Command::Image(args) => image::run(args),
        Command::Profile(a) => profile::run(a),
        Command::Vmi(a) => vmi::run(a),
        Command::Guest(a) => guest::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
