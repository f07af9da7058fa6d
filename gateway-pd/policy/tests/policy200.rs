//! The benchmark's 200-rule policy over the VW MQB DBC compiles without
//! errors or warnings, with the rules it claims, and the index agrees
//! with the linear scan on it.

mod common;
#[path = "../benches/policy200.rs"]
mod policy200;

use gateway_core::policy::Dir;
use gateway_core::{AppEvent, AppEventKind, Engine, Frame};

#[test]
fn policy200_compiles_and_index_matches_scan() {
    let db = gateway_policy::Database::load(&[common::dbc("vw_mqb.dbc")]).unwrap();
    let text = policy200::policy200(&db);
    let c = gateway_policy::compile(std::path::Path::new("policy200.toml"), &text, &db)
        .unwrap_or_else(|d| {
            panic!(
                "{}",
                d.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let p = c.policy;
    assert_eq!(p.rules.len(), 200);
    assert!(p.rules.iter().filter(|r| !r.constraints.is_empty()).count() > 50);
    assert!(p.rules.iter().filter(|r| !r.guards.is_empty()).count() > 20);
    let mk = || {
        let mut e = Engine::new(p.clone(), 0).unwrap();
        for a in 0..4 {
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
    };
    let (mut a, mut b) = (mk(), mk());
    let esp = db.by_name("ESP_21")[0];
    let mut allowed = 0;
    let mut x = 12345u64;
    for k in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let now = k * 50;
        if k % 10 == 0 {
            let mut d = [0u8; 8];
            esp.signal("ESP_v_Signal")
                .unwrap()
                .layout
                .encode(i128::from((x % 5000) as u16), &mut d);
            let f = Frame::data(esp.id, false, &d).unwrap();
            a.observe(&f, now);
            b.observe(&f, now);
            continue;
        }
        let m = &db.messages[(x as usize >> 8) % db.messages.len()];
        let f = Frame::data(m.id, m.extended, &x.to_le_bytes()[..usize::from(m.size)]).unwrap();
        let dir = if x & 1 == 0 { Dir::Send } else { Dir::Receive };
        let app = ((x >> 1) % 4) as u16;
        let da = if dir == Dir::Send {
            a.check_send(app, &f, now)
        } else {
            a.check_receive(app, &f, now)
        };
        let db_ = b.decide_linear(app, dir, &f, now);
        assert_eq!(da, db_, "frame {k}");
        allowed += u64::from(da.allowed());
    }
    assert!(
        allowed > 1000 && allowed < 19_000,
        "allowed {allowed}: the mix should exercise both outcomes"
    );
}
