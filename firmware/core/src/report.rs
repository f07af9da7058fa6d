//! The POST report: one entry per container slot, and the boot decision.
//!
//! The firmware PD sends it to the supervisor over a channel (postcard after
//! the magic `BHPR` and a version, see [`PostReport::encode`]) and prints it
//! on the console ([`core::fmt::Display`], one line per container).
//!
//! Design rules: the decision is a pure function of the entries
//! ([`decide`]): a critical container that did not pass stops the boot,
//! whatever the reason (refused, trapped, out of fuel, failed, no result).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::{Capability, Version};
use crate::verify::Refusal;

/// First bytes of an encoded report.
pub const REPORT_MAGIC: [u8; 4] = *b"BHPR";
/// The report format this crate writes and reads.
pub const REPORT_VERSION: u16 = 1;
/// Longest detail text a container can report, in bytes.
pub const MAX_DETAIL: usize = 256;

/// Why a verified container could not be instantiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadFailure {
    /// The module is not valid WebAssembly (or uses a disabled feature).
    InvalidModule,
    /// The module imports something the host API does not offer.
    UnknownImport,
    /// The module imports a host function with the wrong type.
    ImportTypeMismatch,
    /// The manifest's entry point is not an exported `() -> ()` function.
    MissingEntry,
    /// The module's initial memory exceeds the manifest's page limit.
    MemoryAboveLimit,
    /// The module defines a memory but does not export it as `memory`
    /// (the PD must reach it to wipe it).
    MemoryNotExported,
    /// The module has a start function (everything must go through the entry).
    StartFunction,
    /// Instantiation failed otherwise (data segment out of bounds, ...).
    Instantiation,
}

impl fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoadFailure::InvalidModule => {
                "the module is not valid WebAssembly (or uses a disabled feature)"
            }
            LoadFailure::UnknownImport => "the module imports something outside the host API",
            LoadFailure::ImportTypeMismatch => {
                "the module imports a host function with the wrong type"
            }
            LoadFailure::MissingEntry => "the entry point is not an exported () -> () function",
            LoadFailure::MemoryAboveLimit => "the module's initial memory exceeds its page limit",
            LoadFailure::MemoryNotExported => {
                "the module's memory is not exported as `memory`, so it could not be wiped"
            }
            LoadFailure::StartFunction => "the module has a start function",
            LoadFailure::Instantiation => {
                "instantiation failed (e.g. a data segment out of bounds)"
            }
        })
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrapKind::CapabilityDenied(c) => write!(f, "called `{c}` without the capability"),
            TrapKind::BadHostArgument => {
                f.write_str("passed a host function an out-of-range pointer, length or value")
            }
            TrapKind::Unreachable => {
                f.write_str("reached `unreachable` (a panic in the container)")
            }
            TrapKind::OutOfBounds => f.write_str("out-of-bounds memory or table access"),
            TrapKind::Arithmetic => {
                f.write_str("integer division by zero, overflow or bad conversion")
            }
            TrapKind::StackOverflow => f.write_str("call stack exhausted"),
            TrapKind::BadIndirectCall => {
                f.write_str("indirect call through a null or mistyped table entry")
            }
            TrapKind::Other => f.write_str("trapped"),
        }
    }
}

/// Why a container was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrapKind {
    /// It called a host function whose capability it did not declare (or the
    /// PD does not hold).
    CapabilityDenied(Capability),
    /// It passed a host function an out-of-range pointer, length or value.
    BadHostArgument,
    /// `unreachable` (a Rust panic in the guest ends here).
    Unreachable,
    /// Out-of-bounds memory or table access.
    OutOfBounds,
    /// Integer division by zero or overflow, or an invalid conversion.
    Arithmetic,
    /// Call stack exhausted.
    StackOverflow,
    /// Indirect call through a null or mistyped table entry.
    BadIndirectCall,
    /// Any other trap.
    Other,
}

/// What happened to one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It ran and reported success.
    Passed {
        /// Its detail text.
        detail: String,
    },
    /// It ran and reported failure.
    Failed {
        /// Its detail text.
        detail: String,
    },
    /// Verification refused it; it never ran.
    Refused(Refusal),
    /// Verified but could not be instantiated; it never ran.
    NotLoaded(LoadFailure),
    /// It trapped.
    Trapped(TrapKind),
    /// It used up its fuel.
    OutOfFuel,
    /// It tried to grow its memory past its limit.
    MemoryLimit,
    /// It exceeded its wall-clock budget.
    WallClockExceeded,
    /// It returned without reporting a result.
    NoResult,
    /// The policy names it critical but it was not in the POST set.
    Missing,
}

impl Outcome {
    /// Only `Passed` counts as a pass.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Passed { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Passed { detail } => write!(f, "PASS: {detail}"),
            Outcome::Failed { detail } => write!(f, "FAIL: {detail}"),
            Outcome::Refused(r) => write!(f, "REFUSED: {r}"),
            Outcome::NotLoaded(l) => write!(f, "NOT LOADED: {l}"),
            Outcome::Trapped(t) => write!(f, "TRAPPED: {t}"),
            Outcome::OutOfFuel => f.write_str("STOPPED: out of fuel"),
            Outcome::MemoryLimit => f.write_str("STOPPED: memory growth past its limit"),
            Outcome::WallClockExceeded => f.write_str("STOPPED: wall-clock budget exceeded"),
            Outcome::NoResult => f.write_str("FAIL: returned without reporting a result"),
            Outcome::Missing => {
                f.write_str("MISSING: the policy requires it and it is not in the POST set")
            }
        }
    }
}

/// One container's line in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostEntry {
    /// Position in the POST set (names may be missing when a container is malformed).
    pub slot: u16,
    /// The manifest's name, or empty if the manifest could not be read.
    pub name: String,
    /// The manifest's version, if readable.
    pub version: Option<Version>,
    /// Whether its failure stops the boot.
    pub critical: bool,
    /// What happened.
    pub outcome: Outcome,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Time spent running, in microseconds.
    pub elapsed_us: u64,
    /// Bytes of its linear memory zeroed (and checked) before release.
    pub wiped_bytes: u64,
}

/// The boot decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Every critical container passed: tell the VMM to start the guest.
    Boot,
    /// The critical container in `slot` did not pass: stop the boot.
    Stop {
        /// Its slot.
        slot: u16,
    },
}

/// The structured POST report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostReport {
    /// The platform the PD verified against.
    pub platform: String,
    /// One entry per slot, in run order.
    pub entries: Vec<PostEntry>,
    /// Bytes of the scratch region zeroed after the phase.
    pub scratch_wiped_bytes: u64,
    /// Boot or stop.
    pub decision: Decision,
}

/// The boot decision for `entries`: stop at the first critical container
/// that did not pass.
pub fn decide(entries: &[PostEntry]) -> Decision {
    match entries.iter().find(|e| e.critical && !e.outcome.passed()) {
        Some(e) => Decision::Stop { slot: e.slot },
        None => Decision::Boot,
    }
}

/// Why a report could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportError {
    /// Not a report.
    BadMagic,
    /// A report format this build does not read.
    UnsupportedVersion(u16),
    /// Broken, truncated, or followed by other bytes.
    Encoding,
}

impl PostReport {
    /// The report's bytes as sent over the supervisor channel.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = REPORT_MAGIC.to_vec();
        out.extend_from_slice(&REPORT_VERSION.to_le_bytes());
        if let Ok(body) = postcard::to_allocvec(self) {
            out.extend_from_slice(&body);
        }
        out
    }

    /// Decodes a report received over the channel; never panics.
    pub fn decode(bytes: &[u8]) -> Result<PostReport, ReportError> {
        let (magic, rest) = bytes.split_at_checked(4).ok_or(ReportError::BadMagic)?;
        if magic != REPORT_MAGIC {
            return Err(ReportError::BadMagic);
        }
        let (ver, body) = rest.split_at_checked(2).ok_or(ReportError::Encoding)?;
        let ver = u16::from_le_bytes([ver[0], ver[1]]);
        if ver != REPORT_VERSION {
            return Err(ReportError::UnsupportedVersion(ver));
        }
        match postcard::take_from_bytes(body) {
            Ok((r, [])) => Ok(r),
            _ => Err(ReportError::Encoding),
        }
    }
}

impl fmt::Display for PostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "POST report for platform {}: {} container(s)",
            self.platform,
            self.entries.len()
        )?;
        for e in &self.entries {
            let name = if e.name.is_empty() {
                "(unreadable)"
            } else {
                e.name.as_str()
            };
            write!(f, "  [{}] {}", e.slot, name)?;
            if let Some(v) = e.version {
                write!(f, " {v}")?;
            }
            writeln!(
                f,
                "{}: {} (fuel {}, {} us, {} bytes wiped)",
                if e.critical { " (critical)" } else { "" },
                e.outcome,
                e.fuel_used,
                e.elapsed_us,
                e.wiped_bytes
            )?;
        }
        writeln!(
            f,
            "  scratch region: {} bytes wiped",
            self.scratch_wiped_bytes
        )?;
        match self.decision {
            Decision::Boot => write!(f, "POST decision: BOOT"),
            Decision::Stop { slot } => write!(
                f,
                "POST decision: STOP (critical container in slot {slot} did not pass)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn entry(slot: u16, critical: bool, outcome: Outcome) -> PostEntry {
        PostEntry {
            slot,
            name: "t".into(),
            version: None,
            critical,
            outcome,
            fuel_used: 1,
            elapsed_us: 2,
            wiped_bytes: 3,
        }
    }

    #[test]
    fn decision_follows_critical_failures_only() {
        let pass = Outcome::Passed {
            detail: "ok".into(),
        };
        assert_eq!(
            decide(&[
                entry(0, true, pass.clone()),
                entry(1, false, Outcome::OutOfFuel)
            ]),
            Decision::Boot
        );
        assert_eq!(
            decide(&[
                entry(0, true, pass),
                entry(1, true, Outcome::NoResult),
                entry(2, true, Outcome::OutOfFuel)
            ]),
            Decision::Stop { slot: 1 }
        );
        assert_eq!(
            decide(&[entry(0, true, Outcome::Refused(Refusal::BadSignature))]),
            Decision::Stop { slot: 0 }
        );
    }

    #[test]
    fn report_roundtrip_and_words() {
        let entries = vec![entry(
            0,
            true,
            Outcome::Trapped(TrapKind::CapabilityDenied(Capability::PciConfig)),
        )];
        let r = PostReport {
            platform: "qemu-q35".into(),
            decision: decide(&entries),
            entries,
            scratch_wiped_bytes: 4096,
        };
        let b = r.encode();
        assert_eq!(PostReport::decode(&b), Ok(r.clone()));
        assert_eq!(
            PostReport::decode(&b[..b.len() - 1]),
            Err(ReportError::Encoding)
        );
        let text = r.to_string();
        assert!(
            text.contains("called `pci-config` without the capability"),
            "{text}"
        );
        assert!(text.contains("STOP"), "{text}");
        let words = Outcome::NotLoaded(LoadFailure::MemoryNotExported).to_string();
        assert_eq!(
            words,
            "NOT LOADED: the module's memory is not exported as `memory`, so it could not be wiped"
        );
    }
}
