//! The compiled policy: what `bulkhead gateway check` produces and the
//! gateway PD loads.
//!
//! The binary form is a 6-byte header (`BHGW` and a little-endian format
//! version) followed by the postcard encoding of [`Policy`]. Loading checks
//! the header, decodes, then checks every index and layout
//! ([`Policy::validate`]) so that the engine can trust the structure and
//! never has to bounds-check its way into a panic.
//!
//! Names (applications, rules, signals) travel with the policy: the engine
//! never reads them, but `--explain` and audit readers do, and a policy
//! that explains itself from its own binary form cannot drift from it.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::frame::{MAX_EXTENDED_ID, MAX_STANDARD_ID};
use crate::signal::{Layout, MuxCond};

/// Magic bytes that open a compiled policy.
pub const MAGIC: [u8; 4] = *b"BHGW";
/// Format version this crate reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Upper bounds the loader enforces, so a hostile policy cannot make the
/// engine allocate without limit or index past its tables.
pub const MAX_APPS: usize = 256;
/// See [`MAX_APPS`].
pub const MAX_RULES: usize = 4096;
/// See [`MAX_APPS`].
pub const MAX_SIGNALS: usize = 4096;
/// See [`MAX_APPS`].
pub const MAX_AUDIT: u32 = 4096;

/// A guest application the policy knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct App {
    /// Name, as in the policy file.
    pub name: String,
    /// Budget for everything the application sends, matched or not: a
    /// babbling application exhausts its own budget, nobody else's.
    pub budget: Rate,
}

/// A token bucket's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Sustained frames per second.
    pub per_second: u32,
    /// Frames that may pass back to back after a quiet period (>= 1).
    pub burst: u32,
}

/// Direction of a CAN rule, seen from the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dir {
    /// Application to bus.
    Send,
    /// Bus to application.
    Receive,
}

/// Which identifiers a rule matches: `frame.id & mask == id & mask`, in one
/// frame format. An exact rule has a mask of all ones for its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMatch {
    /// Identifier.
    pub id: u32,
    /// Mask of significant bits.
    pub mask: u32,
    /// 29-bit format.
    pub extended: bool,
}

impl IdMatch {
    /// All-ones mask of the format.
    pub fn full_mask(extended: bool) -> u32 {
        if extended {
            MAX_EXTENDED_ID
        } else {
            MAX_STANDARD_ID
        }
    }
    /// True when this matches exactly one identifier.
    pub fn is_exact(&self) -> bool {
        self.mask == Self::full_mask(self.extended)
    }
    /// True when the frame id (in format `extended`) matches.
    pub fn matches(&self, id: u32, extended: bool) -> bool {
        extended == self.extended && id & self.mask == self.id & self.mask
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Let matching frames through when every condition holds.
    Allow,
    /// Refuse matching frames; takes precedence over allow rules.
    Deny,
}

/// What raw values a constrained signal may take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Allowed {
    /// Inclusive raw range.
    Range {
        /// Lowest raw value.
        lo: i128,
        /// Highest raw value.
        hi: i128,
    },
    /// One of these raw values (named values from the DBC).
    OneOf(Vec<i128>),
}

impl Allowed {
    /// True when `raw` is allowed.
    pub fn admits(&self, raw: i128) -> bool {
        match self {
            Allowed::Range { lo, hi } => *lo <= raw && raw <= *hi,
            Allowed::OneOf(v) => v.contains(&raw),
        }
    }
}

/// A constraint on a signal of the frame being decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// Index into [`Policy::signals`].
    pub signal: u16,
    /// What it may be.
    pub allowed: Allowed,
}

/// A vehicle-state guard: a signal last seen on the bus must be in
/// `lo..=hi` (or outside it, when `negate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guard {
    /// Index into [`Policy::state`].
    pub slot: u16,
    /// Lowest raw value.
    pub lo: i128,
    /// Highest raw value.
    pub hi: i128,
    /// Holds when the value is outside `lo..=hi`.
    pub negate: bool,
}

impl Guard {
    /// True when `raw` satisfies the guard.
    pub fn holds(&self, raw: i128) -> bool {
        (self.lo <= raw && raw <= self.hi) != self.negate
    }
}

/// One CAN rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Name, as in the policy file.
    pub name: String,
    /// Index into [`Policy::apps`].
    pub app: u16,
    /// Send or receive.
    pub dir: Dir,
    /// Identifiers matched.
    pub ids: IdMatch,
    /// Allow or deny.
    pub action: Action,
    /// Remote frames allowed too.
    pub remote: bool,
    /// Payload length the frame must have at least (the DBC message size
    /// when the rule names a message); shorter frames are denied.
    pub min_len: u8,
    /// Signal constraints, all of which must hold.
    pub constraints: Vec<Constraint>,
    /// Vehicle-state guards, all of which must hold.
    pub guards: Vec<Guard>,
    /// Optional per-rule token bucket.
    pub rate: Option<Rate>,
}

/// A signal definition the engine can decode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Name, `Message.Signal`.
    pub name: String,
    /// Where it sits in the frame.
    pub layout: Layout,
    /// Present only under this multiplexor value.
    pub mux: Option<MuxCond>,
    /// Scale and offset (physical = raw * factor + offset), for explaining.
    pub factor: f64,
    /// See `factor`.
    pub offset: f64,
    /// Unit, for explaining.
    pub unit: String,
    /// Named raw values from the DBC, for explaining.
    pub values: Vec<(i128, String)>,
}

impl Signal {
    /// Physical value of a raw value (for reports; the engine compares raw values).
    pub fn physical(&self, raw: i128) -> f64 {
        raw as f64 * self.factor + self.offset
    }
}

/// A vehicle-state variable: a signal of a bus message, tracked as frames
/// are observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSlot {
    /// Index into [`Policy::signals`].
    pub signal: u16,
    /// Message identifier that carries it.
    pub id: u32,
    /// Its format.
    pub extended: bool,
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Listen on a local port or connect to a remote one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum L4Op {
    /// Accept connections / datagrams on a local port.
    Listen,
    /// Connect / send to a remote port.
    Connect,
}

/// An L4 rule: open while its application runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct L4Rule {
    /// Name, as in the policy file.
    pub name: String,
    /// Index into [`Policy::apps`].
    pub app: u16,
    /// Protocol.
    pub proto: Proto,
    /// Listen or connect.
    pub op: L4Op,
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

/// The whole compiled policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Applications, indexed by `u16`.
    pub apps: Vec<App>,
    /// CAN rules in file order.
    pub rules: Vec<Rule>,
    /// Signals referenced by constraints, guards and multiplexors.
    pub signals: Vec<Signal>,
    /// Vehicle-state variables.
    pub state: Vec<StateSlot>,
    /// L4 rules.
    pub l4: Vec<L4Rule>,
    /// A state value older than this (microseconds) counts as unknown, so
    /// guards fail closed when the bus goes quiet.
    pub stale_after_us: u64,
    /// Audit log entries kept.
    pub audit_capacity: u32,
    /// Audit entries per application per second (token bucket).
    pub audit_rate: Rate,
}

/// Why bytes are not a loadable policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// No `BHGW` header.
    BadMagic,
    /// Written by a different format version.
    Version(u16),
    /// Postcard decoding failed or bytes follow the policy.
    Decode,
    /// A table exceeds its bound.
    TooLarge,
    /// Rule `n` names an application that does not exist.
    BadApp(u16),
    /// Rule `n` has an identifier or mask outside its format.
    BadId(u16),
    /// An index into the signal or state table is out of range.
    BadIndex,
    /// A signal's layout does not fit a classic frame.
    BadLayout(u16),
    /// A rate with burst 0 (nothing could ever pass; or a bucket that
    /// would never fill).
    BadRate,
    /// A port range with lo > hi.
    BadPorts(u16),
}

impl Policy {
    /// Encodes the policy with its header.
    pub fn to_bytes(&self) -> Result<Vec<u8>, LoadError> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let body = postcard::to_allocvec(self).map_err(|_| LoadError::Decode)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes and validates a compiled policy.
    pub fn from_bytes(bytes: &[u8]) -> Result<Policy, LoadError> {
        if bytes.len() < 6 || bytes[..4] != MAGIC {
            return Err(LoadError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != FORMAT_VERSION {
            return Err(LoadError::Version(version));
        }
        let (policy, rest): (Policy, &[u8]) =
            postcard::take_from_bytes(&bytes[6..]).map_err(|_| LoadError::Decode)?;
        if !rest.is_empty() {
            return Err(LoadError::Decode);
        }
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every index, id, layout and rate the engine relies on.
    pub fn validate(&self) -> Result<(), LoadError> {
        if self.apps.len() > MAX_APPS
            || self.rules.len() > MAX_RULES
            || self.signals.len() > MAX_SIGNALS
            || self.state.len() > MAX_SIGNALS
            || self.l4.len() > MAX_RULES
            || self.audit_capacity > MAX_AUDIT
        {
            return Err(LoadError::TooLarge);
        }
        let rate_ok = |r: &Rate| r.burst >= 1;
        if !rate_ok(&self.audit_rate) || self.apps.iter().any(|a| !rate_ok(&a.budget)) {
            return Err(LoadError::BadRate);
        }
        let nsig = self.signals.len();
        for (i, s) in self.signals.iter().enumerate() {
            // Scale and offset only explain values, but a NaN or infinite
            // one means the file was not written by our compiler.
            if s.layout.validate().is_err() || !s.factor.is_finite() || !s.offset.is_finite() {
                return Err(LoadError::BadLayout(i as u16));
            }
            if let Some(m) = s.mux {
                // A multiplexor must come earlier in the table: no cycles.
                if usize::from(m.switch) >= i {
                    return Err(LoadError::BadIndex);
                }
            }
        }
        for st in &self.state {
            if usize::from(st.signal) >= nsig || !id_ok(st.id, u32::MAX, st.extended) {
                return Err(LoadError::BadIndex);
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            let i = i as u16;
            if usize::from(r.app) >= self.apps.len() {
                return Err(LoadError::BadApp(i));
            }
            if !id_ok(r.ids.id, r.ids.mask, r.ids.extended) {
                return Err(LoadError::BadId(i));
            }
            if r.min_len > 8 {
                return Err(LoadError::BadId(i));
            }
            if r.constraints.iter().any(|c| usize::from(c.signal) >= nsig)
                || r.guards
                    .iter()
                    .any(|g| usize::from(g.slot) >= self.state.len())
            {
                return Err(LoadError::BadIndex);
            }
            if matches!(r.rate, Some(ref x) if !rate_ok(x)) {
                return Err(LoadError::BadRate);
            }
        }
        for (i, l) in self.l4.iter().enumerate() {
            if usize::from(l.app) >= self.apps.len() {
                return Err(LoadError::BadApp(i as u16));
            }
            if l.lo > l.hi {
                return Err(LoadError::BadPorts(i as u16));
            }
        }
        Ok(())
    }
}

fn id_ok(id: u32, mask: u32, extended: bool) -> bool {
    let full = IdMatch::full_mask(extended);
    id <= full && (mask == u32::MAX || mask <= full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    pub(crate) fn tiny() -> Policy {
        Policy {
            apps: vec![App {
                name: "a".into(),
                budget: Rate {
                    per_second: 10,
                    burst: 5,
                },
            }],
            rules: vec![Rule {
                name: "r".into(),
                app: 0,
                dir: Dir::Send,
                ids: IdMatch {
                    id: 0x100,
                    mask: 0x7FF,
                    extended: false,
                },
                action: Action::Allow,
                remote: false,
                min_len: 0,
                constraints: vec![],
                guards: vec![],
                rate: None,
            }],
            signals: vec![],
            state: vec![],
            l4: vec![],
            stale_after_us: 1_000_000,
            audit_capacity: 16,
            audit_rate: Rate {
                per_second: 10,
                burst: 10,
            },
        }
    }

    #[test]
    fn round_trip_and_header_checks() {
        let p = tiny();
        let b = p.to_bytes().unwrap();
        assert_eq!(Policy::from_bytes(&b), Ok(p.clone()));
        assert_eq!(
            Policy::from_bytes(b"XXXX\x01\x00"),
            Err(LoadError::BadMagic)
        );
        let mut v = b.clone();
        v[4] = 9;
        assert_eq!(Policy::from_bytes(&v), Err(LoadError::Version(9)));
        let mut t = b.clone();
        t.push(0);
        assert_eq!(Policy::from_bytes(&t), Err(LoadError::Decode));
        assert_eq!(
            Policy::from_bytes(&b[..b.len() - 3]),
            Err(LoadError::Decode)
        );
    }

    #[test]
    fn structural_errors_are_refused() {
        let mut p = tiny();
        p.rules[0].app = 3;
        assert_eq!(p.validate(), Err(LoadError::BadApp(0)));
        let mut p = tiny();
        p.rules[0].ids.id = 0x800;
        assert_eq!(p.validate(), Err(LoadError::BadId(0)));
        let mut p = tiny();
        p.apps[0].budget.burst = 0;
        assert_eq!(p.validate(), Err(LoadError::BadRate));
        let mut p = tiny();
        p.signals.push(Signal {
            name: "s".into(),
            layout: Layout {
                start: 0,
                size: 8,
                order: crate::signal::ByteOrder::Intel,
                signed: false,
            },
            mux: None,
            factor: f64::NAN,
            offset: 0.0,
            unit: "".into(),
            values: vec![],
        });
        assert_eq!(p.validate(), Err(LoadError::BadLayout(0)));
        let mut p = tiny();
        p.rules[0].guards.push(Guard {
            slot: 0,
            lo: 0,
            hi: 0,
            negate: false,
        });
        assert_eq!(p.validate(), Err(LoadError::BadIndex));
    }
}
