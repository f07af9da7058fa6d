//! Policy files: TOML parsed with spans, validated against DBC databases,
//! compiled to a [`gateway_core::Policy`].
//!
//! Every finding is a [`Diag`] located at the TOML value it is about.
//! Compilation goes on after an error where it can, so one run reports
//! every problem, not just the first.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use gateway_core::policy::{
    Action, Allowed, App, Constraint, Dir, Guard, IdMatch, L4Op, L4Rule, Policy, Proto, Rate, Rule,
    Signal, StateSlot,
};
use gateway_core::signal::MuxCond;
use serde::Deserialize;
use toml::Spanned;

use crate::dbc::{Database, DbcMessage, DbcSignal};
use crate::diag::{suggest, Diag, Severity, Source};

/// Budget of an application that does not declare one (frames/s, burst).
pub const DEFAULT_BUDGET: Rate = Rate {
    per_second: 500,
    burst: 50,
};
/// Default audit rate per application.
pub const DEFAULT_AUDIT_RATE: Rate = Rate {
    per_second: 20,
    burst: 20,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    gateway: Option<GatewayDef>,
    #[serde(default)]
    app: Vec<Spanned<AppDef>>,
    #[serde(default)]
    can: Vec<Spanned<CanDef>>,
    #[serde(default)]
    l4: Vec<Spanned<L4Def>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayDef {
    stale_after_ms: Option<Spanned<u64>>,
    audit_capacity: Option<Spanned<u32>>,
    audit_rate: Option<Spanned<RateDef>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RateDef {
    per_second: u32,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppDef {
    name: Spanned<String>,
    budget: Option<Spanned<RateDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanDef {
    name: Spanned<String>,
    app: Spanned<String>,
    dir: Spanned<String>,
    message: Option<Spanned<String>>,
    id: Option<Spanned<i64>>,
    mask: Option<Spanned<i64>>,
    extended: Option<Spanned<bool>>,
    action: Option<Spanned<String>>,
    remote: Option<bool>,
    rate: Option<Spanned<RateDef>>,
    #[serde(default)]
    signals: BTreeMap<String, Spanned<SigSpec>>,
    #[serde(default)]
    when: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SigSpec {
    Name(String),
    Names(Vec<String>),
    Number(f64),
    Range(RangeDef),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeDef {
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct L4Def {
    name: Spanned<String>,
    app: Spanned<String>,
    proto: Spanned<String>,
    op: Spanned<String>,
    ports: Spanned<PortsDef>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortsDef {
    One(i64),
    Range(String),
}

/// A successful compilation: the policy and any warnings.
#[derive(Debug)]
pub struct Compiled {
    /// The compiled policy.
    pub policy: Policy,
    /// Warnings (nothing that stops the policy from loading).
    pub warnings: Vec<Diag>,
    /// Line of each CAN rule in the policy file (for reports).
    pub rule_lines: Vec<usize>,
}

/// Comparison in a guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn flipped(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            o => o,
        }
    }
}

struct Ctx<'a> {
    src: Source<'a>,
    db: &'a Database,
    diags: Vec<Diag>,
    signals: Vec<Signal>,
    sig_index: HashMap<(usize, String), u16>,
    state: Vec<StateSlot>,
    slot_index: HashMap<u16, u16>,
}

impl Ctx<'_> {
    fn err(&mut self, at: usize, message: String, help: Option<String>) {
        let d = self.src.diag(Severity::Error, at, message, help);
        self.diags.push(d);
    }
    fn warn(&mut self, at: usize, message: String, help: Option<String>) {
        let d = self.src.diag(Severity::Warning, at, message, help);
        self.diags.push(d);
    }

    fn msg_index(&self, m: &DbcMessage) -> usize {
        self.db
            .messages
            .iter()
            .position(|x| std::ptr::eq(x, m))
            .unwrap_or(usize::MAX)
    }

    /// Index of a signal in the compiled table, adding it (and its
    /// multiplexor first, so multiplexors have lower indices).
    fn intern(&mut self, m: &DbcMessage, s: &DbcSignal) -> u16 {
        let key = (self.msg_index(m), s.name.clone());
        if let Some(&i) = self.sig_index.get(&key) {
            return i;
        }
        let mux = match (s.mux_value, m.switch()) {
            (Some(value), Some(sw)) if sw.name != s.name => Some(MuxCond {
                switch: self.intern(m, sw),
                value,
            }),
            _ => None,
        };
        let i = self.signals.len() as u16;
        self.signals.push(Signal {
            name: format!("{}.{}", m.name, s.name),
            layout: s.layout,
            mux,
            factor: s.factor,
            offset: s.offset,
            unit: s.unit.clone(),
            values: s.values.clone(),
        });
        self.sig_index.insert(key, i);
        i
    }

    fn slot(&mut self, m: &DbcMessage, s: &DbcSignal) -> u16 {
        let sig = self.intern(m, s);
        if let Some(&i) = self.slot_index.get(&sig) {
            return i;
        }
        let i = self.state.len() as u16;
        self.state.push(StateSlot {
            signal: sig,
            id: m.id,
            extended: m.extended,
        });
        self.slot_index.insert(sig, i);
        i
    }
}

fn rate(r: RateDef) -> Rate {
    Rate {
        per_second: r.per_second,
        burst: r.burst,
    }
}

fn check_rate(cx: &mut Ctx, r: &Spanned<RateDef>, what: &str) -> Rate {
    if r.get_ref().burst == 0 {
        cx.err(
            r.span().start,
            format!("{what} has burst = 0: nothing could ever pass"),
            Some("set burst to at least 1".into()),
        );
    }
    rate(*r.get_ref())
}

/// Tolerance when turning a physical value into a raw one: DBC factors
/// like 0.01 are not exact in binary.
fn eps(r: f64) -> f64 {
    1e-9 * r.abs().max(1.0)
}

/// Raw range `[lo, hi]` for `op value` on a raw axis (unclamped).
fn raw_range(op: Op, r: f64) -> (i128, i128) {
    let up = |x: f64| (x - eps(x)).ceil() as i128;
    let down = |x: f64| (x + eps(x)).floor() as i128;
    match op {
        Op::Eq | Op::Ne => (up(r), down(r)),
        Op::Lt => (i128::MIN, up(r).saturating_sub(1)),
        Op::Le => (i128::MIN, down(r)),
        Op::Gt => (down(r).saturating_add(1), i128::MAX),
        Op::Ge => (up(r), i128::MAX),
    }
}

fn phys(s: &DbcSignal, v: f64) -> String {
    if s.unit.is_empty() {
        format!("{v}")
    } else {
        format!("{v} {}", s.unit)
    }
}

/// Resolves `Message.Signal` or a signal name unique across the databases.
fn resolve_signal<'d>(
    cx: &mut Ctx<'d>,
    at: usize,
    name: &str,
) -> Option<(&'d DbcMessage, &'d DbcSignal)> {
    let db = cx.db;
    if let Some((mn, sn)) = name.split_once('.') {
        let msgs = db.by_name(mn);
        let Some(m) = msgs.first().copied() else {
            let help = suggest(mn, db.names()).map(|s| format!("did you mean `{s}.{sn}`?"));
            cx.err(at, format!("unknown message `{mn}` in `{name}`"), help);
            return None;
        };
        match m.signal(sn) {
            Some(s) => Some((m, s)),
            None => {
                let help = suggest(sn, m.signals.iter().map(|s| s.name.as_str()))
                    .map(|s| format!("did you mean `{mn}.{s}`?"));
                cx.err(at, format!("message `{mn}` has no signal `{sn}`"), help);
                None
            }
        }
    } else {
        let found: Vec<(&DbcMessage, &DbcSignal)> = db
            .messages
            .iter()
            .filter_map(|m| m.signal(name).map(|s| (m, s)))
            .collect();
        match found.len() {
            1 => Some(found[0]),
            0 => {
                let all = db
                    .messages
                    .iter()
                    .flat_map(|m| m.signals.iter().map(|s| s.name.as_str()));
                let help = suggest(name, all).map(|s| format!("did you mean `{s}`?"));
                cx.err(at, format!("unknown signal `{name}`"), help);
                None
            }
            _ => {
                let msgs: Vec<String> = found
                    .iter()
                    .map(|(m, _)| format!("`{}.{name}`", m.name))
                    .collect();
                cx.err(
                    at,
                    format!("signal `{name}` is in several messages"),
                    Some(format!("name the message: one of {}", msgs.join(", "))),
                );
                None
            }
        }
    }
}

/// Parses `Signal op value` into a guard.
fn guard(cx: &mut Ctx, g: &Spanned<String>) -> Option<Guard> {
    let at = g.span().start;
    let text = g.get_ref().trim();
    let ops = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let found = ops
        .iter()
        .filter_map(|(t, o)| text.find(t).map(|i| (i, *t, *o)))
        .min_by_key(|x| (x.0, -(x.1.len() as i32)));
    let Some((i, tok, op)) = found else {
        cx.err(
            at,
            format!("guard `{text}` has no comparison"),
            Some("write `Message.Signal OP value`, OP one of == != < <= > >=, e.g. \"SPEED.SPEED < 5\"".into()),
        );
        return None;
    };
    let (name, value) = (
        text[..i].trim(),
        text[i + tok.len()..].trim().trim_matches('"'),
    );
    if name.is_empty() || value.is_empty() {
        cx.err(
            at,
            format!("guard `{text}` needs a signal and a value"),
            None,
        );
        return None;
    }
    let (m, s) = resolve_signal(cx, at, name)?;
    let (bmin, bmax) = s.layout.raw_bounds();
    let (op, r, named) = match value.parse::<f64>() {
        Ok(v) if !v.is_finite() => {
            cx.err(
                at,
                format!("guard `{text}` compares with {v}"),
                Some("use a finite number".into()),
            );
            return None;
        }
        Ok(v) => {
            if s.factor == 0.0 {
                cx.err(
                    at,
                    format!("signal `{name}` has factor 0 in its DBC file; it cannot be compared"),
                    None,
                );
                return None;
            }
            let r = (v - s.offset) / s.factor;
            (if s.factor < 0.0 { op.flipped() } else { op }, r, false)
        }
        Err(_) => match s.value_named(value) {
            Some(raw) => (op, raw as f64, true),
            None => {
                let names: Vec<&str> = s.values.iter().map(|(_, n)| n.as_str()).collect();
                let help = if names.is_empty() {
                    format!("`{name}` has no named values; compare with a number")
                } else {
                    format!("named values of `{name}`: {}", names.join(", "))
                };
                cx.err(
                    at,
                    format!("`{value}` is neither a number nor a value name of `{name}`"),
                    Some(help),
                );
                return None;
            }
        },
    };
    let (lo, hi) = raw_range(op, r);
    let (lo, hi) = (lo.max(bmin), hi.min(bmax));
    let (pmin, pmax) = {
        let (a, b) = (s.physical(bmin), s.physical(bmax));
        (a.min(b), b.max(a))
    };
    if op == Op::Ne {
        if lo > hi {
            cx.warn(
                at,
                format!("guard `{text}` always holds: `{name}` can never equal {value}"),
                None,
            );
        }
    } else if lo > hi {
        let why = if named || op == Op::Eq {
            format!(
                "`{name}` can never be {value} (it holds {} to {} in steps of {})",
                phys(s, pmin),
                phys(s, pmax),
                s.factor.abs()
            )
        } else {
            format!("`{name}` only holds {} to {}", phys(s, pmin), phys(s, pmax))
        };
        cx.err(
            at,
            format!("guard `{text}` can never hold: {why}"),
            Some("fix the value or remove the guard".into()),
        );
        return None;
    } else if lo == bmin && hi == bmax {
        cx.warn(
            at,
            format!("guard `{text}` always holds for every value `{name}` can take"),
            None,
        );
    }
    let slot = cx.slot(m, s);
    Some(Guard {
        slot,
        lo,
        hi,
        negate: op == Op::Ne,
    })
}

fn constraint(
    cx: &mut Ctx,
    m: &DbcMessage,
    sname: &str,
    spec: &Spanned<SigSpec>,
) -> Option<Constraint> {
    let at = spec.span().start;
    let Some(s) = m.signal(sname) else {
        let help = suggest(sname, m.signals.iter().map(|s| s.name.as_str()))
            .map(|x| format!("did you mean `{x}`?"));
        cx.err(
            at,
            format!("message `{}` has no signal `{sname}`", m.name),
            help,
        );
        return None;
    };
    let (bmin, bmax) = s.layout.raw_bounds();
    let names_help = || {
        let names: Vec<&str> = s.values.iter().map(|(_, n)| n.as_str()).collect();
        if names.is_empty() {
            format!("`{sname}` has no named values; give a number or {{ min = .., max = .. }}")
        } else {
            format!("named values of `{sname}`: {}", names.join(", "))
        }
    };
    let by_names = |cx: &mut Ctx, names: &[String]| -> Option<Allowed> {
        let mut raws = Vec::new();
        for n in names {
            match s.value_named(n) {
                Some(v) => raws.push(v),
                None => {
                    cx.err(
                        at,
                        format!("`{n}` is not a value name of `{}.{sname}`", m.name),
                        Some(names_help()),
                    );
                    return None;
                }
            }
        }
        if raws.is_empty() {
            cx.err(
                at,
                format!("an empty list allows no value of `{sname}`"),
                Some("remove the rule instead".into()),
            );
            return None;
        }
        Some(Allowed::OneOf(raws))
    };
    let allowed = match spec.get_ref() {
        SigSpec::Name(n) => by_names(cx, std::slice::from_ref(n))?,
        SigSpec::Names(ns) => by_names(cx, ns)?,
        SigSpec::Number(v) if !v.is_finite() => {
            cx.err(
                at,
                format!("`{sname}` cannot be {v}"),
                Some("use a finite number".into()),
            );
            return None;
        }
        SigSpec::Range(RangeDef { min, max })
            if min.is_some_and(f64::is_nan) || max.is_some_and(f64::is_nan) =>
        {
            cx.err(
                at,
                format!("a range for `{sname}` has a NaN bound"),
                Some("use finite numbers, or leave the bound out".into()),
            );
            return None;
        }
        SigSpec::Number(v) => {
            if s.factor == 0.0 {
                cx.err(
                    at,
                    format!("signal `{sname}` has factor 0 in its DBC file"),
                    None,
                );
                return None;
            }
            let r = (v - s.offset) / s.factor;
            let (lo, hi) = raw_range(Op::Eq, r);
            if lo > hi || lo < bmin || hi > bmax {
                cx.err(
                    at,
                    format!("`{sname}` can never be exactly {}", phys(s, *v)),
                    Some(format!("its resolution is {}", s.factor.abs())),
                );
                return None;
            }
            Allowed::Range { lo, hi }
        }
        SigSpec::Range(RangeDef { min, max }) => {
            if s.factor == 0.0 {
                cx.err(
                    at,
                    format!("signal `{sname}` has factor 0 in its DBC file"),
                    None,
                );
                return None;
            }
            let (pmin, pmax) = (
                min.unwrap_or(f64::NEG_INFINITY),
                max.unwrap_or(f64::INFINITY),
            );
            if pmin > pmax {
                cx.err(
                    at,
                    format!("min {pmin} is above max {pmax}"),
                    Some("swap them".into()),
                );
                return None;
            }
            let (mut lo, mut hi) = (bmin, bmax);
            let ops = if s.factor > 0.0 {
                (Op::Ge, Op::Le)
            } else {
                (Op::Le, Op::Ge)
            };
            if pmin.is_finite() {
                let (a, b) = raw_range(ops.0, (pmin - s.offset) / s.factor);
                lo = lo.max(a);
                hi = hi.min(b);
            }
            if pmax.is_finite() {
                let (a, b) = raw_range(ops.1, (pmax - s.offset) / s.factor);
                lo = lo.max(a);
                hi = hi.min(b);
            }
            if lo > hi {
                let (a, b) = (s.physical(bmin), s.physical(bmax));
                cx.err(
                    at,
                    format!(
                        "no value of `{sname}` lies in {pmin}..={pmax}: it holds {} to {}",
                        phys(s, a.min(b)),
                        phys(s, a.max(b))
                    ),
                    Some("fix the range".into()),
                );
                return None;
            }
            Allowed::Range { lo, hi }
        }
    };
    let signal = cx.intern(m, s);
    Some(Constraint { signal, allowed })
}

/// The ids a rule matches and the payload length its message needs.
fn ids(cx: &mut Ctx, c: &CanDef) -> Option<(IdMatch, u8)> {
    let ext_flag = c.extended.as_ref().map(|e| *e.get_ref());
    match (&c.message, &c.id) {
        (Some(_), Some(id)) => {
            cx.err(
                id.span().start,
                "a rule names either a `message` or an `id`, not both".into(),
                Some("remove `id`".into()),
            );
            None
        }
        (None, None) => {
            cx.err(
                c.name.span().start,
                format!("rule `{}` matches nothing", c.name.get_ref()),
                Some("add `message = \"NAME\"` (from a DBC) or `id = 0x...`".into()),
            );
            None
        }
        (Some(mname), None) => {
            if let Some(mask) = &c.mask {
                cx.err(
                    mask.span().start,
                    "`mask` goes with `id`, not `message`".into(),
                    Some("use `id` and `mask` for a range of ids".into()),
                );
            }
            let msgs = cx.db.by_name(mname.get_ref());
            let Some(m) = msgs.first() else {
                let help =
                    suggest(mname.get_ref(), cx.db.names()).map(|s| format!("did you mean `{s}`?"));
                let help = help.or_else(|| Some("check the DBC files given with --dbc".into()));
                cx.err(
                    mname.span().start,
                    format!("unknown message `{}`", mname.get_ref()),
                    help,
                );
                return None;
            };
            if msgs
                .iter()
                .any(|x| x.id != m.id || x.extended != m.extended)
            {
                cx.err(
                    mname.span().start,
                    format!(
                        "message `{}` has different ids in different DBC files",
                        m.name
                    ),
                    Some("give only one of those DBC files, or use `id`".into()),
                );
                return None;
            }
            if let Some(e) = ext_flag {
                if e != m.extended {
                    cx.err(
                        c.extended.as_ref().map(|x| x.span().start).unwrap_or(0),
                        format!(
                            "message `{}` is {} in its DBC",
                            m.name,
                            if m.extended { "extended" } else { "standard" }
                        ),
                        Some("remove `extended`".into()),
                    );
                }
            }
            Some((
                IdMatch {
                    id: m.id,
                    mask: IdMatch::full_mask(m.extended),
                    extended: m.extended,
                },
                m.size,
            ))
        }
        (None, Some(id)) => {
            let extended = ext_flag.unwrap_or(false);
            let full = IdMatch::full_mask(extended);
            let v = *id.get_ref();
            if v < 0 || v > i64::from(full) {
                let help = if !extended && v > 0 && v <= i64::from(IdMatch::full_mask(true)) {
                    "add `extended = true` for a 29-bit id".to_string()
                } else {
                    format!(
                        "{} ids go up to {full:#X}",
                        if extended { "extended" } else { "standard" }
                    )
                };
                cx.err(
                    id.span().start,
                    format!("id {v:#X} is out of range"),
                    Some(help),
                );
                return None;
            }
            let mask = match &c.mask {
                None => full,
                Some(mk) => {
                    let mv = *mk.get_ref();
                    if mv < 0 || mv > i64::from(full) {
                        cx.err(
                            mk.span().start,
                            format!(
                                "mask {mv:#X} has bits outside a {}-bit id",
                                if extended { 29 } else { 11 }
                            ),
                            Some(format!("keep it within {full:#X}")),
                        );
                        return None;
                    }
                    mv as u32
                }
            };
            let v = v as u32;
            if v & !mask != 0 {
                cx.warn(
                    id.span().start,
                    format!("id {v:#X} has bits outside mask {mask:#X}; they are ignored"),
                    Some(format!("write id = {:#X}", v & mask)),
                );
            }
            Some((
                IdMatch {
                    id: v & mask,
                    mask,
                    extended,
                },
                0,
            ))
        }
    }
}

/// Compiles a policy file's text against a database.
pub fn compile(path: &Path, text: &str, db: &Database) -> Result<Compiled, Vec<Diag>> {
    let src = Source::new(path, text);
    let file: FileDef = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            let msg = e.message().trim().to_string();
            let (msg, help) = if msg.contains("untagged enum SigSpec") {
                (
                    "this is not a signal constraint".to_string(),
                    Some(
                        "write a value name, a list of names, a number, or { min = .., max = .. }"
                            .to_string(),
                    ),
                )
            } else if msg.contains("untagged enum PortsDef") {
                (
                    "this is not a port or port range".to_string(),
                    Some("write a port number or a range \"lo-hi\"".to_string()),
                )
            } else {
                (msg, None)
            };
            return Err(vec![src.diag(Severity::Error, at, msg, help)]);
        }
    };
    let mut cx = Ctx {
        src,
        db,
        diags: Vec::new(),
        signals: Vec::new(),
        sig_index: HashMap::new(),
        state: Vec::new(),
        slot_index: HashMap::new(),
    };

    // Applications.
    let mut apps: Vec<App> = Vec::new();
    let mut app_names: HashMap<String, (u16, usize)> = HashMap::new();
    for a in &file.app {
        let a = a.get_ref();
        let name = a.name.get_ref().clone();
        if let Some((_, first)) = app_names.get(&name) {
            let line = cx.src.line_col(*first).0;
            cx.err(
                a.name.span().start,
                format!("application `{name}` is declared twice (first on line {line})"),
                Some("rename or merge them".into()),
            );
            continue;
        }
        let budget = a
            .budget
            .as_ref()
            .map(|b| check_rate(&mut cx, b, "budget"))
            .unwrap_or(DEFAULT_BUDGET);
        app_names.insert(name.clone(), (apps.len() as u16, a.name.span().start));
        apps.push(App { name, budget });
    }
    let app_of = |cx: &mut Ctx, n: &Spanned<String>| -> Option<u16> {
        match app_names.get(n.get_ref()) {
            Some((i, _)) => Some(*i),
            None => {
                let help = suggest(n.get_ref(), app_names.keys().map(|s| s.as_str()))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("declare it: [[app]] name = \"{}\"", n.get_ref()));
                cx.err(
                    n.span().start,
                    format!("unknown application `{}`", n.get_ref()),
                    Some(help),
                );
                None
            }
        }
    };

    // CAN rules.
    let mut rules: Vec<Rule> = Vec::new();
    let mut rule_lines = Vec::new();
    let mut rule_at: Vec<usize> = Vec::new();
    let mut rule_names: HashMap<String, usize> = HashMap::new();
    for c in &file.can {
        let c = c.get_ref();
        let at = c.name.span().start;
        if let Some(first) = rule_names.get(c.name.get_ref()) {
            let line = cx.src.line_col(*first).0;
            cx.err(
                at,
                format!(
                    "rule name `{}` is used twice (first on line {line})",
                    c.name.get_ref()
                ),
                Some("give each rule its own name: audit entries and --explain use it".into()),
            );
        }
        rule_names.insert(c.name.get_ref().clone(), at);
        let app = app_of(&mut cx, &c.app);
        let dir = match c.dir.get_ref().as_str() {
            "send" => Some(Dir::Send),
            "receive" => Some(Dir::Receive),
            other => {
                cx.err(
                    c.dir.span().start,
                    format!("unknown direction `{other}`"),
                    Some(
                        "use \"send\" (application to bus) or \"receive\" (bus to application)"
                            .into(),
                    ),
                );
                None
            }
        };
        let action = match c.action.as_ref().map(|a| a.get_ref().as_str()) {
            None | Some("allow") => Some(Action::Allow),
            Some("deny") => Some(Action::Deny),
            Some(other) => {
                cx.err(
                    c.action.as_ref().map(|a| a.span().start).unwrap_or(at),
                    format!("unknown action `{other}`"),
                    Some("use \"allow\" or \"deny\"".into()),
                );
                None
            }
        };
        let idm = ids(&mut cx, c);
        let message = c
            .message
            .as_ref()
            .and_then(|m| cx.db.by_name(m.get_ref()).first().copied());
        let mut constraints = Vec::new();
        for (sname, spec) in &c.signals {
            match message {
                Some(m) => constraints.extend(constraint(&mut cx, m, sname, spec)),
                None if c.message.is_none() => cx.err(
                    spec.span().start,
                    "signal constraints need the rule to name a DBC `message`".into(),
                    Some("replace `id` with `message = \"NAME\"`".into()),
                ),
                None => {}
            }
        }
        // Contradictory constraints on one signal cannot arise (a TOML
        // table has each key once); contradictory guards can.
        let mut guards = Vec::new();
        for g in &c.when {
            guards.extend(guard(&mut cx, g));
        }
        let mut per_slot: HashMap<u16, (i128, i128)> = HashMap::new();
        for g in guards.iter().filter(|g| !g.negate) {
            let e = per_slot.entry(g.slot).or_insert((i128::MIN, i128::MAX));
            e.0 = e.0.max(g.lo);
            e.1 = e.1.min(g.hi);
            if e.0 > e.1 {
                let name = &cx.signals[usize::from(cx.state[usize::from(g.slot)].signal)]
                    .name
                    .clone();
                cx.err(c.when.first().map(|w| w.span().start).unwrap_or(at), format!("the guards of rule `{}` contradict each other on `{name}`: no value satisfies them all", c.name.get_ref()), Some("fix or remove one of them".into()));
                break;
            }
        }
        if action == Some(Action::Deny)
            && (!constraints.is_empty() || !guards.is_empty() || c.rate.is_some())
        {
            cx.err(
                at,
                format!(
                    "deny rule `{}` has conditions; deny rules match on ids only",
                    c.name.get_ref()
                ),
                Some("remove `signals`, `when` and `rate`, or make it an allow rule".into()),
            );
        }
        let rate = c.rate.as_ref().map(|r| check_rate(&mut cx, r, "rate"));
        if let (Some(app), Some(dir), Some(action), Some((ids, min_len))) = (app, dir, action, idm)
        {
            rule_lines.push(cx.src.line_col(at).0);
            rule_at.push(at);
            rules.push(Rule {
                name: c.name.get_ref().clone(),
                app,
                dir,
                ids,
                action,
                remote: c.remote.unwrap_or(false),
                min_len,
                constraints,
                guards,
                rate,
            });
        }
    }

    // Contradictions between rules of one application and direction.
    for (i, a) in rules.iter().enumerate() {
        for (j, d) in rules.iter().enumerate() {
            if a.app != d.app || a.dir != d.dir || a.ids.extended != d.ids.extended {
                continue;
            }
            let overlap = (a.ids.id ^ d.ids.id) & a.ids.mask & d.ids.mask == 0;
            if !overlap {
                continue;
            }
            if a.action == Action::Allow && d.action == Action::Deny {
                let covers = d.ids.mask & !a.ids.mask == 0;
                let dline = rule_lines[j];
                if covers {
                    cx.err(rule_at[i], format!("allow rule `{}` can never allow anything: deny rule `{}` (line {dline}) matches every id it matches", a.name, d.name), Some("remove one of the two rules, or narrow the deny rule".into()));
                } else {
                    cx.warn(rule_at[i], format!("allow rule `{}` overlaps deny rule `{}` (line {dline}); the deny rule wins where they overlap", a.name, d.name), None);
                }
            } else if i < j
                && a.action == Action::Allow
                && d.action == Action::Allow
                && a.ids == d.ids
                && a.constraints.is_empty()
                && a.guards.is_empty()
                && a.rate.is_none()
                && (!d.constraints.is_empty() || !d.guards.is_empty() || d.rate.is_some())
            {
                cx.err(rule_at[j], format!("rule `{}` is contradicted by rule `{}` (line {}): that rule allows the same ids unconditionally, so these conditions never restrict anything", d.name, a.name, rule_lines[i]), Some(format!("remove rule `{}` or give it the conditions", a.name)));
            }
        }
    }

    // L4 rules.
    let mut l4: Vec<L4Rule> = Vec::new();
    let mut l4_at: Vec<usize> = Vec::new();
    for l in &file.l4 {
        let l = l.get_ref();
        let app = app_of(&mut cx, &l.app);
        let proto = match l.proto.get_ref().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            o => {
                cx.err(
                    l.proto.span().start,
                    format!("unknown protocol `{o}`"),
                    Some("use \"tcp\" or \"udp\"".into()),
                );
                None
            }
        };
        let op = match l.op.get_ref().as_str() {
            "listen" => Some(L4Op::Listen),
            "connect" => Some(L4Op::Connect),
            o => {
                cx.err(
                    l.op.span().start,
                    format!("unknown operation `{o}`"),
                    Some("use \"listen\" or \"connect\"".into()),
                );
                None
            }
        };
        let pat = l.ports.span().start;
        let ports = match l.ports.get_ref() {
            PortsDef::One(p) => Some((*p, *p)),
            PortsDef::Range(s) => s.split_once('-').and_then(|(a, b)| {
                Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?))
            }),
        };
        let ports = match ports {
            Some((lo, hi))
                if (1..=65535).contains(&lo) && (1..=65535).contains(&hi) && lo <= hi =>
            {
                Some((lo as u16, hi as u16))
            }
            _ => {
                cx.err(
                    pat,
                    "ports must be a port 1..=65535 or a range \"lo-hi\" with lo <= hi".into(),
                    None,
                );
                None
            }
        };
        if let (Some(app), Some(proto), Some(op), Some((lo, hi))) = (app, proto, op, ports) {
            l4.push(L4Rule {
                name: l.name.get_ref().clone(),
                app,
                proto,
                op,
                lo,
                hi,
            });
            l4_at.push(l.name.span().start);
        }
    }
    for (i, a) in l4.iter().enumerate() {
        for b in &l4[..i] {
            if a.op == L4Op::Listen
                && b.op == L4Op::Listen
                && a.proto == b.proto
                && a.app != b.app
                && a.lo <= b.hi
                && b.lo <= a.hi
            {
                let (an, bn) = (
                    &apps[usize::from(a.app)].name,
                    &apps[usize::from(b.app)].name,
                );
                cx.err(
                    l4_at[i],
                    format!(
                        "`{an}` and `{bn}` would both listen on {:?} port(s) {}-{}",
                        a.proto,
                        a.lo.max(b.lo),
                        a.hi.min(b.hi)
                    ),
                    Some("give each application its own ports".into()),
                );
            }
        }
    }

    // Gateway settings.
    let mut stale_after_us = 500_000;
    let mut audit_capacity = 256;
    let mut audit_rate = DEFAULT_AUDIT_RATE;
    if let Some(g) = &file.gateway {
        if let Some(s) = &g.stale_after_ms {
            stale_after_us = s.get_ref().saturating_mul(1000);
        }
        if let Some(c) = &g.audit_capacity {
            if *c.get_ref() > gateway_core::policy::MAX_AUDIT {
                cx.err(
                    c.span().start,
                    format!(
                        "audit_capacity is at most {}",
                        gateway_core::policy::MAX_AUDIT
                    ),
                    None,
                );
            }
            audit_capacity = *c.get_ref();
        }
        if let Some(r) = &g.audit_rate {
            audit_rate = check_rate(&mut cx, r, "audit_rate");
        }
    }

    let errors = cx.diags.iter().any(|d| d.severity == Severity::Error);
    if errors {
        cx.diags.sort_by_key(|d| (d.line, d.col));
        return Err(cx.diags);
    }
    let policy = Policy {
        apps,
        rules,
        signals: cx.signals,
        state: cx.state,
        l4,
        stale_after_us,
        audit_capacity,
        audit_rate,
    };
    if let Err(e) = policy.validate() {
        return Err(vec![Diag {
            severity: Severity::Error,
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("the compiled policy exceeds the engine's limits: {e:?}"),
            help: Some("split the policy or reduce its rules".into()),
        }]);
    }
    Ok(Compiled {
        policy,
        warnings: cx.diags,
        rule_lines,
    })
}
