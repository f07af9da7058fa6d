//! A compiled policy, told back in words. It reads the compiled form (not
//! the TOML), so what it says is what the PD will enforce.

use std::fmt::Write;

use gateway_core::policy::{Action, Allowed, Dir, IdMatch, L4Op, Policy, Proto, Signal};

fn physical(s: &Signal, raw: i128) -> String {
    let v = raw as f64 * s.factor + s.offset;
    let v = (v * 1e6).round() / 1e6;
    if s.unit.is_empty() {
        format!("{v}")
    } else {
        format!("{v} {}", s.unit)
    }
}

fn named(s: &Signal, raw: i128) -> String {
    match s.values.iter().find(|(v, _)| *v == raw) {
        Some((_, n)) => format!("{n} (raw {raw})"),
        None => format!("raw {raw}"),
    }
}

fn ids(m: &IdMatch) -> String {
    let fmt = if m.extended { "extended" } else { "standard" };
    if m.is_exact() {
        format!("id {:#X} ({fmt})", m.id)
    } else {
        let free = IdMatch::full_mask(m.extended) & !m.mask;
        format!(
            "ids {:#X}/{:#X} ({fmt}; {} ids)",
            m.id,
            m.mask,
            1u64 << free.count_ones()
        )
    }
}

fn rate(r: &gateway_core::policy::Rate) -> String {
    format!("{} frames/s, bursts of {}", r.per_second, r.burst)
}

/// The policy in words, one paragraph per application.
pub fn explain(p: &Policy) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Policy: {} application(s), {} CAN rule(s), {} L4 rule(s), {} tracked vehicle signal(s).",
        p.apps.len(),
        p.rules.len(),
        p.l4.len(),
        p.state.len()
    );
    let _ = writeln!(
        o,
        "Anything not allowed below is denied. Vehicle state older than {} ms counts as unknown, and a guard on unknown state fails. Denials are logged ({} entries kept, at most {} per application).",
        p.stale_after_us / 1000,
        p.audit_capacity,
        rate(&p.audit_rate)
    );
    for (ai, a) in p.apps.iter().enumerate() {
        let _ = writeln!(
            o,
            "\nApplication `{}` (sends at most {} in total):",
            a.name,
            rate(&a.budget)
        );
        let mut any = false;
        for (ri, r) in p
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| usize::from(r.app) == ai)
        {
            any = true;
            let verb = match (r.action, r.dir) {
                (Action::Allow, Dir::Send) => "may send",
                (Action::Allow, Dir::Receive) => "may receive",
                (Action::Deny, Dir::Send) => "may never send",
                (Action::Deny, Dir::Receive) => "never receives",
            };
            let _ = write!(o, "  - rule #{ri} `{}`: {verb} {}", r.name, ids(&r.ids));
            if r.remote {
                let _ = write!(o, ", remote frames included");
            }
            if r.min_len > 0 {
                let _ = write!(o, ", at least {} bytes long", r.min_len);
            }
            for c in &r.constraints {
                let Some(s) = p.signals.get(usize::from(c.signal)) else {
                    continue;
                };
                match &c.allowed {
                    Allowed::Range { lo, hi } => {
                        let _ = write!(
                            o,
                            ", with {} between {} and {} (raw {lo}..={hi})",
                            s.name,
                            physical(s, *lo),
                            physical(s, *hi)
                        );
                    }
                    Allowed::OneOf(v) => {
                        let vals: Vec<String> = v.iter().map(|x| named(s, *x)).collect();
                        let _ = write!(o, ", with {} one of {}", s.name, vals.join(", "));
                    }
                }
            }
            for g in &r.guards {
                let Some(st) = p.state.get(usize::from(g.slot)) else {
                    continue;
                };
                let Some(s) = p.signals.get(usize::from(st.signal)) else {
                    continue;
                };
                let (bmin, bmax) = s.layout.raw_bounds();
                let cond = if g.lo == g.hi && s.values.iter().any(|(v, _)| *v == g.lo) {
                    format!(
                        "{} {} {}",
                        s.name,
                        if g.negate { "!=" } else { "==" },
                        named(s, g.lo)
                    )
                } else if g.lo == g.hi {
                    format!(
                        "{} {} {}",
                        s.name,
                        if g.negate { "!=" } else { "==" },
                        physical(s, g.lo)
                    )
                } else if g.lo <= bmin {
                    format!("{} <= {}", s.name, physical(s, g.hi))
                } else if g.hi >= bmax {
                    format!("{} >= {}", s.name, physical(s, g.lo))
                } else {
                    format!(
                        "{} {}in {}..={}",
                        s.name,
                        if g.negate { "not " } else { "" },
                        physical(s, g.lo),
                        physical(s, g.hi)
                    )
                };
                let _ = write!(o, ", only while {cond}");
            }
            if let Some(rt) = &r.rate {
                let _ = write!(o, ", at most {}", rate(rt));
            }
            let _ = writeln!(o, ".");
        }
        for (li, l) in
            p.l4.iter()
                .enumerate()
                .filter(|(_, l)| usize::from(l.app) == ai)
        {
            any = true;
            let proto = match l.proto {
                Proto::Tcp => "TCP",
                Proto::Udp => "UDP",
            };
            let op = match l.op {
                L4Op::Listen => "may listen on",
                L4Op::Connect => "may connect to",
            };
            let ports = if l.lo == l.hi {
                format!("port {}", l.lo)
            } else {
                format!("ports {}-{}", l.lo, l.hi)
            };
            let _ = writeln!(
                o,
                "  - L4 rule #{li} `{}`: {op} {proto} {ports} while it runs.",
                l.name
            );
        }
        if !any {
            let _ = writeln!(o, "  - nothing: every frame and port is denied.");
        }
    }
    o
}
