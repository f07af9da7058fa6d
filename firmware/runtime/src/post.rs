//! The POST phase driver: verify every container of the set, run the
//! verified ones in order, wipe each one's memory, wipe the scratch region,
//! and build the report with the boot decision.
//!
//! Design rules: one entry per slot whatever happens to it; a refused
//! container's name and version come from its (untrusted) manifest when it
//! parses, for the report only. A refused container counts as critical if
//! the policy names it or it claims to be, or if the policy says every
//! refusal stops the boot; a critical container named by the policy but
//! absent from the set is reported as missing (so deleting a container
//! cannot skip its check).

use alloc::string::String;
use alloc::vec::Vec;

use firmware_core::report::decide;
use firmware_core::{Container, Outcome, Policy, PostEntry, PostReport};

use crate::{Loaded, Platform};

/// Runs the POST phase over `containers` (file bytes, in run order) and
/// returns the report and the platform.
pub fn run_post<P: Platform + 'static>(
    policy: &Policy,
    containers: &[&[u8]],
    mut platform: P,
) -> (PostReport, P) {
    let engine = crate::engine();
    let mut entries = Vec::with_capacity(containers.len());
    let mut ran = Vec::new();
    for (slot, bytes) in containers.iter().enumerate() {
        let slot = slot as u16;
        let verified = match firmware_core::verify(bytes, policy) {
            Ok(v) => v,
            Err(refusal) => {
                let claimed = Container::parse(bytes).ok().map(|c| c.manifest);
                let name = claimed.as_ref().map(|m| m.name.clone()).unwrap_or_default();
                let critical = policy.stop_on_refusal
                    || claimed.as_ref().is_some_and(|m| m.critical)
                    || policy.critical.contains(&name);
                entries.push(PostEntry {
                    slot,
                    version: claimed.map(|m| m.version),
                    name,
                    critical,
                    outcome: Outcome::Refused(refusal),
                    fuel_used: 0,
                    elapsed_us: 0,
                    wiped_bytes: 0,
                });
                continue;
            }
        };
        let m = verified.manifest();
        let mut entry = PostEntry {
            slot,
            name: m.name.clone(),
            version: Some(m.version),
            critical: verified.critical(),
            outcome: Outcome::NoResult,
            fuel_used: 0,
            elapsed_us: 0,
            wiped_bytes: 0,
        };
        ran.push(m.name.clone());
        platform = match Loaded::load(&engine, &verified, platform) {
            Err((failure, p)) => {
                entry.outcome = Outcome::NotLoaded(failure);
                p
            }
            Ok(mut loaded) => {
                let rec = loaded.run(&m.limits);
                entry.outcome = rec.outcome;
                entry.fuel_used = rec.fuel_used;
                entry.elapsed_us = rec.elapsed_ns / 1000;
                match loaded.wipe() {
                    Some(n) => entry.wiped_bytes = n,
                    // Memory that does not read back as zeros: not a pass.
                    None => entry.outcome = Outcome::Trapped(firmware_core::TrapKind::Other),
                }
                loaded.release()
            }
        };
        entries.push(entry);
    }
    let next_slot = entries.len() as u16;
    for (i, name) in policy
        .critical
        .iter()
        .filter(|n| !ran.contains(n))
        .enumerate()
    {
        if entries.iter().any(|e| e.name == *name) {
            continue; // present but refused: already reported.
        }
        entries.push(PostEntry {
            slot: next_slot + i as u16,
            name: String::from(name.as_str()),
            version: None,
            critical: true,
            outcome: Outcome::Missing,
            fuel_used: 0,
            elapsed_us: 0,
            wiped_bytes: 0,
        });
    }
    let scratch = platform.scratch();
    scratch.fill(0);
    let scratch_wiped_bytes = if scratch.iter().all(|b| *b == 0) {
        scratch.len() as u64
    } else {
        0
    };
    let decision = decide(&entries);
    (
        PostReport {
            platform: policy.platform.clone(),
            entries,
            scratch_wiped_bytes,
            decision,
        },
        platform,
    )
}
