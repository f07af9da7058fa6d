//! The packet decoder over a contiguous trace, and last-IP tracking.
//!
//! [`Decoder`] walks a byte slice packet by packet. It starts unsynchronised,
//! finds a PSB with [`Decoder::sync_forward`], and on any error stays at the
//! failing offset so the caller can report it and resynchronise: the same
//! contract, offsets and error positions as libipt's `pt_pkt_*` decoder,
//! which the reference tests hold it to. [`Decoder::items`] is the ptdump-style
//! loop (decode, on error report and resync) most users want.
//!
//! Nothing here allocates; the decoder is a few words of state.

use crate::packet::{self, Block, Config, ErrorKind, IpPayload, Ipc, Packet, PSB_LEN};

/// Reconstructs full IPs from compressed IP payloads (SDM "IP compression").
///
/// Reset at every PSB and OVF; a suppressed IP leaves it unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastIp {
    ip: u64,
    have: bool,
}

impl LastIp {
    /// Forgets the last IP (at PSB).
    pub fn reset(&mut self) {
        *self = LastIp::default();
    }

    /// Applies one IP payload; returns the full IP, or `None` if suppressed.
    #[inline]
    pub fn update(&mut self, p: &IpPayload) -> Option<u64> {
        let ip = match p.ipc {
            Ipc::Suppressed => return None,
            Ipc::Update16 => (self.ip & !0xffff) | (p.raw & 0xffff),
            Ipc::Update32 => (self.ip & !0xffff_ffff) | (p.raw & 0xffff_ffff),
            Ipc::Sext48 => (((p.raw << 16) as i64) >> 16) as u64,
            Ipc::Update48 => (self.ip & !0xffff_ffff_ffff) | (p.raw & 0xffff_ffff_ffff),
            Ipc::Full => p.raw,
        };
        self.ip = ip;
        self.have = true;
        Some(ip)
    }

    /// The last IP, if one was seen since the last PSB.
    pub fn get(&self) -> Option<u64> {
        self.have.then_some(self.ip)
    }
}

/// A decoded packet with where it was and, for IP packets, the full IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Byte offset of the packet in the trace.
    pub offset: u64,
    /// Packet size in bytes.
    pub size: u8,
    /// The packet.
    pub packet: Packet,
    /// For TIP/TIP.PGE/TIP.PGD/FUP: the reconstructed IP (`None` if suppressed).
    pub ip: Option<u64>,
}

/// A decoding error and where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// Offset of the packet that failed (for `NoSync` at the search start).
    pub offset: u64,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// Applies a packet's effect on decoder context (last IP, open block).
#[inline(always)]
pub(crate) fn track(p: &Packet, last_ip: &mut LastIp, block: &mut Option<Block>) -> Option<u64> {
    match p {
        Packet::Tip(i) | Packet::TipPge(i) | Packet::TipPgd(i) | Packet::Fup(i) => {
            return last_ip.update(i)
        }
        Packet::Psb => {
            last_ip.reset();
            *block = None;
        }
        // After an overflow the processor restarts IP compression (libipt's
        // flow decoder resets its last IP there too).
        Packet::Ovf => {
            last_ip.reset();
            *block = None;
        }
        Packet::Bep { .. } => *block = None,
        Packet::Bbp { sz4, .. } => *block = Some(Block { sz4: *sz4 }),
        _ => {}
    }
    None
}

/// Decodes packets from one contiguous trace buffer.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    cfg: Config,
    pos: Option<usize>,
    sync: Option<usize>,
    last_ip: LastIp,
    block: Option<Block>,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`, not yet synchronised.
    pub fn new(buf: &'a [u8], cfg: Config) -> Self {
        Decoder {
            buf,
            cfg,
            pos: None,
            sync: None,
            last_ip: LastIp::default(),
            block: None,
        }
    }

    /// The current offset (`None` before the first sync).
    pub fn offset(&self) -> Option<u64> {
        self.pos.map(|p| p as u64)
    }

    /// The offset of the last PSB synchronised to.
    pub fn sync_offset(&self) -> Option<u64> {
        self.sync.map(|p| p as u64)
    }

    /// Moves to the next PSB and returns its offset.
    ///
    /// From the current position (past the current PSB if we are on it), the
    /// search starts up to 15 bytes earlier so a PSB partly swallowed by a
    /// corrupt packet is still found, exactly as libipt does.
    pub fn sync_forward(&mut self) -> Result<u64, Error> {
        let mut pos = self.pos.unwrap_or(0);
        if Some(pos) == self.sync {
            pos += PSB_LEN;
        }
        let start = pos - pos.min(PSB_LEN - 1);
        match find_psb(self.buf, start) {
            Some(at) => {
                self.sync = Some(at);
                self.pos = Some(at);
                self.last_ip.reset();
                self.block = None;
                Ok(at as u64)
            }
            None => Err(Error {
                offset: self.buf.len() as u64,
                kind: ErrorKind::Eos,
            }),
        }
    }

    /// Decodes the next packet. On error the position stays at the bad packet.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Decoded, Error> {
        let Some(pos) = self.pos else {
            return Err(Error {
                offset: 0,
                kind: ErrorKind::NoSync,
            });
        };
        let rest = self.buf.get(pos..).unwrap_or(&[]);
        match packet::decode(rest, self.cfg, self.block) {
            Ok((p, size)) => {
                let ip = track(&p, &mut self.last_ip, &mut self.block);
                self.pos = Some(pos + size);
                Ok(Decoded {
                    offset: pos as u64,
                    size: size as u8,
                    packet: p,
                    ip,
                })
            }
            Err(kind) => Err(Error {
                offset: pos as u64,
                kind,
            }),
        }
    }

    /// The ptdump-style walk: every packet, every error with the offset the
    /// decoder resynchronised at.
    pub fn items(self) -> Items<'a> {
        Items {
            dec: self,
            state: ItemsState::Start,
        }
    }
}

/// What [`Items`] yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// A packet.
    Packet(Decoded),
    /// A decoding error; decoding resumes at `resync` (`None`: no PSB left).
    Error {
        /// The error.
        error: Error,
        /// The offset of the PSB decoding resumed at.
        resync: Option<u64>,
    },
    /// The trace starts with bytes before the first PSB, which were skipped.
    Skipped {
        /// Offset of the first PSB (`None` if the trace has none).
        first_psb: Option<u64>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ItemsState {
    Start,
    Run,
    Done,
}

/// Iterator over the packets and errors of a trace; see [`Decoder::items`].
#[derive(Clone, Debug)]
pub struct Items<'a> {
    dec: Decoder<'a>,
    state: ItemsState,
}

impl Iterator for Items<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        match self.state {
            ItemsState::Done => None,
            ItemsState::Start => {
                let r = self.dec.sync_forward();
                match r {
                    Ok(0) => {
                        self.state = ItemsState::Run;
                        self.next()
                    }
                    Ok(at) => {
                        self.state = ItemsState::Run;
                        Some(Item::Skipped {
                            first_psb: Some(at),
                        })
                    }
                    Err(_) => {
                        self.state = ItemsState::Done;
                        Some(Item::Skipped { first_psb: None })
                    }
                }
            }
            ItemsState::Run => match self.dec.next_packet() {
                Ok(d) => Some(Item::Packet(d)),
                Err(error) => {
                    if error.kind == ErrorKind::Eos && error.offset as usize >= self.dec.buf.len() {
                        self.state = ItemsState::Done;
                        return None;
                    }
                    let resync = self.dec.sync_forward().ok();
                    if resync.is_none() {
                        self.state = ItemsState::Done;
                    }
                    Some(Item::Error { error, resync })
                }
            },
        }
    }
}

/// The first PSB at or after `start`, located the way libipt does it.
///
/// libipt scans 8-byte-aligned words for the PSB payload pattern, then walks
/// to the end of that run of `02 82` pairs and takes its last 16 bytes. The
/// alignment is of the offset (our buffers start aligned in its tests), so a
/// run longer than one PSB resolves to the same packet in both decoders.
pub fn find_psb(buf: &[u8], start: usize) -> Option<usize> {
    let mut w = start.div_ceil(8) * 8;
    while w + 8 <= buf.len() {
        let word = &buf[w..w + 8];
        let cur = w;
        w += 8;
        let pat_a = word.chunks_exact(2).all(|p| p == [0x02, 0x82]);
        let pat_b = word.chunks_exact(2).all(|p| p == [0x82, 0x02]);
        if !pat_a && !pat_b {
            continue;
        }
        let _ = cur;
        // Walk the pairs from the end of this word to the end of the run.
        let mut p = w;
        if buf.get(p) != Some(&0x02) {
            p += 1;
        }
        while p + 1 < buf.len() && buf[p] == 0x02 && buf[p + 1] == 0x82 {
            p += 2;
        }
        let Some(begin) = p.checked_sub(PSB_LEN) else {
            continue;
        };
        if buf.get(begin..begin + PSB_LEN).is_some_and(packet::is_psb) && begin >= start {
            return Some(begin);
        }
    }
    None
}
