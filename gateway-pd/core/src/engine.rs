//! The decision engine: applies a loaded [`Policy`] to frames, vehicle
//! state and application lifecycle events.
//!
//! Evaluation of a frame from (or for) application `a` in direction `d`:
//! 1. the application must exist and be running; on send it must also have
//!    budget left (charged for every attempt, so a babbling application
//!    spends only its own budget);
//! 2. error frames and malformed frames (DLC/length mismatch, id out of
//!    range) are denied;
//! 3. the candidate rules are those of `a` and `d` whose id/mask matches;
//!    if any is a deny rule, the frame is denied by it;
//! 4. otherwise the allow candidates are tried in file order: the first
//!    whose remote/length/signal/guard conditions hold and whose bucket has
//!    a token allows the frame; if none does, the frame is denied by the
//!    first candidate's failure; with no candidate, by the default.
//!
//! Candidates come from an index built at load: a sorted table of exact
//! `(app, direction, format, id)` keys, binary-searched, plus a short list
//! of masked rules per application and direction. [`Engine::decide_linear`]
//! is the same semantics as a plain scan of every rule; tests check the two
//! agree and the benchmark compares them.

use alloc::vec;
use alloc::vec::Vec;

use crate::audit::{AuditEntry, AuditLog};
use crate::bucket::Bucket;
use crate::frame::{Frame, FrameKind};
use crate::policy::{Action, Dir, L4Op, LoadError, Policy, Proto, Rule};

/// Allowed or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Drop it.
    Deny,
}

/// Where a decision was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Application to bus.
    Send,
    /// Bus to application.
    Receive,
    /// A TCP/UDP port request.
    L4,
}

/// Why a decision came out as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Every condition of the rule held.
    Allowed,
    /// No rule matched: default deny.
    NoRule,
    /// A deny rule matched.
    DenyRule,
    /// The application index is not in the policy.
    UnknownApp,
    /// The application is not running.
    AppNotRunning,
    /// The application's send budget is spent.
    AppBudget,
    /// DLC/length mismatch, length over 8 or id out of range.
    Malformed,
    /// An error frame; never forwarded.
    ErrorFrame,
    /// A remote frame where the rule allows data frames only.
    RemoteNotAllowed,
    /// The frame is shorter than the message or a constrained signal needs.
    TooShort,
    /// A constrained signal (index into the policy's signals) has a value
    /// the rule does not allow.
    SignalNotAllowed(u16),
    /// A guard's state variable has not been seen recently.
    StateUnknown(u16),
    /// A guard's state variable has a value the guard excludes.
    GuardFailed(u16),
    /// The rule's token bucket is empty.
    RateLimited,
}

/// A decision and the rule that made it (`None` for the default and for
/// checks made before any rule: unknown application, budget, malformed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// Index of the deciding rule (CAN rules or L4 rules, by direction).
    pub rule: Option<u16>,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    fn deny(rule: Option<u16>, reason: Reason) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            rule,
            reason,
        }
    }
    fn allow(rule: u16) -> Decision {
        Decision {
            verdict: Verdict::Allow,
            rule: Some(rule),
            reason: Reason::Allowed,
        }
    }
    /// True when allowed.
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// Lifecycle of a guest application, as the VMM/guest agent reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppState {
    /// Not installed (the initial state).
    Absent,
    /// Installed, not running.
    Installed,
    /// Running: its rules are in force and its ports open.
    Running,
}

/// What happened to an application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEventKind {
    /// Installed.
    Install,
    /// Started.
    Start,
    /// Stopped.
    Stop,
    /// Removed (implies stop).
    Remove,
}

/// An application lifecycle event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppEvent {
    /// Application index.
    pub app: u16,
    /// What happened.
    pub kind: AppEventKind,
}

/// Why an event was refused (the state is left unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventError {
    /// No such application.
    UnknownApp,
    /// The event makes no sense in the current state (e.g. start before install).
    BadTransition(AppState),
}

/// Counters for one rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Frames this rule allowed.
    pub allowed: u64,
    /// Frames denied with this rule as the deciding rule.
    pub denied: u64,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
}

/// The engine: a policy plus everything the per-frame path needs,
/// allocated once in [`Engine::new`].
#[derive(Clone, Debug)]
pub struct Engine {
    policy: Policy,
    /// Sorted `(key, span into exact_rules)`.
    exact: Vec<(u64, Span)>,
    exact_rules: Vec<u16>,
    /// Per `app * 2 + dir`: span into `masked_rules`.
    masked: Vec<Span>,
    masked_rules: Vec<u16>,
    /// Sorted `(frame key, span into observed_slots)`.
    observed: Vec<(u32, Span)>,
    observed_slots: Vec<u16>,
    sig_need: Vec<u8>,
    state: Vec<Option<(i128, u64)>>,
    buckets: Vec<Option<Bucket>>,
    budgets: Vec<Bucket>,
    audit_buckets: Vec<Bucket>,
    apps: Vec<AppState>,
    stats: Vec<RuleStats>,
    default_denied: Vec<u64>,
    audit: AuditLog,
}

fn dir_bit(d: Dir) -> u64 {
    match d {
        Dir::Send => 0,
        Dir::Receive => 1,
    }
}

fn exact_key(app: u16, dir: Dir, extended: bool, id: u32) -> u64 {
    (u64::from(app) << 32) | (dir_bit(dir) << 31) | (u64::from(extended) << 30) | u64::from(id)
}

fn frame_key(id: u32, extended: bool) -> u32 {
    id | (u32::from(extended) << 31)
}

fn find<K: Ord + Copy>(table: &[(K, Span)], key: K) -> Span {
    match table.binary_search_by(|e| e.0.cmp(&key)) {
        Ok(i) => table[i].1,
        Err(_) => Span { start: 0, len: 0 },
    }
}

fn slice(v: &[u16], s: Span) -> &[u16] {
    let start = s.start as usize;
    v.get(start..start + s.len as usize).unwrap_or(&[])
}

/// Groups `(key, value)` pairs (already sorted by key) into a span table.
fn group<K: Ord + Copy>(mut pairs: Vec<(K, u16)>) -> (Vec<(K, Span)>, Vec<u16>) {
    pairs.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut table: Vec<(K, Span)> = Vec::new();
    let mut items = Vec::with_capacity(pairs.len());
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        match table.last_mut() {
            Some((last, span)) if *last == k => span.len += 1,
            _ => table.push((
                k,
                Span {
                    start: i as u32,
                    len: 1,
                },
            )),
        }
        items.push(v);
    }
    (table, items)
}

impl Engine {
    /// Builds an engine for a policy (validated here) at time `now_us`.
    pub fn new(policy: Policy, now_us: u64) -> Result<Engine, LoadError> {
        policy.validate()?;
        let mut exact_pairs = Vec::new();
        let mut masked_lists: Vec<Vec<u16>> = vec![Vec::new(); policy.apps.len() * 2];
        for (i, r) in policy.rules.iter().enumerate() {
            if r.ids.is_exact() {
                exact_pairs.push((exact_key(r.app, r.dir, r.ids.extended, r.ids.id), i as u16));
            } else {
                masked_lists[usize::from(r.app) * 2 + dir_bit(r.dir) as usize].push(i as u16);
            }
        }
        let (exact, exact_rules) = group(exact_pairs);
        let mut masked = Vec::with_capacity(masked_lists.len());
        let mut masked_rules = Vec::new();
        for l in masked_lists {
            masked.push(Span {
                start: masked_rules.len() as u32,
                len: l.len() as u32,
            });
            masked_rules.extend_from_slice(&l);
        }
        let obs_pairs = policy
            .state
            .iter()
            .enumerate()
            .map(|(i, s)| (frame_key(s.id, s.extended), i as u16))
            .collect();
        let (observed, observed_slots) = group(obs_pairs);
        let sig_need = policy
            .signals
            .iter()
            .map(|s| s.layout.bytes_needed().unwrap_or(9))
            .collect();
        let buckets = policy
            .rules
            .iter()
            .map(|r| r.rate.map(|x| Bucket::new(x, now_us)))
            .collect();
        let budgets = policy
            .apps
            .iter()
            .map(|a| Bucket::new(a.budget, now_us))
            .collect();
        // One more audit bucket for denials not attributable to a known app.
        let audit_buckets = (0..=policy.apps.len())
            .map(|_| Bucket::new(policy.audit_rate, now_us))
            .collect();
        Ok(Engine {
            exact,
            exact_rules,
            masked,
            masked_rules,
            observed,
            observed_slots,
            sig_need,
            state: vec![None; policy.state.len()],
            buckets,
            budgets,
            audit_buckets,
            apps: vec![AppState::Absent; policy.apps.len()],
            stats: vec![RuleStats::default(); policy.rules.len()],
            default_denied: vec![0; policy.apps.len()],
            audit: AuditLog::new(policy.audit_capacity as usize),
            policy,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Hands the audit entries to `f`, oldest first, and empties the log.
    pub fn drain_audit<F: FnMut(&AuditEntry)>(&mut self, f: F) {
        self.audit.drain(f);
    }

    /// Per-rule counters, indexed like the policy's rules.
    pub fn stats(&self) -> &[RuleStats] {
        &self.stats
    }

    /// Frames denied by default (no rule), per application.
    pub fn default_denied(&self) -> &[u64] {
        &self.default_denied
    }

    /// An application's lifecycle state.
    pub fn app_state(&self, app: u16) -> Option<AppState> {
        self.apps.get(usize::from(app)).copied()
    }

    /// Applies a lifecycle event. On success returns the new state; the L4
    /// rules of a running application are open ([`Engine::open_l4`]), all
    /// others closed.
    pub fn on_event(&mut self, ev: AppEvent) -> Result<AppState, EventError> {
        let st = self
            .apps
            .get_mut(usize::from(ev.app))
            .ok_or(EventError::UnknownApp)?;
        let next = match (ev.kind, *st) {
            (AppEventKind::Install, AppState::Absent) => AppState::Installed,
            (AppEventKind::Start, AppState::Installed) => AppState::Running,
            (AppEventKind::Stop, AppState::Running) => AppState::Installed,
            (AppEventKind::Remove, AppState::Installed | AppState::Running) => AppState::Absent,
            (_, s) => return Err(EventError::BadTransition(s)),
        };
        *st = next;
        Ok(next)
    }

    /// The L4 rules currently open (those of running applications), with
    /// their indices: what the PD programs into its network stack after
    /// each event.
    pub fn open_l4(&self) -> impl Iterator<Item = (u16, &crate::policy::L4Rule)> + '_ {
        self.policy
            .l4
            .iter()
            .enumerate()
            .filter(|(_, r)| self.apps.get(usize::from(r.app)) == Some(&AppState::Running))
            .map(|(i, r)| (i as u16, r))
    }

    /// May `app` listen on / connect to `port`?
    pub fn check_l4(
        &mut self,
        app: u16,
        proto: Proto,
        op: L4Op,
        port: u16,
        now_us: u64,
    ) -> Decision {
        let d = match self.apps.get(usize::from(app)) {
            None => Decision::deny(None, Reason::UnknownApp),
            Some(AppState::Running) => self
                .policy
                .l4
                .iter()
                .position(|r| {
                    r.app == app && r.proto == proto && r.op == op && r.lo <= port && port <= r.hi
                })
                .map(|i| Decision::allow(i as u16))
                .unwrap_or(Decision::deny(None, Reason::NoRule)),
            Some(_) => Decision::deny(None, Reason::AppNotRunning),
        };
        if !d.allowed() {
            self.record(app, Direction::L4, u32::from(port), d, now_us);
        }
        d
    }

    /// Updates vehicle state from a frame seen on the bus.
    pub fn observe(&mut self, frame: &Frame, now_us: u64) {
        if frame.kind != FrameKind::Data || !frame.well_formed() {
            return;
        }
        let span = find(&self.observed, frame_key(frame.id, frame.extended));
        for &slot in slice(&self.observed_slots, span) {
            let Some(st) = self.policy.state.get(usize::from(slot)) else {
                continue;
            };
            let sig = st.signal;
            if self.presence(sig, frame) == Presence::Present {
                if let (Some(s), Some(v)) = (
                    self.policy.signals.get(usize::from(sig)),
                    self.state.get_mut(usize::from(slot)),
                ) {
                    *v = Some((s.layout.decode(&frame.data), now_us));
                }
            }
        }
    }

    /// The last value of a state variable, if seen and not stale.
    pub fn state_value(&self, slot: u16, now_us: u64) -> Option<i128> {
        match self.state.get(usize::from(slot)).copied().flatten() {
            Some((v, at)) if now_us.saturating_sub(at) <= self.policy.stale_after_us => Some(v),
            _ => None,
        }
    }

    /// Decides a frame an application wants to send.
    pub fn check_send(&mut self, app: u16, frame: &Frame, now_us: u64) -> Decision {
        self.check(app, Dir::Send, frame, now_us, false)
    }

    /// Decides whether a bus frame may be delivered to an application.
    pub fn check_receive(&mut self, app: u16, frame: &Frame, now_us: u64) -> Decision {
        self.check(app, Dir::Receive, frame, now_us, false)
    }

    /// [`Engine::check_send`] with a plain scan of every rule instead of the
    /// index: the reference the index is tested and benchmarked against.
    pub fn decide_linear(&mut self, app: u16, dir: Dir, frame: &Frame, now_us: u64) -> Decision {
        self.check(app, dir, frame, now_us, true)
    }

    fn check(&mut self, app: u16, dir: Dir, frame: &Frame, now_us: u64, linear: bool) -> Decision {
        let d = self.pre_check(app, dir, frame, now_us).unwrap_or_else(|| {
            if linear {
                self.decide_scan(app, dir, frame, now_us)
            } else {
                self.decide_indexed(app, dir, frame, now_us)
            }
        });
        match (d.rule, d.verdict) {
            (Some(r), Verdict::Allow) => {
                if let Some(s) = self.stats.get_mut(usize::from(r)) {
                    s.allowed += 1;
                }
            }
            (Some(r), Verdict::Deny) => {
                if let Some(s) = self.stats.get_mut(usize::from(r)) {
                    s.denied += 1;
                }
            }
            (None, _) => {
                if d.reason == Reason::NoRule {
                    if let Some(c) = self.default_denied.get_mut(usize::from(app)) {
                        *c += 1;
                    }
                }
            }
        }
        if !d.allowed() {
            let direction = match dir {
                Dir::Send => Direction::Send,
                Dir::Receive => Direction::Receive,
            };
            self.record(app, direction, frame.id, d, now_us);
        }
        d
    }

    fn pre_check(&mut self, app: u16, dir: Dir, frame: &Frame, now_us: u64) -> Option<Decision> {
        match self.apps.get(usize::from(app)) {
            None => return Some(Decision::deny(None, Reason::UnknownApp)),
            Some(AppState::Running) => {}
            Some(_) => return Some(Decision::deny(None, Reason::AppNotRunning)),
        }
        if dir == Dir::Send {
            let b = self.budgets.get_mut(usize::from(app))?;
            if !b.take(now_us) {
                return Some(Decision::deny(None, Reason::AppBudget));
            }
        }
        if frame.kind == FrameKind::Error {
            return Some(Decision::deny(None, Reason::ErrorFrame));
        }
        if !frame.well_formed() {
            return Some(Decision::deny(None, Reason::Malformed));
        }
        None
    }

    fn record(&mut self, app: u16, dir: Direction, id: u32, d: Decision, now_us: u64) {
        let idx = usize::from(app).min(self.audit_buckets.len().saturating_sub(1));
        let ok = self
            .audit_buckets
            .get_mut(idx)
            .map(|b| b.take(now_us))
            .unwrap_or(false);
        if ok {
            self.audit.push(AuditEntry {
                at_us: now_us,
                app,
                dir,
                id,
                rule: d.rule,
                reason: d.reason,
            });
        } else {
            self.audit.suppressed += 1;
        }
    }

    fn decide_indexed(&mut self, app: u16, dir: Dir, frame: &Frame, now_us: u64) -> Decision {
        let span = find(&self.exact, exact_key(app, dir, frame.extended, frame.id));
        let m = self
            .masked
            .get(usize::from(app) * 2 + dir_bit(dir) as usize)
            .copied();
        let m = m.unwrap_or(Span { start: 0, len: 0 });
        // Both lists are in ascending rule order; merge them so candidates
        // are tried in file order, exactly as the linear scan does.
        let (e, ms) = (slice(&self.exact_rules, span), slice(&self.masked_rules, m));
        // Moving the buckets out (no allocation) lets the candidate lists
        // stay borrowed from `self` while buckets are charged.
        let mut buckets = core::mem::take(&mut self.buckets);
        let d = self.decide_over(&mut buckets, frame, now_us, Merge { a: e, b: ms }, app, dir);
        self.buckets = buckets;
        d
    }

    fn decide_scan(&mut self, app: u16, dir: Dir, frame: &Frame, now_us: u64) -> Decision {
        let n = self.policy.rules.len() as u16;
        let mut buckets = core::mem::take(&mut self.buckets);
        let d = self.decide_over(&mut buckets, frame, now_us, 0..n, app, dir);
        self.buckets = buckets;
        d
    }

    fn decide_over<I: Iterator<Item = u16> + Clone>(
        &self,
        buckets: &mut [Option<Bucket>],
        frame: &Frame,
        now_us: u64,
        candidates: I,
        app: u16,
        dir: Dir,
    ) -> Decision {
        let matching =
            |r: &Rule| r.app == app && r.dir == dir && r.ids.matches(frame.id, frame.extended);
        for i in candidates.clone() {
            if let Some(r) = self.policy.rules.get(usize::from(i)) {
                if r.action == Action::Deny && matching(r) {
                    return Decision::deny(Some(i), Reason::DenyRule);
                }
            }
        }
        let mut first_failure: Option<Decision> = None;
        for i in candidates {
            let Some(r) = self.policy.rules.get(usize::from(i)) else {
                continue;
            };
            if r.action != Action::Allow || !matching(r) {
                continue;
            }
            let outcome = match self.conditions(r, frame, now_us) {
                Ok(()) => match buckets.get_mut(usize::from(i)) {
                    Some(Some(b)) => {
                        if b.take(now_us) {
                            Ok(())
                        } else {
                            Err(Reason::RateLimited)
                        }
                    }
                    _ => Ok(()),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => return Decision::allow(i),
                Err(reason) => {
                    if first_failure.is_none() {
                        first_failure = Some(Decision::deny(Some(i), reason));
                    }
                }
            }
        }
        first_failure.unwrap_or(Decision::deny(None, Reason::NoRule))
    }

    fn conditions(&self, r: &Rule, frame: &Frame, now_us: u64) -> Result<(), Reason> {
        if frame.kind == FrameKind::Remote {
            // No payload: signal conditions cannot apply; guards still do.
            if !r.remote {
                return Err(Reason::RemoteNotAllowed);
            }
        } else {
            if frame.len < r.min_len {
                return Err(Reason::TooShort);
            }
            for c in &r.constraints {
                match self.presence(c.signal, frame) {
                    Presence::Present => {}
                    // A multiplexed signal not in this frame constrains nothing.
                    Presence::OtherMux => continue,
                    // A constrained signal cut off by a short frame fails closed.
                    Presence::TooShort => return Err(Reason::TooShort),
                }
                let Some(s) = self.policy.signals.get(usize::from(c.signal)) else {
                    return Err(Reason::SignalNotAllowed(c.signal));
                };
                if !c.allowed.admits(s.layout.decode(&frame.data)) {
                    return Err(Reason::SignalNotAllowed(c.signal));
                }
            }
        }
        for g in &r.guards {
            match self.state_value(g.slot, now_us) {
                None => return Err(Reason::StateUnknown(g.slot)),
                Some(v) if !g.holds(v) => return Err(Reason::GuardFailed(g.slot)),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Whether signal `sig` is in the frame: every multiplexor above it
    /// has the right value, and the frame is long enough for it and its
    /// multiplexors. Multiplexors have lower indices (checked at load), so
    /// the walk terminates.
    fn presence(&self, sig: u16, frame: &Frame) -> Presence {
        let mut cur = sig;
        loop {
            let (Some(s), Some(&need)) = (
                self.policy.signals.get(usize::from(cur)),
                self.sig_need.get(usize::from(cur)),
            ) else {
                return Presence::TooShort;
            };
            if need > frame.len {
                return Presence::TooShort;
            }
            let Some(m) = s.mux else {
                return Presence::Present;
            };
            if usize::from(m.switch) >= usize::from(cur) {
                return Presence::TooShort;
            }
            let Some(sw) = self.policy.signals.get(usize::from(m.switch)) else {
                return Presence::TooShort;
            };
            let sw_need = self
                .sig_need
                .get(usize::from(m.switch))
                .copied()
                .unwrap_or(9);
            if sw_need > frame.len {
                return Presence::TooShort;
            }
            if sw.layout.decode(&frame.data) != i128::from(m.value) {
                return Presence::OtherMux;
            }
            cur = m.switch;
        }
    }
}

/// Whether a signal is in a frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Present,
    /// The frame carries another multiplexed group: the signal is not there.
    OtherMux,
    /// The frame is too short to carry the signal (or its multiplexor).
    TooShort,
}

/// Merges two ascending lists of rule indices.
#[derive(Clone)]
struct Merge<'a> {
    a: &'a [u16],
    b: &'a [u16],
}

impl Iterator for Merge<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        match (self.a.first(), self.b.first()) {
            (Some(&x), Some(&y)) if x <= y => {
                self.a = &self.a[1..];
                Some(x)
            }
            (_, Some(&y)) => {
                self.b = &self.b[1..];
                Some(y)
            }
            (Some(&x), None) => {
                self.a = &self.a[1..];
                Some(x)
            }
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests;

impl Engine {
    /// Decides a frame from `app` and hands it to `tx` only when allowed:
    /// the one path by which the PD puts an application's frame on a bus.
    pub fn forward_send<T: FnMut(&Frame)>(
        &mut self,
        app: u16,
        frame: &Frame,
        now_us: u64,
        mut tx: T,
    ) -> Decision {
        let d = self.check_send(app, frame, now_us);
        if d.allowed() {
            tx(frame);
        }
        d
    }
}
