//! Trace synthesis for tests, benchmarks and the fuzz seed corpus: a small
//! deterministic PRNG and random but valid packets of every kind.
//!
//! Kept in the library (not behind `cfg(test)`) because the libipt reference
//! crate, the benchmark and the CLI tests all need the same generator, and
//! it is a few dozen lines without dependencies.

use crate::packet::{IpPayload, Ipc, Packet};

/// xorshift64*: deterministic, seedable, good enough to pick packets.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A random bool.
    pub fn bit(&mut self) -> bool {
        self.next_u64() & 1 != 0
    }
}

/// Every IP compression mode.
pub const ALL_IPC: [Ipc; 6] = [
    Ipc::Suppressed,
    Ipc::Update16,
    Ipc::Update32,
    Ipc::Sext48,
    Ipc::Update48,
    Ipc::Full,
];

/// A random IP payload whose raw value fits the chosen compression.
pub fn random_ip(r: &mut Rng) -> IpPayload {
    let ipc = ALL_IPC[r.below(6) as usize];
    let n = ipc.payload_len();
    let raw = if n == 8 {
        r.next_u64()
    } else {
        r.next_u64() & ((1u64 << (8 * n)) - 1)
    };
    IpPayload { ipc, raw }
}

/// How many packet kinds [`random_packet`] picks from (without PSB).
pub const KINDS: u64 = 27;

/// A random valid packet of kind `kind % KINDS` (PSB and BIP excluded:
/// callers place PSBs, and BIPs need an open block).
pub fn packet_of_kind(r: &mut Rng, kind: u64) -> Packet {
    match kind % KINDS {
        0 => Packet::Pad,
        1 => Packet::Psbend,
        2 => {
            let bits = 1 + r.below(6) as u8;
            Packet::Tnt {
                long: false,
                bits,
                payload: r.next_u64() & ((1 << bits) - 1),
            }
        }
        3 => {
            let bits = 1 + r.below(47) as u8;
            Packet::Tnt {
                long: true,
                bits,
                payload: r.next_u64() & ((1 << bits) - 1),
            }
        }
        4 => Packet::Tip(random_ip(r)),
        5 => Packet::TipPge(random_ip(r)),
        6 => Packet::TipPgd(random_ip(r)),
        7 => Packet::Fup(random_ip(r)),
        8 => Packet::Pip {
            cr3: (r.next_u64() & 0xffff_ffff_ffff) >> 1 << 5,
            nr: r.bit(),
        },
        9 => Packet::ModeExec {
            csl: r.bit(),
            csd: r.bit(),
        },
        10 => Packet::ModeTsx {
            intx: r.bit(),
            abrt: r.bit(),
        },
        11 => Packet::Tsc(r.next_u64() & 0x00ff_ffff_ffff_ffff),
        12 => Packet::Tma {
            ctc: r.next_u64() as u16,
            fc: (r.next_u64() & 0x1ff) as u16,
        },
        13 => Packet::Mtc(r.next_u64() as u8),
        14 => {
            let width = r.below(62);
            Packet::Cyc(r.next_u64() & ((1u64 << width) - 1))
        }
        15 => Packet::Cbr(r.next_u64() as u8),
        16 => Packet::Vmcs((r.next_u64() & 0xff_ffff_ffff) << 12),
        17 => Packet::Ovf,
        18 => Packet::Stop,
        19 => Packet::Mnt(r.next_u64()),
        20 => Packet::Exstop { ip: r.bit() },
        21 => Packet::Mwait {
            hints: r.next_u64() as u32,
            ext: r.next_u64() as u32,
        },
        22 => Packet::Pwre {
            state: r.below(16) as u8,
            sub_state: r.below(16) as u8,
            hw: r.bit(),
        },
        23 => Packet::Pwrx {
            last: r.below(16) as u8,
            deepest: r.below(16) as u8,
            interrupt: r.bit(),
            store: r.bit(),
            autonomous: r.bit(),
        },
        24 => {
            let plc = r.below(2) as u8;
            let payload = if plc == 0 {
                r.next_u64() & 0xffff_ffff
            } else {
                r.next_u64()
            };
            Packet::Ptw {
                payload,
                plc,
                ip: r.bit(),
            }
        }
        25 => Packet::Tip(random_ip(r)),
        _ => Packet::Tnt {
            long: false,
            bits: 1 + r.below(6) as u8,
            payload: 0,
        },
    }
}

/// A random valid packet (any kind but PSB and BIP).
pub fn random_packet(r: &mut Rng) -> Packet {
    let k = r.below(KINDS);
    packet_of_kind(r, k)
}
