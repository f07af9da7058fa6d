//! `cargo bench -p firmware-runtime`: the figures of docs/firmware.md.
//!
//! 1. Verify-and-load time per sample container: verification (signature,
//!    hashes, policy) and loading (wasmi validation, eager translation,
//!    instantiation against the host API), each the median of many runs.
//! 2. The memory test over a 1 MiB scratch region: the memtest container
//!    under wasmi beside the very same SDK code compiled natively, in the
//!    same run, and their ratio.
//!
//! Needs the signed containers: run `cargo xtask test` once (its setup makes
//! them under `.cache/firmware`), then
//! `BULKHEAD_FW_CONTAINERS=$PWD/.cache/firmware cargo bench -p firmware-runtime`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::MockBoard;
use firmware_core::{verify, Outcome};
use firmware_runtime::{engine, Loaded};
use firmware_sdk::memtest::{self, SliceMemory};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let Some(dir) = std::env::var_os("BULKHEAD_FW_CONTAINERS").map(PathBuf::from) else {
        eprintln!("BULKHEAD_FW_CONTAINERS is not set: run `cargo xtask test` once, then\n  BULKHEAD_FW_CONTAINERS=$PWD/.cache/firmware cargo bench -p firmware-runtime");
        std::process::exit(1);
    };
    let policy = firmware_host::trust::load(&dir.join("trust.toml")).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let engine = engine();

    println!("verify-and-load per container (median of 50):");
    println!(
        "{:<16} {:>8} {:>11} {:>11} {:>11}",
        "container", "bytes", "verify us", "load us", "total us"
    );
    for name in ["memtest", "pci-inventory", "timer-rtc", "serial-loopback"] {
        let bytes = std::fs::read(dir.join(format!("{name}.bhc"))).expect("container file");
        let (mut tv, mut tl) = (Vec::new(), Vec::new());
        for _ in 0..50 {
            let t0 = Instant::now();
            let v = verify(black_box(&bytes), &policy).expect("verifies");
            let t1 = Instant::now();
            let l = Loaded::load(&engine, &v, MockBoard::q35(0))
                .ok()
                .expect("loads");
            let t2 = Instant::now();
            black_box(l.release());
            tv.push(t1 - t0);
            tl.push(t2 - t1);
        }
        let (v, l) = (median(tv), median(tl));
        println!(
            "{:<16} {:>8} {:>11.1} {:>11.1} {:>11.1}",
            name,
            bytes.len(),
            us(v),
            us(l),
            us(v + l)
        );
    }

    const SCRATCH: usize = 1 << 20;
    const RUNS: usize = 5;
    let bytes = std::fs::read(dir.join("memtest.bhc")).expect("memtest container");
    let v = verify(&bytes, &policy).expect("memtest verifies");
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    let mut fuel = 0;
    for _ in 0..RUNS {
        let mut l = Loaded::load(&engine, &v, MockBoard::q35(SCRATCH))
            .ok()
            .expect("loads");
        let t0 = Instant::now();
        let rec = l.run(&v.manifest().limits);
        wasm.push(t0.elapsed());
        assert!(
            matches!(rec.outcome, Outcome::Passed { .. }),
            "memtest under wasmi: {:?}",
            rec.outcome
        );
        fuel = rec.fuel_used;

        let mut mem = vec![0x5au8; SCRATCH];
        let mut buf = [0u8; memtest::CHUNK];
        let t0 = Instant::now();
        let s = memtest::run(&mut SliceMemory(black_box(&mut mem)), &mut buf);
        native.push(t0.elapsed());
        assert!(s.failure.is_none() && s.patterns == 7);
        black_box(&mem);
    }
    let (w, n) = (median(wasm), median(native));
    let mib_s = |d: Duration| 7.0 * SCRATCH as f64 / (1 << 20) as f64 / d.as_secs_f64();
    println!("\nmemtest, 7 patterns over 1 MiB (median of {RUNS}):");
    println!(
        "  wasmi : {:>9.1} ms  ({:.0} MiB/s per pattern pass, {} fuel)",
        w.as_secs_f64() * 1e3,
        mib_s(w),
        fuel
    );
    println!(
        "  native: {:>9.1} ms  ({:.0} MiB/s per pattern pass)",
        n.as_secs_f64() * 1e3,
        mib_s(n)
    );
    println!(
        "  ratio : {:.1}x slower under wasmi",
        w.as_secs_f64() / n.as_secs_f64()
    );
}
