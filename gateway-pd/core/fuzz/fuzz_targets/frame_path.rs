//! The per-frame path under arbitrary input: frames decoded from channel
//! bytes (any DLC/length/kind), bus frames, lifecycle events and L4
//! requests, in any order and timing, against a policy with masks,
//! signals, multiplexing, guards and rates. Invariants: no panic; an
//! allowed frame is well formed and matched by the allowing rule of its
//! own application; the audit log stays within its capacity.
#![no_main]

use gateway_core::policy::*;
use gateway_core::signal::{ByteOrder, Layout, MuxCond};
use gateway_core::{AppEvent, AppEventKind, Engine, Frame};
use libfuzzer_sys::fuzz_target;

fn policy() -> Policy {
    let sig = |name: &str, start, size, order, signed, mux| Signal {
        name: name.into(),
        layout: Layout {
            start,
            size,
            order,
            signed,
        },
        mux,
        factor: 1.0,
        offset: 0.0,
        unit: String::new(),
        values: vec![],
    };
    let rule = |app, dir, id, mask, ext| Rule {
        name: "r".into(),
        app,
        dir,
        ids: IdMatch {
            id,
            mask,
            extended: ext,
        },
        action: Action::Allow,
        remote: false,
        min_len: 0,
        constraints: vec![],
        guards: vec![],
        rate: None,
    };
    let mut rules = vec![
        rule(0, Dir::Send, 0x100, 0x7FF, false),
        rule(0, Dir::Send, 0x200, 0x700, false),
        rule(1, Dir::Send, 0x18DA_0000, 0x1FFF_0000, true),
        rule(1, Dir::Receive, 0x100, 0x700, false),
        rule(2, Dir::Send, 0x7E0, 0x7F8, false),
    ];
    rules[0].constraints = vec![
        Constraint {
            signal: 1,
            allowed: Allowed::Range { lo: -5, hi: 5 },
        },
        Constraint {
            signal: 2,
            allowed: Allowed::OneOf(vec![1, 3]),
        },
    ];
    rules[0].min_len = 4;
    rules[0].remote = true;
    rules[1].guards = vec![Guard {
        slot: 0,
        lo: 0,
        hi: 10,
        negate: false,
    }];
    rules[1].rate = Some(Rate {
        per_second: 100,
        burst: 3,
    });
    rules[2].guards = vec![Guard {
        slot: 0,
        lo: 5,
        hi: 5,
        negate: true,
    }];
    let mut deny = rule(2, Dir::Send, 0x7E5, 0x7FF, false);
    deny.action = Action::Deny;
    rules.push(deny);
    Policy {
        apps: (0..3)
            .map(|i| App {
                name: format!("a{i}"),
                budget: Rate {
                    per_second: 1000,
                    burst: 20,
                },
            })
            .collect(),
        rules,
        signals: vec![
            sig("M.mux", 0, 4, ByteOrder::Intel, false, None),
            sig(
                "M.s",
                15,
                12,
                ByteOrder::Motorola,
                true,
                Some(MuxCond {
                    switch: 0,
                    value: 2,
                }),
            ),
            sig("M.t", 24, 8, ByteOrder::Intel, false, None),
            sig("S.v", 32, 16, ByteOrder::Intel, false, None),
        ],
        state: vec![StateSlot {
            signal: 3,
            id: 0x50,
            extended: false,
        }],
        l4: vec![L4Rule {
            name: "l".into(),
            app: 1,
            proto: Proto::Tcp,
            op: L4Op::Listen,
            lo: 80,
            hi: 90,
        }],
        stale_after_us: 10_000,
        audit_capacity: 32,
        audit_rate: Rate {
            per_second: 50,
            burst: 5,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let p = policy();
    let cap = p.audit_capacity as usize;
    let mut e = Engine::new(p, 0).expect("fixed policy loads");
    let mut now = 0u64;
    let mut rest = data;
    while let [op, dt, tail @ ..] = rest {
        now += u64::from(*dt) * 50;
        rest = tail;
        let app = u16::from(op >> 4) % 4; // 3 = unknown application
        match op & 0x0F {
            0..=5 => {
                // A frame from the wire: header says how long it is.
                let len = usize::from(rest.first().copied().unwrap_or(0) % 16);
                let (bytes, tail) = rest.split_at(len.min(rest.len()));
                rest = tail;
                let Ok(f) = Frame::from_wire(bytes) else {
                    continue;
                };
                let d = match op & 0x0F {
                    0..=2 => e.check_send(app, &f, now),
                    3 | 4 => e.check_receive(app, &f, now),
                    _ => {
                        e.observe(&f, now);
                        continue;
                    }
                };
                if d.allowed() {
                    assert!(f.well_formed());
                    let r = &e.policy().rules[usize::from(d.rule.expect("allow names its rule"))];
                    assert_eq!(r.app, app);
                    assert!(r.ids.matches(f.id, f.extended));
                }
            }
            6..=8 => {
                let kind = match rest.first().copied().unwrap_or(0) % 4 {
                    0 => AppEventKind::Install,
                    1 => AppEventKind::Start,
                    2 => AppEventKind::Stop,
                    _ => AppEventKind::Remove,
                };
                let _ = e.on_event(AppEvent { app, kind });
            }
            _ => {
                let port = u16::from(rest.first().copied().unwrap_or(0));
                let _ = e.check_l4(app, Proto::Tcp, L4Op::Listen, port, now);
                assert!(e
                    .open_l4()
                    .all(|(_, r)| e.app_state(r.app) == Some(gateway_core::AppState::Running)));
            }
        }
        assert!(e.audit().len() <= cap);
    }
});
