//! The rule `bulkhead check` applies to rings: which PD may map a ring's
//! regions, and how. Pure logic over a flat view of `system.xml`, so the SDF
//! checker only has to translate its parsed maps and channels and print the
//! violations.
//!
//! How a ring is declared: a PD's code reaches a ring only through the
//! `setvar_vaddr` symbols the tool patches, so those symbols *are* the
//! declaration. A map whose `setvar_vaddr` is
//! `tx_<ring>_header` / `tx_<ring>_data` makes that PD the producer of
//! `<ring>`; `rx_<ring>_header` / `rx_<ring>_data` the consumer. The header
//! and data must be two different regions: the consumer has to write the
//! header (its index) but must not be able to write the data.
//!
//! What is required, per ring:
//! - exactly one producer and one consumer, different PDs, joined by a
//!   `<channel>` on which each may notify the other (data ready / space free);
//! - both sides map the same header region and the same data region;
//! - producer: header `rw`, data `rw`; consumer: header `rw`, data `r` and
//!   never `w`; nobody maps either executable;
//! - no third PD maps them writable (it could forge or corrupt records) or
//!   readable (it could read the traffic: an information flow `system.xml`
//!   would not show as a channel).
#![forbid(unsafe_code)]

use core::fmt;

/// Map permissions, as in a `<map perms="...">`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Perms {
    /// `r`
    pub read: bool,
    /// `w`
    pub write: bool,
    /// `x`
    pub execute: bool,
}

impl Perms {
    /// Read only.
    pub const R: Perms = Perms {
        read: true,
        write: false,
        execute: false,
    };
    /// Read and write.
    pub const RW: Perms = Perms {
        read: true,
        write: true,
        execute: false,
    };

    /// Parses an SDF `perms` value (letters `r`, `w`, `x`, each at most once).
    pub fn parse(s: &str) -> Option<Perms> {
        let mut p = Perms::default();
        for c in s.chars() {
            let flag = match c {
                'r' => &mut p.read,
                'w' => &mut p.write,
                'x' => &mut p.execute,
                _ => return None,
            };
            if *flag {
                return None;
            }
            *flag = true;
        }
        Some(p)
    }

    fn covers(self, needed: Perms) -> bool {
        (self.read || !needed.read) && (self.write || !needed.write)
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.execute, 'x')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        if !(self.read || self.write || self.execute) {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

/// Which side of a ring.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// Writes records (`tx_` symbols).
    Producer,
    /// Reads records (`rx_` symbols).
    Consumer,
}

/// Which part of a ring.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Area {
    /// Indices and flags (`_header`).
    Header,
    /// Slots (`_data`).
    Data,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        })
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Area::Header => "header",
            Area::Data => "data",
        })
    }
}

/// A `setvar_vaddr` symbol that declares a ring end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RingSymbol<'a> {
    /// Producer (`tx_`) or consumer (`rx_`).
    pub role: Role,
    /// The ring's name.
    pub ring: &'a str,
    /// Header or data.
    pub area: Area,
}

/// Recognises `tx_<ring>_header`, `tx_<ring>_data`, `rx_<ring>_header`,
/// `rx_<ring>_data` (with a non-empty `<ring>`).
pub fn parse_symbol(symbol: &str) -> Option<RingSymbol<'_>> {
    let (role, rest) = if let Some(r) = symbol.strip_prefix("tx_") {
        (Role::Producer, r)
    } else {
        (Role::Consumer, symbol.strip_prefix("rx_")?)
    };
    let (ring, area) = if let Some(r) = rest.strip_suffix("_header") {
        (r, Area::Header)
    } else {
        (rest.strip_suffix("_data")?, Area::Data)
    };
    (!ring.is_empty()).then_some(RingSymbol { role, ring, area })
}

/// One `<map>` of a PD, as the checker parsed it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Map<'a> {
    /// The PD that maps.
    pub pd: &'a str,
    /// The memory region mapped.
    pub region: &'a str,
    /// Its permissions.
    pub perms: Perms,
    /// Its `setvar_vaddr`, if any.
    pub setvar_vaddr: Option<&'a str>,
}

/// One `<channel>`: its two ends and whether each may notify the other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Channel<'a> {
    /// First end's PD.
    pub a: &'a str,
    /// Whether the first end may notify.
    pub a_notifies: bool,
    /// Second end's PD.
    pub b: &'a str,
    /// Whether the second end may notify.
    pub b_notifies: bool,
}

/// A ring as found in the system, for `bulkhead check --report`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ring<'a> {
    /// Its name.
    pub name: &'a str,
    /// The producer PD (first one found).
    pub producer: Option<&'a str>,
    /// The consumer PD (first one found).
    pub consumer: Option<&'a str>,
    /// The header region (as the producer maps it, else the consumer).
    pub header: Option<&'a str>,
    /// The data region (as the producer maps it, else the consumer).
    pub data: Option<&'a str>,
}

/// Something wrong with a ring's declaration. `Display` says what and how
/// to fix it; the checker adds the file and line of the maps involved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Violation<'a> {
    /// No PD declares this end.
    MissingEnd {
        /// Ring.
        ring: &'a str,
        /// The missing end.
        role: Role,
    },
    /// Two PDs declare the same end.
    TwoEnds {
        /// Ring.
        ring: &'a str,
        /// The end.
        role: Role,
        /// One PD.
        first: &'a str,
        /// The other.
        second: &'a str,
    },
    /// One PD is both producer and consumer.
    SamePd {
        /// Ring.
        ring: &'a str,
        /// The PD.
        pd: &'a str,
    },
    /// An end does not map one of the two areas.
    MissingArea {
        /// Ring.
        ring: &'a str,
        /// The PD.
        pd: &'a str,
        /// Its role.
        role: Role,
        /// The area it lacks.
        area: Area,
    },
    /// The two ends map different regions for one area.
    RegionMismatch {
        /// Ring.
        ring: &'a str,
        /// The area.
        area: Area,
        /// The producer's region.
        producer: &'a str,
        /// The consumer's region.
        consumer: &'a str,
    },
    /// Header and data are one region (the consumer would write the data).
    HeaderIsData {
        /// Ring.
        ring: &'a str,
        /// The region.
        region: &'a str,
    },
    /// An end lacks a permission its role needs.
    MissingPerms {
        /// Ring.
        ring: &'a str,
        /// The PD.
        pd: &'a str,
        /// Its role.
        role: Role,
        /// The area.
        area: Area,
        /// What it needs.
        needed: Perms,
        /// What it has.
        has: Perms,
    },
    /// The consumer can write the data area.
    ConsumerWritesData {
        /// Ring.
        ring: &'a str,
        /// The PD.
        pd: &'a str,
        /// The data region.
        region: &'a str,
    },
    /// A ring region is mapped executable.
    Executable {
        /// Ring.
        ring: &'a str,
        /// The PD.
        pd: &'a str,
        /// The region.
        region: &'a str,
    },
    /// A PD other than the two ends maps a ring region writable.
    ForeignWriter {
        /// Ring.
        ring: &'a str,
        /// The PD.
        pd: &'a str,
        /// The region.
        region: &'a str,
    },
    /// A PD other than the two ends maps a ring region readable.
    ForeignReader {
        /// Ring.
        ring: &'a str,
        /// The PD.
        pd: &'a str,
        /// The region.
        region: &'a str,
    },
    /// No `<channel>` joins producer and consumer.
    NoChannel {
        /// Ring.
        ring: &'a str,
        /// Producer.
        producer: &'a str,
        /// Consumer.
        consumer: &'a str,
    },
    /// An end may not notify on the channel.
    CannotNotify {
        /// Ring.
        ring: &'a str,
        /// The PD.
        pd: &'a str,
        /// Its role.
        role: Role,
    },
}

impl<'a> Violation<'a> {
    /// The ring concerned.
    pub fn ring(&self) -> &'a str {
        match *self {
            Violation::MissingEnd { ring, .. }
            | Violation::TwoEnds { ring, .. }
            | Violation::SamePd { ring, .. }
            | Violation::MissingArea { ring, .. }
            | Violation::RegionMismatch { ring, .. }
            | Violation::HeaderIsData { ring, .. }
            | Violation::MissingPerms { ring, .. }
            | Violation::ConsumerWritesData { ring, .. }
            | Violation::Executable { ring, .. }
            | Violation::ForeignWriter { ring, .. }
            | Violation::ForeignReader { ring, .. }
            | Violation::NoChannel { ring, .. }
            | Violation::CannotNotify { ring, .. } => ring,
        }
    }

    /// The `<map>` at fault, as (PD, region), when there is one: where the
    /// checker should point its file/line.
    pub fn map(&self) -> Option<(&'a str, &'a str)> {
        match *self {
            Violation::ConsumerWritesData { pd, region, .. }
            | Violation::Executable { pd, region, .. }
            | Violation::ForeignWriter { pd, region, .. }
            | Violation::ForeignReader { pd, region, .. } => Some((pd, region)),
            _ => None,
        }
    }

    /// The PD at fault, when there is one.
    pub fn pd(&self) -> Option<&'a str> {
        match *self {
            Violation::TwoEnds { second: pd, .. }
            | Violation::SamePd { pd, .. }
            | Violation::MissingArea { pd, .. }
            | Violation::MissingPerms { pd, .. }
            | Violation::ConsumerWritesData { pd, .. }
            | Violation::Executable { pd, .. }
            | Violation::ForeignWriter { pd, .. }
            | Violation::ForeignReader { pd, .. }
            | Violation::CannotNotify { pd, .. } => Some(pd),
            Violation::NoChannel { consumer, .. } => Some(consumer),
            Violation::MissingEnd { .. }
            | Violation::RegionMismatch { .. }
            | Violation::HeaderIsData { .. } => None,
        }
    }
}

impl fmt::Display for Violation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::MissingEnd { ring, role } => {
                let p = if role == Role::Producer { "tx" } else { "rx" };
                write!(f, "ring `{ring}` has no {role}: one PD must map its regions with setvar_vaddr=\"{p}_{ring}_header\" and \"{p}_{ring}_data\"")
            }
            Violation::TwoEnds { ring, role, first, second } => write!(
                f,
                "ring `{ring}` has two {role}s, `{first}` and `{second}`: a ring is single-producer single-consumer; give each pair its own ring"
            ),
            Violation::SamePd { ring, pd } => {
                write!(f, "ring `{ring}`: `{pd}` is both producer and consumer; a ring joins two different PDs")
            }
            Violation::MissingArea { ring, pd, role, area } => write!(
                f,
                "ring `{ring}`: {role} `{pd}` does not map the {area} region; add a <map> with setvar_vaddr=\"{}_{ring}_{area}\"",
                if role == Role::Producer { "tx" } else { "rx" }
            ),
            Violation::RegionMismatch { ring, area, producer, consumer } => write!(
                f,
                "ring `{ring}`: the producer maps region `{producer}` as {area} but the consumer maps `{consumer}`; both must map the same region"
            ),
            Violation::HeaderIsData { ring, region } => write!(
                f,
                "ring `{ring}`: header and data are both region `{region}`; use two regions so the consumer can write the header but not the data"
            ),
            Violation::MissingPerms { ring, pd, role, area, needed, has } => write!(
                f,
                "ring `{ring}`: {role} `{pd}` maps the {area} region with perms \"{has}\" but needs \"{needed}\""
            ),
            Violation::ConsumerWritesData { ring, pd, region } => write!(
                f,
                "ring `{ring}`: consumer `{pd}` maps data region `{region}` writable; it must be perms=\"r\" so the consumer cannot alter the producer's records"
            ),
            Violation::Executable { ring, pd, region } => write!(
                f,
                "ring `{ring}`: `{pd}` maps region `{region}` executable; ring memory is data, drop the \"x\""
            ),
            Violation::ForeignWriter { ring, pd, region } => write!(
                f,
                "ring `{ring}`: `{pd}` is neither producer nor consumer but maps region `{region}` writable; it could forge or corrupt records"
            ),
            Violation::ForeignReader { ring, pd, region } => write!(
                f,
                "ring `{ring}`: `{pd}` is neither producer nor consumer but maps region `{region}`; it can read the ring's traffic"
            ),
            Violation::NoChannel { ring, producer, consumer } => write!(
                f,
                "ring `{ring}`: no <channel> joins `{producer}` and `{consumer}`; add one so each can notify the other"
            ),
            Violation::CannotNotify { ring, pd, role } => write!(
                f,
                "ring `{ring}`: {role} `{pd}` may not notify on the channel to its peer; set notify=\"true\" on its <end>"
            ),
        }
    }
}

fn ring_maps<'s, 'a>(
    maps: &'s [Map<'a>],
    ring: &'s str,
) -> impl Iterator<Item = (RingSymbol<'a>, &'s Map<'a>)> + 's {
    maps.iter().filter_map(move |m| {
        let sym = parse_symbol(m.setvar_vaddr?)?;
        (sym.ring == ring).then_some((sym, m))
    })
}

/// Calls `f` once per ring declared in `maps`, in order of first mention.
pub fn rings<'a>(maps: &[Map<'a>], mut f: impl FnMut(Ring<'a>)) {
    for (i, m) in maps.iter().enumerate() {
        let Some(sym) = m.setvar_vaddr.and_then(parse_symbol) else {
            continue;
        };
        let seen_before = maps[..i].iter().any(|p| {
            p.setvar_vaddr
                .and_then(parse_symbol)
                .is_some_and(|s| s.ring == sym.ring)
        });
        if seen_before {
            continue;
        }
        let mut ring = Ring {
            name: sym.ring,
            producer: None,
            consumer: None,
            header: None,
            data: None,
        };
        for (s, m) in ring_maps(maps, sym.ring) {
            let end = if s.role == Role::Producer {
                &mut ring.producer
            } else {
                &mut ring.consumer
            };
            end.get_or_insert(m.pd);
            let area = if s.area == Area::Header {
                &mut ring.header
            } else {
                &mut ring.data
            };
            if s.role == Role::Producer || area.is_none() {
                *area = Some(m.region);
            }
        }
        f(ring);
    }
}

/// Checks every ring declared in `maps` against the rules in the module
/// docs, calling `out` for each violation.
pub fn check<'a>(maps: &[Map<'a>], channels: &[Channel<'a>], out: &mut impl FnMut(Violation<'a>)) {
    rings(maps, |ring| check_ring(&ring, maps, channels, out));
}

fn check_ring<'a>(
    ring: &Ring<'a>,
    maps: &[Map<'a>],
    channels: &[Channel<'a>],
    out: &mut impl FnMut(Violation<'a>),
) {
    let name = ring.name;
    // Ends: exactly one PD per role.
    for (role, first) in [
        (Role::Producer, ring.producer),
        (Role::Consumer, ring.consumer),
    ] {
        let Some(first) = first else {
            out(Violation::MissingEnd { ring: name, role });
            continue;
        };
        let mut others = ring_maps(maps, name)
            .filter(|(s, m)| s.role == role && m.pd != first)
            .map(|(_, m)| m.pd);
        if let Some(second) = others.next() {
            out(Violation::TwoEnds {
                ring: name,
                role,
                first,
                second,
            });
        }
    }
    let (Some(producer), Some(consumer)) = (ring.producer, ring.consumer) else {
        return;
    };
    if producer == consumer {
        out(Violation::SamePd {
            ring: name,
            pd: producer,
        });
        return;
    }
    // Regions: each end maps both areas, the same regions, two of them.
    let region_of = |pd: &str, role: Role, area: Area| {
        ring_maps(maps, name)
            .find(|(s, m)| s.role == role && s.area == area && m.pd == pd)
            .map(|(_, m)| m.region)
    };
    for area in [Area::Header, Area::Data] {
        let p = region_of(producer, Role::Producer, area);
        let c = region_of(consumer, Role::Consumer, area);
        if p.is_none() {
            out(Violation::MissingArea {
                ring: name,
                pd: producer,
                role: Role::Producer,
                area,
            });
        }
        if c.is_none() {
            out(Violation::MissingArea {
                ring: name,
                pd: consumer,
                role: Role::Consumer,
                area,
            });
        }
        if let (Some(p), Some(c)) = (p, c) {
            if p != c {
                out(Violation::RegionMismatch {
                    ring: name,
                    area,
                    producer: p,
                    consumer: c,
                });
            }
        }
    }
    if let (Some(h), Some(d)) = (ring.header, ring.data) {
        if h == d {
            out(Violation::HeaderIsData {
                ring: name,
                region: h,
            });
        }
    }
    // Permissions of every map of the ring's regions, by whoever maps them.
    for area in [Area::Header, Area::Data] {
        let Some(region) = (if area == Area::Header {
            ring.header
        } else {
            ring.data
        }) else {
            continue;
        };
        for m in maps.iter().filter(|m| m.region == region) {
            if m.perms.execute {
                out(Violation::Executable {
                    ring: name,
                    pd: m.pd,
                    region,
                });
            }
            let role = if m.pd == producer {
                Role::Producer
            } else if m.pd == consumer {
                Role::Consumer
            } else {
                if m.perms.write {
                    out(Violation::ForeignWriter {
                        ring: name,
                        pd: m.pd,
                        region,
                    });
                } else if m.perms.read {
                    out(Violation::ForeignReader {
                        ring: name,
                        pd: m.pd,
                        region,
                    });
                }
                continue;
            };
            let needed = if role == Role::Consumer && area == Area::Data {
                Perms::R
            } else {
                Perms::RW
            };
            if !m.perms.covers(needed) {
                out(Violation::MissingPerms {
                    ring: name,
                    pd: m.pd,
                    role,
                    area,
                    needed,
                    has: m.perms,
                });
            }
            if role == Role::Consumer && area == Area::Data && m.perms.write {
                out(Violation::ConsumerWritesData {
                    ring: name,
                    pd: m.pd,
                    region,
                });
            }
        }
    }
    // Notification: a channel on which both may notify.
    let channel = channels.iter().find_map(|c| {
        if c.a == producer && c.b == consumer {
            Some((c.a_notifies, c.b_notifies))
        } else if c.b == producer && c.a == consumer {
            Some((c.b_notifies, c.a_notifies))
        } else {
            None
        }
    });
    match channel {
        None => out(Violation::NoChannel {
            ring: name,
            producer,
            consumer,
        }),
        Some((p, c)) => {
            if !p {
                out(Violation::CannotNotify {
                    ring: name,
                    pd: producer,
                    role: Role::Producer,
                });
            }
            if !c {
                out(Violation::CannotNotify {
                    ring: name,
                    pd: consumer,
                    role: Role::Consumer,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'a>(pd: &'a str, region: &'a str, perms: &str, sym: &'a str) -> Map<'a> {
        Map {
            pd,
            region,
            perms: Perms::parse(perms).unwrap(),
            setvar_vaddr: (!sym.is_empty()).then_some(sym),
        }
    }

    fn good() -> (Vec<Map<'static>>, Vec<Channel<'static>>) {
        (
            vec![
                map("monitor", "alerts_hdr", "rw", "tx_alerts_header"),
                map("monitor", "alerts_buf", "rw", "tx_alerts_data"),
                map("supervisor", "alerts_hdr", "rw", "rx_alerts_header"),
                map("supervisor", "alerts_buf", "r", "rx_alerts_data"),
                map("supervisor", "scratch", "rw", ""),
            ],
            vec![Channel {
                a: "supervisor",
                a_notifies: true,
                b: "monitor",
                b_notifies: true,
            }],
        )
    }

    fn violations<'a>(maps: &[Map<'a>], channels: &[Channel<'a>]) -> Vec<Violation<'a>> {
        let mut v = Vec::new();
        check(maps, channels, &mut |x| v.push(x));
        v
    }

    #[test]
    fn good_ring_passes_and_is_listed() {
        let (maps, chans) = good();
        assert_eq!(violations(&maps, &chans), vec![]);
        let mut listed = Vec::new();
        rings(&maps, |r| listed.push(r));
        assert_eq!(
            listed,
            vec![Ring {
                name: "alerts",
                producer: Some("monitor"),
                consumer: Some("supervisor"),
                header: Some("alerts_hdr"),
                data: Some("alerts_buf"),
            }]
        );
    }

    #[test]
    fn consumer_writing_data_is_rejected() {
        let (mut maps, chans) = good();
        maps[3].perms = Perms::RW;
        let v = violations(&maps, &chans);
        assert_eq!(
            v,
            vec![Violation::ConsumerWritesData {
                ring: "alerts",
                pd: "supervisor",
                region: "alerts_buf"
            }]
        );
        assert!(v[0].to_string().contains("perms=\"r\""));
    }

    #[test]
    fn missing_perms_and_executable() {
        let (mut maps, chans) = good();
        maps[1].perms = Perms::R; // producer cannot write its data
        maps[2].perms = Perms::parse("rx").unwrap(); // consumer cannot write its index
        let rx = Perms::parse("rx").unwrap();
        assert_eq!(
            violations(&maps, &chans),
            vec![
                Violation::Executable {
                    ring: "alerts",
                    pd: "supervisor",
                    region: "alerts_hdr"
                },
                Violation::MissingPerms {
                    ring: "alerts",
                    pd: "supervisor",
                    role: Role::Consumer,
                    area: Area::Header,
                    needed: Perms::RW,
                    has: rx,
                },
                Violation::MissingPerms {
                    ring: "alerts",
                    pd: "monitor",
                    role: Role::Producer,
                    area: Area::Data,
                    needed: Perms::RW,
                    has: Perms::R,
                },
            ]
        );
    }

    #[test]
    fn violations_name_their_ring_pd_and_map() {
        let v = Violation::ForeignWriter {
            ring: "r",
            pd: "gw",
            region: "buf",
        };
        assert_eq!(
            (v.ring(), v.pd(), v.map()),
            ("r", Some("gw"), Some(("gw", "buf")))
        );
        let v = Violation::MissingEnd {
            ring: "q",
            role: Role::Producer,
        };
        assert_eq!((v.ring(), v.pd(), v.map()), ("q", None, None));
        assert!(v.to_string().contains("tx_q_header"));
        let v = Violation::TwoEnds {
            ring: "q",
            role: Role::Consumer,
            first: "a",
            second: "b",
        };
        assert_eq!(v.pd(), Some("b"));
    }

    #[test]
    fn third_pds_are_flagged() {
        let (mut maps, chans) = good();
        maps.push(map("gateway", "alerts_buf", "rw", ""));
        maps.push(map("vmm", "alerts_hdr", "r", ""));
        let v = violations(&maps, &chans);
        assert_eq!(
            v,
            vec![
                Violation::ForeignReader {
                    ring: "alerts",
                    pd: "vmm",
                    region: "alerts_hdr"
                },
                Violation::ForeignWriter {
                    ring: "alerts",
                    pd: "gateway",
                    region: "alerts_buf"
                },
            ]
        );
    }

    #[test]
    fn ends_regions_and_channels() {
        let (maps, _) = good();
        // No channel at all, and one where the consumer may not notify.
        assert_eq!(
            violations(&maps, &[]),
            vec![Violation::NoChannel {
                ring: "alerts",
                producer: "monitor",
                consumer: "supervisor"
            }]
        );
        let one_way = [Channel {
            a: "monitor",
            a_notifies: true,
            b: "supervisor",
            b_notifies: false,
        }];
        assert_eq!(
            violations(&maps, &one_way),
            vec![Violation::CannotNotify {
                ring: "alerts",
                pd: "supervisor",
                role: Role::Consumer
            }]
        );

        let (mut maps, chans) = good();
        maps[3].region = "other_buf";
        maps.push(map("gateway", "x", "rw", "tx_alerts_data"));
        maps.remove(2); // consumer's header
        let v = violations(&maps, &chans);
        assert!(v.contains(&Violation::TwoEnds {
            ring: "alerts",
            role: Role::Producer,
            first: "monitor",
            second: "gateway"
        }));
        assert!(v.contains(&Violation::MissingArea {
            ring: "alerts",
            pd: "supervisor",
            role: Role::Consumer,
            area: Area::Header
        }));
        assert!(v.contains(&Violation::RegionMismatch {
            ring: "alerts",
            area: Area::Data,
            producer: "alerts_buf",
            consumer: "other_buf"
        }));

        let only_tx = [
            map("monitor", "h", "rw", "tx_solo_header"),
            map("monitor", "h", "rw", "tx_solo_data"),
        ];
        let v = violations(&only_tx, &[]);
        assert_eq!(
            v,
            vec![Violation::MissingEnd {
                ring: "solo",
                role: Role::Consumer
            }]
        );

        let loopback = [
            map("a", "h", "rw", "tx_l_header"),
            map("a", "h", "rw", "rx_l_data"),
        ];
        assert_eq!(
            violations(&loopback, &[]),
            vec![Violation::SamePd { ring: "l", pd: "a" }]
        );
    }

    #[test]
    fn one_region_for_header_and_data_is_rejected() {
        let maps = [
            map("p", "ring", "rw", "tx_r_header"),
            map("p", "ring", "rw", "tx_r_data"),
            map("c", "ring", "rw", "rx_r_header"),
            map("c", "ring", "r", "rx_r_data"),
        ];
        let chans = [Channel {
            a: "p",
            a_notifies: true,
            b: "c",
            b_notifies: true,
        }];
        let v = violations(&maps, &chans);
        assert!(v.contains(&Violation::HeaderIsData {
            ring: "r",
            region: "ring"
        }));
        assert!(v.contains(&Violation::ConsumerWritesData {
            ring: "r",
            pd: "c",
            region: "ring"
        }));
    }

    #[test]
    fn symbols_and_perms_parse() {
        assert_eq!(
            parse_symbol("tx_can_rx_header"),
            Some(RingSymbol {
                role: Role::Producer,
                ring: "can_rx",
                area: Area::Header
            })
        );
        assert_eq!(
            parse_symbol("rx_a_data"),
            Some(RingSymbol {
                role: Role::Consumer,
                ring: "a",
                area: Area::Data
            })
        );
        for bad in ["tx__header", "tx_a", "ab_a_data", "rx_a_datax", ""] {
            assert_eq!(parse_symbol(bad), None, "{bad}");
        }
        assert_eq!(Perms::parse("wr"), Some(Perms::RW));
        assert_eq!(Perms::parse("rr"), None);
        assert_eq!(Perms::parse("rq"), None);
        assert_eq!(Perms::RW.to_string(), "rw");
        assert_eq!(Perms::default().to_string(), "(none)");
    }
}
