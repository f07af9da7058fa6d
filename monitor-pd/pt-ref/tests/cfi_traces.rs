//! The end-to-end CFI traces (synthesised from the emulated program's real
//! path by `monitor-pd/pt/tests/e2e_support`) checked by libipt: its packet
//! decoder agrees with ours packet for packet, and its instruction-flow
//! decoder, given the same code image, follows them without error and
//! reconstructs exactly the instructions the emulator executed — so the
//! traces the CFI tests judge are genuine PT traces of that code.

#[path = "../../pt/tests/e2e_support/mod.rs"]
mod e2e_support;

use bulkhead_pt_ref::{libipt_decode, libipt_insn_flow, ours};
use e2e_support::*;

#[test]
#[ignore = "needs libipt-dev: run via cargo xtask test"]
fn synthesised_traces_are_valid_for_libipt() {
    let p = program();
    for attack in [Attack::None, Attack::Rop, Attack::Jop, Attack::Pivot] {
        for seed in 0..10 {
            let (flows, executed) = execute(&p, attack);
            let opts = TraceOpts {
                seed,
                psb_every: 2 + seed as usize,
                ..TraceOpts::default()
            };
            let trace = synthesize(p.at("main"), &flows, opts);
            let theirs = libipt_decode(&trace).expect("needs libipt-dev: run via cargo xtask test");
            assert_eq!(
                theirs,
                ours(&trace),
                "{attack:?} seed {seed}: packet decoders differ"
            );
            assert!(
                theirs.iter().all(|r| r.kind != 1),
                "{attack:?} seed {seed}: packet errors"
            );
            let flow = libipt_insn_flow(&trace, &p.code, BASE).unwrap();
            assert_eq!(
                flow.errors, 0,
                "{attack:?} seed {seed}: libipt flow error {}",
                flow.first_error
            );
            assert_eq!(flow.instructions, executed, "{attack:?} seed {seed}");
        }
    }
}

#[test]
#[ignore = "needs libipt-dev: run via cargo xtask test"]
fn overflow_traces_are_valid_for_libipt() {
    let p = program();
    let (flows, executed) = execute(&p, Attack::None);
    let calls: Vec<usize> = flows
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, Flow::Call { .. }))
        .map(|(i, _)| i + 1)
        .collect();
    for at in calls {
        let trace = synthesize(
            p.at("main"),
            &flows,
            TraceOpts {
                ovf_at: Some(at),
                ..TraceOpts::default()
            },
        );
        let theirs = libipt_decode(&trace).expect("needs libipt-dev: run via cargo xtask test");
        assert_eq!(theirs, ours(&trace), "OVF at {at}: packet decoders differ");
        let flow = libipt_insn_flow(&trace, &p.code, BASE).unwrap();
        assert_eq!(
            flow.errors, 0,
            "OVF at {at}: libipt flow error {}",
            flow.first_error
        );
        // Bits lost in the overflow (if any were pending) hide instructions
        // from any decoder; none are invented.
        assert!(flow.instructions <= executed, "OVF at {at}");
    }
}
