//! The driver's frame type, implementing `embedded_can::Frame`.

use embedded_can::{ExtendedId, Id, StandardId};

/// A classic CAN frame as the SJA1000 sends and receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanFrame {
    pub(crate) raw_id: u32,
    pub(crate) extended: bool,
    pub(crate) remote: bool,
    pub(crate) dlc: u8,
    pub(crate) data: [u8; 8],
}

impl CanFrame {
    pub(crate) fn from_parts(
        id: u32,
        extended: bool,
        remote: bool,
        dlc: u8,
        data: [u8; 8],
    ) -> CanFrame {
        let id = if extended {
            id & 0x1FFF_FFFF
        } else {
            id & 0x7FF
        };
        CanFrame {
            raw_id: id,
            extended,
            remote,
            dlc: dlc.min(8),
            data,
        }
    }

    /// The raw identifier.
    pub fn raw_id(&self) -> u32 {
        self.raw_id
    }
}

impl embedded_can::Frame for CanFrame {
    fn new(id: impl Into<Id>, data: &[u8]) -> Option<Self> {
        if data.len() > 8 {
            return None;
        }
        let (raw, ext) = match id.into() {
            Id::Standard(s) => (u32::from(s.as_raw()), false),
            Id::Extended(e) => (e.as_raw(), true),
        };
        let mut d = [0u8; 8];
        d[..data.len()].copy_from_slice(data);
        Some(CanFrame::from_parts(raw, ext, false, data.len() as u8, d))
    }

    fn new_remote(id: impl Into<Id>, dlc: usize) -> Option<Self> {
        if dlc > 8 {
            return None;
        }
        let (raw, ext) = match id.into() {
            Id::Standard(s) => (u32::from(s.as_raw()), false),
            Id::Extended(e) => (e.as_raw(), true),
        };
        Some(CanFrame::from_parts(raw, ext, true, dlc as u8, [0; 8]))
    }

    fn is_extended(&self) -> bool {
        self.extended
    }

    fn is_remote_frame(&self) -> bool {
        self.remote
    }

    fn id(&self) -> Id {
        if self.extended {
            // from_parts masked the id to 29 bits, so this cannot fail.
            Id::Extended(ExtendedId::new(self.raw_id).unwrap_or(ExtendedId::ZERO))
        } else {
            Id::Standard(StandardId::new(self.raw_id as u16).unwrap_or(StandardId::ZERO))
        }
    }

    fn dlc(&self) -> usize {
        usize::from(self.dlc)
    }

    fn data(&self) -> &[u8] {
        if self.remote {
            &[]
        } else {
            &self.data[..usize::from(self.dlc.min(8))]
        }
    }
}
