//! The runtime against hand-written modules: limits, traps, capabilities,
//! the wipe, and the POST driver's decisions.

mod common;

use common::*;
use firmware_core::manifest::Limits;
use firmware_core::report::{LoadFailure, TrapKind};
use firmware_core::{verify, Capability, CapabilitySet, Decision, Outcome};
use firmware_runtime::post::run_post;
use firmware_runtime::{engine, Loaded, RunRecord};

const LIMITS: Limits = Limits {
    fuel: 5_000_000,
    memory_pages: 2,
    wall_clock_ms: 10_000,
};

fn caps(list: &[Capability]) -> CapabilitySet {
    list.iter().copied().collect()
}

const REPORT_ONLY: &[Capability] = &[Capability::Report];

/// Verifies, loads and runs `src`; returns the run and the board.
fn run_wat(
    src: &str,
    caps_: &[Capability],
    limits: Limits,
    board: MockBoard,
) -> (Result<RunRecord, LoadFailure>, MockBoard) {
    let module = wat(src);
    let c = sign(&manifest("t", &module, caps(caps_), limits), &module);
    let v = verify(&c, &policy()).expect("test container verifies");
    match Loaded::load(&engine(), &v, board) {
        Err((f, b)) => (Err(f), b),
        Ok(mut l) => {
            let r = l.run(&limits);
            (Ok(r), l.release())
        }
    }
}

fn outcome(src: &str, caps_: &[Capability], limits: Limits) -> Outcome {
    match run_wat(src, caps_, limits, MockBoard::q35(0)).0 {
        Ok(r) => r.outcome,
        Err(f) => Outcome::NotLoaded(f),
    }
}

const PASS: &str = r#"(module
  (import "bulkhead" "report" (func $report (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "all good")
  (func (export "run") (call $report (i32.const 1) (i32.const 16) (i32.const 8))))"#;

#[test]
fn reported_results_become_outcomes() {
    assert_eq!(
        outcome(PASS, REPORT_ONLY, LIMITS),
        Outcome::Passed {
            detail: "all good".into()
        }
    );
    let fail = PASS.replace(
        "(i32.const 1) (i32.const 16)",
        "(i32.const 0) (i32.const 16)",
    );
    assert_eq!(
        outcome(&fail, REPORT_ONLY, LIMITS),
        Outcome::Failed {
            detail: "all good".into()
        }
    );
    let silent = r#"(module (memory (export "memory") 1) (func (export "run")))"#;
    assert_eq!(outcome(silent, &[], LIMITS), Outcome::NoResult);
    let panics = r#"(module (memory (export "memory") 1) (func (export "run") unreachable))"#;
    assert_eq!(
        outcome(panics, &[], LIMITS),
        Outcome::Trapped(TrapKind::Unreachable)
    );
}

#[test]
fn infinite_loop_runs_out_of_fuel_over_several_slices() {
    let src = r#"(module (memory (export "memory") 1) (func (export "run") (loop br 0)))"#;
    let (r, _) = run_wat(src, &[], LIMITS, MockBoard::q35(0));
    let r = r.unwrap();
    assert_eq!(r.outcome, Outcome::OutOfFuel);
    // The whole budget was used (several slices), not just the first slice.
    assert!(
        r.fuel_used > LIMITS.fuel - 100 && r.fuel_used <= LIMITS.fuel,
        "used {}",
        r.fuel_used
    );
    const { assert!(LIMITS.fuel > firmware_runtime::FUEL_SLICE) };
}

#[test]
fn wall_clock_budget_stops_a_long_run() {
    let src = r#"(module (memory (export "memory") 1) (func (export "run") (loop br 0)))"#;
    let mut board = MockBoard::q35(0);
    board.step_ns = 2_000_000; // every clock read advances 2 ms
    let limits = Limits {
        fuel: 1_000_000_000,
        memory_pages: 1,
        wall_clock_ms: 5,
    };
    let (r, _) = run_wat(src, &[], limits, board);
    let r = r.unwrap();
    assert_eq!(r.outcome, Outcome::WallClockExceeded);
    assert!(r.fuel_used < limits.fuel);
    // Also inside host calls: a container that loops over a host call.
    let src = r#"(module (import "bulkhead" "timer_ns" (func $t (result i64)))
      (memory (export "memory") 1)
      (func (export "run") (loop (drop (call $t)) (br 0))))"#;
    let mut board = MockBoard::q35(0);
    board.step_ns = 1_000_000;
    let (r, _) = run_wat(
        src,
        &[Capability::Timer],
        Limits {
            wall_clock_ms: 3,
            ..limits
        },
        board,
    );
    assert_eq!(r.unwrap().outcome, Outcome::WallClockExceeded);
}

#[test]
fn memory_growth_past_the_limit_is_stopped() {
    let grow = |pages: u32| {
        format!(
            r#"(module (import "bulkhead" "report" (func $report (param i32 i32 i32)))
              (memory (export "memory") 1)
              (func (export "run") (drop (memory.grow (i32.const {pages})))
                (call $report (i32.const 1) (i32.const 0) (i32.const 0))))"#
        )
    };
    // Growing within the limit (1 -> 2 pages) is fine.
    assert!(outcome(&grow(1), REPORT_ONLY, LIMITS).passed());
    // Past it (1 -> 3 pages with a 2-page limit) stops the container.
    assert_eq!(outcome(&grow(2), REPORT_ONLY, LIMITS), Outcome::MemoryLimit);
    // A module whose initial memory is already above the limit never loads.
    let big = r#"(module (memory (export "memory") 3) (func (export "run")))"#;
    assert_eq!(
        outcome(big, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::MemoryAboveLimit)
    );
}

#[test]
fn undeclared_capability_traps_the_container_not_the_host() {
    let src = r#"(module
      (import "bulkhead" "pci_read32" (func $pci (param i32 i32 i32 i32) (result i32)))
      (import "bulkhead" "report" (func $report (param i32 i32 i32)))
      (memory (export "memory") 1)
      (func (export "run") (drop (call $pci (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
        (call $report (i32.const 1) (i32.const 0) (i32.const 0))))"#;
    let (r, board) = run_wat(src, REPORT_ONLY, LIMITS, MockBoard::q35(0));
    assert_eq!(
        r.unwrap().outcome,
        Outcome::Trapped(TrapKind::CapabilityDenied(Capability::PciConfig))
    );
    assert_eq!(
        board.pci_reads, 0,
        "the platform was reached without the capability"
    );
    // With the capability declared, the same module passes.
    let (r, board) = run_wat(
        src,
        &[Capability::Report, Capability::PciConfig],
        LIMITS,
        MockBoard::q35(0),
    );
    assert!(r.unwrap().outcome.passed());
    assert_eq!(board.pci_reads, 1);
}

#[test]
fn imports_outside_the_host_api_are_refused_at_load() {
    let unknown = r#"(module (import "bulkhead" "reboot" (func)) (func (export "run")))"#;
    assert_eq!(
        outcome(unknown, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::UnknownImport)
    );
    let other_module =
        r#"(module (import "env" "log" (func (param i32 i32))) (func (export "run")))"#;
    assert_eq!(
        outcome(other_module, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::UnknownImport)
    );
    let memory_import = r#"(module (import "bulkhead" "memory" (memory 1)) (func (export "run")))"#;
    assert_eq!(
        outcome(memory_import, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::UnknownImport)
    );
    let wrong_type =
        r#"(module (import "bulkhead" "log" (func (param i32))) (func (export "run")))"#;
    assert_eq!(
        outcome(wrong_type, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::ImportTypeMismatch)
    );
    let hidden_memory = r#"(module (memory 1) (func (export "run")))"#;
    assert_eq!(
        outcome(hidden_memory, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::MemoryNotExported)
    );
    let no_entry = r#"(module (memory (export "memory") 1) (func (export "main")))"#;
    assert_eq!(
        outcome(no_entry, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::MissingEntry)
    );
    let entry_with_params =
        r#"(module (memory (export "memory") 1) (func (export "run") (param i32)))"#;
    assert_eq!(
        outcome(entry_with_params, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::MissingEntry)
    );
    let start =
        r#"(module (memory (export "memory") 1) (func $s) (start $s) (func (export "run")))"#;
    assert_eq!(
        outcome(start, &[], LIMITS),
        Outcome::NotLoaded(LoadFailure::StartFunction)
    );
}

#[test]
fn bad_host_arguments_trap() {
    let log = |ptr: &str, len: &str| {
        format!(
            r#"(module (import "bulkhead" "log" (func $log (param i32 i32)))
              (memory (export "memory") 1)
              (func (export "run") (call $log (i32.const {ptr}) (i32.const {len}))))"#
        )
    };
    assert_eq!(
        outcome(&log("65530", "16"), &[Capability::Log], LIMITS),
        Outcome::Trapped(TrapKind::BadHostArgument)
    );
    assert_eq!(
        outcome(&log("-1", "2"), &[Capability::Log], LIMITS),
        Outcome::Trapped(TrapKind::BadHostArgument)
    );
    assert_eq!(
        outcome(&log("0", "5000"), &[Capability::Log], LIMITS),
        Outcome::Trapped(TrapKind::BadHostArgument)
    );
    assert_eq!(
        outcome(&log("0", "16"), &[Capability::Log], LIMITS),
        Outcome::NoResult
    );
    let scratch = |off: i64, len: i32| {
        format!(
            r#"(module (import "bulkhead" "scratch_write" (func $w (param i64 i32 i32)))
              (memory (export "memory") 1)
              (func (export "run") (call $w (i64.const {off}) (i32.const 0) (i32.const {len}))))"#
        )
    };
    let run = |src: String| {
        run_wat(&src, &[Capability::Scratch], LIMITS, MockBoard::q35(4096))
            .0
            .unwrap()
            .outcome
    };
    assert_eq!(run(scratch(4000, 96)), Outcome::NoResult);
    assert_eq!(
        run(scratch(4000, 97)),
        Outcome::Trapped(TrapKind::BadHostArgument)
    );
    assert_eq!(
        run(scratch(-1, 1)),
        Outcome::Trapped(TrapKind::BadHostArgument)
    );
    let pci = r#"(module (import "bulkhead" "pci_read32" (func $p (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "run") (drop (call $p (i32.const 0) (i32.const 32) (i32.const 0) (i32.const 0)))))"#;
    assert_eq!(
        outcome(pci, &[Capability::PciConfig], LIMITS),
        Outcome::Trapped(TrapKind::BadHostArgument)
    );
}

#[test]
fn logs_are_bounded() {
    let src = r#"(module (import "bulkhead" "log" (func $log (param i32 i32)))
      (memory (export "memory") 1) (data (i32.const 0) "hello")
      (func (export "run") (local $i i32)
        (loop (call $log (i32.const 0) (i32.const 5))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if 0 (i32.lt_u (local.get $i) (i32.const 100))))))"#;
    let module = wat(src);
    let limits = LIMITS;
    let c = sign(
        &manifest("chatty", &module, caps(&[Capability::Log]), limits),
        &module,
    );
    let v = verify(&c, &policy()).unwrap();
    let mut l = Loaded::load(&engine(), &v, MockBoard::q35(0)).ok().unwrap();
    l.run(&limits);
    assert_eq!(
        l.suppressed_log_lines(),
        100 - firmware_runtime::MAX_LOG_LINES
    );
    let board = l.release();
    assert_eq!(board.logs.len() as u32, firmware_runtime::MAX_LOG_LINES);
    assert_eq!(board.logs[0], ("chatty".to_string(), "hello".to_string()));
}

#[test]
fn memory_is_zeroed_after_the_run() {
    // The container fills its whole memory with 0xAB (a stand-in for secrets).
    let src = r#"(module (memory (export "memory") 2)
      (func (export "run") (memory.fill (i32.const 0) (i32.const 0xAB) (i32.const 131072))))"#;
    let module = wat(src);
    let c = sign(
        &manifest("secret", &module, CapabilitySet::EMPTY, LIMITS),
        &module,
    );
    let v = verify(&c, &policy()).unwrap();
    let mut l = Loaded::load(&engine(), &v, MockBoard::q35(0)).ok().unwrap();
    assert_eq!(l.run(&LIMITS).outcome, Outcome::NoResult);
    assert_eq!(l.memory().len(), 131072);
    assert!(
        l.memory().iter().all(|b| *b == 0xAB),
        "the container did not write its memory"
    );
    assert_eq!(l.wipe(), Some(131072));
    assert!(l.memory().iter().all(|b| *b == 0));
}

fn post_set() -> Vec<Vec<u8>> {
    let pass = wat(PASS);
    let good = sign(&manifest("good", &pass, caps(REPORT_ONLY), LIMITS), &pass);
    let mut flipped = sign(
        &manifest("flipped", &pass, caps(REPORT_ONLY), LIMITS),
        &pass,
    );
    let n = flipped.len();
    flipped[n - 1] ^= 1; // a bit of the signature
    let loop_ = wat(r#"(module (memory (export "memory") 1) (func (export "run") (loop br 0)))"#);
    let mut m = manifest("spinner", &loop_, CapabilitySet::EMPTY, LIMITS);
    m.critical = true;
    let spinner = sign(&m, &loop_);
    vec![good, flipped, spinner]
}

#[test]
fn post_phase_reports_every_slot_and_stops_on_a_critical_failure() {
    let set = post_set();
    let refs: Vec<&[u8]> = set.iter().map(|c| c.as_slice()).collect();
    let (report, board) = run_post(&policy(), &refs, MockBoard::q35(8192));
    let outcomes: Vec<_> = report
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                "good",
                Outcome::Passed {
                    detail: "all good".into()
                }
            ),
            (
                "flipped",
                Outcome::Refused(firmware_core::Refusal::BadSignature)
            ),
            ("spinner", Outcome::OutOfFuel),
        ]
    );
    assert_eq!(report.decision, Decision::Stop { slot: 2 });
    assert_eq!(report.entries[0].wiped_bytes, 65536);
    assert_eq!(report.scratch_wiped_bytes, 8192);
    assert!(board.scratch.iter().all(|b| *b == 0));
    let text = report.to_string();
    assert!(
        text.contains("[1] flipped 0.1.0: REFUSED: signature does not verify"),
        "{text}"
    );
    // The report survives the channel encoding.
    assert_eq!(
        firmware_core::PostReport::decode(&report.encode()),
        Ok(report)
    );
}

#[test]
fn post_phase_boots_when_only_non_critical_containers_fail() {
    let set = post_set();
    let refs: Vec<&[u8]> = set[..2].iter().map(|c| c.as_slice()).collect();
    let (report, _) = run_post(&policy(), &refs, MockBoard::q35(0));
    assert_eq!(report.decision, Decision::Boot);
    // Unless the policy stops on any refusal...
    let mut p = policy();
    p.stop_on_refusal = true;
    assert_eq!(
        run_post(&p, &refs, MockBoard::q35(0)).0.decision,
        Decision::Stop { slot: 1 }
    );
    // ...or names a critical container that is not in the set.
    let mut p = policy();
    p.critical.push("memtest".into());
    let (report, _) = run_post(&p, &refs, MockBoard::q35(0));
    assert_eq!(report.decision, Decision::Stop { slot: 2 });
    assert_eq!(report.entries[2].outcome, Outcome::Missing);
}

#[test]
fn rtc_packing_matches_the_sdk() {
    let t = firmware_runtime::RtcTime {
        year: 2026,
        month: 11,
        day: 22,
        hour: 23,
        minute: 59,
        second: 58,
    };
    let u = firmware_sdk::rtc::RtcTime::unpack(t.pack());
    assert_eq!(
        (u.year, u.month, u.day, u.hour, u.minute, u.second),
        (2026, 11, 22, 23, 59, 58)
    );
}
