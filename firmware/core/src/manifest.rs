//! The manifest: what a container is, what it may touch and how much it may
//! use. It is the signed part of a container; it binds the module by its
//! SHA-256 and binds the vulnerability-inspection record to the module's
//! change-prohibited regions by their SHA-256.
//!
//! Design rules: every field is bounded and checked by [`Manifest::decode`]
//! (strings by length and character set, capabilities against the fixed
//! list, limits non-zero and within Wasm's own bounds), so code after decoding
//! never meets an out-of-range value. The encoding is postcard after a magic
//! and a version.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// First bytes of an encoded manifest.
pub const MANIFEST_MAGIC: [u8; 4] = *b"BHFM";
/// The manifest format this crate writes and reads.
pub const MANIFEST_VERSION: u16 = 1;
/// Longest name, platform, entry point or scanner name, in bytes.
pub const MAX_TEXT: usize = 64;
/// Most change-prohibited regions a manifest may list.
pub const MAX_REGIONS: usize = 16;
/// Most Wasm pages (64 KiB each) a container may ask for (Wasm32's own bound).
pub const MAX_MEMORY_PAGES: u32 = 65536;

/// A semantic version `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// Incompatible changes.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
    /// Fixes.
    pub patch: u16,
}

impl Version {
    /// Parses `1.2.3`.
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.split('.');
        let v = Version {
            major: it.next()?.parse().ok()?,
            minor: it.next()?.parse().ok()?,
            patch: it.next()?.parse().ok()?,
        };
        if it.next().is_some() {
            return None;
        }
        Some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A calendar date (UTC), as written in inspection records and policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Date {
    /// Year, e.g. 2026.
    pub year: u16,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31 (checked against the month).
    pub day: u8,
}

impl Date {
    /// Whether the date exists in the Gregorian calendar.
    pub fn is_valid(&self) -> bool {
        let leap = (self.year.is_multiple_of(4) && !self.year.is_multiple_of(100))
            || self.year.is_multiple_of(400);
        let days = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        self.year >= 1970 && self.day >= 1 && self.day <= days
    }

    /// Parses `YYYY-MM-DD`, refusing dates that do not exist.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let d = Date {
            year: s.get(0..4)?.parse().ok()?,
            month: s.get(5..7)?.parse().ok()?,
            day: s.get(8..10)?.parse().ok()?,
        };
        d.is_valid().then_some(d)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// What a container may ask the firmware PD for: the fixed list of host
/// capabilities. Each is a group of host functions (see the runtime's host
/// API); a container can call a function only if its manifest declares the
/// capability and the PD holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Capability {
    /// Write lines to the PD's log (console).
    Log = 0,
    /// Report the container's result (pass/fail with a detail text).
    Report = 1,
    /// Read and write the scratch memory region the PD exposes for tests.
    Scratch = 2,
    /// Read PCI configuration space (the PD uses I/O ports 0xCF8/0xCFC).
    PciConfig = 3,
    /// Read the monotonic timer.
    Timer = 4,
    /// Read the real-time clock.
    Rtc = 5,
    /// Send bytes through the serial port in loopback mode.
    Serial = 6,
}

impl Capability {
    /// Every capability, in bit order.
    pub const ALL: [Capability; 7] = [
        Capability::Log,
        Capability::Report,
        Capability::Scratch,
        Capability::PciConfig,
        Capability::Timer,
        Capability::Rtc,
        Capability::Serial,
    ];

    /// The name used in manifests (TOML) and by `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Report => "report",
            Capability::Scratch => "scratch",
            Capability::PciConfig => "pci-config",
            Capability::Timer => "timer",
            Capability::Rtc => "rtc",
            Capability::Serial => "serial",
        }
    }

    /// The capability called `name` in manifests.
    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    /// What the capability allows, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::Log => "write lines to the firmware PD's log",
            Capability::Report => "report a pass/fail result with a detail text",
            Capability::Scratch => "read and write the scratch memory region",
            Capability::PciConfig => "read PCI configuration space",
            Capability::Timer => "read the monotonic timer",
            Capability::Rtc => "read the real-time clock",
            Capability::Serial => "send bytes through the serial port in loopback mode",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Capability`]s, one bit each. Encoded as its bits; decoding
/// refuses unknown bits, so a newer capability is never silently dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitySet(u32);

impl CapabilitySet {
    /// No capability.
    pub const EMPTY: CapabilitySet = CapabilitySet(0);
    const KNOWN: u32 = (1 << Capability::ALL.len()) - 1;

    /// Every capability in the fixed list.
    pub const fn all() -> CapabilitySet {
        CapabilitySet(Self::KNOWN)
    }
    /// The set with `c` added.
    pub const fn with(self, c: Capability) -> CapabilitySet {
        CapabilitySet(self.0 | 1 << c as u8)
    }
    /// Whether `c` is in the set.
    pub const fn contains(self, c: Capability) -> bool {
        self.0 & (1 << c as u8) != 0
    }
    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// The set from raw bits, or `None` if a bit names no capability.
    pub const fn from_bits(bits: u32) -> Option<CapabilitySet> {
        if bits & !Self::KNOWN != 0 {
            None
        } else {
            Some(CapabilitySet(bits))
        }
    }
    /// The capabilities in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
    /// The first capability in `self` that `other` lacks.
    pub fn first_missing_from(self, other: CapabilitySet) -> Option<Capability> {
        self.iter().find(|c| !other.contains(*c))
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        iter.into_iter()
            .fold(CapabilitySet::EMPTY, CapabilitySet::with)
    }
}

/// What the container may consume. The runtime enforces all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wasm fuel (roughly one unit per instruction).
    pub fuel: u64,
    /// Most linear-memory pages (64 KiB each) the module may have.
    pub memory_pages: u32,
    /// Wall-clock budget in milliseconds, checked between fuel slices and at
    /// every host call.
    pub wall_clock_ms: u32,
}

/// A byte range of the module that must not change without a new inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedRegion {
    /// Offset in the module, in bytes.
    pub offset: u32,
    /// Length in bytes (non-zero).
    pub len: u32,
    /// SHA-256 of those bytes.
    pub sha256: [u8; 32],
}

/// How bad the worst finding of a vulnerability inspection was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// Informational or low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The name used in manifests and policies.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
    /// The severity called `name`.
    pub fn from_name(name: &str) -> Option<Severity> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// What the inspection found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InspectionResult {
    /// No known vulnerability.
    Clean,
    /// `count` findings, the worst of them `worst`.
    Findings {
        /// Number of findings (non-zero).
        count: u16,
        /// The most severe finding.
        worst: Severity,
    },
}

/// The vulnerability-inspection record: who scanned the change-prohibited
/// regions, when, and what they found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    /// The scanner (tool or lab) that inspected the regions.
    pub scanner: String,
    /// The day of the inspection.
    pub date: Date,
    /// What it found.
    pub result: InspectionResult,
}

/// The signed description of a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Short name, `[a-z0-9._-]`, unique within a POST set.
    pub name: String,
    /// The container's version.
    pub version: Version,
    /// The platform it is built for; the PD refuses any other.
    pub platform: String,
    /// The exported function the PD calls (no parameters, no results).
    pub entry: String,
    /// Whether a failure of this container stops the boot.
    pub critical: bool,
    /// The host capabilities it needs.
    pub capabilities: CapabilitySet,
    /// Its resource limits.
    pub limits: Limits,
    /// Length of the module in bytes.
    pub module_len: u32,
    /// SHA-256 of the whole module: binds the module to the signature.
    pub module_sha256: [u8; 32],
    /// The change-prohibited regions of the module.
    pub regions: Vec<ProtectedRegion>,
    /// The vulnerability-inspection record of those regions, if any.
    pub inspection: Option<Inspection>,
}

/// Why a manifest could not be decoded. Each names the field at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManifestError {
    /// The bytes do not start with the manifest magic.
    BadMagic,
    /// The manifest version is not one this PD reads.
    UnsupportedVersion(u16),
    /// The postcard encoding is broken or truncated.
    Encoding,
    /// Bytes follow the manifest.
    TrailingBytes,
    /// The name is empty, too long, or has characters outside `[a-z0-9._-]`.
    BadName,
    /// The platform is empty, too long or not printable ASCII.
    BadPlatform,
    /// The entry point is empty, too long or not an identifier.
    BadEntry,
    /// A capability bit names no capability.
    UnknownCapability,
    /// A limit is zero, or the memory pages exceed Wasm's bound.
    BadLimits,
    /// More than [`MAX_REGIONS`] regions.
    TooManyRegions,
    /// Region `index` is empty or does not lie inside the module.
    BadRegion(u8),
    /// The scanner name is empty or too long, the date does not exist, or a
    /// finding count is zero.
    BadInspection,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::BadMagic => f.write_str("not a manifest (bad magic)"),
            ManifestError::UnsupportedVersion(v) => write!(f, "manifest format version {v} is not supported (this build reads {MANIFEST_VERSION})"),
            ManifestError::Encoding => f.write_str("manifest encoding is broken or truncated"),
            ManifestError::TrailingBytes => f.write_str("bytes follow the manifest"),
            ManifestError::BadName => write!(f, "name must be 1..={MAX_TEXT} bytes of [a-z0-9._-]"),
            ManifestError::BadPlatform => write!(f, "platform must be 1..={MAX_TEXT} bytes of printable ASCII"),
            ManifestError::BadEntry => write!(f, "entry point must be an identifier of 1..={MAX_TEXT} bytes"),
            ManifestError::UnknownCapability => f.write_str("a capability is not in the fixed list"),
            ManifestError::BadLimits => write!(f, "limits must be non-zero and memory pages at most {MAX_MEMORY_PAGES}"),
            ManifestError::TooManyRegions => write!(f, "more than {MAX_REGIONS} change-prohibited regions"),
            ManifestError::BadRegion(i) => write!(f, "change-prohibited region #{i} is empty or outside the module"),
            ManifestError::BadInspection => f.write_str("inspection record: scanner must be 1..=64 bytes, the date must exist, findings must be non-zero"),
        }
    }
}

fn text_ok(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.len() <= MAX_TEXT && s.bytes().all(allowed)
}

impl Manifest {
    /// Checks every field's bounds (what [`Manifest::decode`] guarantees).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !text_ok(
            &self.name,
            |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'),
        ) {
            return Err(ManifestError::BadName);
        }
        if !text_ok(&self.platform, |b| b.is_ascii_graphic()) {
            return Err(ManifestError::BadPlatform);
        }
        if !text_ok(&self.entry, |b| b.is_ascii_alphanumeric() || b == b'_')
            || self.entry.as_bytes()[0].is_ascii_digit()
        {
            return Err(ManifestError::BadEntry);
        }
        if CapabilitySet::from_bits(self.capabilities.bits()).is_none() {
            return Err(ManifestError::UnknownCapability);
        }
        let l = &self.limits;
        if l.fuel == 0
            || l.memory_pages == 0
            || l.memory_pages > MAX_MEMORY_PAGES
            || l.wall_clock_ms == 0
        {
            return Err(ManifestError::BadLimits);
        }
        if self.regions.len() > MAX_REGIONS {
            return Err(ManifestError::TooManyRegions);
        }
        for (i, r) in self.regions.iter().enumerate() {
            let end = r.offset.checked_add(r.len);
            if r.len == 0 || end.is_none_or(|e| e > self.module_len) {
                return Err(ManifestError::BadRegion(i as u8));
            }
        }
        if let Some(ins) = &self.inspection {
            let findings_ok = match ins.result {
                InspectionResult::Clean => true,
                InspectionResult::Findings { count, .. } => count > 0,
            };
            if !text_ok(&ins.scanner, |b| b.is_ascii_graphic() || b == b' ')
                || !ins.date.is_valid()
                || !findings_ok
            {
                return Err(ManifestError::BadInspection);
            }
        }
        Ok(())
    }

    /// The manifest's bytes: magic, version, postcard. Fails only if the
    /// manifest does not validate.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        let body = postcard::to_allocvec(self).map_err(|_| ManifestError::Encoding)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes and validates a manifest; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let (magic, rest) = bytes.split_at_checked(4).ok_or(ManifestError::BadMagic)?;
        if magic != MANIFEST_MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let (ver, body) = rest.split_at_checked(2).ok_or(ManifestError::Encoding)?;
        let ver = u16::from_le_bytes([ver[0], ver[1]]);
        if ver != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(ver));
        }
        let (m, tail): (Manifest, _) =
            postcard::take_from_bytes(body).map_err(|_| ManifestError::Encoding)?;
        if !tail.is_empty() {
            return Err(ManifestError::TrailingBytes);
        }
        m.validate()?;
        Ok(m)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample(module: &[u8]) -> Manifest {
        use sha2::Digest;
        Manifest {
            name: "memtest".into(),
            version: Version {
                major: 1,
                minor: 2,
                patch: 3,
            },
            platform: "qemu-q35".into(),
            entry: "run".into(),
            critical: true,
            capabilities: [Capability::Log, Capability::Report].into_iter().collect(),
            limits: Limits {
                fuel: 1_000_000,
                memory_pages: 2,
                wall_clock_ms: 1000,
            },
            module_len: module.len() as u32,
            module_sha256: sha2::Sha256::digest(module).into(),
            regions: alloc::vec![ProtectedRegion {
                offset: 0,
                len: module.len().min(8) as u32,
                sha256: sha2::Sha256::digest(&module[..module.len().min(8)]).into()
            }],
            inspection: Some(Inspection {
                scanner: "wasm-scan 1.0".into(),
                date: Date {
                    year: 2026,
                    month: 11,
                    day: 20,
                },
                result: InspectionResult::Clean,
            }),
        }
    }

    #[test]
    fn roundtrip() {
        let m = sample(b"\0asm\x01\0\0\0");
        let bytes = m.encode().unwrap();
        assert_eq!(&bytes[..4], b"BHFM");
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn rejects_bad_fields() {
        let good = sample(b"\0asm\x01\0\0\0");
        let check = |f: &dyn Fn(&mut Manifest), e: ManifestError| {
            let mut m = good.clone();
            f(&mut m);
            assert_eq!(m.validate(), Err(e));
        };
        check(&|m| m.name = "Mem Test".into(), ManifestError::BadName);
        check(&|m| m.name = "x".repeat(65), ManifestError::BadName);
        check(&|m| m.platform = String::new(), ManifestError::BadPlatform);
        check(&|m| m.entry = "9run".into(), ManifestError::BadEntry);
        check(&|m| m.limits.fuel = 0, ManifestError::BadLimits);
        check(&|m| m.limits.memory_pages = 65537, ManifestError::BadLimits);
        check(&|m| m.regions[0].offset = 4, ManifestError::BadRegion(0));
        check(&|m| m.regions[0].len = 0, ManifestError::BadRegion(0));
        check(
            &|m| m.regions[0].offset = u32::MAX,
            ManifestError::BadRegion(0),
        );
        check(
            &|m| m.inspection.as_mut().unwrap().date.day = 31,
            ManifestError::BadInspection,
        ); // 2026-11-31
    }

    #[test]
    fn decode_refuses_unknown_capability_bits_and_versions() {
        let m = sample(b"\0asm\x01\0\0\0");
        let mut bytes = m.encode().unwrap();
        bytes[4] = 2;
        assert_eq!(
            Manifest::decode(&bytes),
            Err(ManifestError::UnsupportedVersion(2))
        );
        let mut bad = m.clone();
        bad.capabilities = CapabilitySet(1 << 20);
        let mut raw = MANIFEST_MAGIC.to_vec();
        raw.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        raw.extend_from_slice(&postcard::to_allocvec(&bad).unwrap());
        assert_eq!(
            Manifest::decode(&raw),
            Err(ManifestError::UnknownCapability)
        );
        let mut trailing = m.encode().unwrap();
        trailing.push(0);
        assert_eq!(
            Manifest::decode(&trailing),
            Err(ManifestError::TrailingBytes)
        );
        // Every truncation is an error, never a panic.
        let full = m.encode().unwrap();
        for n in 0..full.len() {
            assert!(Manifest::decode(&full[..n]).is_err(), "prefix {n} decoded");
        }
    }

    #[test]
    fn dates_and_versions_parse() {
        assert_eq!(
            Date::parse("2024-02-29"),
            Some(Date {
                year: 2024,
                month: 2,
                day: 29
            })
        );
        assert_eq!(Date::parse("2023-02-29"), None);
        assert_eq!(Date::parse("2023-13-01"), None);
        assert_eq!(Version::parse("1.20.3").map(|v| v.minor), Some(20));
        assert_eq!(Version::parse("1.2"), None);
        assert_eq!(Version::parse("1.2.3.4"), None);
    }
}
