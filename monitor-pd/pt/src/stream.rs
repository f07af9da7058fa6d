//! Streaming decode: the trace arrives in pieces (a ring buffer drained as
//! the processor fills it), and packets may straddle two pieces.
//!
//! Design: packets wholly inside a piece are decoded in place; only the
//! tail of a piece that holds an incomplete packet (at most 15 bytes) is
//! copied into a fixed carry buffer and completed from the next piece. The
//! decoder owns no heap memory and copies nothing per packet.
//!
//! Synchronisation is a byte-wise matcher for the PSB pattern, so a PSB
//! split across pieces is found too. After an error the matcher restarts at
//! the failing packet and decoding resumes at the next PSB, which is
//! reported with its offset. (The slice [`crate::Decoder`] additionally
//! looks up to 15 bytes back, as libipt does; a stream cannot look back.)

use crate::decoder::{track, Decoded, Error, LastIp};
use crate::packet::{self, Block, Config, ErrorKind, Packet, MAX_PACKET_LEN, PSB_LEN};

/// What the stream decoder reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Synchronised at a PSB at this offset (the PSB packet follows).
    Sync {
        /// Offset of the PSB.
        offset: u64,
    },
    /// A packet.
    Packet(Decoded),
    /// A decoding error; the decoder is scanning for the next PSB.
    Error(Error),
}

/// Decodes a trace delivered in pieces. See the module docs.
#[derive(Clone, Debug)]
pub struct StreamDecoder {
    cfg: Config,
    carry: [u8; MAX_PACKET_LEN],
    carry_len: usize,
    /// Trace offset of the first byte of the current piece.
    base: u64,
    synced: bool,
    matched: usize,
    last_ip: LastIp,
    block: Option<Block>,
}

impl StreamDecoder {
    /// A decoder at trace offset 0, scanning for the first PSB.
    pub fn new(cfg: Config) -> Self {
        StreamDecoder {
            cfg,
            carry: [0; MAX_PACKET_LEN],
            carry_len: 0,
            base: 0,
            synced: false,
            matched: 0,
            last_ip: LastIp::default(),
            block: None,
        }
    }

    /// Total bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.base
    }

    /// True while decoding (a PSB was found since the last error).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Decodes the next piece of the trace, reporting to `sink`.
    pub fn feed(&mut self, piece: &[u8], mut sink: impl FnMut(Event)) {
        let mut i = 0usize;
        while i < piece.len() {
            if !self.synced {
                i = self.scan(piece, i, &mut sink);
                continue;
            }
            if self.carry_len > 0 {
                let k = self.carry_len;
                let mut tmp = [0u8; 2 * MAX_PACKET_LEN];
                tmp[..k].copy_from_slice(&self.carry[..k]);
                let take = (tmp.len() - k).min(piece.len() - i);
                tmp[k..k + take].copy_from_slice(&piece[i..i + take]);
                let at = self.base + i as u64 - k as u64;
                match packet::decode(&tmp[..k + take], self.cfg, self.block) {
                    Ok((p, size)) => {
                        self.emit(p, at, size, &mut sink);
                        // The carry held only an incomplete packet, so the
                        // completed one always ends inside this piece.
                        i += size.saturating_sub(k);
                        self.carry_len = 0;
                    }
                    Err(ErrorKind::Eos) if k + take < MAX_PACKET_LEN => {
                        self.carry[k..k + take].copy_from_slice(&piece[i..i + take]);
                        self.carry_len = k + take;
                        i += take;
                    }
                    Err(kind) => {
                        sink(Event::Error(Error { offset: at, kind }));
                        self.lose_sync();
                        // Rescan the carried bytes: a PSB may start there.
                        let carried = self.carry;
                        for (j, &b) in carried[..k].iter().enumerate() {
                            if self.step(b) {
                                let end = at + j as u64 + 1;
                                self.found(end, &mut sink);
                                // The PSB ended within the carry; decode on.
                                let rest = k - j - 1;
                                let mut tail = [0u8; MAX_PACKET_LEN];
                                tail[..rest].copy_from_slice(&carried[j + 1..k]);
                                self.carry[..rest].copy_from_slice(&tail[..rest]);
                                self.carry_len = rest;
                                break;
                            }
                        }
                    }
                }
                continue;
            }
            // The fast path: decode in place.
            let rest = &piece[i..];
            match packet::decode(rest, self.cfg, self.block) {
                Ok((p, size)) => {
                    self.emit(p, self.base + i as u64, size, &mut sink);
                    i += size;
                }
                Err(ErrorKind::Eos) if rest.len() < MAX_PACKET_LEN => {
                    self.carry[..rest.len()].copy_from_slice(rest);
                    self.carry_len = rest.len();
                    i = piece.len();
                }
                Err(kind) => {
                    sink(Event::Error(Error {
                        offset: self.base + i as u64,
                        kind,
                    }));
                    self.lose_sync();
                }
            }
        }
        self.base += piece.len() as u64;
    }

    /// Decodes what the processor wrote to a ring buffer since the last
    /// call: `ring` is the whole buffer, `written` the processor's total
    /// byte count so far (a monotonic write position, as in perf's AUX
    /// head). Everything between [`StreamDecoder::offset`] and `written` is
    /// decoded, in at most two pieces around the wrap.
    ///
    /// Returns `Err(lost)` without decoding if the writer has lapped the
    /// reader (more than `ring.len()` bytes unread: `lost` bytes were
    /// overwritten); the caller resynchronises with [`StreamDecoder::skip_to`].
    pub fn feed_ring(
        &mut self,
        ring: &[u8],
        written: u64,
        sink: impl FnMut(Event),
    ) -> Result<(), u64> {
        let len = ring.len() as u64;
        let unread = written.saturating_sub(self.base);
        if len == 0 || unread == 0 {
            return Ok(());
        }
        if unread > len {
            return Err(unread - len);
        }
        let start = (self.base % len) as usize;
        let n = unread as usize;
        let mut sink = sink;
        if start + n <= ring.len() {
            self.feed(&ring[start..start + n], &mut sink);
        } else {
            self.feed(&ring[start..], &mut sink);
            self.feed(&ring[..start + n - ring.len()], &mut sink);
        }
        Ok(())
    }

    /// Continues at trace offset `offset` after data was lost (a lapped
    /// ring buffer): drops any partial packet and scans for the next PSB.
    pub fn skip_to(&mut self, offset: u64) {
        if offset > self.base {
            self.base = offset;
            self.lose_sync();
        }
    }

    /// The trace has ended: reports a packet cut off by the end, if any.
    pub fn finish(&mut self, mut sink: impl FnMut(Event)) {
        if self.synced && self.carry_len > 0 {
            sink(Event::Error(Error {
                offset: self.base - self.carry_len as u64,
                kind: ErrorKind::Eos,
            }));
            self.carry_len = 0;
            self.lose_sync();
        }
    }

    fn lose_sync(&mut self) {
        self.synced = false;
        self.matched = 0;
        self.carry_len = 0;
    }

    /// Feeds one byte to the PSB matcher; true when a whole PSB just ended.
    #[inline]
    fn step(&mut self, b: u8) -> bool {
        let want = if self.matched.is_multiple_of(2) {
            0x02
        } else {
            0x82
        };
        if b == want {
            self.matched += 1;
        } else if b == 0x02 {
            self.matched = 1;
        } else {
            self.matched = 0;
        }
        if self.matched == PSB_LEN {
            self.matched = 0;
            return true;
        }
        false
    }

    /// A PSB ended just before trace offset `end`.
    fn found(&mut self, end: u64, sink: &mut impl FnMut(Event)) {
        let offset = end - PSB_LEN as u64;
        self.synced = true;
        sink(Event::Sync { offset });
        self.emit(Packet::Psb, offset, PSB_LEN, sink);
    }

    fn scan(&mut self, piece: &[u8], mut i: usize, sink: &mut impl FnMut(Event)) -> usize {
        while i < piece.len() {
            let b = piece[i];
            i += 1;
            if self.step(b) {
                self.found(self.base + i as u64, sink);
                break;
            }
        }
        i
    }

    #[inline(always)]
    fn emit(&mut self, p: Packet, offset: u64, size: usize, sink: &mut impl FnMut(Event)) {
        let ip = track(&p, &mut self.last_ip, &mut self.block);
        sink(Event::Packet(Decoded {
            offset,
            size: size as u8,
            packet: p,
            ip,
        }));
    }
}
