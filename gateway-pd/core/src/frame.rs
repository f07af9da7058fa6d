//! CAN frames as the engine sees them, and their wire form on the channel
//! between a guest application and the gateway.
//!
//! A frame keeps its DLC and its payload length apart on purpose: a frame
//! whose DLC disagrees with its payload is malformed and must be denied, so
//! the engine must be able to see the disagreement rather than have a
//! constructor silently repair it.

use serde::{Deserialize, Serialize};

/// Largest standard (11-bit) identifier.
pub const MAX_STANDARD_ID: u32 = 0x7FF;
/// Largest extended (29-bit) identifier.
pub const MAX_EXTENDED_ID: u32 = 0x1FFF_FFFF;

/// What kind of frame this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameKind {
    /// A data frame.
    Data,
    /// A remote transmission request (no payload).
    Remote,
    /// An error frame reported by a controller; it carries no vehicle data.
    Error,
}

/// One classic CAN frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Identifier (11 or 29 bits, see `extended`).
    pub id: u32,
    /// 29-bit identifier.
    pub extended: bool,
    /// Data, remote or error frame.
    pub kind: FrameKind,
    /// The DLC field as sent (0..=15 on the wire; only 0..=8 are accepted).
    pub dlc: u8,
    /// Number of valid bytes in `data` (0..=8).
    pub len: u8,
    /// Payload; bytes past `len` are zero.
    pub data: [u8; 8],
}

/// Why bytes from a channel are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header or than the payload length says.
    Truncated,
    /// Bytes after the payload.
    TrailingBytes,
    /// Unknown frame kind byte.
    BadKind,
    /// Payload length over 8.
    BadLength,
}

impl Frame {
    /// A data frame whose DLC matches its payload; `None` if the id does not
    /// fit its format or the payload is over 8 bytes.
    pub fn data(id: u32, extended: bool, payload: &[u8]) -> Option<Frame> {
        let max = if extended {
            MAX_EXTENDED_ID
        } else {
            MAX_STANDARD_ID
        };
        if id > max || payload.len() > 8 {
            return None;
        }
        let mut data = [0u8; 8];
        data[..payload.len()].copy_from_slice(payload);
        let len = payload.len() as u8;
        Some(Frame {
            id,
            extended,
            kind: FrameKind::Data,
            dlc: len,
            len,
            data,
        })
    }

    /// The valid payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.data[..usize::from(self.len.min(8))]
    }

    /// True when the frame is well formed: id within its format, DLC equal
    /// to the payload length (0 for remote frames' payload), length <= 8.
    pub fn well_formed(&self) -> bool {
        let max = if self.extended {
            MAX_EXTENDED_ID
        } else {
            MAX_STANDARD_ID
        };
        if self.id > max || self.len > 8 || self.dlc > 8 {
            return false;
        }
        match self.kind {
            FrameKind::Data => self.dlc == self.len,
            FrameKind::Remote => self.len == 0,
            FrameKind::Error => true,
        }
    }

    /// Size of a frame's wire form with `len` payload bytes.
    pub const fn wire_len(len: usize) -> usize {
        WIRE_HEADER + len
    }

    /// Encodes the frame for a channel: `[kind, id (4 bytes LE, bit 31 =
    /// extended), dlc, len, payload...]`. Returns the bytes written, or
    /// `None` if `out` is too small.
    pub fn to_wire(&self, out: &mut [u8]) -> Option<usize> {
        let len = usize::from(self.len.min(8));
        let total = WIRE_HEADER + len;
        let out = out.get_mut(..total)?;
        out[0] = match self.kind {
            FrameKind::Data => 0,
            FrameKind::Remote => 1,
            FrameKind::Error => 2,
        };
        let raw = self.id | if self.extended { 1 << 31 } else { 0 };
        out[1..5].copy_from_slice(&raw.to_le_bytes());
        out[5] = self.dlc;
        out[6] = len as u8;
        out[7..total].copy_from_slice(&self.data[..len]);
        Some(total)
    }

    /// Decodes a frame from a channel. The id range and DLC are not checked
    /// here (that is [`Frame::well_formed`], which the engine applies), so
    /// that a bad frame reaches the engine and is denied and audited.
    pub fn from_wire(bytes: &[u8]) -> Result<Frame, FrameError> {
        let header = bytes.get(..WIRE_HEADER).ok_or(FrameError::Truncated)?;
        let kind = match header[0] {
            0 => FrameKind::Data,
            1 => FrameKind::Remote,
            2 => FrameKind::Error,
            _ => return Err(FrameError::BadKind),
        };
        let raw = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::from(header[6]);
        if len > 8 {
            return Err(FrameError::BadLength);
        }
        let payload = bytes
            .get(WIRE_HEADER..WIRE_HEADER + len)
            .ok_or(FrameError::Truncated)?;
        if bytes.len() > WIRE_HEADER + len {
            return Err(FrameError::TrailingBytes);
        }
        let mut data = [0u8; 8];
        data[..len].copy_from_slice(payload);
        Ok(Frame {
            id: raw & 0x7FFF_FFFF,
            extended: raw & (1 << 31) != 0,
            kind,
            dlc: header[5],
            len: len as u8,
            data,
        })
    }

    /// Converts any `embedded-can` frame (what a driver hands us).
    pub fn from_can<F: embedded_can::Frame>(f: &F) -> Frame {
        let (id, extended) = match f.id() {
            embedded_can::Id::Standard(s) => (u32::from(s.as_raw()), false),
            embedded_can::Id::Extended(e) => (e.as_raw(), true),
        };
        let payload = f.data();
        let len = payload.len().min(8);
        let mut data = [0u8; 8];
        data[..len].copy_from_slice(&payload[..len]);
        let kind = if f.is_remote_frame() {
            FrameKind::Remote
        } else {
            FrameKind::Data
        };
        let dlc = f.dlc().min(15) as u8;
        Frame {
            id,
            extended,
            kind,
            dlc,
            len: if kind == FrameKind::Remote {
                0
            } else {
                len as u8
            },
            data,
        }
    }
}

const WIRE_HEADER: usize = 7;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip() {
        let f = Frame::data(0x1234_5678 & MAX_EXTENDED_ID, true, &[1, 2, 3]).unwrap();
        let mut buf = [0u8; 16];
        let n = f.to_wire(&mut buf).unwrap();
        assert_eq!(n, 10);
        assert_eq!(Frame::from_wire(&buf[..n]), Ok(f));
    }

    #[test]
    fn wire_rejects_bad_input() {
        assert_eq!(Frame::from_wire(&[0, 1, 2]), Err(FrameError::Truncated));
        assert_eq!(
            Frame::from_wire(&[9, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::BadKind)
        );
        assert_eq!(
            Frame::from_wire(&[0, 0, 0, 0, 0, 9, 9]),
            Err(FrameError::BadLength)
        );
        assert_eq!(
            Frame::from_wire(&[0, 0, 0, 0, 0, 2, 2, 1]),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            Frame::from_wire(&[0, 0, 0, 0, 0, 1, 1, 1, 5]),
            Err(FrameError::TrailingBytes)
        );
    }

    #[derive(Debug)]
    struct Remote;
    impl embedded_can::Frame for Remote {
        fn new(_: impl Into<embedded_can::Id>, _: &[u8]) -> Option<Self> {
            None
        }
        fn new_remote(_: impl Into<embedded_can::Id>, _: usize) -> Option<Self> {
            None
        }
        fn is_extended(&self) -> bool {
            true
        }
        fn is_remote_frame(&self) -> bool {
            true
        }
        fn id(&self) -> embedded_can::Id {
            embedded_can::ExtendedId::new(0x18DA_F110).unwrap().into()
        }
        fn dlc(&self) -> usize {
            3
        }
        fn data(&self) -> &[u8] {
            &[]
        }
    }

    #[test]
    fn from_embedded_can() {
        let f = Frame::from_can(&Remote);
        assert_eq!(
            (f.id, f.extended, f.kind, f.dlc, f.len),
            (0x18DA_F110, true, FrameKind::Remote, 3, 0)
        );
        assert!(f.well_formed());
    }

    #[test]
    fn dlc_mismatch_is_not_well_formed() {
        let mut f = Frame::data(0x100, false, &[1, 2]).unwrap();
        assert!(f.well_formed());
        f.dlc = 8;
        assert!(!f.well_formed());
        let g = Frame::data(0x800, false, &[]);
        assert!(g.is_none());
    }
}
