//! Fuzzes the CFI checker: arbitrary code (the policy builder's linear
//! sweep over it) and an arbitrary trace through the fast path, the gate
//! and the slow path. No input may panic or hang.
#![no_main]

use bulkhead_pt::cfi::{slow_check, CheckConfig, Checker, Gate, Policy, Symbol};
use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0x40_1000;

fuzz_target!(|data: &[u8]| {
    // The same bytes as an ELF file: parse errors, never panics.
    if let Ok(image) = bulkhead_pt::elf::parse(data) {
        // (A segment's zero fill can reach 16 MiB; sweeping that is slow, not wrong.)
        if image.code.len() <= 1 << 16 {
            let _ = Policy::build(image.base, image.code, image.symbols);
        }
    }
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (code, raw) = rest.split_at((n as usize & 0x7f).min(rest.len()));
    // Half the inputs get a synchronised start (PSB, PSBEND, TIP.PGE at the
    // code) so the fuzzer spends its time in the flow follower.
    let mut trace = Vec::new();
    if n & 0x80 != 0 {
        trace.extend_from_slice(&[2, 0x82].repeat(8));
        trace.extend_from_slice(&[2, 0x23, 0xd1]);
        trace.extend_from_slice(&BASE.to_le_bytes());
    }
    trace.extend_from_slice(raw);
    let trace = &trace[..];
    if code.is_empty() {
        return;
    }
    let sym = Symbol {
        name: "f".into(),
        addr: BASE,
        size: code.len() as u64,
    };
    let Ok(policy) = Policy::build(BASE, code.to_vec(), vec![sym]) else {
        return;
    };
    let cfg = CheckConfig {
        stack_frames: 8,
        ..CheckConfig::default()
    };
    let mut c = Checker::new(&policy, cfg);
    c.enter_controlled();
    let half = trace.len() / 2;
    c.feed(&trace[..half]);
    c.feed(&trace[half..]);
    if let Gate::SlowPath(w) = c.gate() {
        assert!(w.replay_from <= w.start && w.end as usize <= trace.len());
        let r = slow_check(
            &policy,
            &trace[w.replay_from as usize..w.end as usize],
            w.replay_from,
            (w.start, w.end),
            cfg,
        );
        if let Some(v) = r.violation {
            let _ = v.describe(&policy);
        }
    }
});
