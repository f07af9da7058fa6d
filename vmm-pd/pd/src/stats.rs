//! VM exits counted by reason, for the boot benchmark's "exits by reason"
//! figure and for reports when a guest misbehaves.

use bulkhead_abi::vcpu::ExitReason;

/// The reasons counted, in report order.
pub const KINDS: [&str; 13] = [
    "io",
    "npf",
    "cpuid",
    "rdmsr",
    "wrmsr",
    "hlt",
    "cr",
    "irq-window",
    "exception",
    "hypercall",
    "triple-fault",
    "entry-failure",
    "unknown",
];

/// Exit counts by reason.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ExitStats {
    counts: [u64; KINDS.len()],
}

fn index(r: &ExitReason) -> usize {
    match r {
        ExitReason::Io { .. } => 0,
        ExitReason::NestedPageFault { .. } => 1,
        ExitReason::Cpuid { .. } => 2,
        ExitReason::MsrRead { .. } => 3,
        ExitReason::MsrWrite { .. } => 4,
        ExitReason::Hlt => 5,
        ExitReason::CrAccess { .. } => 6,
        ExitReason::InterruptWindow => 7,
        ExitReason::Exception { .. } => 8,
        ExitReason::Hypercall { .. } => 9,
        ExitReason::TripleFault => 10,
        ExitReason::EntryFailure { .. } => 11,
        ExitReason::Unknown { .. } => 12,
    }
}

impl ExitStats {
    /// Counts one exit.
    pub fn count(&mut self, r: &ExitReason) {
        let i = index(r);
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    /// All exits.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The count of the reason named `kind` (one of [`KINDS`]).
    pub fn get(&self, kind: &str) -> Option<u64> {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map(|i| self.counts[i])
    }

    /// The non-zero counts, in report order.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        KINDS
            .iter()
            .zip(self.counts.iter())
            .filter(|(_, &c)| c != 0)
            .map(|(k, &c)| (*k, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_under_their_reason() {
        let mut s = ExitStats::default();
        s.count(&ExitReason::Hlt);
        s.count(&ExitReason::Cpuid {
            leaf: 1,
            subleaf: 0,
        });
        s.count(&ExitReason::Cpuid {
            leaf: 2,
            subleaf: 0,
        });
        assert_eq!(s.get("cpuid"), Some(2));
        assert_eq!(s.get("hlt"), Some(1));
        assert_eq!(s.get("io"), Some(0));
        assert_eq!(s.get("nonsense"), None);
        assert_eq!(s.total(), 3);
        let v: std::vec::Vec<_> = s.nonzero().collect();
        assert_eq!(v, [("cpuid", 2), ("hlt", 1)]);
    }
}
