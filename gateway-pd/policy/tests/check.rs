//! `check` diagnostics: each class of mistake is reported at its line,
//! with a fix where one is clear; the example policy is clean and survives
//! the round trip through its binary form.

mod common;

use std::path::Path;

use gateway_policy::{compile, Database, Diag, Severity};

fn db() -> Database {
    Database::load(&[common::dbc("toyota_prius_2010_pt.dbc")]).unwrap()
}

const APPS: &str = "[[app]]\nname = \"dash\"\n[[app]]\nname = \"diag\"\n";

/// Compiles `APPS + body` and returns the errors.
fn errors(body: &str) -> Vec<Diag> {
    let text = format!("{APPS}{body}");
    match compile(Path::new("t.toml"), &text, &db()) {
        Ok(c) => panic!("expected errors, compiled: {:?}", c.policy.rules),
        Err(d) => d,
    }
}

fn one(body: &str, line: usize, has: &str, help: Option<&str>) {
    let d = errors(body);
    let hit = d
        .iter()
        .find(|d| d.message.contains(has))
        .unwrap_or_else(|| panic!("no `{has}` in {d:#?}"));
    assert_eq!(hit.severity, Severity::Error);
    assert_eq!(hit.line, line, "{hit}");
    if let Some(h) = help {
        assert!(
            hit.help.as_deref().unwrap_or("").contains(h),
            "help of {hit}"
        );
    }
    assert!(hit.to_string().starts_with(&format!("t.toml:{line}:")));
}

const RULE: &str = "[[can]]\nname = \"r\"\napp = \"dash\"\ndir = \"send\"\n"; // lines 5-8

#[test]
fn unknown_names_are_located_with_suggestions() {
    one(
        "[[can]]\nname = \"r\"\napp = \"dahs\"\ndir = \"send\"\nid = 1\n",
        7,
        "unknown application `dahs`",
        Some("`dash`"),
    );
    one(
        &format!("{RULE}message = \"SPEEED\"\n"),
        9,
        "unknown message `SPEEED`",
        Some("`SPEED`"),
    );
    one(
        &format!("{RULE}message = \"GEAR_PACKET\"\nsignals = {{ GAER = \"P\" }}\n"),
        10,
        "no signal `GAER`",
        Some("`GEAR`"),
    );
    one(
        &format!("{RULE}message = \"GEAR_PACKET\"\nsignals = {{ GEAR = [\"P\", \"X\"] }}\n"),
        10,
        "`X` is not a value name",
        Some("P, R, N, D, B"),
    );
    one(
        &format!("{RULE}id = 1\nwhen = [\"SPEED.SPEEDY > 1\"]\n"),
        10,
        "no signal `SPEEDY`",
        Some("`SPEED.SPEED`"),
    );
    one(
        &format!("{RULE}id = 1\nwhen = [\"GEAR_PACKET.GEAR == Q\"]\n"),
        10,
        "neither a number nor a value name",
        Some("P, R, N, D, B"),
    );
    // A signal name in several messages must be qualified.
    one(
        &format!("{RULE}id = 1\nwhen = [\"CHECKSUM == 1\"]\n"),
        10,
        "is in several messages",
        Some("`SPEED.CHECKSUM`"),
    );
    one(
        &format!("{RULE}id = 1\nfoo = 2\n"),
        10,
        "unknown field `foo`",
        None,
    );
}

#[test]
fn ids_and_rates_out_of_range() {
    one(
        &format!("{RULE}id = 0x800\n"),
        9,
        "id 0x800 is out of range",
        Some("extended = true"),
    );
    one(
        &format!("{RULE}id = 0x20000000\nextended = true\n"),
        9,
        "out of range",
        Some("0x1FFFFFFF"),
    );
    one(
        &format!("{RULE}id = 0x100\nmask = 0xF00\n"),
        10,
        "mask 0xF00 has bits outside",
        None,
    );
    one(
        &format!("{RULE}id = 1\nrate = {{ per_second = 5, burst = 0 }}\n"),
        10,
        "burst = 0",
        Some("at least 1"),
    );
    one(
        &format!("{RULE}message = \"SPEED\"\nid = 5\n"),
        10,
        "not both",
        None,
    );
    one(RULE, 6, "matches nothing", Some("message"));
    one(&format!("{RULE}dir = \"up\"\n"), 9, "duplicate key", None);
}

#[test]
fn impossible_guards_and_constraints() {
    // Unsigned speed below 0.
    one(
        &format!("{RULE}id = 1\nwhen = [\"SPEED.SPEED < 0\"]\n"),
        10,
        "can never hold",
        Some("fix the value"),
    );
    // Resolution: 0.0062 mph steps, 0.001 is between steps.
    one(
        &format!("{RULE}id = 1\nwhen = [\"SPEED.SPEED == 0.001\"]\n"),
        10,
        "can never be 0.001",
        None,
    );
    // Contradicting guards of one rule.
    one(
        &format!("{RULE}id = 1\nwhen = [\"SPEED.SPEED > 10\", \"SPEED.SPEED < 5\"]\n"),
        10,
        "contradict each other",
        None,
    );
    // A range that no raw value reaches (8-bit unsigned signal, 0..=255).
    one(&format!("{RULE}message = \"BRAKE\"\nsignals = {{ BRAKE_AMOUNT = {{ min = 300, max = 400 }} }}\n"), 10, "no value of `BRAKE_AMOUNT`", None);
    one(
        &format!(
            "{RULE}message = \"BRAKE\"\nsignals = {{ BRAKE_AMOUNT = {{ min = 30, max = 4 }} }}\n"
        ),
        10,
        "above max",
        Some("swap"),
    );
    one(
        &format!("{RULE}id = 1\nsignals = {{ X = 1 }}\n"),
        10,
        "need the rule to name a DBC `message`",
        None,
    );
    one(
        &format!("{RULE}message = \"BRAKE\"\nsignals = {{ BRAKE_AMOUNT = true }}\n"),
        10,
        "not a signal constraint",
        Some("value name"),
    );
}

#[test]
fn contradictory_rules() {
    let deny_all = "[[can]]\nname = \"block\"\napp = \"dash\"\ndir = \"send\"\nid = 0x700\nmask = 0x700\naction = \"deny\"\n";
    one(&format!("{deny_all}[[can]]\nname = \"diag\"\napp = \"dash\"\ndir = \"send\"\nid = 0x7E0\nmask = 0x7F8\n"), 13, "can never allow anything", Some("narrow the deny rule"));
    let free = "[[can]]\nname = \"free\"\napp = \"dash\"\ndir = \"send\"\nmessage = \"LKAS_HUD\"\n";
    one(&format!("{free}[[can]]\nname = \"bounded\"\napp = \"dash\"\ndir = \"send\"\nmessage = \"LKAS_HUD\"\nrate = {{ per_second = 1, burst = 1 }}\n"), 11, "contradicted by rule `free`", None);
    one(
        &format!("{RULE}id = 0x7DF\naction = \"deny\"\nrate = {{ per_second = 1, burst = 1 }}\n"),
        6,
        "deny rules match on ids only",
        None,
    );
    let l4 = "[[l4]]\nname = \"a\"\napp = \"dash\"\nproto = \"udp\"\nop = \"listen\"\nports = \"5000-5010\"\n[[l4]]\nname = \"b\"\napp = \"diag\"\nproto = \"udp\"\nop = \"listen\"\nports = 5005\n";
    one(l4, 12, "both listen on Udp port(s) 5005-5005", None);
    one(
        "[[l4]]\nname = \"a\"\napp = \"dash\"\nproto = \"tcp\"\nop = \"listen\"\nports = \"9-3\"\n",
        10,
        "lo <= hi",
        None,
    );
    one(
        "[[app]]\nname = \"dash\"\n",
        6,
        "declared twice (first on line 2)",
        None,
    );
}

#[test]
fn partial_overlap_is_a_warning() {
    let text = format!("{APPS}[[can]]\nname = \"some\"\napp = \"dash\"\ndir = \"send\"\nid = 0x7E0\nmask = 0x7F0\n[[can]]\nname = \"not-7e5\"\napp = \"dash\"\ndir = \"send\"\nid = 0x7E5\naction = \"deny\"\n");
    let c = compile(Path::new("t.toml"), &text, &db()).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].message.contains("deny rule wins"));
    assert_eq!(c.warnings[0].line, 6);
}

#[test]
fn all_errors_are_reported_in_one_run() {
    let d = errors(&format!("{RULE}id = 0x800\n[[can]]\nname = \"s\"\napp = \"nobody\"\ndir = \"send\"\nmessage = \"NOPE\"\n"));
    assert_eq!(d.len(), 3, "{d:#?}");
    assert!(d.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn example_policy_is_clean_and_round_trips() {
    let text = std::fs::read_to_string(common::example()).unwrap();
    let c = compile(&common::example(), &text, &db()).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let bytes = c.policy.to_bytes().unwrap();
    let back = gateway_core::Policy::from_bytes(&bytes).unwrap();
    assert_eq!(back, c.policy);
    let words = gateway_policy::explain::explain(&back);
    for r in &back.rules {
        assert!(
            words.contains(&format!("`{}`", r.name)),
            "explain misses {}",
            r.name
        );
    }
    assert!(words.contains("GEAR_PACKET.GEAR == D (raw 3)"), "{words}");
    assert!(
        words.contains("LDA_ALERT one of none (raw 0), hold (raw 1)"),
        "{words}"
    );
    assert!(words.contains("may listen on TCP port 13400"), "{words}");
}

#[test]
fn replay_counts_a_small_log() {
    let text = std::fs::read_to_string(common::example()).unwrap();
    let p = compile(&common::example(), &text, &db()).unwrap().policy;
    // Speed 0x0900 * 0.0062 = 14.3 mph, gear D; then requests.
    let log = "# a comment\n\
        (1.000000) can0 0B4#0000000000090000\n\
        (1.000100) can0 127#0000000000300000\n\
        (1.000200) dashboard 412#0000000000000000\n\
        (1.000300) dashboard 7DF#0201000000000000\n\
        (1.000400) lka-assist 2E4#0000000000000000\n\
        (1.000500) lka-assist 2E4#00000000\n";
    let r = gateway_policy::replay::replay(&p, log, |i| i == "can0").unwrap();
    assert_eq!(r.lines, 6);
    let get = |n: &str| {
        r.rules
            .iter()
            .find(|x| x.0 == n)
            .map(|x| (x.1, x.2))
            .unwrap()
    };
    assert_eq!(get("lka-steer"), (1, 1)); // allowed, then too short
    assert_eq!(get("dash-hud"), (1, 0));
    assert_eq!(get("dash-no-diag"), (0, 1));
    assert_eq!(
        (get("dash-speed"), get("dash-gear"), get("lka-sees-speed")),
        ((1, 0), (1, 0), (1, 0))
    );
    assert_eq!(r.reasons.get("TooShort"), Some(&1));
    let out = r.render();
    assert!(
        out.contains("lka-assist Send 0x2E4: TooShort, by rule `lka-steer`"),
        "{out}"
    );
    assert!(
        out.contains("dashboard Send 0x7DF: DenyRule, by rule `dash-no-diag`"),
        "{out}"
    );
    let e = gateway_policy::replay::replay(&p, "(1.000000) nobody 0B4#00\n", |i| i == "can0")
        .unwrap_err();
    assert_eq!(e.line, 1);
    assert!(
        e.message.contains("neither a bus nor an application"),
        "{}",
        e.message
    );
    let e =
        gateway_policy::replay::replay(&p, "\n(1.0) can0 0B4#00\n", |i| i == "can0").unwrap_err();
    assert_eq!(e.line, 2);
}

#[test]
fn extreme_and_non_finite_numbers() {
    one(
        &format!("{RULE}id = 1\nwhen = [\"SPEED.SPEED < nan\"]\n"),
        10,
        "compares with NaN",
        Some("finite"),
    );
    one(
        &format!("{RULE}id = 1\nwhen = [\"SPEED.SPEED > inf\"]\n"),
        10,
        "compares with inf",
        Some("finite"),
    );
    // Far outside any raw value: impossible, not an overflow.
    one(
        &format!("{RULE}id = 1\nwhen = [\"SPEED.SPEED < -1e300\"]\n"),
        10,
        "can never hold",
        None,
    );
    one(
        &format!("{RULE}id = 1\nwhen = [\"SPEED.SPEED > 1e300\"]\n"),
        10,
        "can never hold",
        None,
    );
    one(
        &format!("{RULE}message = \"BRAKE\"\nsignals = {{ BRAKE_AMOUNT = nan }}\n"),
        10,
        "cannot be NaN",
        None,
    );
    one(
        &format!("{RULE}message = \"BRAKE\"\nsignals = {{ BRAKE_AMOUNT = {{ min = nan }} }}\n"),
        10,
        "NaN bound",
        None,
    );
    // Infinite bounds are the same as leaving them out.
    let text = format!("{APPS}{RULE}message = \"BRAKE\"\nsignals = {{ BRAKE_AMOUNT = {{ min = -inf, max = 10 }} }}\n");
    let c = compile(Path::new("t.toml"), &text, &db()).unwrap();
    assert_eq!(
        c.policy.rules[0].constraints[0].allowed,
        gateway_core::policy::Allowed::Range { lo: 0, hi: 10 }
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f64>().prop_map(|v| format!("{v:?}")),
            (-1000i64..1000).prop_map(|v| v.to_string()),
            Just("P".to_string()),
            Just("nan".to_string()),
            "[A-Za-z_]{0,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Any guard text and any constraint numbers: diagnostics or a
        /// policy, never a panic (the host tool must not crash on input).
        #[test]
        fn compile_any_guard_and_range(sig in prop::sample::select(vec!["SPEED.SPEED", "GEAR_PACKET.GEAR", "STEER_ANGLE_SENSOR.STEER_ANGLE", "GEAR", "X.Y", ""]),
                                       op in prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">=", "=", ""]),
                                       v in value(), lo in any::<f64>(), hi in any::<f64>(), junk in "[ -~]{0,20}") {
            let fmt = |x: f64| if x.is_finite() { format!("{x:?}") } else if x.is_nan() { "nan".into() } else if x > 0.0 { "inf".into() } else { "-inf".into() };
            let text = format!(
                "{APPS}{RULE}message = \"STEER_ANGLE_SENSOR\"\nsignals = {{ STEER_ANGLE = {{ min = {}, max = {} }} }}\nwhen = [\"{sig} {op} {v}\", \"{}\"]\n",
                fmt(lo), fmt(hi), junk.replace(['"', '\\'], "")
            );
            match compile(Path::new("t.toml"), &text, &db()) {
                Ok(c) => { let _ = gateway_policy::explain::explain(&c.policy); }
                Err(d) => prop_assert!(!d.is_empty() && d.iter().all(|x| x.line >= 1)),
            }
        }
    }
}
