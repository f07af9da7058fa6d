//! Scheduling decisions: fixed priorities (higher first), round robin among
//! equal priorities, and a CPU budget per period for every PD.
//!
//! The kernel tells the scheduler what happened (a PD became runnable or
//! blocked, time passed, a tick ended its slice) and asks whom to run. Time is
//! in microseconds from the kernel's calibrated clock. Budgets are periodic:
//! a PD that used its budget is not picked until the start of its next
//! period, when its budget is refilled (a simple deferrable server; seL4 MCS
//! uses sporadic refills, which also bound bursts across period edges).

use crate::plan::MAX_PDS;

/// Scheduling state of one PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Entry {
    priority: u8,
    budget: u64,
    period: u64,
    remaining: u64,
    next_refill: u64,
    runnable: bool,
    /// Lower = waited longer; used for round robin among equals.
    stamp: u64,
    /// Whose budget this PD runs on (a passive server on its caller's).
    donor: Option<u8>,
}

/// The scheduler for up to [`MAX_PDS`] PDs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    entries: [Entry; MAX_PDS],
    len: usize,
    clock: u64,
    current: Option<usize>,
    slice_over: bool,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// An empty scheduler.
    pub const fn new() -> Self {
        const E: Entry = Entry {
            priority: 0,
            budget: 0,
            period: 0,
            remaining: 0,
            next_refill: 0,
            runnable: false,
            stamp: 0,
            donor: None,
        };
        Self {
            entries: [E; MAX_PDS],
            len: 0,
            clock: 0,
            current: None,
            slice_over: false,
        }
    }

    /// Adds a PD (not yet runnable); returns its index, or `None` when full.
    pub fn add(&mut self, priority: u8, budget_us: u64, period_us: u64, now: u64) -> Option<usize> {
        if self.len == MAX_PDS {
            return None;
        }
        let i = self.len;
        self.entries[i] = Entry {
            priority,
            budget: budget_us,
            period: period_us.max(1),
            remaining: budget_us,
            next_refill: now.saturating_add(period_us.max(1)),
            runnable: false,
            stamp: i as u64,
            donor: None,
        };
        self.clock = self.clock.max(i as u64 + 1);
        self.len += 1;
        Some(i)
    }

    /// Marks PD `i` runnable or blocked.
    pub fn set_runnable(&mut self, i: usize, runnable: bool) {
        if let Some(e) = self.entries.get_mut(i) {
            if runnable && !e.runnable {
                // A PD that wakes joins the back of its priority's queue.
                self.clock += 1;
                e.stamp = self.clock;
            }
            e.runnable = runnable;
        }
    }

    /// Whether PD `i` is runnable.
    pub fn is_runnable(&self, i: usize) -> bool {
        self.entries.get(i).is_some_and(|e| e.runnable)
    }

    /// PD `i` runs on `donor`'s budget from now on (a passive PD serving a
    /// call runs on its caller's scheduling context, as in Microkit), or on
    /// its own again (`None`). Chains are followed, so a passive server
    /// calling another passive server charges the original caller.
    pub fn set_donor(&mut self, i: usize, donor: Option<usize>) {
        let len = self.len;
        if let Some(e) = self.entries.get_mut(i) {
            e.donor = donor.filter(|&d| d < len && d != i).map(|d| d as u8);
        }
    }

    /// The PD whose budget `i` spends (itself unless it runs on a donor's).
    pub fn budget_owner(&self, i: usize) -> usize {
        let mut cur = i;
        for _ in 0..MAX_PDS {
            match self.entries.get(cur).and_then(|e| e.donor) {
                Some(d) => cur = d as usize,
                None => break,
            }
        }
        cur
    }

    /// Charges `used_us` of CPU time to PD `i` (to its donor, if it runs on one).
    pub fn charge(&mut self, i: usize, used_us: u64) {
        let owner = self.budget_owner(i);
        if let Some(e) = self.entries.get_mut(owner) {
            e.remaining = e.remaining.saturating_sub(used_us);
        }
    }

    /// Refills budgets whose period has started by `now`.
    pub fn refill(&mut self, now: u64) {
        for e in &mut self.entries[..self.len] {
            if now >= e.next_refill {
                e.remaining = e.budget;
                // Skip periods that passed entirely (e.g. while blocked).
                let missed = (now - e.next_refill) / e.period;
                e.next_refill = e
                    .next_refill
                    .saturating_add((missed + 1).saturating_mul(e.period));
            }
        }
    }

    /// The timer tick ended the current PD's time slice: at the next pick,
    /// an equal-priority PD that waited goes first.
    pub fn end_slice(&mut self) {
        self.slice_over = true;
    }

    /// Remaining budget of PD `i` (µs).
    pub fn remaining(&self, i: usize) -> u64 {
        self.entries.get(i).map_or(0, |e| e.remaining)
    }

    /// Chooses whom to run and records it as current. The current PD keeps
    /// the CPU unless a higher priority is ready, or its slice ended and an
    /// equal priority waits, or it is blocked or out of budget.
    pub fn pick(&mut self) -> Option<usize> {
        let has_budget = |s: &Self, i: usize| s.entries[s.budget_owner(i)].remaining > 0;
        let eligible = |s: &Self, i: usize| s.entries[i].runnable && has_budget(s, i);
        let mut best: Option<usize> = None;
        for (i, e) in self.entries[..self.len].iter().enumerate() {
            if !eligible(self, i) {
                continue;
            }
            best = match best {
                None => Some(i),
                Some(b) => {
                    let be = &self.entries[b];
                    if e.priority > be.priority || (e.priority == be.priority && e.stamp < be.stamp)
                    {
                        Some(i)
                    } else {
                        Some(b)
                    }
                }
            };
        }
        let best = best?;
        if let Some(c) = self.current {
            let ce = self.entries[c];
            let c_ok = eligible(self, c);
            if c_ok && ce.priority == self.entries[best].priority && !self.slice_over {
                return Some(c);
            }
            if c != best && c_ok && self.slice_over && ce.priority == self.entries[best].priority {
                // Rotation: the preempted PD goes to the back of its queue.
                self.clock += 1;
                self.entries[c].stamp = self.clock;
            }
        }
        self.slice_over = false;
        if self.current != Some(best) {
            self.clock += 1;
            self.entries[best].stamp = self.clock;
        }
        self.current = Some(best);
        Some(best)
    }

    /// The earliest future refill time of a runnable PD that is out of
    /// budget (when the kernel must look again even if nothing else happens).
    pub fn next_refill_of_throttled(&self) -> Option<u64> {
        self.entries[..self.len]
            .iter()
            .filter(|e| e.runnable && e.remaining == 0)
            .map(|e| e.next_refill)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_priority_runs_and_preempts() {
        let mut s = Scheduler::new();
        let lo = s.add(10, 1000, 1000, 0).unwrap();
        let hi = s.add(20, 1000, 1000, 0).unwrap();
        s.set_runnable(lo, true);
        assert_eq!(s.pick(), Some(lo));
        s.set_runnable(hi, true);
        assert_eq!(s.pick(), Some(hi));
        s.set_runnable(hi, false);
        assert_eq!(s.pick(), Some(lo));
        s.set_runnable(lo, false);
        assert_eq!(s.pick(), None);
    }

    #[test]
    fn round_robin_among_equals_on_slice_end_only() {
        let mut s = Scheduler::new();
        let a = s.add(5, 1000, 1000, 0).unwrap();
        let b = s.add(5, 1000, 1000, 0).unwrap();
        let c = s.add(5, 1000, 1000, 0).unwrap();
        for i in [a, b, c] {
            s.set_runnable(i, true);
        }
        let first = s.pick().unwrap();
        assert_eq!(s.pick(), Some(first), "no rotation without a slice end");
        let mut seen = std::vec![first];
        for _ in 0..2 {
            s.end_slice();
            seen.push(s.pick().unwrap());
        }
        seen.sort();
        assert_eq!(
            seen,
            std::vec![a, b, c],
            "each equal-priority PD gets a turn"
        );
        s.end_slice();
        assert_eq!(s.pick(), Some(first), "and then the first again");
    }

    #[test]
    fn budget_limits_a_spinner_and_lets_lower_priority_run() {
        let mut s = Scheduler::new();
        let spinner = s.add(50, 2000, 10_000, 0).unwrap();
        let low = s.add(1, 10_000, 10_000, 0).unwrap();
        s.set_runnable(spinner, true);
        s.set_runnable(low, true);
        let mut spinner_time = 0;
        let mut low_time = 0;
        // Simulate 100 ms in 1 ms ticks.
        for now in 0..100u64 {
            s.refill(now * 1000);
            let who = s.pick().unwrap();
            s.charge(who, 1000);
            if who == spinner {
                spinner_time += 1000;
            } else {
                low_time += 1000;
            }
        }
        assert_eq!(spinner_time, 20_000, "2 ms of every 10 ms");
        assert_eq!(low_time, 80_000);
        assert_eq!(s.next_refill_of_throttled(), Some(100_000));
    }

    #[test]
    fn refill_skips_missed_periods() {
        let mut s = Scheduler::new();
        let a = s.add(1, 100, 1000, 0).unwrap();
        s.charge(a, 100);
        assert_eq!(s.remaining(a), 0);
        s.refill(999);
        assert_eq!(s.remaining(a), 0);
        s.refill(5500);
        assert_eq!(s.remaining(a), 100);
        s.charge(a, 100);
        s.refill(5999);
        assert_eq!(s.remaining(a), 0);
        s.refill(6000);
        assert_eq!(s.remaining(a), 100);
    }

    #[test]
    fn passive_server_runs_on_its_callers_budget() {
        let mut s = Scheduler::new();
        let caller = s.add(10, 2000, 10_000, 0).unwrap();
        let server = s.add(50, 10_000, 10_000, 0).unwrap();
        let other = s.add(1, 10_000, 10_000, 0).unwrap();
        s.set_runnable(other, true);
        s.set_runnable(server, true);
        s.set_donor(server, Some(caller));
        assert_eq!(s.budget_owner(server), caller);
        assert_eq!(s.pick(), Some(server));
        s.charge(server, 1500);
        assert_eq!(s.remaining(caller), 500, "charged to the caller");
        assert_eq!(s.remaining(server), 10_000);
        s.charge(server, 500);
        assert_eq!(
            s.pick(),
            Some(other),
            "the server stops when the caller's budget is gone"
        );
        s.set_donor(server, None);
        assert_eq!(s.pick(), Some(server), "on its own budget again");
        s.set_donor(server, Some(server));
        assert_eq!(s.budget_owner(server), server, "no self-donation");
        s.set_donor(server, Some(99));
        assert_eq!(s.budget_owner(server), server, "no out-of-range donor");
    }

    #[test]
    fn full_and_out_of_range() {
        let mut s = Scheduler::new();
        for _ in 0..MAX_PDS {
            assert!(s.add(1, 1, 1, 0).is_some());
        }
        assert_eq!(s.add(1, 1, 1, 0), None);
        s.set_runnable(99, true);
        s.charge(99, 1);
        assert!(!s.is_runnable(99));
    }
}
