//! A 200-rule policy over the real VW MQB DBC, generated deterministically:
//! four applications, 100 message rules each way (signal ranges on send
//! rules, a speed guard on every third, rates on every fifth), eight
//! id/mask rules. Shared by the benchmark and a test that checks it
//! compiles cleanly.

use std::fmt::Write;

use gateway_policy::dbc::Database;

/// The policy text and the messages it uses.
pub fn policy200(db: &Database) -> String {
    let msgs: Vec<_> = db
        .messages
        .iter()
        .filter(|m| !m.signals.is_empty())
        .take(96)
        .collect();
    assert!(
        msgs.len() == 96,
        "VW MQB DBC has fewer messages than expected"
    );
    let mut t = String::from("[gateway]\nstale_after_ms = 500\n\n");
    for a in 0..4 {
        let _ = writeln!(
            t,
            "[[app]]\nname = \"app{a}\"\nbudget = {{ per_second = 100000, burst = 1000 }}\n"
        );
    }
    let mut n = 0;
    for (i, m) in msgs.iter().enumerate() {
        for dir in ["send", "receive"] {
            let _ = writeln!(
                t,
                "[[can]]\nname = \"r{n}\"\napp = \"app{}\"\ndir = \"{dir}\"\nmessage = \"{}\"",
                i % 4,
                m.name
            );
            if dir == "send" {
                if let Some(s) = m.signals.iter().find(|s| {
                    s.mux_value.is_none()
                        && !s.is_switch
                        && s.factor > 0.0
                        && s.layout.size <= 32
                        && s.layout.size >= 2
                }) {
                    let (lo, hi) = s.layout.raw_bounds();
                    let _ = writeln!(
                        t,
                        "signals = {{ {} = {{ min = {:?}, max = {:?} }} }}",
                        s.name,
                        s.physical(lo),
                        s.physical((lo + hi) / 2)
                    );
                }
                if i % 3 == 0 && m.name != "ESP_21" {
                    let _ = writeln!(t, "when = [\"ESP_21.ESP_v_Signal < 30\"]");
                }
                if i % 5 == 0 {
                    let _ = writeln!(t, "rate = {{ per_second = 5000, burst = 50 }}");
                }
            }
            t.push('\n');
            n += 1;
        }
    }
    for k in 0..8 {
        let _ = writeln!(
            t,
            "[[can]]\nname = \"r{n}\"\napp = \"app{}\"\ndir = \"send\"\nid = {:#X}\nmask = 0x7F8\n",
            k % 4,
            0x700 + k * 8
        );
        n += 1;
    }
    assert_eq!(n, 200);
    t
}
