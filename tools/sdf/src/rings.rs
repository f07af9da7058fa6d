//! Typed channels (rings, `docs/channels.md`) in a system: the SDF side of
//! `bulkhead_channel::rules`. Turns the checked model's `<map>`s (PD maps
//! and VM guest maps, the VM named as its own party) and `<channel>`s into
//! the rule's flat view, and turns each violation into a located
//! [`Diagnostic`] pointing at the `<map>` (or PD) at fault.
//!
//! Design rule: the rule itself lives in `bulkhead-channel`, next to the
//! ring it protects; this module only translates, so the two cannot drift.

use bulkhead_channel::rules;
use serde::Serialize;

use crate::diag::Diagnostic;
use crate::model::{Pos, System};

/// One ring, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RingInfo {
    /// The ring's name (from its `tx_`/`rx_` setvars).
    pub name: String,
    /// The PD that writes records.
    pub producer: Option<String>,
    /// The PD that reads them.
    pub consumer: Option<String>,
    /// The header region.
    pub header: Option<String>,
    /// The data region.
    pub data: Option<String>,
}

struct Flat<'a> {
    maps: Vec<rules::Map<'a>>,
    /// Where each map is, parallel to `maps`.
    pos: Vec<Pos>,
    channels: Vec<rules::Channel<'a>>,
}

fn perms(p: crate::model::Perms) -> rules::Perms {
    rules::Perms {
        read: p.read,
        write: p.write,
        execute: p.execute,
    }
}

fn flatten(sys: &System) -> Flat<'_> {
    let mut f = Flat {
        maps: Vec::new(),
        pos: Vec::new(),
        channels: Vec::new(),
    };
    for pd in &sys.pds {
        for m in &pd.maps {
            f.maps.push(rules::Map {
                pd: &pd.name,
                region: &m.mr,
                perms: perms(m.perms),
                setvar_vaddr: m.setvar_vaddr.as_deref(),
            });
            f.pos.push(m.pos);
        }
        if let Some(vm) = &pd.virtual_machine {
            for m in &vm.maps {
                f.maps.push(rules::Map {
                    pd: &vm.name,
                    region: &m.mr,
                    perms: perms(m.perms),
                    setvar_vaddr: None,
                });
                f.pos.push(m.pos);
            }
        }
    }
    for c in &sys.channels {
        f.channels.push(rules::Channel {
            a: &c.ends[0].pd,
            a_notifies: c.ends[0].notify,
            b: &c.ends[1].pd,
            b_notifies: c.ends[1].notify,
        });
    }
    f
}

/// Every violation of the ring rule, located.
pub fn check(sys: &System) -> Vec<Diagnostic> {
    let f = flatten(sys);
    let mut out = Vec::new();
    rules::check(&f.maps, &f.channels, &mut |v: rules::Violation<'_>| {
        // Point at the <map> at fault, else at the PD, else at the first
        // map that declares the ring.
        let (pos, element) = if let Some((pd, region)) = v.map() {
            let i = f.maps.iter().position(|m| m.pd == pd && m.region == region);
            (i.map(|i| f.pos[i]), "map")
        } else if let Some(pd) = v.pd() {
            (sys.pd(pd).map(|(_, p)| p.pos), "protection_domain")
        } else {
            (None, "map")
        };
        let pos = pos
            .or_else(|| {
                f.maps
                    .iter()
                    .position(|m| {
                        m.setvar_vaddr
                            .and_then(rules::parse_symbol)
                            .is_some_and(|s| s.ring == v.ring())
                    })
                    .map(|i| f.pos[i])
            })
            .unwrap_or_default();
        out.push(Diagnostic::error(
            &sys.file,
            pos,
            element,
            format!("typed channel: {v}"),
        ));
    });
    out
}

/// Every ring of the system, in the order of its first map.
pub fn rings(sys: &System) -> Vec<RingInfo> {
    let f = flatten(sys);
    let mut out = Vec::new();
    rules::rings(&f.maps, |r| {
        out.push(RingInfo {
            name: r.name.to_string(),
            producer: r.producer.map(str::to_string),
            consumer: r.consumer.map(str::to_string),
            header: r.header.map(str::to_string),
            data: r.data.map(str::to_string),
        })
    });
    out
}
