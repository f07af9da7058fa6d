//! Throughput: our packet decoder beside libipt's packet decoder on the same
//! large generated trace in the same run (MB/s, packets/s, ratio), and the
//! CFI fast and slow paths on a long trace of the end-to-end program.
//!
//! `cargo bench -p bulkhead-pt-ref` (libipt-dev must be installed; `cargo
//! xtask test` installs it). Each figure is the best of a few runs.

#[path = "../../pt/tests/e2e_support/mod.rs"]
mod e2e_support;

use std::time::{Duration, Instant};

use bulkhead_pt::cfi::{slow_check, CheckConfig, Checker};
use bulkhead_pt::synth::{packet_of_kind, Rng};
use bulkhead_pt::{encode, Config, Decoder, Item, Packet, StreamDecoder};

/// Times `f` by the thread's CPU time when the shim provides it (so other
/// processes competing for the cores do not count), else by wall clock.
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs {
        let (t, c) = (Instant::now(), bulkhead_pt_ref::thread_cpu_ns());
        let r = f();
        let d = match (c, bulkhead_pt_ref::thread_cpu_ns()) {
            (Some(a), Some(b)) => Duration::from_nanos(b - a),
            _ => t.elapsed(),
        };
        best = best.min(d);
        out = Some(r);
    }
    (best, out.expect("runs > 0"))
}

/// A trace with a realistic packet mix: mostly TNT, then TIPs with
/// compressed IPs, timing packets, a PSB+ every ~4 KiB.
fn realistic(bytes: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut t = Vec::with_capacity(bytes + 64);
    let mut b = [0u8; 16];
    let mut since_psb = usize::MAX;
    while t.len() < bytes {
        if since_psb > 4096 {
            for p in [
                Packet::Psb,
                Packet::ModeExec {
                    csl: true,
                    csd: false,
                },
                Packet::Tsc(r.next_u64() >> 8),
                Packet::Psbend,
            ] {
                let n = encode(&p, &mut b).unwrap();
                t.extend_from_slice(&b[..n]);
            }
            since_psb = 0;
        }
        let kind = match r.below(100) {
            0..=54 => 2,   // TNT-8
            55..=59 => 3,  // TNT-64
            60..=74 => 4,  // TIP
            75..=79 => 7,  // FUP
            80..=89 => 14, // CYC
            90..=95 => 13, // MTC
            _ => 0,        // PAD
        };
        let p = packet_of_kind(&mut r, kind);
        let n = encode(&p, &mut b).unwrap();
        t.extend_from_slice(&b[..n]);
        since_psb += n;
    }
    t
}

/// Every packet kind equally often (wider packets, more branches in the decoder).
fn uniform(bytes: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut t = Vec::with_capacity(bytes + 64);
    let mut b = [0u8; 16];
    let mut i = 0u64;
    while t.len() < bytes {
        let p = if i.is_multiple_of(256) {
            Packet::Psb
        } else {
            bulkhead_pt::synth::random_packet(&mut r)
        };
        i += 1;
        let n = encode(&p, &mut b).unwrap();
        t.extend_from_slice(&b[..n]);
    }
    t
}

fn ours_count(t: &[u8]) -> u64 {
    let mut n = 0u64;
    for i in Decoder::new(t, Config::default()).items() {
        if let Item::Packet(d) = i {
            n += 1;
            std::hint::black_box(&d);
        }
    }
    n
}

fn stream_count(t: &[u8], piece: usize) -> u64 {
    let mut s = StreamDecoder::new(Config::default());
    let mut n = 0u64;
    for c in t.chunks(piece) {
        s.feed(c, |e| {
            if let bulkhead_pt::Event::Packet(d) = e {
                n += 1;
                std::hint::black_box(&d);
            }
        });
    }
    n
}

fn mbs(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    // `cargo test --benches` runs benches once in test mode: keep that quick.
    let quick = std::env::args().any(|a| a == "--test");
    let size = if quick { 1 << 20 } else { 64 << 20 };
    let runs = if quick { 1 } else { 7 };
    let clock = if bulkhead_pt_ref::thread_cpu_ns().is_some() {
        "thread CPU time"
    } else {
        "wall clock"
    };
    println!(
        "PT packet decoding, {} MiB traces, best of {runs} by {clock}",
        size >> 20
    );
    // PT_BENCH=cfi runs only the CFI part (for profiling).
    let only_cfi = std::env::var("PT_BENCH").is_ok_and(|v| v == "cfi");
    let traces = if only_cfi {
        vec![]
    } else {
        vec![
            ("realistic mix", realistic(size, 1)),
            ("uniform mix", uniform(size, 2)),
        ]
    };
    for (name, t) in traces {
        // Interleaved, so load from other processes hits all three alike.
        let have_ipt = match bulkhead_pt_ref::libipt_count(&t) {
            Ok(_) => true,
            Err(e) => {
                println!("  libipt: {e}");
                false
            }
        };
        let (mut d_ours, mut d_stream, mut d_ipt) =
            (Duration::MAX, Duration::MAX, None::<Duration>);
        let (mut n_ours, mut n_stream, mut n_ipt) = (0, 0, 0);
        for _ in 0..runs {
            let (d, n) = best(1, || ours_count(&t));
            (d_ours, n_ours) = (d_ours.min(d), n);
            let (d, n) = best(1, || stream_count(&t, 4096));
            (d_stream, n_stream) = (d_stream.min(d), n);
            if have_ipt {
                let (d, n) = best(1, || bulkhead_pt_ref::libipt_count(&t).unwrap());
                d_ipt = Some(d_ipt.map_or(d, |x| x.min(d)));
                n_ipt = n;
            }
        }
        assert_eq!(
            n_ours, n_stream,
            "{name}: stream and slice decoders disagree"
        );
        println!("  {name}: {} packets", n_ours);
        let line = |who: &str, d: Duration, n: u64| {
            println!(
                "    {who:<22} {:>8.1} MB/s {:>8.1} Mpackets/s",
                mbs(t.len(), d),
                n as f64 / d.as_secs_f64() / 1e6
            )
        };
        line("bulkhead-pt (slice)", d_ours, n_ours);
        line("bulkhead-pt (stream 4K)", d_stream, n_stream);
        if let Some(d) = d_ipt {
            assert_eq!(
                n_ipt, n_ours,
                "{name}: libipt counted a different number of packets"
            );
            line("libipt pt_pkt_next", d, n_ipt);
            println!(
                "    ratio bulkhead-pt / libipt: {:.2}x (slice), {:.2}x (stream)",
                d.as_secs_f64() / d_ours.as_secs_f64(),
                d.as_secs_f64() / d_stream.as_secs_f64()
            );
        }
    }

    // CFI: the end-to-end program's clean trace, repeated into one long
    // stream (each copy starts with PSB+ and TIP.PGE, ends with TIP.PGD).
    let p = e2e_support::program();
    let policy = p.policy();
    let (flows, executed) = e2e_support::execute(&p, e2e_support::Attack::None);
    let one = e2e_support::synthesize(
        p.at("main"),
        &flows,
        e2e_support::TraceOpts {
            psb_every: 1000,
            ..Default::default()
        },
    );
    let copies = (if quick { 1 << 20 } else { 16 << 20 }) / one.len();
    let long: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * copies)
        .collect();
    let (d_fast, edges) = best(runs, || {
        let mut c = Checker::new(&policy, CheckConfig::default());
        c.enter_controlled();
        for piece in long.chunks(64 << 10) {
            c.feed(piece);
        }
        let w = c.leave_controlled().unwrap();
        assert!(w.first_suspicious.is_none());
        w.edges
    });
    println!(
        "CFI on the end-to-end program's trace ({} MiB, {} copies of {} bytes)",
        long.len() >> 20,
        copies,
        one.len()
    );
    println!(
        "    fast path            {:>8.1} MB/s {:>8.1} Medges/s ({:.0} instructions/s followed)",
        mbs(long.len(), d_fast),
        edges as f64 / d_fast.as_secs_f64() / 1e6,
        (executed * copies as u64) as f64 / d_fast.as_secs_f64()
    );
    let slow_bytes = long.len().min(1 << 20);
    let (d_slow, rep) = best(runs.min(3), || {
        slow_check(
            &policy,
            &long[..slow_bytes],
            0,
            (0, slow_bytes as u64),
            CheckConfig::default(),
        )
    });
    assert!(rep.violation.is_none());
    println!(
        "    slow path            {:>8.1} MB/s {:>8.1} Minstructions/s (iced-x86 per instruction)",
        mbs(slow_bytes, d_slow),
        rep.instructions as f64 / d_slow.as_secs_f64() / 1e6
    );
}
