//! The firmware PD's POST report summary: firmware → supervisor, once per
//! boot, after every container has run and been wiped.
//!
//! The full report (per-container logs) goes to the console; this summary is
//! what the supervisor needs to decide and record: what ran, what failed or
//! was refused and why, and whether the guest may boot.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::envelope::{Message, ProtocolId};

/// Most containers one summary describes.
pub const MAX_CONTAINERS: usize = 8;
/// Longest container name.
pub const NAME_LEN: usize = 24;

/// Why a container was refused before it ran.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusal {
    /// The signature does not verify.
    BadSignature,
    /// Signed by a key the board does not trust.
    UntrustedKey,
    /// Built for another platform.
    WrongPlatform,
    /// A manifest hash does not match the module.
    HashMismatch,
    /// The inspection record violates policy (e.g. a change-prohibited region).
    PolicyViolation,
}

/// How one container ended.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Ran and reported success.
    Passed,
    /// Ran and reported failure with its own code.
    Failed(u32),
    /// Not run: verification refused it.
    Refused(Refusal),
    /// Ran out of fuel.
    OutOfFuel,
    /// Grew memory past its limit.
    MemoryLimit,
    /// Trapped (including calls to an undeclared capability).
    Trapped,
}

/// One container's line in the summary.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// Container name from its manifest.
    pub name: String<NAME_LEN>,
    /// Whether a failure of this container stops the boot.
    pub critical: bool,
    /// How it ended.
    pub outcome: Outcome,
}

/// What the firmware PD decided.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Every critical container passed: the VMM was told to start the guest.
    StartGuest,
    /// A critical container failed or was refused: the boot stops.
    Halt,
}

/// The POST summary.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct PostSummary {
    /// One entry per container, in the order they ran (at most
    /// [`MAX_CONTAINERS`]; `omitted` counts the rest).
    pub entries: Vec<Entry, MAX_CONTAINERS>,
    /// Containers beyond [`MAX_CONTAINERS`], not listed.
    pub omitted: u16,
    /// The decision.
    pub decision: Decision,
}

impl Message for PostSummary {
    const PROTOCOL: ProtocolId = ProtocolId::PostSummary;
    const VERSION: u16 = 1;
    /// Header 4, entry count 1, 8 entries of (1 + 24 + 1 + 1 + 5) = 32,
    /// omitted 3, decision 1.
    const MAX_SIZE: usize = 265;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::check_bound;

    #[test]
    fn worst_case_fits_max_size() {
        let mut name = String::new();
        while name.push('n').is_ok() {}
        let mut entries = Vec::new();
        while entries
            .push(Entry {
                name: name.clone(),
                critical: true,
                outcome: Outcome::Failed(u32::MAX),
            })
            .is_ok()
        {}
        let worst = PostSummary {
            entries,
            omitted: u16::MAX,
            decision: Decision::Halt,
        };
        assert_eq!(check_bound(&worst), PostSummary::MAX_SIZE);
        let refused = Entry {
            name: String::new(),
            critical: false,
            outcome: Outcome::Refused(Refusal::PolicyViolation),
        };
        let mut small = Vec::new();
        small.push(refused).unwrap();
        check_bound(&PostSummary {
            entries: small,
            omitted: 0,
            decision: Decision::StartGuest,
        });
    }
}
