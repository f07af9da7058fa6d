//! The audit log of denials: bounded and rate-limited.
//!
//! Memory is fixed when the engine is built (a ring of `capacity` entries);
//! when full, the oldest entry is overwritten and counted. Each application
//! (and the bus, for receive-side denials not tied to one) has its own
//! token bucket for audit entries, so a flood from one application is
//! counted as suppressed instead of pushing every other application's
//! entries out of the ring.

use alloc::vec::Vec;

use crate::engine::{Direction, Reason};

/// One recorded denial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When (engine clock, microseconds).
    pub at_us: u64,
    /// Application index.
    pub app: u16,
    /// Send, receive, or L4.
    pub dir: Direction,
    /// CAN id (or port, for L4).
    pub id: u32,
    /// Rule that decided, if any.
    pub rule: Option<u16>,
    /// Why it was denied.
    pub reason: Reason,
}

/// The ring.
#[derive(Clone, Debug)]
pub struct AuditLog {
    ring: Vec<AuditEntry>,
    capacity: usize,
    next: usize,
    /// Entries overwritten because the ring was full.
    pub overwritten: u64,
    /// Denials not recorded because their application's audit budget was spent.
    pub suppressed: u64,
}

impl AuditLog {
    /// An empty log holding at most `capacity` entries (allocated now).
    pub fn new(capacity: usize) -> AuditLog {
        AuditLog {
            ring: Vec::with_capacity(capacity),
            capacity,
            next: 0,
            overwritten: 0,
            suppressed: 0,
        }
    }

    /// Records an entry (the caller has checked the rate limit).
    pub fn push(&mut self, e: AuditEntry) {
        if self.capacity == 0 {
            self.overwritten += 1;
        } else if self.ring.len() < self.capacity {
            // Within the capacity reserved in `new`: no reallocation.
            self.ring.push(e);
        } else {
            self.ring[self.next] = e;
            self.next = (self.next + 1) % self.capacity;
            self.overwritten += 1;
        }
    }

    /// Entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &AuditEntry> {
        let (a, b) = self.ring.split_at(self.next.min(self.ring.len()));
        b.iter().chain(a.iter())
    }

    /// Hands every entry, oldest first, to `f` and empties the ring (the
    /// counters stay): how the PD forwards denials to the supervisor.
    /// Allocates nothing.
    pub fn drain<F: FnMut(&AuditEntry)>(&mut self, mut f: F) {
        for e in self.entries() {
            f(e);
        }
        // Vec::clear keeps the capacity reserved in `new`.
        self.ring.clear();
        self.next = 0;
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32) -> AuditEntry {
        AuditEntry {
            at_us: 0,
            app: 0,
            dir: Direction::Send,
            id,
            rule: None,
            reason: Reason::NoRule,
        }
    }

    #[test]
    fn ring_keeps_newest_and_drains_in_order() {
        let mut a = AuditLog::new(3);
        for id in 0..5 {
            a.push(entry(id));
        }
        let ids: Vec<u32> = a.entries().map(|e| e.id).collect();
        assert_eq!(ids, vec![2, 3, 4]);
        assert_eq!(a.overwritten, 2);
        let mut got = Vec::new();
        a.drain(|e| got.push(e.id));
        assert_eq!(got, vec![2, 3, 4]);
        assert!(a.is_empty());
        a.push(entry(9));
        assert_eq!(a.entries().map(|e| e.id).collect::<Vec<_>>(), vec![9]);
        let mut z = AuditLog::new(0);
        z.push(entry(1));
        assert_eq!((z.len(), z.overwritten), (0, 1));
    }
}
