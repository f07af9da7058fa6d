//! The per-frame path never allocates: with a counting global allocator,
//! thousands of decisions (allowed, denied, audited, rate-limited,
//! malformed), observations, events and L4 checks make zero allocations
//! once the engine is built.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use gateway_core::policy::*;
use gateway_core::signal::{ByteOrder, Layout, MuxCond};
use gateway_core::{AppEvent, AppEventKind, Engine, Frame, FrameKind};
/// Counts this thread's allocations, reallocations and bytes. Per thread,
/// because the test harness's own threads allocate whenever they like.
struct Counting;

thread_local! {
    static COUNTS: Cell<(usize, usize, usize)> = const { Cell::new((0, 0, 0)) };
}

fn count(alloc: usize, realloc: usize, bytes: usize) {
    // `try_with`: allocations during thread teardown are not ours to count.
    let _ = COUNTS.try_with(|c| {
        let (a, r, b) = c.get();
        c.set((a + alloc, r + realloc, b + bytes));
    });
}

// SAFETY: forwards every call unchanged to the system allocator, which
// upholds GlobalAlloc's contract; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        count(1, 0, layout.size());
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        count(0, 1, new_size);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn policy() -> Policy {
    let sig = |name: &str, start, size, mux| Signal {
        name: name.into(),
        layout: Layout {
            start,
            size,
            order: ByteOrder::Motorola,
            signed: true,
        },
        mux,
        factor: 1.0,
        offset: 0.0,
        unit: String::new(),
        values: vec![],
    };
    let rule = |app, dir, id, mask| Rule {
        name: "r".into(),
        app,
        dir,
        ids: IdMatch {
            id,
            mask,
            extended: false,
        },
        action: Action::Allow,
        remote: false,
        min_len: 2,
        constraints: vec![],
        guards: vec![],
        rate: Some(Rate {
            per_second: 100,
            burst: 2,
        }),
    };
    let mut r0 = rule(0, Dir::Send, 0x100, 0x7FF);
    r0.constraints = vec![
        Constraint {
            signal: 1,
            allowed: Allowed::Range { lo: -10, hi: 10 },
        },
        Constraint {
            signal: 2,
            allowed: Allowed::OneOf(vec![0, 1, 2]),
        },
    ];
    r0.guards = vec![Guard {
        slot: 0,
        lo: 0,
        hi: 100,
        negate: false,
    }];
    let mut deny = rule(1, Dir::Send, 0x7DF, 0x7FF);
    deny.action = Action::Deny;
    deny.rate = None;
    Policy {
        apps: vec![
            App {
                name: "a".into(),
                budget: Rate {
                    per_second: 500,
                    burst: 10,
                },
            },
            App {
                name: "b".into(),
                budget: Rate {
                    per_second: 500,
                    burst: 10,
                },
            },
        ],
        rules: vec![
            r0,
            rule(1, Dir::Send, 0x700, 0x700),
            rule(1, Dir::Receive, 0x50, 0x7FF),
            deny,
        ],
        signals: vec![
            sig("M.mux", 7, 2, None),
            sig(
                "M.s",
                15,
                8,
                Some(MuxCond {
                    switch: 0,
                    value: 1,
                }),
            ),
            sig("M.t", 23, 4, None),
            sig("S.v", 7, 16, None),
        ],
        state: vec![StateSlot {
            signal: 3,
            id: 0x50,
            extended: false,
        }],
        l4: vec![L4Rule {
            name: "l".into(),
            app: 1,
            proto: Proto::Udp,
            op: L4Op::Connect,
            lo: 1,
            hi: 100,
        }],
        stale_after_us: 50_000,
        audit_capacity: 16,
        audit_rate: Rate {
            per_second: 100,
            burst: 4,
        },
    }
}

#[test]
fn per_frame_path_makes_no_allocation() {
    let mut e = Engine::new(policy(), 0).unwrap();
    // Frames built before measuring.
    let frames: Vec<Frame> = (0..64u32)
        .map(|k| {
            let mut f = Frame::data(
                0x100 + (k % 3) * 0x300,
                false,
                &[(k % 4) as u8 * 0x40, k as u8, (k % 5) as u8 * 16, 0],
            )
            .unwrap();
            match k % 9 {
                0 => f.dlc = 7,
                1 => f.kind = FrameKind::Error,
                2 => f.kind = FrameKind::Remote,
                _ => {}
            }
            f
        })
        .collect();
    let speed = Frame::data(0x50, false, &[0, 30]).unwrap();
    // The counter sees this thread's allocations (so a zero below means something).
    let probe = COUNTS.with(Cell::get).0;
    drop(std::hint::black_box(vec![1u8; 10]));
    assert_eq!(
        COUNTS.with(Cell::get).0,
        probe + 1,
        "the counting allocator is not in use"
    );
    let before = COUNTS.with(Cell::get);
    let mut allowed = 0u32;
    for round in 0..200u64 {
        let now = round * 7_000;
        for app in 0..2 {
            let kind = match round % 4 {
                0 => AppEventKind::Install,
                1 => AppEventKind::Start,
                2 => AppEventKind::Stop,
                _ => AppEventKind::Remove,
            };
            if round % 50 < 4 {
                let _ = e.on_event(AppEvent { app, kind });
            } else if round % 50 == 4 {
                let _ = e.on_event(AppEvent {
                    app,
                    kind: AppEventKind::Install,
                });
                let _ = e.on_event(AppEvent {
                    app,
                    kind: AppEventKind::Start,
                });
            }
        }
        if round % 3 == 0 {
            e.observe(&speed, now);
        }
        for (i, f) in frames.iter().enumerate() {
            let app = (i % 3) as u16; // 2 is unknown
            allowed += u32::from(e.check_send(app, f, now).allowed());
            allowed += u32::from(e.check_receive(app, f, now).allowed());
            e.observe(f, now);
        }
        let _ = e.check_l4(1, Proto::Udp, L4Op::Connect, (round % 200) as u16, now);
        let _ = e.open_l4().count();
        if round % 97 == 96 {
            let mut n = 0;
            e.drain_audit(|_| n += 1);
            assert!(e.audit().is_empty() && n <= 16);
        }
    }
    let after = COUNTS.with(Cell::get);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (0, 0),
        "the per-frame path allocated ({} bytes)",
        after.2 - before.2
    );
    // The run exercised both outcomes and filled the audit ring.
    assert!(allowed > 100, "allowed {allowed}");
    assert!(!e.audit().is_empty() && e.audit().overwritten > 0 && e.audit().suppressed > 0);
}
