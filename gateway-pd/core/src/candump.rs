//! The `candump -L` log format (one frame a line), so the engine can replay
//! real and generated bus logs on the host.
//!
//! `(1436509052.249713) can0 123#DEADBEEF`: a 3-hex-digit id is standard, an
//! 8-hex-digit one extended; `#R` marks a remote frame; an 8-digit id with
//! the error flag (0x20000000) is an error frame. Parsing never panics; a
//! bad line is an error saying which part is wrong.

use core::fmt::Write;

use crate::frame::{Frame, FrameKind, MAX_EXTENDED_ID};

const CAN_ERR_FLAG: u32 = 0x2000_0000;

/// What is wrong with a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// Missing or bad `(seconds.micros)` timestamp.
    Timestamp,
    /// Missing interface name.
    Interface,
    /// Missing `#` or bad identifier.
    Id,
    /// Odd number of hex digits, non-hex, or more than 8 bytes.
    Data,
}

/// A parsed log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// Timestamp in microseconds.
    pub at_us: u64,
    /// Interface name (`can0`).
    pub iface: &'a str,
    /// The frame.
    pub frame: Frame,
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    s.bytes()
        .try_fold(0u32, |acc, c| Some(acc << 4 | u32::from(hex_digit(c)?)))
}

/// Parses one line.
pub fn parse_line(line: &str) -> Result<Line<'_>, LineError> {
    let line = line.trim();
    let rest = line.strip_prefix('(').ok_or(LineError::Timestamp)?;
    let (ts, rest) = rest.split_once(')').ok_or(LineError::Timestamp)?;
    let (secs, frac) = ts.split_once('.').ok_or(LineError::Timestamp)?;
    if frac.len() != 6 || secs.is_empty() || secs.len() > 12 {
        return Err(LineError::Timestamp);
    }
    let num = |s: &str| -> Option<u64> {
        s.bytes().try_fold(0u64, |a, c| {
            if c.is_ascii_digit() {
                Some(a * 10 + u64::from(c - b'0'))
            } else {
                None
            }
        })
    };
    let at_us = num(secs).ok_or(LineError::Timestamp)? * 1_000_000
        + num(frac).ok_or(LineError::Timestamp)?;
    let mut parts = rest.split_ascii_whitespace();
    let iface = parts.next().ok_or(LineError::Interface)?;
    let body = parts.next().ok_or(LineError::Id)?;
    let (id_s, data_s) = body.split_once('#').ok_or(LineError::Id)?;
    let raw = hex_u32(id_s).ok_or(LineError::Id)?;
    let extended = match id_s.len() {
        3 => false,
        8 => true,
        _ => return Err(LineError::Id),
    };
    if extended && raw & CAN_ERR_FLAG != 0 {
        let mut f = parse_data(data_s)?;
        f.id = raw & !CAN_ERR_FLAG & MAX_EXTENDED_ID;
        f.extended = true;
        f.kind = FrameKind::Error;
        return Ok(Line {
            at_us,
            iface,
            frame: f,
        });
    }
    if (!extended && raw > 0x7FF) || raw > MAX_EXTENDED_ID {
        return Err(LineError::Id);
    }
    let mut f = if let Some(r) = data_s.strip_prefix('R') {
        let dlc = if r.is_empty() {
            0
        } else {
            hex_u32(r).filter(|&d| d <= 8).ok_or(LineError::Data)? as u8
        };
        Frame {
            id: 0,
            extended,
            kind: FrameKind::Remote,
            dlc,
            len: 0,
            data: [0; 8],
        }
    } else {
        parse_data(data_s)?
    };
    f.id = raw;
    f.extended = extended;
    Ok(Line {
        at_us,
        iface,
        frame: f,
    })
}

fn parse_data(s: &str) -> Result<Frame, LineError> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) || b.len() > 16 {
        return Err(LineError::Data);
    }
    let mut data = [0u8; 8];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = hex_digit(pair[0]).ok_or(LineError::Data)?;
        let lo = hex_digit(pair[1]).ok_or(LineError::Data)?;
        data[i] = hi << 4 | lo;
    }
    let len = (b.len() / 2) as u8;
    Ok(Frame {
        id: 0,
        extended: false,
        kind: FrameKind::Data,
        dlc: len,
        len,
        data,
    })
}

/// Writes a frame as a log line (without newline).
pub fn write_line<W: Write>(out: &mut W, at_us: u64, iface: &str, f: &Frame) -> core::fmt::Result {
    write!(
        out,
        "({}.{:06}) {} ",
        at_us / 1_000_000,
        at_us % 1_000_000,
        iface
    )?;
    match f.kind {
        FrameKind::Error => write!(out, "{:08X}#", f.id | CAN_ERR_FLAG)?,
        _ if f.extended => write!(out, "{:08X}#", f.id)?,
        _ => write!(out, "{:03X}#", f.id)?,
    }
    if f.kind == FrameKind::Remote {
        write!(out, "R")?;
        if f.dlc != 0 {
            write!(out, "{:X}", f.dlc)?;
        }
        return Ok(());
    }
    for b in f.payload() {
        write!(out, "{b:02X}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_write() {
        let l = parse_line("(1436509052.249713) can0 1A3#DEADBEEF").unwrap();
        assert_eq!(l.at_us, 1_436_509_052_249_713);
        assert_eq!(l.iface, "can0");
        assert_eq!(
            l.frame,
            Frame::data(0x1A3, false, &[0xDE, 0xAD, 0xBE, 0xEF]).unwrap()
        );
        let mut s = String::new();
        write_line(&mut s, l.at_us, l.iface, &l.frame).unwrap();
        assert_eq!(s, "(1436509052.249713) can0 1A3#DEADBEEF");

        let e = parse_line("(0.000001) can1 12345678#").unwrap();
        assert!(
            e.frame.extended && e.frame.len == 0 && e.frame.id == 0x1234_5678 & MAX_EXTENDED_ID
        );
        let r = parse_line("(0.000001) can1 123#R").unwrap();
        assert_eq!(r.frame.kind, FrameKind::Remote);
        let err = parse_line("(0.000001) can1 20000004#0004000000000000").unwrap();
        assert_eq!(err.frame.kind, FrameKind::Error);
    }

    use proptest::prelude::*;

    proptest! {
        /// Any text: an error or a frame, never a panic.
        #[test]
        fn any_line_is_safe(line in ".{0,60}", tail in "[0-9A-Fa-f#R]{0,24}") {
            let _ = parse_line(&line);
            let _ = parse_line(&format!("(1.000000) can0 {tail}"));
        }

        /// Every frame written as a line parses back to itself.
        #[test]
        fn write_then_parse(at in 0u64..10_000_000_000_000, ext: bool, id: u32, kind in 0u8..3,
                            payload in proptest::collection::vec(any::<u8>(), 0..=8), dlc in 0u8..=8) {
            let id = if ext || kind == 2 { id & MAX_EXTENDED_ID & !CAN_ERR_FLAG } else { id & 0x7FF };
            let mut f = Frame::data(id, ext || kind == 2, &payload).unwrap();
            if kind == 1 {
                f = Frame { kind: FrameKind::Remote, dlc, len: 0, data: [0; 8], ..f };
            } else if kind == 2 {
                f.kind = FrameKind::Error;
            }
            let mut s = String::new();
            write_line(&mut s, at, "vcan0", &f).unwrap();
            let l = parse_line(&s).unwrap();
            prop_assert_eq!((l.at_us, l.iface, l.frame), (at, "vcan0", f));
        }
    }

    #[test]
    fn bad_lines() {
        assert_eq!(parse_line("can0 123#00"), Err(LineError::Timestamp));
        assert_eq!(parse_line("(1.5) can0 123#00"), Err(LineError::Timestamp));
        assert_eq!(parse_line("(1.000000)"), Err(LineError::Interface));
        assert_eq!(parse_line("(1.000000) can0 123"), Err(LineError::Id));
        assert_eq!(parse_line("(1.000000) can0 923#00"), Err(LineError::Id));
        assert_eq!(parse_line("(1.000000) can0 1234#00"), Err(LineError::Id));
        assert_eq!(parse_line("(1.000000) can0 123#0"), Err(LineError::Data));
        assert_eq!(parse_line("(1.000000) can0 123#0G"), Err(LineError::Data));
        assert_eq!(
            parse_line("(1.000000) can0 123#000000000000000000"),
            Err(LineError::Data)
        );
    }
}
