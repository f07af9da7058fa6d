//! Unit tests of the decoder against the SDM layouts, our encoder, and the
//! stream decoder against the slice decoder. The byte-for-byte comparison
//! with libipt lives in the `bulkhead-pt-ref` crate.

use crate::packet::{self, ErrorKind, IpPayload, Ipc, Packet};
use crate::synth::{random_packet, Rng};
use crate::{encode, encode_bip, Config, Decoded, Decoder, Event, Item, StreamDecoder};

const PSB: [u8; 16] = [
    2, 0x82, 2, 0x82, 2, 0x82, 2, 0x82, 2, 0x82, 2, 0x82, 2, 0x82, 2, 0x82,
];

fn one(bytes: &[u8]) -> Result<(Packet, usize), ErrorKind> {
    packet::decode(bytes, Config::default(), None)
}

#[test]
fn sdm_layouts() {
    // Hand-assembled from the SDM packet tables, independent of our encoder.
    assert_eq!(one(&[0x00]), Ok((Packet::Pad, 1)));
    assert_eq!(one(&PSB), Ok((Packet::Psb, 16)));
    assert_eq!(one(&[0x02, 0x23]), Ok((Packet::Psbend, 2)));
    // TNT-8 0b0001_0110: stop bit at bit 4 -> 3 branches 0b011 (T,T then N? oldest first: 0,1,1).
    assert_eq!(
        one(&[0x16]),
        Ok((
            Packet::Tnt {
                long: false,
                bits: 3,
                payload: 0b011
            },
            1
        ))
    );
    assert_eq!(
        one(&[0x02, 0xa3, 0x05, 0, 0, 0, 0, 0]),
        Ok((
            Packet::Tnt {
                long: true,
                bits: 2,
                payload: 1
            },
            8
        ))
    );
    // TIP, IPBytes=011 (sext48).
    assert_eq!(
        one(&[0x6d, 1, 2, 3, 4, 5, 0x86]),
        Ok((
            Packet::Tip(IpPayload {
                ipc: Ipc::Sext48,
                raw: 0x8605_0403_0201
            }),
            7
        ))
    );
    assert_eq!(
        one(&[0x21, 0x34, 0x12]),
        Ok((
            Packet::TipPgd(IpPayload {
                ipc: Ipc::Update16,
                raw: 0x1234
            }),
            3
        ))
    );
    assert_eq!(
        one(&[0x11]),
        Ok((
            Packet::TipPge(IpPayload {
                ipc: Ipc::Suppressed,
                raw: 0
            }),
            1
        ))
    );
    assert_eq!(
        one(&[0xdd, 1, 0, 0, 0, 0, 0, 0, 0x80]),
        Ok((
            Packet::Fup(IpPayload {
                ipc: Ipc::Full,
                raw: 0x8000_0000_0000_0001
            }),
            9
        ))
    );
    // PIP: CR3 0x1234_5000 with NR.
    let v: u64 = (0x1234_5000u64 >> 5) << 1 | 1;
    let b = v.to_le_bytes();
    assert_eq!(
        one(&[0x02, 0x43, b[0], b[1], b[2], b[3], b[4], b[5]]),
        Ok((
            Packet::Pip {
                cr3: 0x1234_5000,
                nr: true
            },
            8
        ))
    );
    assert_eq!(
        one(&[0x99, 0x01]),
        Ok((
            Packet::ModeExec {
                csl: true,
                csd: false
            },
            2
        ))
    );
    assert_eq!(
        one(&[0x99, 0x23]),
        Ok((
            Packet::ModeTsx {
                intx: true,
                abrt: true
            },
            2
        ))
    );
    assert_eq!(one(&[0x99, 0x40]), Err(ErrorKind::BadPacket));
    assert_eq!(
        one(&[0x19, 1, 2, 3, 4, 5, 6, 7]),
        Ok((Packet::Tsc(0x07_0605_0403_0201), 8))
    );
    assert_eq!(
        one(&[0x02, 0x73, 0x34, 0x12, 0, 0xff, 0x01]),
        Ok((
            Packet::Tma {
                ctc: 0x1234,
                fc: 0x1ff
            },
            7
        ))
    );
    assert_eq!(
        one(&[0x02, 0x73, 0x34, 0x12, 0, 0xff, 0x03]),
        Err(ErrorKind::BadPacket)
    );
    assert_eq!(one(&[0x59, 0x42]), Ok((Packet::Mtc(0x42), 2)));
    // CYC: 0b10111_1_11 -> low 5 bits 0x17, ext; next 0b0000011_0 -> 3 << 5.
    assert_eq!(one(&[0xbf, 0x06]), Ok((Packet::Cyc(0x17 | 3 << 5), 2)));
    assert_eq!(one(&[0x02, 0x03, 0x2a, 0]), Ok((Packet::Cbr(0x2a), 4)));
    assert_eq!(
        one(&[0x02, 0xc8, 1, 0, 0, 0, 0]),
        Ok((Packet::Vmcs(0x1000), 7))
    );
    assert_eq!(one(&[0x02, 0xf3]), Ok((Packet::Ovf, 2)));
    assert_eq!(one(&[0x02, 0x83]), Ok((Packet::Stop, 2)));
    assert_eq!(
        one(&[0x02, 0xc3, 0x88, 1, 0, 0, 0, 0, 0, 0, 0]),
        Ok((Packet::Mnt(1), 11))
    );
    assert_eq!(one(&[0x02, 0xe2]), Ok((Packet::Exstop { ip: true }, 2)));
    assert_eq!(
        one(&[0x02, 0xc2, 1, 0, 0, 0, 2, 0, 0, 0]),
        Ok((Packet::Mwait { hints: 1, ext: 2 }, 10))
    );
    assert_eq!(
        one(&[0x02, 0x22, 0x08, 0x21]),
        Ok((
            Packet::Pwre {
                state: 2,
                sub_state: 1,
                hw: true
            },
            4
        ))
    );
    assert_eq!(
        one(&[0x02, 0xa2, 0x63, 0x09, 0, 0, 0]),
        Ok((
            Packet::Pwrx {
                last: 6,
                deepest: 3,
                interrupt: true,
                store: false,
                autonomous: true
            },
            7
        ))
    );
    assert_eq!(
        one(&[0x02, 0xb2, 1, 0, 0, 0, 0, 0, 0, 0]),
        Ok((
            Packet::Ptw {
                payload: 1,
                plc: 1,
                ip: true
            },
            10
        ))
    );
    assert_eq!(one(&[0x02, 0x52, 1, 0, 0, 0]), Err(ErrorKind::BadPacket));
    assert_eq!(
        one(&[0x02, 0x63, 0x81]),
        Ok((Packet::Bbp { sz4: true, kind: 1 }, 3))
    );
    assert_eq!(one(&[0x02, 0xb3]), Ok((Packet::Bep { ip: true }, 2)));
    // Reserved IPBytes, unknown opcodes, truncation.
    assert_eq!(one(&[0xad]), Err(ErrorKind::BadPacket));
    assert_eq!(one(&[0x05]), Err(ErrorKind::BadOpcode));
    assert_eq!(one(&[0x02, 0x04]), Err(ErrorKind::BadOpcode));
    assert_eq!(one(&[0x02, 0xc3, 0x89]), Err(ErrorKind::BadOpcode));
    assert_eq!(one(&[0x19, 1, 2]), Err(ErrorKind::Eos));
    assert_eq!(one(&PSB[..15]), Err(ErrorKind::Eos));
    assert_eq!(one(&[0x02]), Err(ErrorKind::Eos));
    assert_eq!(
        one(&[0x02, 0xa3, 1, 0, 0, 0, 0, 0]),
        Err(ErrorKind::BadPacket)
    );
    // Ten CYC bytes overflow 64 bits.
    assert_eq!(
        one(&[0x07, 1, 1, 1, 1, 1, 1, 1, 1, 0]),
        Err(ErrorKind::BadPacket)
    );
    // Without block packets (libipt 2.0) BBP is an unknown opcode.
    assert_eq!(
        packet::decode(
            &[0x02, 0x63, 0x81],
            Config {
                block_packets: false
            },
            None
        ),
        Err(ErrorKind::BadOpcode)
    );
}

#[test]
fn block_items_only_inside_a_block() {
    let mut t = PSB.to_vec();
    let mut b = [0u8; 16];
    let n = encode(&Packet::Bbp { sz4: true, kind: 1 }, &mut b).unwrap();
    t.extend_from_slice(&b[..n]);
    let n = encode_bip(3, 0xdead_beef, true, &mut b).unwrap();
    t.extend_from_slice(&b[..n]);
    let n = encode(&Packet::Bep { ip: false }, &mut b).unwrap();
    t.extend_from_slice(&b[..n]);
    t.push(3 << 3 | 4); // the same byte outside a block is a TNT-8.
    let got: Vec<Packet> = Decoder::new(&t, Config::default())
        .items()
        .filter_map(|i| match i {
            Item::Packet(d) => Some(d.packet),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![
            Packet::Psb,
            Packet::Bbp { sz4: true, kind: 1 },
            Packet::Bip {
                id: 3,
                payload: 0xdead_beef
            },
            Packet::Bep { ip: false },
            Packet::Tnt {
                long: false,
                bits: 3,
                payload: 0b110
            },
        ]
    );
}

#[test]
fn encode_decode_round_trip_every_kind() {
    let mut r = Rng::new(1);
    let mut buf = [0u8; 16];
    for _ in 0..20_000 {
        let p = random_packet(&mut r);
        let n = encode(&p, &mut buf).unwrap();
        assert_eq!(one(&buf[..n]), Ok((p, n)), "{p:?} {:02x?}", &buf[..n]);
        // Every strict prefix is a truncated packet, never a different packet.
        for k in 0..n {
            assert_eq!(one(&buf[..k]), Err(ErrorKind::Eos), "{p:?} prefix {k}");
        }
    }
}

#[test]
fn last_ip_all_compressions() {
    let mut l = crate::LastIp::default();
    assert_eq!(l.get(), None);
    let up = |l: &mut crate::LastIp, ipc, raw| l.update(&IpPayload { ipc, raw });
    assert_eq!(
        up(&mut l, Ipc::Full, 0xffff_8000_1234_5678),
        Some(0xffff_8000_1234_5678)
    );
    assert_eq!(
        up(&mut l, Ipc::Update16, 0xabcd),
        Some(0xffff_8000_1234_abcd)
    );
    assert_eq!(
        up(&mut l, Ipc::Update32, 0x1111_2222),
        Some(0xffff_8000_1111_2222)
    );
    assert_eq!(
        up(&mut l, Ipc::Update48, 0x7777_1111_2222),
        Some(0xffff_7777_1111_2222)
    );
    assert_eq!(
        up(&mut l, Ipc::Sext48, 0x8000_0000_0010),
        Some(0xffff_8000_0000_0010)
    );
    assert_eq!(
        up(&mut l, Ipc::Sext48, 0x7000_0000_0010),
        Some(0x0000_7000_0000_0010)
    );
    assert_eq!(up(&mut l, Ipc::Suppressed, 0), None);
    assert_eq!(l.get(), Some(0x0000_7000_0000_0010));
    l.reset();
    assert_eq!(l.get(), None);
}

fn random_trace(seed: u64, packets: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut t = Vec::new();
    let mut b = [0u8; 16];
    for i in 0..packets {
        let p = if i % 64 == 0 {
            Packet::Psb
        } else {
            random_packet(&mut r)
        };
        let n = encode(&p, &mut b).unwrap();
        t.extend_from_slice(&b[..n]);
    }
    t
}

fn slice_items(t: &[u8]) -> Vec<Item> {
    Decoder::new(t, Config::default()).items().collect()
}

fn stream_events(t: &[u8], cuts: &[usize]) -> Vec<Event> {
    let mut s = StreamDecoder::new(Config::default());
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(core::iter::once(&t.len())) {
        s.feed(&t[prev..c], |e| out.push(e));
        prev = c;
    }
    s.finish(|e| out.push(e));
    out
}

fn packets_of_events(ev: &[Event]) -> Vec<Decoded> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Packet(d) => Some(*d),
            _ => None,
        })
        .collect()
}

#[test]
fn stream_equals_slice_for_any_split() {
    for seed in 0..40 {
        let t = random_trace(seed, 600);
        let want: Vec<Decoded> = slice_items(&t)
            .into_iter()
            .filter_map(|i| match i {
                Item::Packet(d) => Some(d),
                _ => None,
            })
            .collect();
        let mut r = Rng::new(seed + 1000);
        let mut cuts: Vec<usize> = (0..(1 + r.below(200)))
            .map(|_| r.below(t.len() as u64) as usize)
            .collect();
        cuts.sort();
        let got = stream_events(&t, &cuts);
        assert_eq!(packets_of_events(&got), want, "seed {seed}");
        // Byte-by-byte delivery too.
        let all: Vec<usize> = (1..t.len()).collect();
        assert_eq!(
            packets_of_events(&stream_events(&t, &all)),
            want,
            "seed {seed} bytewise"
        );
    }
}

#[test]
fn resync_after_error_reports_offsets() {
    let mut t = PSB.to_vec();
    t.extend_from_slice(&[0x02, 0x23, 0x00]); // PSBEND PAD
    let bad = t.len();
    t.extend_from_slice(&[0x05, 0x00, 0x00]); // unknown opcode, then junk
    let psb2 = t.len();
    t.extend_from_slice(&PSB);
    t.extend_from_slice(&[0x02, 0xf3]); // OVF
    let items = slice_items(&t);
    assert!(items.contains(&Item::Error {
        error: crate::Error {
            offset: bad as u64,
            kind: ErrorKind::BadOpcode
        },
        resync: Some(psb2 as u64),
    }));
    // The stream decoder reports the error and the sync point, split anywhere.
    for cut in 1..t.len() {
        let ev = stream_events(&t, &[cut]);
        assert!(
            ev.contains(&Event::Error(crate::Error {
                offset: bad as u64,
                kind: ErrorKind::BadOpcode
            })),
            "cut {cut}"
        );
        assert!(
            ev.contains(&Event::Sync {
                offset: psb2 as u64
            }),
            "cut {cut}"
        );
        assert!(
            matches!(
                ev.last(),
                Some(Event::Packet(Decoded {
                    packet: Packet::Ovf,
                    ..
                }))
            ),
            "cut {cut}"
        );
    }
}

#[test]
fn leading_garbage_and_truncated_tail() {
    let mut t = vec![0x55, 0x66, 0x02];
    t.extend_from_slice(&PSB);
    t.extend_from_slice(&[0x19, 1, 2]);
    let items = slice_items(&t);
    assert_eq!(items[0], Item::Skipped { first_psb: Some(3) });
    assert_eq!(
        items.last(),
        Some(&Item::Error {
            error: crate::Error {
                offset: 19,
                kind: ErrorKind::Eos
            },
            resync: None
        })
    );
    let ev = stream_events(&t, &[10]);
    assert_eq!(ev[0], Event::Sync { offset: 3 });
    assert_eq!(
        ev.last(),
        Some(&Event::Error(crate::Error {
            offset: 19,
            kind: ErrorKind::Eos
        }))
    );
}

#[test]
fn corrupt_traces_never_panic_and_stream_agrees_on_packets_before_first_error() {
    for seed in 0..200 {
        let mut t = random_trace(seed, 200);
        let mut r = Rng::new(seed ^ 77);
        for _ in 0..(1 + r.below(8)) {
            let i = r.below(t.len() as u64) as usize;
            t[i] = r.next_u64() as u8;
        }
        let items = slice_items(&t);
        let ev = stream_events(&t, &[t.len() / 3, t.len() / 2]);
        let first_err_slice = items.iter().position(|i| matches!(i, Item::Error { .. }));
        let want: Vec<Decoded> = items[..first_err_slice.unwrap_or(items.len())]
            .iter()
            .filter_map(|i| match i {
                Item::Packet(d) => Some(*d),
                _ => None,
            })
            .collect();
        let first_err_stream = ev
            .iter()
            .position(|e| matches!(e, Event::Error(_)))
            .unwrap_or(ev.len());
        let got = packets_of_events(&ev[..first_err_stream]);
        assert_eq!(got, want, "seed {seed}");
    }
}

#[test]
fn ovf_and_psb_reset_last_ip() {
    let mut t = PSB.to_vec();
    let mut b = [0u8; 16];
    for p in [
        Packet::Fup(IpPayload {
            ipc: Ipc::Full,
            raw: 0xffff_8000_0040_1000,
        }),
        Packet::Tip(IpPayload {
            ipc: Ipc::Update16,
            raw: 0x2000,
        }),
        Packet::Ovf,
        Packet::Fup(IpPayload {
            ipc: Ipc::Update16,
            raw: 0x3000,
        }),
        Packet::Psb,
        Packet::Tip(IpPayload {
            ipc: Ipc::Update32,
            raw: 0x0040_4000,
        }),
    ] {
        let n = encode(&p, &mut b).unwrap();
        t.extend_from_slice(&b[..n]);
    }
    let ips: Vec<Option<u64>> = slice_items(&t)
        .into_iter()
        .filter_map(|i| match i {
            Item::Packet(d) if matches!(d.packet, Packet::Fup(_) | Packet::Tip(_)) => Some(d.ip),
            _ => None,
        })
        .collect();
    assert_eq!(
        ips,
        vec![
            Some(0xffff_8000_0040_1000),
            Some(0xffff_8000_0040_2000),
            Some(0x3000),
            Some(0x0040_4000)
        ]
    );
}

#[test]
fn ring_buffer_delivery_equals_slice_and_lapping_is_reported() {
    let t = random_trace(7, 3000);
    let want: Vec<Decoded> = slice_items(&t)
        .into_iter()
        .filter_map(|i| match i {
            Item::Packet(d) => Some(d),
            _ => None,
        })
        .collect();
    let mut r = Rng::new(5);
    let mut ring = vec![0u8; 4096];
    let mut s = StreamDecoder::new(Config::default());
    let mut got = Vec::new();
    let mut written = 0usize;
    while written < t.len() {
        // The "processor" writes up to a ring's worth, wrapping around.
        let n = (1 + r.below(4096) as usize).min(t.len() - written);
        let size = ring.len();
        for k in 0..n {
            ring[(written + k) % size] = t[written + k];
        }
        written += n;
        s.feed_ring(&ring, written as u64, |e| {
            if let Event::Packet(d) = e {
                got.push(d)
            }
        })
        .unwrap();
    }
    assert_eq!(got, want);
    // A writer that laps the reader: the loss is reported, nothing decoded.
    let mut s = StreamDecoder::new(Config::default());
    assert_eq!(
        s.feed_ring(&ring, 5000, |_| panic!("decoded lapped data")),
        Err(5000 - 4096)
    );
    s.skip_to(5000 - 4096 + 100);
    assert_eq!(s.offset(), 1004);
    assert!(!s.is_synced());
}

#[test]
fn stack_pivot_classification() {
    use crate::cfi::policy::{classify, is_stack_pivot, Kind};
    let pivot = |bytes: &[u8]| {
        let i =
            iced_x86::Decoder::with_ip(64, bytes, 0x1000, iced_x86::DecoderOptions::NONE).decode();
        assert_eq!(i.len(), bytes.len(), "{bytes:02x?} decodes whole");
        is_stack_pivot(&i)
    };
    // Pivots: RSP loaded from a register or memory.
    assert!(pivot(&[0x5c])); // pop rsp
    assert!(pivot(&[0x48, 0x94])); // xchg rsp, rax
    assert!(pivot(&[0x48, 0x87, 0xe0])); // xchg rax, rsp
    assert!(pivot(&[0x48, 0x89, 0xfc])); // mov rsp, rdi
    assert!(pivot(&[0x48, 0x8b, 0x24, 0x24])); // mov rsp, [rsp]
    assert!(pivot(&[0x48, 0x8d, 0x60, 0x08])); // lea rsp, [rax+8]
    assert!(pivot(&[0x48, 0x0f, 0x44, 0xe0])); // cmove rsp, rax
                                               // Ordinary stack management is not.
    assert!(!pivot(&[0x48, 0x89, 0xec])); // mov rsp, rbp
    assert!(!pivot(&[0x48, 0x8d, 0x65, 0xf8])); // lea rsp, [rbp-8]
    assert!(!pivot(&[0x48, 0x8d, 0x64, 0x24, 0x08])); // lea rsp, [rsp+8]
    assert!(!pivot(&[0x48, 0x83, 0xc4, 0x08])); // add rsp, 8
    assert!(!pivot(&[0x48, 0x83, 0xe4, 0xf0])); // and rsp, -16
    assert!(!pivot(&[0xc9])); // leave
    assert!(!pivot(&[0x55])); // push rbp
    assert!(!pivot(&[0x48, 0x89, 0xe5])); // mov rbp, rsp
                                          // Branch kinds.
    let kind = |bytes: &[u8]| {
        classify(
            &iced_x86::Decoder::with_ip(64, bytes, 0x1000, iced_x86::DecoderOptions::NONE).decode(),
        )
    };
    assert_eq!(kind(&[0xc3]), Some(Kind::Ret));
    assert_eq!(kind(&[0xc2, 0x08, 0x00]), Some(Kind::Ret));
    assert_eq!(kind(&[0x48, 0xcf]), Some(Kind::Far)); // iretq
    assert_eq!(kind(&[0xff, 0xd0]), Some(Kind::IndCall));
    assert_eq!(kind(&[0xff, 0x10]), Some(Kind::IndCall)); // call [rax]
    assert_eq!(kind(&[0xff, 0xe0]), Some(Kind::IndJmp));
    assert_eq!(
        kind(&[0xe8, 0, 0, 0, 0]),
        Some(Kind::Call { target: 0x1005 })
    );
    assert_eq!(kind(&[0xeb, 0xfe]), Some(Kind::Jmp { target: 0x1000 }));
    assert_eq!(kind(&[0x74, 0x02]), Some(Kind::Cond { target: 0x1004 }));
    assert_eq!(kind(&[0xe2, 0x00]), Some(Kind::Cond { target: 0x1002 })); // loop
    assert_eq!(kind(&[0x0f, 0x05]), Some(Kind::Syscall));
    assert_eq!(kind(&[0xcd, 0x80]), Some(Kind::Far)); // int 0x80
    assert_eq!(kind(&[0xf4]), Some(Kind::Stop));
    assert_eq!(kind(&[0x0f, 0x0b]), Some(Kind::Stop)); // ud2
    assert_eq!(kind(&[0x90]), None);
}
