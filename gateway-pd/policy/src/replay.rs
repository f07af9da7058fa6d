//! Host replay of a candump log through a compiled policy: what
//! `bulkhead gateway replay` prints. Lines on a bus interface update the
//! vehicle state and are offered to every application (receive rules);
//! lines on an interface named like an application are that application's
//! send requests. All applications are installed and started first.

use std::collections::BTreeMap;
use std::fmt::Write;

use gateway_core::candump::parse_line;
use gateway_core::{AppEvent, AppEventKind, Engine, Policy, Reason};

/// A log line that is not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// What a replay found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Lines replayed.
    pub lines: usize,
    /// Per rule: (name, allowed, denied).
    pub rules: Vec<(String, u64, u64)>,
    /// Per application: frames denied by default (no rule).
    pub default_denied: Vec<(String, u64)>,
    /// Denials by reason (all applications).
    pub reasons: BTreeMap<String, u64>,
    /// Audit entries kept / suppressed.
    pub audit: (usize, u64),
    /// The oldest audit entries kept, in words (at most 10).
    pub audit_sample: Vec<String>,
}

fn reason_name(r: Reason) -> String {
    match r {
        Reason::SignalNotAllowed(_) => "SignalNotAllowed".into(),
        Reason::StateUnknown(_) => "StateUnknown".into(),
        Reason::GuardFailed(_) => "GuardFailed".into(),
        other => format!("{other:?}"),
    }
}

/// Replays `log` (candump -L text). `is_bus(iface)` says which interfaces
/// are buses; any other interface must be an application's name.
pub fn replay(
    policy: &Policy,
    log: &str,
    is_bus: impl Fn(&str) -> bool,
) -> Result<Report, ReplayError> {
    let mut e = Engine::new(policy.clone(), 0).map_err(|err| ReplayError {
        line: 0,
        message: format!("the policy does not load: {err:?}"),
    })?;
    let apps: BTreeMap<&str, u16> = policy
        .apps
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i as u16))
        .collect();
    for &a in apps.values() {
        let _ = e.on_event(AppEvent {
            app: a,
            kind: AppEventKind::Install,
        });
        let _ = e.on_event(AppEvent {
            app: a,
            kind: AppEventKind::Start,
        });
    }
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let mut lines = 0;
    for (n, text) in log.lines().enumerate() {
        if text.trim().is_empty() || text.trim_start().starts_with('#') {
            continue;
        }
        let l = parse_line(text).map_err(|err| ReplayError {
            line: n + 1,
            message: format!("not a candump -L line ({err:?}): `{text}`"),
        })?;
        lines += 1;
        if is_bus(l.iface) {
            e.observe(&l.frame, l.at_us);
            for &a in apps.values() {
                let d = e.check_receive(a, &l.frame, l.at_us);
                if !d.allowed() {
                    *reasons.entry(reason_name(d.reason)).or_default() += 1;
                }
            }
        } else {
            let Some(&a) = apps.get(l.iface) else {
                let names: Vec<&str> = apps.keys().copied().collect();
                return Err(ReplayError {
                    line: n + 1,
                    message: format!(
                        "interface `{}` is neither a bus nor an application (applications: {})",
                        l.iface,
                        names.join(", ")
                    ),
                });
            };
            let d = e.check_send(a, &l.frame, l.at_us);
            if !d.allowed() {
                *reasons.entry(reason_name(d.reason)).or_default() += 1;
            }
        }
    }
    Ok(Report {
        lines,
        rules: policy
            .rules
            .iter()
            .zip(e.stats())
            .map(|(r, s)| (r.name.clone(), s.allowed, s.denied))
            .collect(),
        default_denied: policy
            .apps
            .iter()
            .zip(e.default_denied())
            .map(|(a, d)| (a.name.clone(), *d))
            .collect(),
        reasons,
        audit: (e.audit().len(), e.audit().suppressed),
        audit_sample: e
            .audit()
            .entries()
            .take(10)
            .map(|a| {
                let app = policy
                    .apps
                    .get(usize::from(a.app))
                    .map(|x| x.name.as_str())
                    .unwrap_or("?");
                let rule = match (a.dir, a.rule) {
                    (gateway_core::Direction::L4, Some(r)) => policy
                        .l4
                        .get(usize::from(r))
                        .map(|x| format!("L4 rule `{}`", x.name)),
                    (_, Some(r)) => policy
                        .rules
                        .get(usize::from(r))
                        .map(|x| format!("rule `{}`", x.name)),
                    (_, None) => Some("default".into()),
                };
                let what = match a.reason {
                    Reason::SignalNotAllowed(s)
                    | Reason::StateUnknown(s)
                    | Reason::GuardFailed(s) => {
                        let sig = match a.reason {
                            Reason::SignalNotAllowed(_) => policy.signals.get(usize::from(s)),
                            _ => policy
                                .state
                                .get(usize::from(s))
                                .and_then(|st| policy.signals.get(usize::from(st.signal))),
                        };
                        format!(
                            "{} ({})",
                            reason_name(a.reason),
                            sig.map(|x| x.name.as_str()).unwrap_or("?")
                        )
                    }
                    r => reason_name(r),
                };
                format!(
                    "{}.{:06} {app} {:?} {:#X}: {what}, by {}",
                    a.at_us / 1_000_000,
                    a.at_us % 1_000_000,
                    a.dir,
                    a.id,
                    rule.unwrap_or_else(|| "?".into())
                )
            })
            .collect(),
    })
}

impl Report {
    /// The report as a table.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{} frames replayed", self.lines);
        let w = self
            .rules
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(o, "{:<w$}  {:>10}  {:>10}", "rule", "allowed", "denied");
        for (name, a, d) in &self.rules {
            let _ = writeln!(o, "{name:<w$}  {a:>10}  {d:>10}");
        }
        for (app, d) in &self.default_denied {
            let _ = writeln!(
                o,
                "{:<w$}  {:>10}  {d:>10}",
                format!("(default, {app})"),
                ""
            );
        }
        let _ = writeln!(o, "denials by reason:");
        for (r, n) in &self.reasons {
            let _ = writeln!(o, "  {r}: {n}");
        }
        let _ = writeln!(
            o,
            "audit log: {} entries kept, {} suppressed by its rate limit",
            self.audit.0, self.audit.1
        );
        for line in &self.audit_sample {
            let _ = writeln!(o, "  {line}");
        }
        o
    }
}
