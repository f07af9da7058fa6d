//! Replays a long candump log, generated here deterministically from the
//! real Toyota Prius DBC, through the engine running the example policy,
//! and checks every decision and the per-rule counts against an
//! independent model of what the policy says.
//!
//! The drive: parked, pull away, cruise with varying speed, a 1 s gap in
//! the speed frames (state goes stale), slow down, park again. Three guest
//! applications send throughout: lane-keeping torque requests (some out of
//! range, some truncated), dashboard HUD alerts (some not allowed) and
//! functional diagnostic requests (denied), diagnostics bursts (rate
//! limited, and only while parked). Error frames are sprinkled on the bus.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write;

use gateway_core::candump::{parse_line, write_line};
use gateway_core::{AppEvent, AppEventKind, Engine, Frame, FrameKind};
use gateway_policy::dbc::{Database, DbcMessage};

const SEC: u64 = 1_000_000;
const MS: u64 = 1_000;
const T0: u64 = 1_700_000_000 * SEC;

fn encode(m: &DbcMessage, values: &[(&str, i128)]) -> Frame {
    let mut data = [0u8; 8];
    for (name, raw) in values {
        m.signal(name)
            .unwrap_or_else(|| panic!("{} has no {name}", m.name))
            .layout
            .encode(*raw, &mut data);
    }
    Frame::data(m.id, m.extended, &data[..usize::from(m.size)]).unwrap()
}

/// Speed in raw units (0.0062 mph) over the drive, at time `t` ms.
fn speed_raw(t: u64) -> i128 {
    let mph = match t {
        0..=10_000 => 0.0,
        10_001..=20_000 => (t - 10_000) as f64 * 0.004, // 0 -> 40 mph
        20_001..=80_000 => 40.0 + 20.0 * (((t / 1000) % 7) as f64 / 7.0), // 40..60
        80_001..=95_000 => 40.0 - (t - 80_000) as f64 * 40.0 / 15_000.0, // -> 0
        _ => 0.0,
    };
    (mph / 0.0062).round() as i128
}

/// Gear: P until 9 s, D while moving, P from 97 s.
fn gear(t: u64) -> i128 {
    if (9_000..97_000).contains(&t) {
        3
    } else {
        0
    }
}

struct Model {
    speed: Option<(i128, u64)>,
    gear: Option<(i128, u64)>,
}

impl Model {
    fn fresh(v: Option<(i128, u64)>, now: u64) -> Option<i128> {
        v.filter(|(_, at)| now - at <= 500 * MS).map(|(v, _)| v)
    }
}

#[test]
fn replay_drive_log_through_example_policy() {
    let db = Database::load(&[common::dbc("toyota_prius_2010_pt.dbc")]).unwrap();
    let text = std::fs::read_to_string(common::example()).unwrap();
    let compiled =
        gateway_policy::compile(&common::example(), &text, &db).expect("example policy compiles");
    let policy = compiled.policy;
    let rule = |n: &str| policy.rules.iter().position(|r| r.name == n).unwrap() as u16;
    let app = |n: &str| policy.apps.iter().position(|a| a.name == n).unwrap() as u16;
    let msg = |n: &str| db.by_name(n)[0].clone();
    let (speed_m, gear_m, angle_m, lka_m, hud_m) = (
        msg("SPEED"),
        msg("GEAR_PACKET"),
        msg("STEER_ANGLE_SENSOR"),
        msg("STEERING_LKA"),
        msg("LKAS_HUD"),
    );

    // ---- generate the log
    let mut log = String::new();
    let mut line = |at: u64, iface: &str, f: &Frame| {
        write_line(&mut log, T0 + at, iface, f).unwrap();
        log.push('\n');
    };
    for ms in 0..100_000u64 {
        let t = ms * MS;
        // Speed at 50 Hz, except for a 1 s gap at 60 s.
        if ms % 20 == 0 && !(60_000..61_000).contains(&ms) {
            line(
                t,
                "can0",
                &encode(
                    &speed_m,
                    &[
                        ("SPEED", speed_raw(ms)),
                        ("ENCODER", (ms / 20 % 256) as i128),
                    ],
                ),
            );
        }
        if ms % 100 == 5 {
            line(
                t,
                "can0",
                &encode(
                    &gear_m,
                    &[("GEAR", gear(ms)), ("COUNTER", (ms / 100 % 256) as i128)],
                ),
            );
        }
        if ms % 10 == 3 {
            line(
                t,
                "can0",
                &encode(
                    &angle_m,
                    &[("STEER_ANGLE", ((ms / 10) % 200) as i128 - 100)],
                ),
            );
        }
        if ms % 1_337 == 0 {
            let mut e = Frame::data(0x004, true, &[0, 4, 0, 0, 0, 0, 0, 0]).unwrap();
            e.kind = FrameKind::Error;
            line(t, "can0", &e);
        }
        // Lane keeping at 50 Hz, torque sweeping -2000..=2000; every 97th truncated.
        if ms % 20 == 7 {
            let k = ms / 20;
            let torque = ((k * 37) % 4001) as i128 - 2000;
            let mut f = encode(
                &lka_m,
                &[("STEER_TORQUE_CMD", torque), ("STEER_REQUEST", 1)],
            );
            if k % 97 == 0 {
                f = Frame::data(f.id, false, &f.data[..4]).unwrap();
            }
            line(t, "lka", &f);
        }
        // Dashboard HUD at 5 Hz; alert cycles 0..3, barriers set every 7th.
        if ms % 200 == 11 {
            let k = ms / 200;
            line(
                t,
                "dash",
                &encode(
                    &hud_m,
                    &[
                        ("LDA_ALERT", (k % 4) as i128),
                        ("BARRIERS", i128::from(k % 7 == 0)),
                    ],
                ),
            );
        }
        if ms % 2_000 == 13 {
            line(
                t,
                "dash",
                &Frame::data(0x7DF, false, &[2, 1, 0, 0, 0, 0, 0, 0]).unwrap(),
            );
        }
        // Diagnostics: a burst of 8 requests every second.
        if ms % 1_000 == 17 {
            for i in 0..8u32 {
                line(
                    t,
                    "diag",
                    &Frame::data(0x7E0 + (i % 8), false, &[2, 0x3E, 0, 0, 0, 0, 0, 0]).unwrap(),
                );
            }
        }
    }
    let lines = log.lines().count();
    assert!(lines > 20_000, "log too short: {lines}");

    // ---- replay it
    let mut engine = Engine::new(policy.clone(), T0).unwrap();
    for a in 0..policy.apps.len() as u16 {
        engine
            .on_event(AppEvent {
                app: a,
                kind: AppEventKind::Install,
            })
            .unwrap();
        engine
            .on_event(AppEvent {
                app: a,
                kind: AppEventKind::Start,
            })
            .unwrap();
    }
    let mut model = Model {
        speed: None,
        gear: None,
    };
    let mut expected: BTreeMap<(u16, bool), u64> = BTreeMap::new();
    let mut expected_default = vec![0u64; policy.apps.len()];
    let mut diag_tokens_at_burst = 0u32;
    let mut last_diag_ts = 0u64;
    for (n, l) in log.lines().enumerate() {
        let p = parse_line(l).unwrap_or_else(|e| panic!("line {}: {e:?}: {l}", n + 1));
        let (now, f) = (p.at_us, p.frame);
        let t = now - T0;
        match p.iface {
            "can0" => {
                engine.observe(&f, now);
                if f.kind == FrameKind::Data {
                    if f.id == speed_m.id {
                        model.speed =
                            Some((speed_m.signal("SPEED").unwrap().layout.decode(&f.data), t));
                    } else if f.id == gear_m.id {
                        model.gear =
                            Some((gear_m.signal("GEAR").unwrap().layout.decode(&f.data), t));
                    }
                }
                for (a, who) in ["lka-assist", "dashboard", "diagnostics"]
                    .iter()
                    .enumerate()
                {
                    let d = engine.check_receive(app(who), &f, now);
                    let want = match (f.kind, *who, f.id) {
                        (FrameKind::Error, _, _) => None,
                        (_, "lka-assist", 0x25) => Some(rule("lka-sees-steering")),
                        (_, "lka-assist", 0xB4) => Some(rule("lka-sees-speed")),
                        (_, "dashboard", 0xB4) => Some(rule("dash-speed")),
                        (_, "dashboard", 0x127) => Some(rule("dash-gear")),
                        (_, "diagnostics", 0x7E8..=0x7EF) => Some(rule("diag-responses")),
                        _ => {
                            expected_default[a] += 1;
                            None
                        }
                    };
                    assert_eq!(
                        d.allowed(),
                        want.is_some(),
                        "line {}: receive by {who}: {d:?}",
                        n + 1
                    );
                    if let Some(r) = want {
                        assert_eq!(d.rule, Some(r));
                        *expected.entry((r, true)).or_default() += 1;
                    }
                }
            }
            "lka" => {
                let d = engine.check_send(app("lka-assist"), &f, now);
                let torque = lka_m
                    .signal("STEER_TORQUE_CMD")
                    .unwrap()
                    .layout
                    .decode(&f.data);
                let ok = f.len == 8
                    && (-1500..=1500).contains(&torque)
                    && Model::fresh(model.gear, t) == Some(3)
                    && Model::fresh(model.speed, t).is_some_and(|s| s as f64 * 0.0062 > 5.0);
                assert_eq!(d.allowed(), ok, "line {}: {l}: {d:?}", n + 1);
                assert_eq!(d.rule, Some(rule("lka-steer")));
                *expected.entry((rule("lka-steer"), ok)).or_default() += 1;
            }
            "dash" if f.id == 0x7DF => {
                let d = engine.check_send(app("dashboard"), &f, now);
                assert_eq!(d.rule, Some(rule("dash-no-diag")));
                assert!(!d.allowed());
                *expected.entry((rule("dash-no-diag"), false)).or_default() += 1;
            }
            "dash" => {
                let d = engine.check_send(app("dashboard"), &f, now);
                let alert = hud_m.signal("LDA_ALERT").unwrap().layout.decode(&f.data);
                let barriers = hud_m.signal("BARRIERS").unwrap().layout.decode(&f.data);
                let ok = alert <= 1 && barriers == 0;
                assert_eq!(d.allowed(), ok, "line {}: {l}: {d:?}", n + 1);
                *expected.entry((rule("dash-hud"), ok)).or_default() += 1;
            }
            "diag" => {
                let d = engine.check_send(app("diagnostics"), &f, now);
                if now != last_diag_ts {
                    last_diag_ts = now;
                    diag_tokens_at_burst = 5; // a second of quiet refills the burst of 5
                }
                let parked = Model::fresh(model.gear, t) == Some(0)
                    && Model::fresh(model.speed, t).is_some_and(|s| (s as f64 * 0.0062) < 0.1);
                let ok = parked && diag_tokens_at_burst > 0;
                if ok {
                    diag_tokens_at_burst -= 1;
                }
                assert_eq!(d.allowed(), ok, "line {}: {l}: {d:?}", n + 1);
                *expected.entry((rule("diag-requests"), ok)).or_default() += 1;
                if ok {
                    // The ECU answers: a response frame on the bus.
                    let resp = Frame::data(f.id + 8, false, &[6, 0x7E, 0, 0, 0, 0, 0, 0]).unwrap();
                    assert!(engine
                        .check_receive(app("diagnostics"), &resp, now)
                        .allowed());
                    *expected.entry((rule("diag-responses"), true)).or_default() += 1;
                }
            }
            other => panic!("unexpected interface {other}"),
        }
    }

    // ---- per-rule counts
    for (i, s) in engine.stats().iter().enumerate() {
        let i = i as u16;
        let want = (
            expected.get(&(i, true)).copied().unwrap_or(0),
            expected.get(&(i, false)).copied().unwrap_or(0),
        );
        assert_eq!(
            (s.allowed, s.denied),
            want,
            "rule `{}`",
            policy.rules[usize::from(i)].name
        );
    }
    assert_eq!(engine.default_denied(), &expected_default[..]);
    // The scenario exercised every branch it claims to.
    let count = |r: &str, ok: bool| expected.get(&(rule(r), ok)).copied().unwrap_or(0);
    for (r, ok) in [
        ("lka-steer", true),
        ("lka-steer", false),
        ("dash-hud", true),
        ("dash-hud", false),
        ("diag-requests", true),
        ("diag-requests", false),
        ("dash-no-diag", false),
    ] {
        assert!(count(r, ok) > 0, "scenario never produced {r} {ok}");
    }
    let mut summary = String::new();
    for (i, s) in engine.stats().iter().enumerate() {
        let _ = writeln!(
            summary,
            "{:>16}: allowed {:>6}, denied {:>6}",
            policy.rules[i].name, s.allowed, s.denied
        );
    }
    println!("{lines} log lines\n{summary}");
    // Audit memory stayed bounded.
    assert!(engine.audit().len() <= policy.audit_capacity as usize);
}
