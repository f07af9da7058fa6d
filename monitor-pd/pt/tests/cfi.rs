//! End-to-end CFI checks: a program with known control flow, its trace
//! synthesised from its emulated execution path, checked clean; then ROP,
//! JOP/COOP and stack-pivot attacks on the same program, each flagged by the
//! fast path and named precisely (source, target, symbols) by the slow path.

mod e2e_support;

use bulkhead_pt::cfi::{slow_check, CheckConfig, Checker, Gate, Policy, ViolationKind, Window};
use e2e_support::*;

struct Outcome {
    gate: Gate,
    window: Window,
    slow: bulkhead_pt::cfi::SlowReport,
    executed: u64,
}

/// Feeds the trace in uneven pieces inside one controlled-mode window,
/// asks the gate (as a held syscall would), and runs the slow path on the
/// window whatever the gate says, so both answers can be checked.
fn check(policy: &Policy, trace: &[u8], executed: u64) -> Outcome {
    let mut c = Checker::new(policy, CheckConfig::default());
    c.enter_controlled();
    let mut at = 0;
    let mut step = 1;
    while at < trace.len() {
        let end = (at + step).min(trace.len());
        c.feed(&trace[at..end]);
        at = end;
        step = step * 3 % 97 + 1;
    }
    let gate = c.gate();
    let window = c.leave_controlled().unwrap();
    let slow = slow_check(
        policy,
        &trace[window.replay_from as usize..window.end as usize],
        window.replay_from,
        (window.start, window.end),
        CheckConfig::default(),
    );
    Outcome {
        gate,
        window,
        slow,
        executed,
    }
}

fn run(attack: Attack, opts: TraceOpts) -> (Program, Policy, Vec<u8>, Outcome) {
    let p = program();
    let policy = p.policy();
    let (flows, executed) = execute(&p, attack);
    let trace = synthesize(p.at("main"), &flows, opts);
    let o = check(&policy, &trace, executed);
    (p, policy, trace, o)
}

#[test]
fn clean_run_passes_both_paths_and_replays_every_instruction() {
    for seed in 0..20 {
        let opts = TraceOpts {
            seed,
            psb_every: 3 + seed as usize % 9,
            ..TraceOpts::default()
        };
        let (p, _, _, o) = run(Attack::None, opts);
        assert_eq!(o.gate, Gate::Allow, "seed {seed}: {:?}", o.window);
        // Every return and indirect call on the path was judged, once.
        let (flows, _) = execute(&p, Attack::None);
        let judged = flows
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    Flow::Ret { .. }
                        | Flow::Call { indirect: true, .. }
                        | Flow::Jmp { indirect: true, .. }
                )
            })
            .count() as u64;
        assert_eq!(o.window.edges, judged, "seed {seed}");
        assert_eq!(o.slow.edges, judged, "seed {seed}");
        assert_eq!(o.window.syscalls, 1, "the exit syscall is seen and held");
        assert_eq!(o.slow.violation, None, "seed {seed}");
        // The slow path reconstructed exactly the instructions the emulator
        // executed (up to and including the exit syscall).
        assert_eq!(o.slow.instructions, o.executed, "seed {seed}");
    }
}

#[test]
fn rop_chain_is_named_at_vuln_ret() {
    let (p, policy, _, o) = run(Attack::Rop, TraceOpts::default());
    let Gate::SlowPath(w) = o.gate else {
        panic!("ROP not flagged by the fast path")
    };
    let fast = w.first_suspicious.unwrap();
    assert_eq!(
        (fast.source, fast.target, fast.credit),
        (p.at("vuln_ret"), p.at("gadget1"), 0)
    );
    let v = o.slow.violation.expect("slow path names the ROP edge");
    assert_eq!(v.kind, ViolationKind::RetNotCallPreceded);
    assert_eq!((v.source, v.target), (p.at("vuln_ret"), p.at("gadget1")));
    assert_eq!(
        v.expected,
        Some(p.at("no_switch") + 5),
        "the shadow stack knew the real return site"
    );
    let text = v.describe(&policy);
    assert!(
        text.contains("<vuln+0x") && text.contains("<helper+0x"),
        "{text}"
    );
}

#[test]
fn jop_call_into_function_body_is_named() {
    let (p, policy, _, o) = run(Attack::Jop, TraceOpts::default());
    assert!(matches!(o.gate, Gate::SlowPath(_)));
    let v = o.slow.violation.expect("slow path names the JOP edge");
    assert_eq!(v.kind, ViolationKind::IndCallNotEntry);
    assert_eq!(
        (v.source, v.target),
        (p.at("call_site"), p.at("handler_a") + 5)
    );
    assert!(v.describe(&policy).contains("<handler_a+0x5>"));
}

#[test]
fn stack_pivot_is_named_before_the_chain_it_enables() {
    let (p, policy, _, o) = run(Attack::Pivot, TraceOpts::default());
    assert!(matches!(o.gate, Gate::SlowPath(_)));
    let v = o.slow.violation.expect("slow path names the pivot");
    assert_eq!(v.kind, ViolationKind::StackPivot);
    assert_eq!(v.source, p.at("switch_stack"));
    assert!(v.describe(&policy).contains("<switch_stack>"));
    // Sanctioning that stack switch (a real coroutine switch) leaves the
    // returns into the fake stack's gadgets to be caught.
    let mut sanctioned = policy.clone();
    sanctioned.allow_pivot(p.at("switch_stack"));
    let (flows, executed) = execute(&p, Attack::Pivot);
    let trace = synthesize(p.at("main"), &flows, TraceOpts::default());
    let o = check(&sanctioned, &trace, executed);
    let v = o.slow.violation.unwrap();
    assert_eq!(v.kind, ViolationKind::RetNotCallPreceded);
    assert_eq!(
        (v.source, v.target),
        (p.at("switch_stack") + 3, p.at("gadget1"))
    );
}

#[test]
fn explicit_site_targets_narrow_the_policy() {
    let p = program();
    let mut policy = p.policy();
    // handler_b is a function entry, but this site may only call handler_a.
    policy.allow_targets(p.at("call_site"), &[p.at("handler_a")]);
    let (flows, executed) = execute(&p, Attack::None);
    let trace = synthesize(p.at("main"), &flows, TraceOpts::default());
    let o = check(&policy, &trace, executed);
    let v = o.slow.violation.unwrap();
    assert_eq!(v.kind, ViolationKind::NotAllowedTarget);
    assert_eq!((v.source, v.target), (p.at("call_site"), p.at("handler_b")));
    policy.allow_targets(p.at("call_site"), &[p.at("handler_a"), p.at("handler_b")]);
    let o = check(&policy, &trace, executed);
    assert_eq!(o.gate, Gate::Allow);
}

#[test]
fn overflow_loses_the_shadow_stack_fast_path_defers_slow_path_clears() {
    let p = program();
    let policy = p.policy();
    let (flows, executed) = execute(&p, Attack::None);
    // OVF right after the first call into `work`: its return and later
    // returns above the loss point come as TIPs the shadow stack cannot vouch for.
    let at = flows
        .iter()
        .position(|f| matches!(f, Flow::Call { .. }))
        .unwrap()
        + 1;
    let opts = TraceOpts {
        ovf_at: Some(at),
        psb_every: 1000,
        ..TraceOpts::default()
    };
    let trace = synthesize(p.at("main"), &flows, opts);
    let o = check(&policy, &trace, executed);
    let Gate::SlowPath(w) = o.gate else {
        panic!("lost context must go to the slow path")
    };
    assert_eq!(w.first_suspicious.unwrap().credit, 40);
    assert_eq!(
        o.slow.violation, None,
        "a return to a call site after OVF is legal"
    );
    // The same trace with the ROP attack after the overflow is still caught.
    let (flows, executed) = execute(&p, Attack::Rop);
    let trace = synthesize(p.at("main"), &flows, opts);
    let o = check(&policy, &trace, executed);
    assert_eq!(
        o.slow.violation.unwrap().kind,
        ViolationKind::RetNotCallPreceded
    );
}

#[test]
fn windows_bound_what_is_judged() {
    let p = program();
    let policy = p.policy();
    let (flows, _) = execute(&p, Attack::Rop);
    let trace = synthesize(p.at("main"), &flows, TraceOpts::default());
    // The attack happens while the environment is not in controlled mode:
    // nothing is judged, the syscall is not held.
    let mut c = Checker::new(&policy, CheckConfig::default());
    c.feed(&trace);
    assert_eq!(c.gate(), Gate::Allow);
    assert!(c.leave_controlled().is_none());
    // Controlled mode entered half-way (before the attack): flagged.
    let mut c = Checker::new(&policy, CheckConfig::default());
    let half = trace.len() / 2;
    c.feed(&trace[..half]);
    c.enter_controlled();
    c.feed(&trace[half..]);
    let Gate::SlowPath(w) = c.gate() else {
        panic!("attack inside the window not flagged")
    };
    assert!(w.start == half as u64 && w.replay_from <= w.start);
    let slow = slow_check(
        &policy,
        &trace[w.replay_from as usize..],
        w.replay_from,
        (w.start, w.end),
        CheckConfig::default(),
    );
    assert_eq!(slow.violation.unwrap().source, p.at("vuln_ret"));
}

#[test]
fn corrupt_trace_is_a_desync_not_a_pass() {
    let p = program();
    let policy = p.policy();
    let (flows, executed) = execute(&p, Attack::None);
    let mut trace = synthesize(
        p.at("main"),
        &flows,
        TraceOpts {
            timing: false,
            psb_every: 1000,
            ..TraceOpts::default()
        },
    );
    // Give the last short TNT one more (not-taken) branch than the program
    // has: shifting the byte left moves its stop bit up by one.
    let i = trace
        .iter()
        .rposition(|&b| b & 1 == 0 && b > 2 && b < 0x80)
        .unwrap();
    trace[i] <<= 1;
    let o = check(&policy, &trace, executed);
    assert!(matches!(o.gate, Gate::SlowPath(_)), "{:?}", o.window);
    assert!(o.slow.violation.is_some());
    // A byte that is no packet at all: a decoding error, recorded with its
    // offset, and the slow path calls the window unverifiable.
    let mut trace = synthesize(
        p.at("main"),
        &flows,
        TraceOpts {
            timing: false,
            psb_every: 1000,
            ..TraceOpts::default()
        },
    );
    let half = trace.len() as u64 / 2;
    let at = bulkhead_pt::Decoder::new(&trace, bulkhead_pt::Config::default())
        .items()
        .find_map(|i| match i {
            bulkhead_pt::Item::Packet(d)
                if d.offset > half && matches!(d.packet, bulkhead_pt::Packet::Tnt { .. }) =>
            {
                Some(d.offset as usize)
            }
            _ => None,
        })
        .unwrap();
    trace[at] = 0x05;
    let o = check(&policy, &trace, executed);
    assert_eq!(
        o.window.first_decode_error.map(|e| e.offset),
        Some(at as u64)
    );
    assert_eq!(o.slow.violation.unwrap().kind, ViolationKind::Desync);
}

#[test]
fn policy_from_elf_matches_policy_from_assembler() {
    let p = program();
    let file = elf(&p);
    let image = bulkhead_pt::elf::parse(&file).unwrap();
    assert_eq!(
        (image.base, &image.code, &image.symbols),
        (BASE, &p.code, &p.symbols)
    );
    let policy = Policy::build(image.base, image.code, image.symbols).unwrap();
    let (flows, executed) = execute(&p, Attack::Rop);
    let trace = synthesize(p.at("main"), &flows, TraceOpts::default());
    assert_eq!(
        check(&policy, &trace, executed)
            .slow
            .violation
            .unwrap()
            .source,
        p.at("vuln_ret")
    );
    // Damaged files are errors that say what is wrong, never panics.
    use bulkhead_pt::elf::{parse, ElfError};
    assert_eq!(parse(b"MZ\x90\x00"), Err(ElfError::NotElf));
    assert_eq!(
        parse(&file[..40]),
        Err(ElfError::Truncated("ELF header truncated"))
    );
    for cut in (0..file.len()).step_by(7) {
        let _ = parse(&file[..cut]);
    }
    let mut bad = file.clone();
    bad[64 + 4] = 4; // segment not executable
    assert_eq!(parse(&bad), Err(ElfError::NoExecutableSegment));
}

#[test]
fn learned_edges_earn_full_credit_under_a_strict_threshold() {
    let p = program();
    let mut policy = p.policy();
    let strict = CheckConfig {
        threshold: 80,
        ..CheckConfig::default()
    };
    let run = |policy: &Policy, attack, seed| {
        let (flows, _) = execute(&p, attack);
        let trace = synthesize(
            p.at("main"),
            &flows,
            TraceOpts {
                seed,
                ..TraceOpts::default()
            },
        );
        let mut c = Checker::new(policy, strict);
        c.enter_controlled();
        c.feed(&trace);
        c.gate()
    };
    // Untrained, every indirect call (credit 70) is below 80: slow path.
    let Gate::SlowPath(w) = run(&policy, Attack::None, 1) else {
        panic!("70 < 80 must defer")
    };
    assert_eq!(w.first_suspicious.unwrap().credit, 70);
    // Train on one clean trace; a differently-timed clean run then passes.
    let (flows, _) = execute(&p, Attack::None);
    let training = synthesize(
        p.at("main"),
        &flows,
        TraceOpts {
            seed: 7,
            ..TraceOpts::default()
        },
    );
    let edges = bulkhead_pt::cfi::learn(&policy, &training, strict);
    assert_eq!(
        edges,
        vec![
            (p.at("call_site"), p.at("handler_a")),
            (p.at("call_site"), p.at("handler_b"))
        ]
    );
    policy.trust_edges(&edges);
    assert_eq!(run(&policy, Attack::None, 2), Gate::Allow);
    // Attacks are still deferred (and named by the slow path as before).
    assert!(matches!(run(&policy, Attack::Jop, 2), Gate::SlowPath(_)));
    assert!(matches!(run(&policy, Attack::Rop, 2), Gate::SlowPath(_)));
    // A JOP trace used as "training" teaches nothing the rules forbid.
    let (flows, _) = execute(&p, Attack::Jop);
    let bad = synthesize(p.at("main"), &flows, TraceOpts::default());
    assert!(!bulkhead_pt::cfi::learn(&policy, &bad, strict)
        .contains(&(p.at("call_site"), p.at("handler_a") + 5)));
}

#[test]
fn endless_direct_loop_is_a_desync_not_a_hang() {
    use bulkhead_pt::cfi::{EdgeKind, Symbol};
    use bulkhead_pt::{encode, IpPayload, Ipc, Packet};
    // `jmp $` at the entry: following it never needs a packet.
    let sym = Symbol {
        name: "spin".into(),
        addr: BASE,
        size: 2,
    };
    let policy = Policy::build(BASE, vec![0xeb, 0xfe], vec![sym]).unwrap();
    let mut trace = Vec::new();
    let mut b = [0u8; 16];
    for p in [
        Packet::Psb,
        Packet::Psbend,
        Packet::TipPge(IpPayload {
            ipc: Ipc::Full,
            raw: BASE,
        }),
    ] {
        let n = encode(&p, &mut b).unwrap();
        trace.extend_from_slice(&b[..n]);
    }
    let mut c = Checker::new(&policy, CheckConfig::default());
    c.enter_controlled();
    c.feed(&trace);
    let Gate::SlowPath(w) = c.gate() else {
        panic!("an endless walk must be flagged")
    };
    assert_eq!(w.first_suspicious.unwrap().kind, EdgeKind::Desync);
}
