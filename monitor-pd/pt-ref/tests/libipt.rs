//! Our PT packet decoder and encoder against libipt 2.0, byte for byte:
//! random valid packet sequences of every packet type and IP compression,
//! encoded by libipt and by us (same bytes), decoded by both (same packets,
//! sizes and offsets), then corrupted in several ways (same error kinds,
//! error offsets and resync offsets).

use bulkhead_pt::synth::{packet_of_kind, Rng, KINDS};
use bulkhead_pt::{encode, Packet};
use bulkhead_pt_ref::{libipt_decode, libipt_encode, ours, ppt, Rec};

const NEEDS: &str = "needs libipt-dev: run via cargo xtask test";

fn random_packets(seed: u64, n: usize) -> Vec<Packet> {
    let mut r = Rng::new(seed);
    let mut v = vec![Packet::Psb];
    for i in 1..n {
        // Back-to-back PSBs are one long PSB pattern to libipt's sync, which
        // then starts at the last of them (our slice decoder does the same,
        // see `find_psb`); keep them apart so every packet is decoded.
        if (r.below(50) == 0 || i % 300 == 0) && v.last() != Some(&Packet::Psb) {
            v.push(Packet::Psb);
        } else {
            let k = r.below(KINDS);
            v.push(packet_of_kind(&mut r, k));
        }
    }
    v
}

fn our_bytes(ps: &[Packet]) -> Vec<u8> {
    let mut t = Vec::new();
    let mut b = [0u8; 16];
    for p in ps {
        let n = encode(p, &mut b).expect("valid packet");
        t.extend_from_slice(&b[..n]);
    }
    t
}

fn compare(trace: &[u8], what: &str) {
    let want = libipt_decode(trace).unwrap_or_else(|e| panic!("{e}"));
    let got = ours(trace);
    if want != got {
        let i = want
            .iter()
            .zip(&got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        let lo = i.saturating_sub(3);
        panic!(
            "{what}: first difference at record {i} (offset {:?})\n libipt: {:?}\n ours:   {:?}\n bytes around: {:02x?}",
            want.get(i).map(|r| r.offset),
            &want[lo..(i + 2).min(want.len())],
            &got[lo..(i + 2).min(got.len())],
            want.get(i).map(|r| &trace[(r.offset.min(trace.len() as u64) as usize).saturating_sub(4)..((r.offset as usize) + 20).min(trace.len())])
        );
    }
}

/// The stream decoder, fed in random pieces, agrees with libipt up to and
/// including the first error (error records compared without the resync
/// offset, which the stream reports later as a Sync event).
fn compare_stream(trace: &[u8], seed: u64, what: &str) -> bool {
    let mut want = libipt_decode(trace).expect(NEEDS);
    if let Some(i) = want.iter().position(|r| r.kind == 1) {
        want.truncate(i + 1);
        want[i].resync = 0;
    }
    let mut r = Rng::new(seed ^ 0x5eed);
    let mut cuts: Vec<usize> = (0..r.below(20))
        .map(|_| r.below(trace.len() as u64 + 1) as usize)
        .collect();
    cuts.sort();
    let got = bulkhead_pt_ref::ours_stream_until_error(trace, &cuts);
    // When the trace starts with garbage, libipt's aligned PSB search and the
    // stream's byte-wise one may pick different PSBs of a longer pattern run;
    // compare only when they synchronised at the same offset.
    if want.first().map(|r| r.offset) != got.first().map(|r| r.offset) {
        return false;
    }
    if want != got {
        let i = want
            .iter()
            .zip(&got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        panic!(
            "{what}: stream decoder differs at record {i}: libipt {:?} stream {:?}",
            want.get(i),
            got.get(i)
        );
    }
    true
}

#[test]
#[ignore = "needs libipt-dev: run via cargo xtask test"]
fn encoders_agree_and_decoders_agree_on_valid_traces() {
    let mut seen_types = std::collections::BTreeSet::new();
    let mut seen_ipc = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let ps = random_packets(seed, 400);
        let theirs = libipt_encode(&ps).expect(NEEDS);
        let mine = our_bytes(&ps);
        if theirs != mine {
            let i = theirs
                .iter()
                .zip(&mine)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "seed {seed}: encoders differ at byte {i}: libipt {:02x?} ours {:02x?}",
                &theirs[i.saturating_sub(4)..(i + 8).min(theirs.len())],
                &mine[i.saturating_sub(4)..(i + 8).min(mine.len())]
            );
        }
        let recs = libipt_decode(&theirs).expect(NEEDS);
        // libipt decodes exactly the packets we generated.
        let pk: Vec<&Rec> = recs.iter().filter(|r| r.kind == 0).collect();
        assert_eq!(pk.len(), ps.len(), "seed {seed}");
        for r in &pk {
            seen_types.insert(r.ty);
            if matches!(r.ty, ppt::TIP | ppt::TIP_PGE | ppt::TIP_PGD | ppt::FUP) {
                seen_ipc.insert(r.b);
            }
        }
        compare(&theirs, &format!("valid seed {seed}"));
    }
    // Every packet type libipt 2.0 knows except the (never generated) MNT-less
    // unknown/invalid ones, and every IP compression, were exercised.
    for t in ppt::PAD..=ppt::PTW {
        assert!(seen_types.contains(&t), "packet type {t} never generated");
    }
    assert_eq!(
        seen_ipc.into_iter().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 6]
    );
}

#[test]
#[ignore = "needs libipt-dev: run via cargo xtask test"]
fn decoders_agree_on_corrupt_traces() {
    let mut kinds = std::collections::BTreeSet::new();
    let mut streamed = 0;
    for seed in 0..400 {
        let ps = random_packets(seed, 200);
        let mut t = libipt_encode(&ps).expect(NEEDS);
        let mut r = Rng::new(seed ^ 0xc0ffee);
        match seed % 5 {
            // Flip random bytes.
            0 | 1 => {
                for _ in 0..1 + r.below(10) {
                    let i = r.below(t.len() as u64) as usize;
                    t[i] = r.next_u64() as u8;
                }
            }
            // Insert random bytes (misaligns everything after).
            2 => {
                for _ in 0..1 + r.below(4) {
                    let i = r.below(t.len() as u64) as usize;
                    t.insert(i, r.next_u64() as u8);
                }
            }
            // Cut the trace anywhere, and drop a piece in the middle.
            3 => {
                let cut = r.below(t.len() as u64) as usize;
                t.truncate(cut.max(1));
                let a = r.below(t.len() as u64) as usize;
                let b = (a + r.below(40) as usize).min(t.len());
                t.drain(a..b);
            }
            // Garbage before the first PSB and between packets; reserved bits.
            _ => {
                let mut g: Vec<u8> = (0..r.below(40)).map(|_| r.next_u64() as u8).collect();
                g.extend_from_slice(&t);
                t = g;
                for _ in 0..4 {
                    let i = r.below(t.len() as u64) as usize;
                    t[i] |= 0xe0;
                }
            }
        }
        compare(&t, &format!("corrupt seed {seed} (mode {})", seed % 5));
        streamed += compare_stream(
            &t,
            seed,
            &format!("corrupt seed {seed} (mode {})", seed % 5),
        ) as u32;
        kinds.extend(
            libipt_decode(&t)
                .expect(NEEDS)
                .iter()
                .filter(|r| r.kind == 1)
                .map(|r| r.ty),
        );
    }
    assert!(
        streamed > 350,
        "the stream decoder was compared on only {streamed} of 400 traces"
    );
    // The corruptions reached every error libipt's packet decoder reports:
    // bad opcode (4), bad packet (5), truncated (7).
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), vec![4, 5, 7]);
}

#[test]
#[ignore = "needs libipt-dev: run via cargo xtask test"]
fn decoders_agree_on_random_bytes_and_edge_cases() {
    let psb: Vec<u8> = [0x02u8, 0x82].repeat(8);
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        psb.clone(),
        psb[..15].to_vec(),
        [psb.clone(), vec![0x02]].concat(),
        [psb.clone(), vec![0x02, 0xc3]].concat(),
        [
            psb.clone(),
            vec![
                0x07, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00,
            ],
        ]
        .concat(),
        [psb.clone(), vec![0x02, 0xa3, 0, 0, 0, 0, 0, 0], psb.clone()].concat(),
        [psb.clone(), vec![0x02, 0x82, 0x02, 0x82], psb.clone()].concat(),
        [vec![0x02, 0x82], psb.clone(), vec![0x00], psb.clone()].concat(),
        [psb.clone(), vec![0x02, 0x73, 1, 2, 1, 0, 0], psb.clone()].concat(),
    ];
    let mut r = Rng::new(99);
    for _ in 0..300 {
        let mut t = psb.clone();
        t.extend((0..r.below(300)).map(|_| r.next_u64() as u8));
        if r.bit() {
            let at = r.below(t.len() as u64) as usize;
            let tail = t.split_off(at);
            t.extend_from_slice(&psb);
            t.extend(tail);
        }
        cases.push(t);
    }
    for (i, t) in cases.iter().enumerate() {
        compare(t, &format!("case {i}"));
    }
}
