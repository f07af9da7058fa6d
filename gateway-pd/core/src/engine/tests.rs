//! Engine tests: each rule kind, lifecycle, hostile input, and properties
//! (index agrees with a linear scan; unrelated rules change nothing; denied
//! frames are never forwarded).

use super::*;
use crate::policy::*;
use crate::signal::{ByteOrder, Layout, MuxCond};
use alloc::string::String;
use proptest::prelude::*;

const SEC: u64 = 1_000_000;

fn app(name: &str) -> App {
    App {
        name: name.into(),
        budget: Rate {
            per_second: 1000,
            burst: 100,
        },
    }
}

fn rule(app: u16, dir: Dir, id: u32, mask: u32, extended: bool) -> Rule {
    Rule {
        name: String::from("r"),
        app,
        dir,
        ids: IdMatch { id, mask, extended },
        action: Action::Allow,
        remote: false,
        min_len: 0,
        constraints: vec![],
        guards: vec![],
        rate: None,
    }
}

fn exact(app: u16, id: u32) -> Rule {
    rule(app, Dir::Send, id, 0x7FF, false)
}

fn sig(name: &str, start: u8, size: u8, mux: Option<MuxCond>) -> Signal {
    Signal {
        name: name.into(),
        layout: Layout {
            start,
            size,
            order: ByteOrder::Intel,
            signed: false,
        },
        mux,
        factor: 1.0,
        offset: 0.0,
        unit: String::new(),
        values: vec![],
    }
}

fn policy(apps: usize, rules: Vec<Rule>) -> Policy {
    Policy {
        apps: (0..apps).map(|i| app(&alloc::format!("app{i}"))).collect(),
        rules,
        signals: vec![],
        state: vec![],
        l4: vec![],
        stale_after_us: SEC,
        audit_capacity: 8,
        audit_rate: Rate {
            per_second: 10,
            burst: 4,
        },
    }
}

fn running(p: Policy) -> Engine {
    let n = p.apps.len() as u16;
    let mut e = Engine::new(p, 0).unwrap();
    for a in 0..n {
        e.on_event(AppEvent {
            app: a,
            kind: AppEventKind::Install,
        })
        .unwrap();
        e.on_event(AppEvent {
            app: a,
            kind: AppEventKind::Start,
        })
        .unwrap();
    }
    e
}

fn data(id: u32, bytes: &[u8]) -> Frame {
    Frame::data(id, false, bytes).unwrap()
}

#[test]
fn default_deny_and_rule_attribution() {
    let mut e = running(policy(2, vec![exact(0, 0x100), exact(1, 0x200)]));
    let d = e.check_send(0, &data(0x100, &[1]), 0);
    assert_eq!(
        d,
        Decision {
            verdict: Verdict::Allow,
            rule: Some(0),
            reason: Reason::Allowed
        }
    );
    // Another application's id is not ours.
    assert_eq!(
        e.check_send(0, &data(0x200, &[1]), 0),
        Decision::deny(None, Reason::NoRule)
    );
    assert_eq!(e.check_send(1, &data(0x200, &[]), 0).rule, Some(1));
    // Receive direction has no rules: denied.
    assert_eq!(
        e.check_receive(0, &data(0x100, &[]), 0).reason,
        Reason::NoRule
    );
    assert_eq!(e.stats()[0].allowed, 1);
    assert_eq!(e.default_denied(), &[2, 0]);
    assert_eq!(e.audit().len(), 2);
}

#[test]
fn masks_and_formats() {
    let rules = vec![
        rule(0, Dir::Send, 0x300, 0x7F0, false), // 0x300..=0x30F standard
        rule(0, Dir::Send, 0x300, 0x1FFF_FFFF, true), // extended 0x300 only
        rule(0, Dir::Receive, 0x1800_0000, 0x1F00_0000, true),
    ];
    let mut e = running(policy(1, rules));
    assert_eq!(e.check_send(0, &data(0x30F, &[]), 0).rule, Some(0));
    assert!(!e.check_send(0, &data(0x310, &[]), 0).allowed());
    let ext = Frame::data(0x300, true, &[]).unwrap();
    assert_eq!(e.check_send(0, &ext, 0).rule, Some(1));
    let ext2 = Frame::data(0x301, true, &[]).unwrap();
    assert!(!e.check_send(0, &ext2, 0).allowed());
    let rx = Frame::data(0x18AB_CDEF, true, &[]).unwrap();
    assert_eq!(e.check_receive(0, &rx, 0).rule, Some(2));
    assert!(!e.check_send(0, &rx, 0).allowed());
}

#[test]
fn deny_rule_takes_precedence() {
    let mut deny = exact(0, 0x305);
    deny.action = Action::Deny;
    let mut e = running(policy(
        1,
        vec![rule(0, Dir::Send, 0x300, 0x7F0, false), deny],
    ));
    assert_eq!(
        e.check_send(0, &data(0x305, &[]), 0),
        Decision::deny(Some(1), Reason::DenyRule)
    );
    assert!(e.check_send(0, &data(0x306, &[]), 0).allowed());
}

#[test]
fn signal_constraints_and_mux() {
    let mut p = policy(1, vec![]);
    // 0: a 4-bit multiplexor in byte 0; 1: 8-bit signal in byte 1 under mux 2;
    // 2: a plain 8-bit signal in byte 2.
    p.signals = vec![
        sig("M.mux", 0, 4, None),
        sig(
            "M.under2",
            8,
            8,
            Some(MuxCond {
                switch: 0,
                value: 2,
            }),
        ),
        sig("M.plain", 16, 8, None),
    ];
    let mut r = exact(0, 0x123);
    r.min_len = 3;
    r.constraints = vec![
        Constraint {
            signal: 1,
            allowed: Allowed::Range { lo: 10, hi: 20 },
        },
        Constraint {
            signal: 2,
            allowed: Allowed::OneOf(vec![1, 3]),
        },
    ];
    p.rules = vec![r];
    let mut e = running(p);
    assert!(e.check_send(0, &data(0x123, &[2, 15, 3]), 0).allowed());
    assert_eq!(
        e.check_send(0, &data(0x123, &[2, 21, 3]), 0).reason,
        Reason::SignalNotAllowed(1)
    );
    assert_eq!(
        e.check_send(0, &data(0x123, &[2, 15, 2]), 0).reason,
        Reason::SignalNotAllowed(2)
    );
    // Under another mux value, signal 1 is absent and constrains nothing.
    assert!(e.check_send(0, &data(0x123, &[5, 99, 1]), 0).allowed());
    // Too short for the message.
    assert_eq!(
        e.check_send(0, &data(0x123, &[2, 15]), 0).reason,
        Reason::TooShort
    );
}

#[test]
fn constrained_signal_cut_off_fails_closed() {
    let mut p = policy(1, vec![]);
    p.signals = vec![
        sig("M.mux", 0, 4, None),
        sig(
            "M.under2",
            8,
            8,
            Some(MuxCond {
                switch: 0,
                value: 2,
            }),
        ),
        sig("M.plain", 16, 8, None),
    ];
    let mut r = exact(0, 0x123);
    // No minimum length: the constraint itself must refuse a frame that
    // does not carry the signal, rather than skip it.
    r.constraints = vec![
        Constraint {
            signal: 1,
            allowed: Allowed::Range { lo: 0, hi: 1 },
        },
        Constraint {
            signal: 2,
            allowed: Allowed::Range { lo: 0, hi: 1 },
        },
    ];
    p.rules = vec![r];
    let mut e = running(p);
    assert_eq!(
        e.check_send(0, &data(0x123, &[2, 1]), 0).reason,
        Reason::TooShort
    );
    assert_eq!(
        e.check_send(0, &data(0x123, &[]), 0).reason,
        Reason::TooShort
    );
    // Mux 2 selected but its signal cut off: too short as well.
    assert_eq!(
        e.check_send(0, &data(0x123, &[2]), 0).reason,
        Reason::TooShort
    );
    assert!(e.check_send(0, &data(0x123, &[2, 1, 0]), 0).allowed());
    // Another mux value: signal 1 is absent and constrains nothing.
    assert!(e.check_send(0, &data(0x123, &[3, 99, 1]), 0).allowed());
}

#[test]
fn guards_follow_vehicle_state_and_go_stale() {
    let mut p = policy(1, vec![]);
    p.signals = vec![sig("Speed.v", 0, 16, None)];
    p.state = vec![StateSlot {
        signal: 0,
        id: 0x50,
        extended: false,
    }];
    let mut r = exact(0, 0x123);
    r.guards = vec![Guard {
        slot: 0,
        lo: 0,
        hi: 0,
        negate: false,
    }];
    p.rules = vec![r];
    let mut e = running(p);
    let f = data(0x123, &[]);
    assert_eq!(e.check_send(0, &f, 0).reason, Reason::StateUnknown(0));
    e.observe(&data(0x50, &[0, 0]), 10);
    assert!(e.check_send(0, &f, 20).allowed());
    e.observe(&data(0x50, &[5, 0]), 30);
    assert_eq!(e.check_send(0, &f, 40).reason, Reason::GuardFailed(0));
    e.observe(&data(0x50, &[0, 0]), 50);
    assert!(e.check_send(0, &f, 60).allowed());
    // A frame too short to carry the signal does not update the state.
    e.observe(&data(0x50, &[9]), 70);
    assert!(e.check_send(0, &f, 80).allowed());
    // The bus goes quiet: the value goes stale and the guard fails closed.
    assert_eq!(
        e.check_send(0, &f, 50 + SEC + 1).reason,
        Reason::StateUnknown(0)
    );
}

#[test]
fn per_rule_rate_limit() {
    let mut r = exact(0, 0x100);
    r.rate = Some(Rate {
        per_second: 10,
        burst: 2,
    });
    let mut e = running(policy(1, vec![r]));
    let f = data(0x100, &[]);
    assert!(e.check_send(0, &f, 0).allowed());
    assert!(e.check_send(0, &f, 0).allowed());
    assert_eq!(
        e.check_send(0, &f, 0),
        Decision::deny(Some(0), Reason::RateLimited)
    );
    assert!(e.check_send(0, &f, SEC / 10).allowed());
}

#[test]
fn second_allow_rule_can_pass_what_the_first_rate_limits() {
    let mut r0 = exact(0, 0x100);
    r0.rate = Some(Rate {
        per_second: 0,
        burst: 1,
    });
    let mut e = running(policy(1, vec![r0, rule(0, Dir::Send, 0x100, 0x700, false)]));
    let f = data(0x100, &[]);
    assert_eq!(e.check_send(0, &f, 0).rule, Some(0));
    assert_eq!(e.check_send(0, &f, 0).rule, Some(1));
}

#[test]
fn lifecycle_and_l4() {
    let mut p = policy(2, vec![exact(0, 0x100)]);
    p.l4 = vec![
        L4Rule {
            name: "https".into(),
            app: 0,
            proto: Proto::Tcp,
            op: L4Op::Connect,
            lo: 443,
            hi: 443,
        },
        L4Rule {
            name: "diag".into(),
            app: 1,
            proto: Proto::Udp,
            op: L4Op::Listen,
            lo: 13400,
            hi: 13410,
        },
    ];
    let mut e = Engine::new(p, 0).unwrap();
    let ev = |app, kind| AppEvent { app, kind };
    assert_eq!(
        e.check_send(0, &data(0x100, &[]), 0).reason,
        Reason::AppNotRunning
    );
    assert_eq!(
        e.on_event(ev(0, AppEventKind::Start)),
        Err(EventError::BadTransition(AppState::Absent))
    );
    assert_eq!(
        e.on_event(ev(9, AppEventKind::Install)),
        Err(EventError::UnknownApp)
    );
    e.on_event(ev(0, AppEventKind::Install)).unwrap();
    assert_eq!(e.open_l4().count(), 0);
    e.on_event(ev(0, AppEventKind::Start)).unwrap();
    assert_eq!(e.open_l4().map(|(i, _)| i).collect::<Vec<_>>(), vec![0]);
    assert_eq!(
        e.check_l4(0, Proto::Tcp, L4Op::Connect, 443, 0).rule,
        Some(0)
    );
    assert!(!e.check_l4(0, Proto::Udp, L4Op::Connect, 443, 0).allowed());
    assert!(!e.check_l4(0, Proto::Tcp, L4Op::Listen, 443, 0).allowed());
    assert_eq!(
        e.check_l4(1, Proto::Udp, L4Op::Listen, 13405, 0).reason,
        Reason::AppNotRunning
    );
    e.on_event(ev(1, AppEventKind::Install)).unwrap();
    e.on_event(ev(1, AppEventKind::Start)).unwrap();
    assert!(e.check_l4(1, Proto::Udp, L4Op::Listen, 13405, 0).allowed());
    assert!(!e.check_l4(1, Proto::Udp, L4Op::Listen, 13411, 0).allowed());
    e.on_event(ev(0, AppEventKind::Stop)).unwrap();
    assert_eq!(e.open_l4().map(|(i, _)| i).collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        e.check_l4(0, Proto::Tcp, L4Op::Connect, 443, 0).reason,
        Reason::AppNotRunning
    );
    assert!(!e.check_send(0, &data(0x100, &[]), 0).allowed());
    // Remove while running closes its ports at once.
    e.on_event(ev(1, AppEventKind::Remove)).unwrap();
    assert_eq!(e.open_l4().count(), 0);
}

#[test]
fn malformed_error_and_remote_frames() {
    let mut remote_ok = exact(0, 0x101);
    remote_ok.remote = true;
    let mut e = running(policy(1, vec![exact(0, 0x100), remote_ok]));
    let mut f = data(0x100, &[1, 2]);
    f.dlc = 8;
    assert_eq!(e.check_send(0, &f, 0).reason, Reason::Malformed);
    let mut big = data(0x100, &[]);
    big.len = 200;
    assert_eq!(e.check_send(0, &big, 0).reason, Reason::Malformed);
    let mut bad_id = data(0x100, &[]);
    bad_id.id = 0x800;
    assert_eq!(e.check_send(0, &bad_id, 0).reason, Reason::Malformed);
    let mut err = data(0x100, &[]);
    err.kind = FrameKind::Error;
    assert_eq!(e.check_send(0, &err, 0).reason, Reason::ErrorFrame);
    assert_eq!(e.check_receive(0, &err, 0).reason, Reason::ErrorFrame);
    let rtr = |id| Frame {
        id,
        extended: false,
        kind: FrameKind::Remote,
        dlc: 2,
        len: 0,
        data: [0; 8],
    };
    assert_eq!(
        e.check_send(0, &rtr(0x100), 0).reason,
        Reason::RemoteNotAllowed
    );
    assert!(e.check_send(0, &rtr(0x101), 0).allowed());
    // Unknown application index.
    assert_eq!(
        e.check_send(7, &data(0x100, &[]), 0).reason,
        Reason::UnknownApp
    );
    // Error and malformed frames never update state.
    e.observe(&err, 0);
    e.observe(&f, 0);
}

#[test]
fn babbling_app_cannot_starve_others() {
    let mut p = policy(2, vec![exact(0, 0x100), exact(1, 0x200)]);
    p.apps[0].budget = Rate {
        per_second: 100,
        burst: 10,
    };
    p.apps[1].budget = Rate {
        per_second: 100,
        burst: 10,
    };
    p.audit_capacity = 16;
    p.audit_rate = Rate {
        per_second: 5,
        burst: 5,
    };
    let mut e = running(p);
    let good = data(0x200, &[1]);
    let mut sent_by_1 = 0;
    let mut sent_by_0 = 0;
    // One simulated second: app 0 sends garbage and valid frames as fast as
    // it can (100 per ms); app 1 sends one valid frame every 20 ms.
    for ms in 0..1000u64 {
        let now = ms * 1000;
        for k in 0..100u32 {
            let f = if k % 2 == 0 {
                data(0x100, &[])
            } else {
                data(0x7FF - (k % 50), &[0; 8])
            };
            if e.check_send(0, &f, now).allowed() {
                sent_by_0 += 1;
            }
        }
        if ms % 20 == 0 && e.check_send(1, &good, now).allowed() {
            sent_by_1 += 1;
        }
    }
    assert_eq!(
        sent_by_1, 50,
        "the quiet application lost frames to the babbler"
    );
    // The babbler got no more than its budget.
    assert!(sent_by_0 <= 10 + 100, "babbler passed {sent_by_0}");
    // Audit memory stayed bounded; the flood was counted, not stored.
    assert!(e.audit().len() <= 16);
    assert!(e.audit().suppressed > 90_000);
}

#[test]
fn audit_keeps_each_apps_share() {
    let mut p = policy(2, vec![]);
    p.audit_capacity = 8;
    p.audit_rate = Rate {
        per_second: 1,
        burst: 3,
    };
    let mut e = running(p);
    for _ in 0..1000 {
        e.check_send(0, &data(0x1, &[]), 0);
    }
    e.check_send(1, &data(0x2, &[]), 0);
    let apps: Vec<u16> = e.audit().entries().map(|a| a.app).collect();
    assert_eq!(apps, vec![0, 0, 0, 1]);
    assert_eq!(e.audit().suppressed, 997);
}

// ---------------------------------------------------------------- properties

fn arb_rule(apps: u16) -> impl Strategy<Value = Rule> {
    (
        0..apps,
        any::<bool>(),
        0u32..16,
        prop_oneof![Just(0x7FFu32), Just(0x7F0), Just(0x70C)],
        any::<bool>(),
        proptest::option::of((0u32..50, 1u32..4)),
        0u8..3,
    )
        .prop_map(|(app, send, id, mask, deny, rate, min_len)| {
            let mut r = rule(
                app,
                if send { Dir::Send } else { Dir::Receive },
                0x100 + id,
                mask,
                false,
            );
            r.action = if deny && id % 5 == 0 {
                Action::Deny
            } else {
                Action::Allow
            };
            r.rate = rate.map(|(per_second, burst)| Rate { per_second, burst });
            r.min_len = min_len;
            r
        })
}

fn arb_frame() -> impl Strategy<Value = (u16, bool, u32, u8, u64)> {
    (0u16..3, any::<bool>(), 0u32..20, 0u8..4, 0u64..5000)
}

proptest! {
    /// The index and a linear scan of the same rules agree on every
    /// decision, buckets included.
    #[test]
    fn index_agrees_with_linear_scan(rules in proptest::collection::vec(arb_rule(3), 0..40),
                                     frames in proptest::collection::vec(arb_frame(), 1..200)) {
        let mut a = running(policy(3, rules.clone()));
        let mut b = running(policy(3, rules));
        let mut now = 0;
        for (app, send, id, len, dt) in frames {
            now += dt;
            let f = data(0x100 + id, &[0u8; 3][..usize::from(len.min(3))]);
            let (da, db) = if send {
                (a.check_send(app, &f, now), b.decide_linear(app, Dir::Send, &f, now))
            } else {
                (a.check_receive(app, &f, now), b.decide_linear(app, Dir::Receive, &f, now))
            };
            prop_assert_eq!(da, db);
        }
    }

    /// Adding a rule that matches none of the frames changes no decision
    /// (only the deciding rule's index shifts past the insertion point).
    /// "None of the frames" matters: a rule that takes some frames away
    /// from a rate-limited rule shifts that bucket's timing for the rest.
    #[test]
    fn unrelated_rule_changes_nothing(rules in proptest::collection::vec(arb_rule(2), 0..30),
                                      extra in arb_rule(3), frames in proptest::collection::vec(arb_frame(), 1..100)) {
        let mut with = rules.clone();
        let pos = (with.len() / 2) as u16;
        with.insert(usize::from(pos), extra.clone());
        let mut a = running(policy(3, rules));
        let mut b = running(policy(3, with));
        let mut now = 0;
        for (app, _, id, len, dt) in frames {
            now += dt;
            let f = data(0x100 + id, &[0u8; 3][..usize::from(len.min(3))]);
            if extra.app == app && extra.dir == Dir::Send && extra.ids.matches(f.id, false) {
                continue;
            }
            let da = a.check_send(app, &f, now);
            let mut db = b.check_send(app, &f, now);
            db.rule = db.rule.map(|r| if r > pos { r - 1 } else { r });
            prop_assert_eq!(da, db);
        }
    }

    /// Only allowed frames reach the transmit callback, each exactly once,
    /// and every forwarded frame matches the rule that allowed it.
    #[test]
    fn denied_frames_are_never_sent(rules in proptest::collection::vec(arb_rule(2), 0..30),
                                    frames in proptest::collection::vec(arb_frame(), 1..200),
                                    garble in proptest::collection::vec(any::<u8>(), 200)) {
        let mut e = running(policy(2, rules));
        let mut now = 0;
        let (mut allowed, mut sent) = (0, 0);
        for (i, (app, _, id, len, dt)) in frames.into_iter().enumerate() {
            now += dt;
            let mut f = data(0x100 + id, &[0u8; 3][..usize::from(len.min(3))]);
            match garble[i % garble.len()] % 8 {
                0 => f.dlc = f.dlc.wrapping_add(1),
                1 => f.kind = FrameKind::Error,
                2 => f.kind = FrameKind::Remote,
                _ => {}
            }
            let mut out = None;
            let d = e.forward_send(app, &f, now, |x| { sent += 1; out = Some(*x) });
            if d.allowed() {
                allowed += 1;
                let r = &e.policy().rules[usize::from(d.rule.unwrap())];
                prop_assert_eq!(out, Some(f));
                prop_assert!(r.app == app && r.action == Action::Allow && r.ids.matches(f.id, f.extended));
                prop_assert!(f.well_formed() && f.kind != FrameKind::Error);
            } else {
                prop_assert_eq!(out, None);
            }
        }
        prop_assert_eq!(allowed, sent);
    }
}
