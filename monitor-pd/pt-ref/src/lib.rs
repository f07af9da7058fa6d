//! libipt (Intel's reference PT library, Debian `libipt-dev`) as the
//! reference for `bulkhead-pt`: its packet encoder and decoder through a
//! small C shim (`csrc/shim.c`), as flat [`Rec`] records that our decoder's
//! output converts to, so tests compare packets, offsets and error positions
//! field by field.
//!
//! Host-only and test-only. This is the one crate of the PT area that is
//! allowed `unsafe`: the FFI calls, confined to the `ffi` module below.
//! When libipt is not installed the crate still builds and every function
//! returns an error saying to run `cargo xtask test`, which installs it.

use bulkhead_pt::{Decoded, ErrorKind, IpPayload, Ipc, Item, Packet};

/// The message for a machine without libipt.
pub const MISSING: &str =
    "libipt-dev is not installed (no /usr/include/intel-pt.h at build time): \
run the libipt reference tests via `cargo xtask test`, which installs it";

/// One record of the shim: a packet, an error, or the first sync point.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rec {
    /// 0 packet, 1 error, 2 first sync.
    pub kind: u32,
    /// libipt `pt_packet_type` (packets) or `pt_error_code` (errors).
    pub ty: u32,
    /// Packet size.
    pub size: u32,
    /// Packed booleans / bit counts, per type (see the shim).
    pub flags: u32,
    /// First payload field.
    pub a: u64,
    /// Second payload field.
    pub b: u64,
    /// Offset of the packet or error (first sync: the PSB, or `u64::MAX`).
    pub offset: u64,
    /// Errors: where decoding resumed (`u64::MAX`: nowhere).
    pub resync: u64,
}

/// libipt's packet type numbers (`enum pt_packet_type`).
#[allow(missing_docs)]
pub mod ppt {
    pub const PAD: u32 = 2;
    pub const PSB: u32 = 3;
    pub const PSBEND: u32 = 4;
    pub const FUP: u32 = 5;
    pub const TIP: u32 = 6;
    pub const TIP_PGE: u32 = 7;
    pub const TIP_PGD: u32 = 8;
    pub const TNT_8: u32 = 9;
    pub const TNT_64: u32 = 10;
    pub const MODE: u32 = 11;
    pub const PIP: u32 = 12;
    pub const VMCS: u32 = 13;
    pub const CBR: u32 = 14;
    pub const TSC: u32 = 15;
    pub const TMA: u32 = 16;
    pub const MTC: u32 = 17;
    pub const CYC: u32 = 18;
    pub const STOP: u32 = 19;
    pub const OVF: u32 = 20;
    pub const MNT: u32 = 21;
    pub const EXSTOP: u32 = 22;
    pub const MWAIT: u32 = 23;
    pub const PWRE: u32 = 24;
    pub const PWRX: u32 = 25;
    pub const PTW: u32 = 26;
}

/// libipt's error number for one of our error kinds.
pub fn pte(kind: ErrorKind) -> u32 {
    match kind {
        ErrorKind::NoSync => 3,
        ErrorKind::BadOpcode => 4,
        ErrorKind::BadPacket => 5,
        ErrorKind::Eos => 7,
    }
}

/// A packet as a shim record (offset and kind left 0). `None` for the
/// block packets, which libipt 2.0 does not know.
pub fn to_rec(p: &Packet) -> Option<Rec> {
    let mut r = Rec::default();
    let ip = |r: &mut Rec, ty, i: &IpPayload| {
        r.ty = ty;
        r.a = i.raw;
        r.b = i.ipc as u64;
    };
    match *p {
        Packet::Pad => r.ty = ppt::PAD,
        Packet::Psb => r.ty = ppt::PSB,
        Packet::Psbend => r.ty = ppt::PSBEND,
        Packet::Tnt {
            long,
            bits,
            payload,
        } => {
            r.ty = if long { ppt::TNT_64 } else { ppt::TNT_8 };
            r.a = payload;
            r.flags = bits as u32;
        }
        Packet::Tip(ref i) => ip(&mut r, ppt::TIP, i),
        Packet::TipPge(ref i) => ip(&mut r, ppt::TIP_PGE, i),
        Packet::TipPgd(ref i) => ip(&mut r, ppt::TIP_PGD, i),
        Packet::Fup(ref i) => ip(&mut r, ppt::FUP, i),
        Packet::Pip { cr3, nr } => {
            r.ty = ppt::PIP;
            r.a = cr3;
            r.flags = nr as u32;
        }
        Packet::ModeExec { csl, csd } => {
            r.ty = ppt::MODE;
            r.b = 0;
            r.flags = csl as u32 | (csd as u32) << 1;
        }
        Packet::ModeTsx { intx, abrt } => {
            r.ty = ppt::MODE;
            r.b = 0x20;
            r.flags = intx as u32 | (abrt as u32) << 1;
        }
        Packet::Tsc(v) => (r.ty, r.a) = (ppt::TSC, v),
        Packet::Tma { ctc, fc } => (r.ty, r.a, r.b) = (ppt::TMA, ctc as u64, fc as u64),
        Packet::Mtc(v) => (r.ty, r.a) = (ppt::MTC, v as u64),
        Packet::Cyc(v) => (r.ty, r.a) = (ppt::CYC, v),
        Packet::Cbr(v) => (r.ty, r.a) = (ppt::CBR, v as u64),
        Packet::Vmcs(v) => (r.ty, r.a) = (ppt::VMCS, v),
        Packet::Ovf => r.ty = ppt::OVF,
        Packet::Stop => r.ty = ppt::STOP,
        Packet::Mnt(v) => (r.ty, r.a) = (ppt::MNT, v),
        Packet::Exstop { ip } => (r.ty, r.flags) = (ppt::EXSTOP, ip as u32),
        Packet::Mwait { hints, ext } => (r.ty, r.a, r.b) = (ppt::MWAIT, hints as u64, ext as u64),
        Packet::Pwre {
            state,
            sub_state,
            hw,
        } => (r.ty, r.a, r.b, r.flags) = (ppt::PWRE, state as u64, sub_state as u64, hw as u32),
        Packet::Pwrx {
            last,
            deepest,
            interrupt,
            store,
            autonomous,
        } => {
            r.ty = ppt::PWRX;
            r.a = last as u64;
            r.b = deepest as u64;
            r.flags = interrupt as u32 | (store as u32) << 1 | (autonomous as u32) << 2;
        }
        Packet::Ptw { payload, plc, ip } => {
            (r.ty, r.a, r.b, r.flags) = (ppt::PTW, payload, plc as u64, ip as u32)
        }
        Packet::Bbp { .. } | Packet::Bip { .. } | Packet::Bep { .. } => return None,
    }
    Some(r)
}

/// Our decoder's ptdump-style walk as shim records.
pub fn ours(trace: &[u8]) -> Vec<Rec> {
    let cfg = bulkhead_pt::Config {
        block_packets: false,
    };
    let mut out = Vec::new();
    let mut first = true;
    for item in bulkhead_pt::Decoder::new(trace, cfg).items() {
        if first {
            first = false;
            let off = match item {
                Item::Skipped { first_psb } => first_psb.unwrap_or(u64::MAX),
                _ => 0,
            };
            out.push(Rec {
                kind: 2,
                offset: off,
                ..Rec::default()
            });
            if matches!(item, Item::Skipped { .. }) {
                continue;
            }
        }
        match item {
            Item::Packet(Decoded {
                offset,
                size,
                packet,
                ..
            }) => {
                let mut r = to_rec(&packet).expect("block packets are off");
                r.kind = 0;
                r.offset = offset;
                r.size = size as u32;
                out.push(r);
            }
            Item::Error { error, resync } => out.push(Rec {
                kind: 1,
                ty: pte(error.kind),
                offset: error.offset,
                resync: resync.unwrap_or(u64::MAX),
                ..Rec::default()
            }),
            Item::Skipped { .. } => {}
        }
    }
    if first {
        out.push(Rec {
            kind: 2,
            offset: u64::MAX,
            ..Rec::default()
        });
    }
    out
}

/// Our stream decoder fed `trace` in pieces cut at `cuts`, as shim records,
/// up to and including its first error (after an error the stream decoder
/// resumes at the next PSB by its own byte-wise search, which cannot look
/// back into earlier pieces as libipt does).
pub fn ours_stream_until_error(trace: &[u8], cuts: &[usize]) -> Vec<Rec> {
    use bulkhead_pt::Event;
    let cfg = bulkhead_pt::Config {
        block_packets: false,
    };
    let mut s = bulkhead_pt::StreamDecoder::new(cfg);
    let mut out = Vec::new();
    let mut done = false;
    let mut sink = |e: Event| {
        if done {
            return;
        }
        match e {
            Event::Sync { offset } if out.is_empty() => out.push(Rec {
                kind: 2,
                offset,
                ..Rec::default()
            }),
            Event::Sync { .. } => {}
            Event::Packet(Decoded {
                offset,
                size,
                packet,
                ..
            }) => {
                let mut r = to_rec(&packet).expect("block packets are off");
                r.offset = offset;
                r.size = size as u32;
                out.push(r);
            }
            Event::Error(e) => {
                out.push(Rec {
                    kind: 1,
                    ty: pte(e.kind),
                    offset: e.offset,
                    ..Rec::default()
                });
                done = true;
            }
        }
    };
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&trace.len())) {
        let c = c.clamp(prev, trace.len());
        s.feed(&trace[prev..c], &mut sink);
        prev = c;
    }
    s.finish(&mut sink);
    if out.is_empty() {
        out.push(Rec {
            kind: 2,
            offset: u64::MAX,
            ..Rec::default()
        });
    }
    out
}

/// libipt's ptdump-style walk of `trace`.
pub fn libipt_decode(trace: &[u8]) -> Result<Vec<Rec>, String> {
    ffi::decode(trace)
}

/// Encodes packets with libipt's encoder. Block packets are not supported
/// by libipt 2.0 and are refused.
pub fn libipt_encode(packets: &[Packet]) -> Result<Vec<u8>, String> {
    let recs: Vec<Rec> = packets
        .iter()
        .map(|p| to_rec(p).ok_or_else(|| format!("{p:?}: libipt 2.0 has no block packets")))
        .collect::<Result<_, _>>()?;
    ffi::encode(&recs)
}

/// libipt's decoder over the whole trace, counting packets (the benchmark's
/// reference loop).
pub fn libipt_count(trace: &[u8]) -> Result<u64, String> {
    ffi::count(trace)
}

/// What libipt's instruction-flow decoder makes of `trace` over `code`
/// loaded at `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsnFlow {
    /// Instructions reconstructed.
    pub instructions: u64,
    /// Decode errors (each followed by a resync).
    pub errors: u64,
    /// libipt's error code of the first error (0 if none).
    pub first_error: i32,
}

/// Runs libipt's instruction-flow decoder over `trace` and the code image.
pub fn libipt_insn_flow(trace: &[u8], code: &[u8], base: u64) -> Result<InsnFlow, String> {
    ffi::insn_flow(trace, code, base)
}

/// CPU time consumed by the calling thread, in nanoseconds (`None` without
/// the shim): the benchmark's clock, independent of machine load.
pub fn thread_cpu_ns() -> Option<u64> {
    ffi::thread_cpu_ns()
}

/// The IP compression of a record's `b` field.
pub fn ipc_of(b: u64) -> Option<Ipc> {
    Ipc::from_bits(b as u8)
}

#[cfg(have_libipt)]
mod ffi {
    use super::Rec;

    extern "C" {
        fn shim_encode(
            recs: *const Rec,
            n: usize,
            buf: *mut u8,
            cap: usize,
            failed: *mut usize,
        ) -> i64;
        fn shim_decode(trace: *const u8, len: usize, out: *mut Rec, cap: usize) -> i64;
        fn shim_count(buf: *const u8, len: usize) -> i64;
        fn shim_thread_cpu_ns() -> u64;
        fn shim_insn_count(
            trace: *const u8,
            len: usize,
            code: *const u8,
            code_len: usize,
            base: u64,
            errors: *mut i64,
            first_error: *mut i32,
        ) -> i64;
    }

    pub fn thread_cpu_ns() -> Option<u64> {
        // SAFETY: no arguments; the shim only calls clock_gettime.
        Some(unsafe { shim_thread_cpu_ns() })
    }

    pub fn insn_flow(trace: &[u8], code: &[u8], base: u64) -> Result<super::InsnFlow, String> {
        let (mut errors, mut first) = (0i64, 0i32);
        // SAFETY: both slices are valid for reads of their lengths; libipt
        // reads the code only through the shim's bounds-checked callback
        // while the call runs, and writes only the two out-parameters.
        let n = unsafe {
            shim_insn_count(
                trace.as_ptr(),
                trace.len(),
                code.as_ptr(),
                code.len(),
                base,
                &mut errors,
                &mut first,
            )
        };
        if n < 0 {
            return Err(format!(
                "libipt instruction decoder setup failed: error {}",
                -n
            ));
        }
        Ok(super::InsnFlow {
            instructions: n as u64,
            errors: errors as u64,
            first_error: first,
        })
    }

    pub fn encode(recs: &[Rec]) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; recs.len() * 16 + 16];
        let mut failed = 0usize;
        // SAFETY: `recs` is valid for `recs.len()` reads of the C-layout
        // record, `buf` for `buf.len()` writes; the shim writes `failed` only.
        let n = unsafe {
            shim_encode(
                recs.as_ptr(),
                recs.len(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut failed,
            )
        };
        if n < 0 {
            return Err(format!(
                "libipt refused to encode record {failed} {:?}: error {}",
                recs.get(failed),
                -n
            ));
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    pub fn decode(trace: &[u8]) -> Result<Vec<Rec>, String> {
        // At most one record per byte, plus the first-sync record.
        let cap = trace.len() + 2;
        let mut out = vec![Rec::default(); cap];
        // SAFETY: `trace` is valid for `trace.len()` reads, `out` for `cap`
        // record writes; the shim copies the trace before decoding it.
        let n = unsafe { shim_decode(trace.as_ptr(), trace.len(), out.as_mut_ptr(), cap) };
        if n < 0 {
            return Err(format!("libipt decoder setup failed: error {}", -n));
        }
        out.truncate(n as usize);
        Ok(out)
    }

    pub fn count(trace: &[u8]) -> Result<u64, String> {
        // SAFETY: `trace` is valid for `trace.len()` reads and libipt only reads it.
        let n = unsafe { shim_count(trace.as_ptr(), trace.len()) };
        if n < 0 {
            return Err(format!("libipt decoder setup failed: error {}", -n));
        }
        Ok(n as u64)
    }
}

#[cfg(not(have_libipt))]
mod ffi {
    use super::{Rec, MISSING};

    pub fn encode(_: &[Rec]) -> Result<Vec<u8>, String> {
        Err(MISSING.into())
    }
    pub fn decode(_: &[u8]) -> Result<Vec<Rec>, String> {
        Err(MISSING.into())
    }
    pub fn count(_: &[u8]) -> Result<u64, String> {
        Err(MISSING.into())
    }
    pub fn insn_flow(_: &[u8], _: &[u8], _: u64) -> Result<super::InsnFlow, String> {
        Err(MISSING.into())
    }
    pub fn thread_cpu_ns() -> Option<u64> {
        None
    }
}
