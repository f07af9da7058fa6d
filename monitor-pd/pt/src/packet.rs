//! Intel PT packets: their types, the single-packet decoder and encoder.
//!
//! Layouts follow the Intel SDM, volume 3, chapter "Intel Processor Trace",
//! section "Packet Definitions". Decoding one packet is a pure function of
//! the bytes and of one bit of context (whether a BBP block is open, which
//! decides how BIP bytes are read); it never allocates and never panics.
//! Error kinds and their precedence (truncation before payload checks)
//! match libipt's packet decoder so the two can be compared offset by offset.

/// How an IP packet's payload relates to the last IP (SDM "IP compression").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Ipc {
    /// No payload: the IP is out of context (e.g. filtered).
    Suppressed = 0,
    /// 2 payload bytes replace the low 16 bits of the last IP.
    Update16 = 1,
    /// 4 payload bytes replace the low 32 bits of the last IP.
    Update32 = 2,
    /// 6 payload bytes, sign-extended from bit 47 to a full IP.
    Sext48 = 3,
    /// 6 payload bytes replace the low 48 bits of the last IP.
    Update48 = 4,
    /// 8 payload bytes: the full IP.
    Full = 6,
}

impl Ipc {
    /// The compression for the 3-bit IPBytes field, `None` for reserved values.
    pub const fn from_bits(bits: u8) -> Option<Ipc> {
        match bits {
            0 => Some(Ipc::Suppressed),
            1 => Some(Ipc::Update16),
            2 => Some(Ipc::Update32),
            3 => Some(Ipc::Sext48),
            4 => Some(Ipc::Update48),
            6 => Some(Ipc::Full),
            _ => None,
        }
    }

    /// Payload bytes that follow the header byte.
    pub const fn payload_len(self) -> usize {
        match self {
            Ipc::Suppressed => 0,
            Ipc::Update16 => 2,
            Ipc::Update32 => 4,
            Ipc::Sext48 | Ipc::Update48 => 6,
            Ipc::Full => 8,
        }
    }
}

/// The payload of TIP, TIP.PGE, TIP.PGD and FUP, as it is in the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPayload {
    /// The compression mode.
    pub ipc: Ipc,
    /// The payload bytes, little-endian, not yet combined with the last IP.
    pub raw: u64,
}

/// One Intel PT packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Packet {
    /// PAD: one byte of padding.
    Pad,
    /// PSB: the 16-byte synchronisation boundary.
    Psb,
    /// PSBEND: end of the status packets that follow a PSB.
    Psbend,
    /// TNT (short, one byte, up to 6 bits) or long (8 bytes, up to 47 bits).
    Tnt {
        /// True for the 8-byte TNT packet.
        long: bool,
        /// Number of taken/not-taken bits.
        bits: u8,
        /// The bits, oldest branch in bit `bits - 1`, stop bit removed.
        payload: u64,
    },
    /// TIP: target of an indirect branch, return (uncompressed), or far transfer.
    Tip(IpPayload),
    /// TIP.PGE: packet generation enabled at this IP.
    TipPge(IpPayload),
    /// TIP.PGD: packet generation disabled.
    TipPgd(IpPayload),
    /// FUP: the source IP of an asynchronous event.
    Fup(IpPayload),
    /// PIP: CR3 was written; `nr` is set in VMX non-root operation.
    Pip {
        /// CR3 bits 51:5.
        cr3: u64,
        /// The non-root bit.
        nr: bool,
    },
    /// MODE.Exec: the execution mode (CS.L, CS.D) of what follows.
    ModeExec {
        /// CS.L (64-bit code).
        csl: bool,
        /// CS.D (32-bit default operand size).
        csd: bool,
    },
    /// MODE.TSX: transaction state.
    ModeTsx {
        /// In a transaction.
        intx: bool,
        /// The transaction aborted.
        abrt: bool,
    },
    /// TSC: the low 56 bits of the time-stamp counter.
    Tsc(u64),
    /// TMA: CTC and fast counter at the last TSC.
    Tma {
        /// Low 16 bits of the crystal clock counter.
        ctc: u16,
        /// The 9-bit fast counter.
        fc: u16,
    },
    /// MTC: 8 bits of the crystal clock counter.
    Mtc(u8),
    /// CYC: core cycles since the last CYC.
    Cyc(u64),
    /// CBR: the core:bus ratio.
    Cbr(u8),
    /// VMCS: the VMCS base address (already shifted).
    Vmcs(u64),
    /// OVF: the processor lost trace data; decoding state must be reset.
    Ovf,
    /// TraceStop.
    Stop,
    /// MNT: maintenance packet, model-specific payload.
    Mnt(u64),
    /// EXSTOP: execution stopped; `ip` says a FUP follows.
    Exstop {
        /// An FUP follows.
        ip: bool,
    },
    /// MWAIT: hints and extensions of an MWAIT.
    Mwait {
        /// EAX hints.
        hints: u32,
        /// ECX extensions.
        ext: u32,
    },
    /// PWRE: power entry.
    Pwre {
        /// Resolved thread C-state.
        state: u8,
        /// Resolved thread sub C-state.
        sub_state: u8,
        /// Entry was hardware-initiated.
        hw: bool,
    },
    /// PWRX: power exit.
    Pwrx {
        /// Last core C-state.
        last: u8,
        /// Deepest core C-state.
        deepest: u8,
        /// Woken by an interrupt.
        interrupt: bool,
        /// Woken by a store to the monitored address.
        store: bool,
        /// Autonomous (hardware) wake.
        autonomous: bool,
    },
    /// PTW: PTWRITE payload.
    Ptw {
        /// The written value.
        payload: u64,
        /// Payload size code: 0 = 4 bytes, 1 = 8 bytes.
        plc: u8,
        /// An FUP with the PTWRITE's IP follows.
        ip: bool,
    },
    /// BBP: block begin; BIP packets follow until BEP.
    Bbp {
        /// True: BIP payloads are 4 bytes; false: 8 bytes.
        sz4: bool,
        /// The block type (e.g. 1 = GPRs).
        kind: u8,
    },
    /// BIP: one item of the open block.
    Bip {
        /// The item id (SDM table of block items).
        id: u8,
        /// The item value.
        payload: u64,
    },
    /// BEP: block end; `ip` says an FUP follows.
    Bep {
        /// An FUP follows.
        ip: bool,
    },
}

/// Why a packet could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorKind {
    /// Not synchronised: no PSB found yet (libipt `pte_nosync`).
    NoSync = 1,
    /// Unknown opcode (libipt `pte_bad_opc`).
    BadOpcode = 2,
    /// Known opcode with a reserved or malformed payload (`pte_bad_packet`).
    BadPacket = 3,
    /// The packet runs past the end of the data (`pte_eos`).
    Eos = 4,
}

/// The decoder options that change how bytes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Decode BBP/BIP/BEP (later SDM revisions). libipt 2.0 predates them and
    /// reports their opcodes as unknown; turning this off matches it exactly.
    pub block_packets: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            block_packets: true,
        }
    }
}

/// An open BBP block: how wide its BIP payloads are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) sz4: bool,
}

/// Size of a PSB packet.
pub const PSB_LEN: usize = 16;
/// The largest packet (PSB).
pub const MAX_PACKET_LEN: usize = 16;

#[inline(always)]
fn le(bytes: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        v = (v << 8) | bytes[i] as u64;
    }
    v
}

/// Reads `n` bytes at `at` little-endian, or `Eos` if they are not all there.
#[inline(always)]
fn field(buf: &[u8], at: usize, n: usize) -> Result<u64, ErrorKind> {
    // One unaligned 8-byte load when the buffer allows it (the common case
    // inside a trace), masked to the field width.
    if let Some(w) = buf.get(at..at + 8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let v = u64::from_le_bytes(a);
        return Ok(if n >= 8 {
            v
        } else {
            v & ((1u64 << (8 * n)) - 1)
        });
    }
    match buf.get(at..at + n) {
        Some(b) => Ok(le(b)),
        None => Err(ErrorKind::Eos),
    }
}

#[inline(always)]
fn need(buf: &[u8], n: usize) -> Result<(), ErrorKind> {
    if buf.len() < n {
        Err(ErrorKind::Eos)
    } else {
        Ok(())
    }
}

fn tnt_payload(payload: u64, long: bool) -> Result<Packet, ErrorKind> {
    if payload < 2 {
        return Err(ErrorKind::BadPacket);
    }
    let bits = 63 - payload.leading_zeros() as u8;
    Ok(Packet::Tnt {
        long,
        bits,
        payload: payload & !(1u64 << bits),
    })
}

/// Decodes the packet at the start of `buf`; returns it and its size.
///
/// `block` is the open BBP block, if any (BIP bytes are only BIPs inside one).
pub(crate) fn decode(
    buf: &[u8],
    cfg: Config,
    block: Option<Block>,
) -> Result<(Packet, usize), ErrorKind> {
    let Some(&opc) = buf.first() else {
        return Err(ErrorKind::Eos);
    };
    // Short TNT is the most frequent packet by far: decide it first.
    if opc & 1 == 0 && opc > 2 && block.is_none() {
        let payload = (opc >> 1) as u64;
        let bits = 63 - payload.leading_zeros() as u8;
        return Ok((
            Packet::Tnt {
                long: false,
                bits,
                payload: payload & !(1u64 << bits),
            },
            1,
        ));
    }
    match opc {
        0x00 => Ok((Packet::Pad, 1)),
        0x02 => decode_ext(buf, cfg),
        0x19 => Ok((Packet::Tsc(field(buf, 1, 7)?), 8)),
        0x59 => Ok((Packet::Mtc(field(buf, 1, 1)? as u8), 2)),
        0x99 => {
            let m = field(buf, 1, 1)? as u8;
            match m & 0xe0 {
                0x00 => Ok((
                    Packet::ModeExec {
                        csl: m & 1 != 0,
                        csd: m & 2 != 0,
                    },
                    2,
                )),
                0x20 => Ok((
                    Packet::ModeTsx {
                        intx: m & 1 != 0,
                        abrt: m & 2 != 0,
                    },
                    2,
                )),
                _ => Err(ErrorKind::BadPacket),
            }
        }
        _ => {
            if opc & 3 == 3 {
                return decode_cyc(buf);
            }
            if opc & 1 == 0 {
                if let Some(b) = block {
                    if opc & 7 == 4 {
                        let n = if b.sz4 { 4 } else { 8 };
                        let payload = field(buf, 1, n)?;
                        return Ok((
                            Packet::Bip {
                                id: opc >> 3,
                                payload,
                            },
                            1 + n,
                        ));
                    }
                }
                return Ok((tnt_payload((opc >> 1) as u64, false)?, 1));
            }
            let kind = opc & 0x1f;
            if !matches!(kind, 0x1d | 0x0d | 0x11 | 0x01) {
                return Err(ErrorKind::BadOpcode);
            }
            let ipc = Ipc::from_bits(opc >> 5).ok_or(ErrorKind::BadPacket)?;
            let n = ipc.payload_len();
            let raw = field(buf, 1, n)?;
            let ip = IpPayload { ipc, raw };
            let p = match kind {
                0x1d => Packet::Fup(ip),
                0x0d => Packet::Tip(ip),
                0x11 => Packet::TipPge(ip),
                _ => Packet::TipPgd(ip),
            };
            Ok((p, 1 + n))
        }
    }
}

fn decode_cyc(buf: &[u8]) -> Result<(Packet, usize), ErrorKind> {
    let first = buf[0];
    let mut value = (first >> 3) as u64;
    let mut ext = first & 4 != 0;
    let mut shl = 5u32;
    let mut pos = 1usize;
    while ext {
        let Some(&b) = buf.get(pos) else {
            return Err(ErrorKind::Eos);
        };
        pos += 1;
        ext = b & 1 != 0;
        let bits = (b >> 1) as u64;
        // libipt shifts before checking the width; keep its order so a 9th
        // extension byte is a BadPacket at the same point.
        let shifted = if shl < 64 { bits << shl } else { 0 };
        shl += 7;
        if shl > 64 {
            return Err(ErrorKind::BadPacket);
        }
        value |= shifted;
    }
    Ok((Packet::Cyc(value), pos))
}

fn decode_ext(buf: &[u8], cfg: Config) -> Result<(Packet, usize), ErrorKind> {
    let ext = *buf.get(1).ok_or(ErrorKind::Eos)?;
    match ext {
        0x82 => {
            need(buf, PSB_LEN)?;
            if is_psb(&buf[..PSB_LEN]) {
                Ok((Packet::Psb, PSB_LEN))
            } else {
                Err(ErrorKind::BadPacket)
            }
        }
        0xf3 => Ok((Packet::Ovf, 2)),
        0x23 => Ok((Packet::Psbend, 2)),
        0x83 => Ok((Packet::Stop, 2)),
        0x03 => Ok((Packet::Cbr(field(buf, 2, 2)? as u8), 4)),
        0x73 => {
            let v = field(buf, 2, 5)?;
            let ctc = (v & 0xffff) as u16;
            let reserved = (v >> 16) & 0xff;
            let fc = (v >> 24) as u16;
            if fc & !0x1ff != 0 || reserved != 0 {
                return Err(ErrorKind::BadPacket);
            }
            Ok((Packet::Tma { ctc, fc }, 7))
        }
        0x43 => {
            let v = field(buf, 2, 6)?;
            Ok((
                Packet::Pip {
                    cr3: (v >> 1) << 5,
                    nr: v & 1 != 0,
                },
                8,
            ))
        }
        0xc8 => Ok((Packet::Vmcs(field(buf, 2, 5)? << 12), 7)),
        0x62 | 0xe2 => Ok((
            Packet::Exstop {
                ip: ext & 0x80 != 0,
            },
            2,
        )),
        0xc2 => {
            let v = field(buf, 2, 8)?;
            Ok((
                Packet::Mwait {
                    hints: v as u32,
                    ext: (v >> 32) as u32,
                },
                10,
            ))
        }
        0x22 => {
            let v = field(buf, 2, 2)?;
            Ok((
                Packet::Pwre {
                    state: ((v >> 12) & 0xf) as u8,
                    sub_state: ((v >> 8) & 0xf) as u8,
                    // The HW bit as libipt reads it (byte 2, bit 3).
                    hw: v & 0x08 != 0,
                },
                4,
            ))
        }
        0xa2 => {
            let v = field(buf, 2, 5)?;
            Ok((
                Packet::Pwrx {
                    last: ((v >> 4) & 0xf) as u8,
                    deepest: (v & 0xf) as u8,
                    interrupt: v & (1 << 8) != 0,
                    store: v & (1 << 10) != 0,
                    autonomous: v & (1 << 11) != 0,
                },
                7,
            ))
        }
        0xa3 => {
            let v = field(buf, 2, 6)?;
            Ok((tnt_payload(v, true)?, 8))
        }
        0xc3 => {
            let ext2 = *buf.get(2).ok_or(ErrorKind::Eos)?;
            if ext2 != 0x88 {
                return Err(ErrorKind::BadOpcode);
            }
            Ok((Packet::Mnt(field(buf, 3, 8)?), 11))
        }
        0x63 if cfg.block_packets => {
            let b = field(buf, 2, 1)? as u8;
            Ok((
                Packet::Bbp {
                    sz4: b & 0x80 != 0,
                    kind: b & 0x1f,
                },
                3,
            ))
        }
        0x33 | 0xb3 if cfg.block_packets => Ok((
            Packet::Bep {
                ip: ext & 0x80 != 0,
            },
            2,
        )),
        _ if ext & 0x1f == 0x12 => {
            let plc = (ext >> 5) & 3;
            let n = match plc {
                0 => 4,
                1 => 8,
                _ => return Err(ErrorKind::BadPacket),
            };
            Ok((
                Packet::Ptw {
                    payload: field(buf, 2, n)?,
                    plc,
                    ip: ext & 0x80 != 0,
                },
                2 + n,
            ))
        }
        _ => Err(ErrorKind::BadOpcode),
    }
}

/// True if `b` (16 bytes) is a PSB.
pub(crate) fn is_psb(b: &[u8]) -> bool {
    b.len() == PSB_LEN && b.chunks_exact(2).all(|p| p[0] == 0x02 && p[1] == 0x82)
}

/// Why a packet could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small.
    NoSpace,
    /// A field does not fit its packet (e.g. a TNT with 0 or too many bits).
    BadField,
}

/// Encodes `p` at the start of `out`; returns the bytes written.
///
/// The exact inverse of the decoder for every field it reports; used to
/// synthesise traces for tests, benchmarks and the CFI end-to-end checks.
pub fn encode(p: &Packet, out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut tmp = [0u8; MAX_PACKET_LEN];
    let n = encode_tmp(p, &mut tmp)?;
    let dst = out.get_mut(..n).ok_or(EncodeError::NoSpace)?;
    dst.copy_from_slice(&tmp[..n]);
    Ok(n)
}

fn put(tmp: &mut [u8], at: usize, v: u64, n: usize) {
    for i in 0..n {
        tmp[at + i] = (v >> (8 * i)) as u8;
    }
}

fn encode_tmp(p: &Packet, t: &mut [u8; MAX_PACKET_LEN]) -> Result<usize, EncodeError> {
    let ip = |t: &mut [u8; MAX_PACKET_LEN], opc: u8, ip: &IpPayload| {
        t[0] = opc | ((ip.ipc as u8) << 5);
        let n = ip.ipc.payload_len();
        put(t, 1, ip.raw, n);
        1 + n
    };
    Ok(match *p {
        Packet::Pad => {
            t[0] = 0;
            1
        }
        Packet::Psb => {
            for i in 0..8 {
                t[2 * i] = 0x02;
                t[2 * i + 1] = 0x82;
            }
            16
        }
        Packet::Psbend => ext2(t, 0x23),
        Packet::Ovf => ext2(t, 0xf3),
        Packet::Stop => ext2(t, 0x83),
        Packet::Tnt {
            long,
            bits,
            payload,
        } => {
            let max = if long { 47 } else { 6 };
            if bits == 0 || bits > max || (bits < 64 && payload >> bits != 0) {
                return Err(EncodeError::BadField);
            }
            let v = payload | (1u64 << bits);
            if long {
                t[0] = 0x02;
                t[1] = 0xa3;
                put(t, 2, v, 6);
                8
            } else {
                t[0] = (v << 1) as u8;
                1
            }
        }
        Packet::Tip(ref i) => ip(t, 0x0d, i),
        Packet::TipPge(ref i) => ip(t, 0x11, i),
        Packet::TipPgd(ref i) => ip(t, 0x01, i),
        Packet::Fup(ref i) => ip(t, 0x1d, i),
        Packet::Pip { cr3, nr } => {
            t[0] = 0x02;
            t[1] = 0x43;
            put(t, 2, ((cr3 >> 5) << 1) | nr as u64, 6);
            8
        }
        Packet::ModeExec { csl, csd } => {
            t[0] = 0x99;
            t[1] = csl as u8 | (csd as u8) << 1;
            2
        }
        Packet::ModeTsx { intx, abrt } => {
            t[0] = 0x99;
            t[1] = 0x20 | intx as u8 | (abrt as u8) << 1;
            2
        }
        Packet::Tsc(v) => {
            t[0] = 0x19;
            put(t, 1, v, 7);
            8
        }
        Packet::Tma { ctc, fc } => {
            if fc > 0x1ff {
                return Err(EncodeError::BadField);
            }
            t[0] = 0x02;
            t[1] = 0x73;
            put(t, 2, ctc as u64, 2);
            t[4] = 0;
            put(t, 5, fc as u64, 2);
            7
        }
        Packet::Mtc(v) => {
            t[0] = 0x59;
            t[1] = v;
            2
        }
        Packet::Cyc(v) => {
            // 5 bits in the header and 7 in each of at most 8 more bytes.
            if v >> 61 != 0 {
                return Err(EncodeError::BadField);
            }
            let mut rest = v >> 5;
            t[0] = 0x03 | ((v as u8 & 0x1f) << 3) | if rest != 0 { 4 } else { 0 };
            let mut n = 1;
            while rest != 0 {
                let more = rest >> 7;
                t[n] = ((rest as u8 & 0x7f) << 1) | (more != 0) as u8;
                rest = more;
                n += 1;
            }
            n
        }
        Packet::Cbr(r) => {
            t[0] = 0x02;
            t[1] = 0x03;
            t[2] = r;
            t[3] = 0;
            4
        }
        Packet::Vmcs(base) => {
            t[0] = 0x02;
            t[1] = 0xc8;
            put(t, 2, base >> 12, 5);
            7
        }
        Packet::Mnt(v) => {
            t[0] = 0x02;
            t[1] = 0xc3;
            t[2] = 0x88;
            put(t, 3, v, 8);
            11
        }
        Packet::Exstop { ip } => ext2(t, 0x62 | (ip as u8) << 7),
        Packet::Mwait { hints, ext } => {
            t[0] = 0x02;
            t[1] = 0xc2;
            put(t, 2, hints as u64 | (ext as u64) << 32, 8);
            10
        }
        Packet::Pwre {
            state,
            sub_state,
            hw,
        } => {
            t[0] = 0x02;
            t[1] = 0x22;
            t[2] = (hw as u8) << 3;
            t[3] = (state & 0xf) << 4 | (sub_state & 0xf);
            4
        }
        Packet::Pwrx {
            last,
            deepest,
            interrupt,
            store,
            autonomous,
        } => {
            t[0] = 0x02;
            t[1] = 0xa2;
            t[2] = (last & 0xf) << 4 | (deepest & 0xf);
            t[3] = interrupt as u8 | (store as u8) << 2 | (autonomous as u8) << 3;
            t[4] = 0;
            t[5] = 0;
            t[6] = 0;
            7
        }
        Packet::Ptw { payload, plc, ip } => {
            let n = match plc {
                0 => 4,
                1 => 8,
                _ => return Err(EncodeError::BadField),
            };
            t[0] = 0x02;
            t[1] = 0x12 | plc << 5 | (ip as u8) << 7;
            put(t, 2, payload, n);
            2 + n
        }
        Packet::Bbp { sz4, kind } => {
            t[0] = 0x02;
            t[1] = 0x63;
            t[2] = (sz4 as u8) << 7 | (kind & 0x1f);
            3
        }
        Packet::Bip { id, payload } => {
            // The payload width comes from the open BBP; callers encode BIPs
            // with `encode_bip`.
            let _ = (id, payload);
            return Err(EncodeError::BadField);
        }
        Packet::Bep { ip } => ext2(t, 0x33 | (ip as u8) << 7),
    })
}

fn ext2(t: &mut [u8; MAX_PACKET_LEN], ext: u8) -> usize {
    t[0] = 0x02;
    t[1] = ext;
    2
}

/// Encodes a BIP for a block whose BBP said `sz4` (4-byte) or 8-byte items.
pub fn encode_bip(id: u8, payload: u64, sz4: bool, out: &mut [u8]) -> Result<usize, EncodeError> {
    if id > 0x1f {
        return Err(EncodeError::BadField);
    }
    let n = if sz4 { 4 } else { 8 };
    let dst = out.get_mut(..1 + n).ok_or(EncodeError::NoSpace)?;
    dst[0] = id << 3 | 4;
    put(dst, 1, payload, n);
    Ok(1 + n)
}
