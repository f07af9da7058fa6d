//! `bulkhead vmi`.
#[derive(clap::Args)]
pub struct Args {}
pub fn run(_a: Args) -> anyhow::Result<std::process::ExitCode> { anyhow::bail!("todo") }
