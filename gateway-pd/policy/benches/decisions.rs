//! Decisions per second for a 200-rule policy over a real DBC (VW MQB),
//! with the engine's index and with a naive linear scan of the same rules,
//! in the same run over the same frames. Reports the ratio and the multiple
//! of a saturated 1 Mbit/s classic CAN bus (about 8,800 frames/s).
//!
//! Run: `cargo bench -p gateway-policy` (a few seconds).

#[path = "../tests/common/mod.rs"]
mod common;
mod policy200;

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use gateway_core::policy::Dir;
use gateway_core::{AppEvent, AppEventKind, Engine, Frame};
use gateway_policy::dbc::Database;

const BUS_FRAMES_PER_SEC: f64 = 8_800.0;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn engine(p: &gateway_core::Policy) -> Engine {
    let mut e = Engine::new(p.clone(), 0).unwrap();
    for a in 0..p.apps.len() as u16 {
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

fn main() {
    let db = Database::load(&[common::dbc("vw_mqb.dbc")]).unwrap();
    let text = policy200::policy200(&db);
    let policy = gateway_policy::compile(Path::new("policy200.toml"), &text, &db)
        .unwrap_or_else(|d| {
            panic!(
                "{}",
                d.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
        .policy;
    assert_eq!(policy.rules.len(), 200);

    // Frames: every standard message of the DBC (in and out of the policy)
    // with random payloads, from random applications, both directions;
    // every tenth a speed frame that keeps the guard's state fresh.
    let esp21 = db.by_name("ESP_21")[0];
    let ids: Vec<(u32, bool, u8)> = db
        .messages
        .iter()
        .map(|m| (m.id, m.extended, m.size))
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let n = 400_000usize;
    let mut frames = Vec::with_capacity(n);
    for k in 0..n {
        let r = rng.next();
        let frame = if k % 10 == 0 {
            let mut d = [0u8; 8];
            esp21
                .signal("ESP_v_Signal")
                .unwrap()
                .layout
                .encode(i128::from((r % 5000) as u16), &mut d);
            (
                u16::MAX,
                Dir::Receive,
                Frame::data(esp21.id, false, &d).unwrap(),
            )
        } else {
            let (id, ext, size) = ids[(r as usize >> 8) % ids.len()];
            let data = rng.next().to_le_bytes();
            let dir = if r & 1 == 0 { Dir::Send } else { Dir::Receive };
            (
                (r >> 1) as u16 % 4,
                dir,
                Frame::data(id, ext, &data[..usize::from(size)]).unwrap(),
            )
        };
        frames.push(frame);
    }

    let run = |linear: bool| {
        let mut e = engine(&policy);
        let mut allowed = 0u64;
        let start = Instant::now();
        for (k, (app, dir, f)) in frames.iter().enumerate() {
            let now = k as u64 * 20; // 50,000 frames/s of simulated time
            if *app == u16::MAX {
                e.observe(f, now);
                continue;
            }
            let d = if linear {
                e.decide_linear(*app, *dir, f, now)
            } else if *dir == Dir::Send {
                e.check_send(*app, f, now)
            } else {
                e.check_receive(*app, f, now)
            };
            allowed += u64::from(black_box(d).allowed());
        }
        (start.elapsed().as_secs_f64(), allowed)
    };
    // Warm up both paths once, then measure.
    run(false);
    run(true);
    let (t_index, a_index) = run(false);
    let (t_linear, a_linear) = run(true);
    assert_eq!(a_index, a_linear, "index and linear scan disagree");
    let decisions = frames.iter().filter(|f| f.0 != u16::MAX).count() as f64;
    let (r_index, r_linear) = (decisions / t_index, decisions / t_linear);
    println!("gateway decisions: 200-rule policy over vw_mqb.dbc, {decisions} decisions ({a_index} allowed)");
    println!(
        "  indexed engine : {r_index:>12.0} decisions/s  ({:.0} x 8,800 frames/s)",
        r_index / BUS_FRAMES_PER_SEC
    );
    println!(
        "  linear scan    : {r_linear:>12.0} decisions/s  ({:.0} x 8,800 frames/s)",
        r_linear / BUS_FRAMES_PER_SEC
    );
    println!("  index speed-up : {:.1} x", r_index / r_linear);
}
