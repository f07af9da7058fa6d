//! Text form of packets, one per line, in the spirit of libipt's ptdump:
//! offset, packet name, payload; IP packets also show the IP compression
//! and the reconstructed IP. Used by `bulkhead pt dump`.

use core::fmt;

use crate::decoder::{Decoded, Error};
use crate::packet::{ErrorKind, Ipc, Packet};

impl Ipc {
    /// The compression as ptdump names it (payload bytes).
    pub fn name(self) -> &'static str {
        match self {
            Ipc::Suppressed => "0: suppressed",
            Ipc::Update16 => "1: upd16",
            Ipc::Update32 => "2: upd32",
            Ipc::Sext48 => "3: sext48",
            Ipc::Update48 => "4: upd48",
            Ipc::Full => "6: full",
        }
    }
}

impl Packet {
    /// The packet's name.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Pad => "pad",
            Packet::Psb => "psb",
            Packet::Psbend => "psbend",
            Packet::Tnt { long: false, .. } => "tnt.8",
            Packet::Tnt { long: true, .. } => "tnt.64",
            Packet::Tip(_) => "tip",
            Packet::TipPge(_) => "tip.pge",
            Packet::TipPgd(_) => "tip.pgd",
            Packet::Fup(_) => "fup",
            Packet::Pip { .. } => "pip",
            Packet::ModeExec { .. } => "mode.exec",
            Packet::ModeTsx { .. } => "mode.tsx",
            Packet::Tsc(_) => "tsc",
            Packet::Tma { .. } => "tma",
            Packet::Mtc(_) => "mtc",
            Packet::Cyc(_) => "cyc",
            Packet::Cbr(_) => "cbr",
            Packet::Vmcs(_) => "vmcs",
            Packet::Ovf => "ovf",
            Packet::Stop => "stop",
            Packet::Mnt(_) => "mnt",
            Packet::Exstop { .. } => "exstop",
            Packet::Mwait { .. } => "mwait",
            Packet::Pwre { .. } => "pwre",
            Packet::Pwrx { .. } => "pwrx",
            Packet::Ptw { .. } => "ptw",
            Packet::Bbp { .. } => "bbp",
            Packet::Bip { .. } => "bip",
            Packet::Bep { .. } => "bep",
        }
    }
}

impl ErrorKind {
    /// What the error means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::NoSync => "not synchronised (no PSB)",
            ErrorKind::BadOpcode => "unknown opcode",
            ErrorKind::BadPacket => "malformed packet (reserved payload)",
            ErrorKind::Eos => "packet cut off by the end of the trace",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}  error: {}", self.offset, self.kind.describe())
    }
}

fn flag(f: &mut fmt::Formatter<'_>, on: bool, name: &str) -> fmt::Result {
    if on {
        write!(f, " {name}")
    } else {
        Ok(())
    }
}

impl fmt::Display for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}  {:<10}", self.offset, self.packet.name())?;
        match self.packet {
            Packet::Tnt { bits, payload, .. } => {
                for i in (0..bits).rev() {
                    f.write_str(if (payload >> i) & 1 != 0 { "!" } else { "." })?;
                }
                Ok(())
            }
            Packet::Tip(i) | Packet::TipPge(i) | Packet::TipPgd(i) | Packet::Fup(i) => {
                write!(f, "{}", i.ipc.name())?;
                match self.ip {
                    Some(ip) => write!(f, ": {ip:016x}"),
                    None => Ok(()),
                }
            }
            Packet::Pip { cr3, nr } => {
                write!(f, "{cr3:x}")?;
                flag(f, nr, "nr")
            }
            Packet::ModeExec { csl, csd } => f.write_str(match (csl, csd) {
                (true, false) => "64-bit",
                (false, true) => "32-bit",
                (false, false) => "16-bit",
                (true, true) => "cs.l cs.d (invalid)",
            }),
            Packet::ModeTsx { intx, abrt } => {
                flag(f, intx, "intx")?;
                flag(f, abrt, "abrt")
            }
            Packet::Tsc(v) | Packet::Cyc(v) | Packet::Vmcs(v) | Packet::Mnt(v) => {
                write!(f, "{v:x}")
            }
            Packet::Tma { ctc, fc } => write!(f, "{ctc:x}, {fc:x}"),
            Packet::Mtc(v) | Packet::Cbr(v) => write!(f, "{v:x}"),
            Packet::Exstop { ip } | Packet::Bep { ip } => flag(f, ip, "ip"),
            Packet::Mwait { hints, ext } => write!(f, "{hints:08x}, {ext:08x}"),
            Packet::Pwre {
                state,
                sub_state,
                hw,
            } => {
                write!(f, "c{}.{}", state as u32 + 1, sub_state as u32 + 1)?;
                flag(f, hw, "hw")
            }
            Packet::Pwrx {
                last,
                deepest,
                interrupt,
                store,
                autonomous,
            } => {
                write!(f, "c{}, c{}", last as u32 + 1, deepest as u32 + 1)?;
                flag(f, interrupt, "int")?;
                flag(f, store, "st")?;
                flag(f, autonomous, "hw")
            }
            Packet::Ptw { payload, plc, ip } => {
                write!(f, "{}: {payload:x}", plc)?;
                flag(f, ip, "ip")
            }
            Packet::Bbp { sz4, kind } => {
                write!(f, "type {kind:x}, {} bytes", if sz4 { 4 } else { 8 })
            }
            Packet::Bip { id, payload } => write!(f, "{id:x}: {payload:x}"),
            Packet::Pad | Packet::Psb | Packet::Psbend | Packet::Ovf | Packet::Stop => Ok(()),
        }
    }
}
