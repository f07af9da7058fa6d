//! `bulkhead container`: make keys, build, sign, verify and inspect firmware
//! containers. I/O and printing only: the format and verification are
//! `firmware-core` (the PD's own code), the file formats `firmware-host`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use firmware_core::verify::TrustedKey;
use firmware_core::{verify, Container, Policy};
use firmware_host::{describe, keys, manifest_toml, trust};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Make a signing key pair: NAME.sec (secret, mode 0600) and NAME.pub.
    Keygen {
        /// Path prefix of the two files.
        name: PathBuf,
    },
    /// Make an unsigned container from a Wasm module and a manifest (TOML).
    Build {
        /// The Wasm module.
        wasm: PathBuf,
        /// The manifest (TOML; see docs/firmware.md).
        #[arg(long)]
        manifest: PathBuf,
        /// Where to write the container.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Sign a container (made by `build`) with a secret key.
    Sign {
        /// The container.
        container: PathBuf,
        /// The secret key file.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signed container (default: in place).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Verify a container as the firmware PD does; exit status 1 if refused.
    Verify {
        /// The container.
        container: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Show everything in a container in words (and verify it if keys are given).
    Inspect {
        /// The container.
        container: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Turn a trust configuration (TOML) into the policy bytes the firmware PD embeds.
    Policy {
        /// The trust configuration.
        config: PathBuf,
        /// Where to write the policy.
        #[arg(short, long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct TrustArgs {
    /// A trusted public key file (repeatable). Checks signature and trust;
    /// the platform is the container's own unless --platform is given.
    #[arg(long)]
    pubkey: Vec<PathBuf>,
    /// With --pubkey: the platform to check the container against.
    #[arg(long)]
    platform: Option<String>,
    /// The platform's trust configuration: verifies exactly as the PD would.
    #[arg(long, conflicts_with_all = ["pubkey", "platform"])]
    policy: Option<PathBuf>,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}

fn parse_container(path: &Path) -> anyhow::Result<Container> {
    Container::parse(&read(path)?).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The policy to verify against, or `None` when no key or policy was given.
fn policy_for(t: &TrustArgs, c: &Container) -> anyhow::Result<Option<Policy>> {
    if let Some(p) = &t.policy {
        return Ok(Some(trust::load(p)?));
    }
    if t.pubkey.is_empty() {
        return Ok(None);
    }
    let mut keys_ = Vec::new();
    for p in &t.pubkey {
        let public = keys::parse_public(&keys::read_text(p)?, &p.display().to_string())?;
        keys_.push(TrustedKey {
            name: p.display().to_string(),
            public,
        });
    }
    let platform = t
        .platform
        .clone()
        .unwrap_or_else(|| c.manifest.platform.clone());
    Ok(Some(trust::permissive(&platform, keys_)))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::Keygen { name } => {
            let sec = name.with_extension("sec");
            let public = name.with_extension("pub");
            for p in [&sec, &public] {
                if p.exists() {
                    bail!("{}: already exists; keygen never overwrites a key (remove it or choose another name)", p.display());
                }
            }
            let k = keys::generate()?;
            write_secret(&sec, keys::secret_text(&k).as_bytes())?;
            write(&public, keys::public_text(&k.verifying_key()).as_bytes())?;
            println!(
                "wrote {} (secret) and {} (public)",
                sec.display(),
                public.display()
            );
        }
        Cmd::Build {
            wasm,
            manifest,
            out,
        } => {
            let module = read(&wasm)?;
            let text = keys::read_text(&manifest)?;
            let m = manifest_toml::build(&text, &manifest.display().to_string(), &module)?;
            let c = Container {
                manifest_bytes: m
                    .encode()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", manifest.display()))?,
                manifest: m,
                module,
                signer: [0; 32],
                signature: [0; 64],
            };
            write(&out, &c.encode())?;
            println!(
                "wrote unsigned container {} ({} {}); sign it with `bulkhead container sign`",
                out.display(),
                c.manifest.name,
                c.manifest.version
            );
        }
        Cmd::Sign {
            container,
            key,
            out,
        } => {
            let c = parse_container(&container)?;
            let k = keys::parse_secret(&keys::read_text(&key)?, &key.display().to_string())?;
            let signed = Container::sign(&c.manifest, c.module, &k)
                .map_err(|e| anyhow::anyhow!("{}: {e}", container.display()))?;
            let out = out.unwrap_or(container);
            write(&out, &signed.encode())?;
            println!(
                "signed {} with key {}",
                out.display(),
                firmware_host::hex(&signed.signer)
            );
        }
        Cmd::Verify {
            container,
            trust: t,
        } => {
            let bytes = read(&container)?;
            let c = Container::parse(&bytes).map_err(|e| {
                anyhow::anyhow!("{}: REFUSED: malformed container: {e}", container.display())
            })?;
            let Some(policy) = policy_for(&t, &c)? else {
                bail!("give the trusted keys (--pubkey FILE) or the platform's trust configuration (--policy FILE)");
            };
            return Ok(report_verification(&container, &bytes, &policy));
        }
        Cmd::Inspect {
            container,
            trust: t,
        } => {
            let bytes = read(&container)?;
            let c = parse_container(&container)?;
            print!("{}", describe::describe(&c));
            if let Some(policy) = policy_for(&t, &c)? {
                return Ok(report_verification(&container, &bytes, &policy));
            }
        }
        Cmd::Policy { config, out } => {
            let p = trust::load(&config)?;
            write(&out, &p.encode())?;
            println!(
                "wrote policy for platform {} ({} trusted key(s)) to {}",
                p.platform,
                p.trusted_keys.len(),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_verification(path: &Path, bytes: &[u8], policy: &Policy) -> ExitCode {
    match verify(bytes, policy) {
        Ok(v) => {
            println!(
                "{}: VERIFIED for platform {}: signed by trusted key `{}`, hashes match, inspection accepted{}",
                path.display(),
                policy.platform,
                v.key_name(),
                if v.critical() { "; critical" } else { "" }
            );
            ExitCode::SUCCESS
        }
        Err(r) => {
            println!("{}: REFUSED: {r}", path.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(unix)]
fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(not(unix))]
fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write(path, bytes)
}
