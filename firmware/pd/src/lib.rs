//! The hardware-free part of the firmware PD: turning the POST report into
//! the supervisor's summary, framing the full report in the shared report
//! region, and the TSC clock. Host-tested; the binary (`main.rs`) only wires
//! these to the kernel, the ports and the heap.
//!
//! Design rules: nothing here panics on any report; a report that does not
//! fit its region is replaced by an empty frame (length 0), never cut, so the
//! reader never decodes half a report.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use bulkhead_protocols::post::{self as wire, PostSummary, MAX_CONTAINERS, NAME_LEN};
use firmware_core::{Decision, Outcome, PostReport, Refusal};

/// `Failed` codes in the summary for outcomes the wire enum has no variant for.
pub mod failed_code {
    /// The container ran and reported failure.
    pub const REPORTED: u32 = 1;
    /// Verified but not loaded (bad imports, memory above limit, ...).
    pub const NOT_LOADED: u32 = 2;
    /// Returned without reporting a result.
    pub const NO_RESULT: u32 = 3;
    /// A critical container the policy names was not in the set.
    pub const MISSING: u32 = 4;
    /// Ran past its wall-clock budget.
    pub const WALL_CLOCK: u32 = 5;
}

fn refusal(r: &Refusal) -> wire::Refusal {
    match r {
        Refusal::BadSignature => wire::Refusal::BadSignature,
        Refusal::UntrustedKey => wire::Refusal::UntrustedKey,
        Refusal::WrongPlatform => wire::Refusal::WrongPlatform,
        Refusal::ModuleHashMismatch | Refusal::RegionAltered(_) => wire::Refusal::HashMismatch,
        _ => wire::Refusal::PolicyViolation,
    }
}

fn outcome(o: &Outcome) -> wire::Outcome {
    match o {
        Outcome::Passed { .. } => wire::Outcome::Passed,
        Outcome::Failed { .. } => wire::Outcome::Failed(failed_code::REPORTED),
        Outcome::Refused(r) => wire::Outcome::Refused(refusal(r)),
        Outcome::NotLoaded(_) => wire::Outcome::Failed(failed_code::NOT_LOADED),
        Outcome::Trapped(_) => wire::Outcome::Trapped,
        Outcome::OutOfFuel => wire::Outcome::OutOfFuel,
        Outcome::MemoryLimit => wire::Outcome::MemoryLimit,
        Outcome::WallClockExceeded => wire::Outcome::Failed(failed_code::WALL_CLOCK),
        Outcome::NoResult => wire::Outcome::Failed(failed_code::NO_RESULT),
        Outcome::Missing => wire::Outcome::Failed(failed_code::MISSING),
    }
}

/// The supervisor's summary of `report`: the first [`MAX_CONTAINERS`]
/// entries (names cut to [`NAME_LEN`] bytes), how many were left out, and
/// the decision.
pub fn summary(report: &PostReport) -> PostSummary {
    let mut entries = heapless::Vec::new();
    let mut omitted: u16 = 0;
    for e in &report.entries {
        let mut name = heapless::String::<NAME_LEN>::new();
        for c in e.name.chars() {
            if name.push(c).is_err() {
                break;
            }
        }
        let entry = wire::Entry {
            name,
            critical: e.critical,
            outcome: outcome(&e.outcome),
        };
        if entries.len() < MAX_CONTAINERS {
            let _ = entries.push(entry);
        } else {
            omitted = omitted.saturating_add(1);
        }
    }
    PostSummary {
        entries,
        omitted,
        decision: match report.decision {
            Decision::Boot => wire::Decision::StartGuest,
            Decision::Stop { .. } => wire::Decision::Halt,
        },
    }
}

/// Writes `encoded` (a [`PostReport::encode`]) into the report region as a
/// little-endian `u32` length and the bytes; returns whether it fit (if not,
/// the frame says length 0).
pub fn write_report_frame(region: &mut [u8], encoded: &[u8]) -> bool {
    if region.len() < 4 {
        return false;
    }
    let fits = encoded.len() <= region.len() - 4;
    let len = if fits { encoded.len() } else { 0 };
    region[..4].copy_from_slice(&(len as u32).to_le_bytes());
    if fits {
        region[4..4 + len].copy_from_slice(encoded);
    }
    fits
}

/// Reads the report frame back (what the supervisor does with the region).
pub fn read_report_frame(region: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(region.get(..4)?.try_into().ok()?) as usize;
    if len == 0 {
        return None;
    }
    region.get(4..4 + len)
}

/// A TSC-based monotonic clock at the rate the kernel calibrated at boot
/// (the `tsc_hz` call): the PIT stays the kernel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    start: u64,
    ticks_per_ms: u64,
}

impl TscClock {
    /// A clock starting at TSC value `start` for a TSC of `hz`. `None` if
    /// the rate is unusable (below 1 kHz: no tick per millisecond).
    pub fn from_hz(start: u64, hz: u64) -> Option<TscClock> {
        let ticks_per_ms = hz / 1000;
        (ticks_per_ms > 0).then_some(TscClock {
            start,
            ticks_per_ms,
        })
    }

    /// TSC ticks per millisecond.
    pub fn ticks_per_ms(&self) -> u64 {
        self.ticks_per_ms
    }

    /// Nanoseconds since `start` at TSC value `now` (0 before `start`).
    pub fn ns(&self, now: u64) -> u64 {
        let d = now.saturating_sub(self.start) as u128;
        u64::try_from(d * 1_000_000 / self.ticks_per_ms as u128).unwrap_or(u64::MAX)
    }

    /// Microseconds for a TSC interval.
    pub fn us(&self, ticks: u64) -> u64 {
        (ticks as u128 * 1000 / self.ticks_per_ms as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use firmware_core::{PostEntry, Version};

    fn entry(name: &str, critical: bool, outcome: Outcome) -> PostEntry {
        PostEntry {
            slot: 0,
            name: String::from(name),
            version: Some(Version {
                major: 1,
                minor: 0,
                patch: 0,
            }),
            critical,
            outcome,
            fuel_used: 0,
            elapsed_us: 0,
            wiped_bytes: 0,
        }
    }

    #[test]
    fn summary_maps_outcomes_and_decision() {
        let report = PostReport {
            platform: String::from("qemu-q35"),
            entries: vec![
                entry(
                    "memtest",
                    true,
                    Outcome::Refused(Refusal::ModuleHashMismatch),
                ),
                entry(
                    "timer-rtc",
                    false,
                    Outcome::Passed {
                        detail: String::from("ok"),
                    },
                ),
                entry("pci-inventory", true, Outcome::Missing),
            ],
            scratch_wiped_bytes: 4096,
            decision: Decision::Stop { slot: 0 },
        };
        let s = summary(&report);
        assert_eq!(s.decision, wire::Decision::Halt);
        assert_eq!(s.omitted, 0);
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.entries[0].name.as_str(), "memtest");
        assert!(s.entries[0].critical);
        assert_eq!(
            s.entries[0].outcome,
            wire::Outcome::Refused(wire::Refusal::HashMismatch)
        );
        assert_eq!(s.entries[1].outcome, wire::Outcome::Passed);
        assert_eq!(
            s.entries[2].outcome,
            wire::Outcome::Failed(failed_code::MISSING)
        );
        // It fits a protected call's registers.
        let mut words = [0u64; bulkhead_protocols::regs::MAX_WORDS];
        let n = bulkhead_protocols::regs::to_words(&s, &mut words).unwrap();
        let back: PostSummary = bulkhead_protocols::regs::from_words(&words[..n]).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn summary_cuts_long_names_and_counts_omitted() {
        let long = "a".repeat(64);
        let report = PostReport {
            platform: String::from("qemu-q35"),
            entries: (0..11)
                .map(|_| entry(&long, false, Outcome::OutOfFuel))
                .collect(),
            scratch_wiped_bytes: 0,
            decision: Decision::Boot,
        };
        let s = summary(&report);
        assert_eq!(s.entries.len(), MAX_CONTAINERS);
        assert_eq!(s.omitted, 3);
        assert_eq!(s.entries[0].name.len(), NAME_LEN);
        assert_eq!(s.decision, wire::Decision::StartGuest);
    }

    #[test]
    fn report_frame_round_trip_and_overflow() {
        let mut region = [0xaau8; 64];
        assert!(write_report_frame(&mut region, b"hello"));
        assert_eq!(read_report_frame(&region), Some(&b"hello"[..]));
        let big = [1u8; 61];
        assert!(!write_report_frame(&mut region, &big));
        assert_eq!(read_report_frame(&region), None);
        assert!(write_report_frame(&mut region, &big[..60]));
        assert_eq!(read_report_frame(&region).map(<[u8]>::len), Some(60));
        let mut tiny = [0u8; 3];
        assert!(!write_report_frame(&mut tiny, b""));
        assert_eq!(read_report_frame(&tiny), None);
    }

    #[test]
    fn tsc_clock() {
        // A 2 GHz TSC, as the kernel reports it.
        let c = TscClock::from_hz(1000, 2_000_000_000).unwrap();
        assert_eq!(c.ticks_per_ms(), 2_000_000);
        assert_eq!(c.ns(1000 + 2_000_000), 1_000_000);
        assert_eq!(c.ns(0), 0);
        assert_eq!(c.us(2_000), 1);
        // No rate, or less than one tick per millisecond: unusable.
        assert_eq!(TscClock::from_hz(0, 0), None);
        assert_eq!(TscClock::from_hz(0, 999), None);
        assert_eq!(
            TscClock::from_hz(0, 1000).map(|c| c.ticks_per_ms()),
            Some(1)
        );
    }
}
