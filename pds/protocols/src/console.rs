//! Console input for a guest: the PD that owns the platform's UART (the
//! supervisor in the reference system) forwards the bytes typed on it to
//! the VMM, which feeds them to the guest's emulated UART.
//!
//! Design rules: a record carries at most [`CONSOLE_CHUNK`] bytes, so a
//! fast typist or a paste becomes several records, never a big one; bytes
//! are passed as they are (the guest's line discipline interprets them).

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::envelope::{Message, ProtocolId};

/// Most bytes one record carries.
pub const CONSOLE_CHUNK: usize = 32;

/// The bound fits the slot with the ring's header: checked when compiled.
const _: () = assert!(ConsoleInput::MAX_SIZE + 16 <= CONSOLE_SLOT);

/// Slot size of the console ring: [`ConsoleInput::MAX_SIZE`] plus the
/// ring's 16-byte slot header, rounded up; both ends build the ring with it.
pub const CONSOLE_SLOT: usize = 64;

/// Bytes typed on the platform console, in order.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct ConsoleInput {
    /// The bytes.
    pub bytes: Vec<u8, CONSOLE_CHUNK>,
}

impl Message for ConsoleInput {
    const PROTOCOL: ProtocolId = ProtocolId::ConsoleInput;
    const VERSION: u16 = 1;
    /// Header 4, length 1, bytes 32.
    const MAX_SIZE: usize = 37;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::check_bound;

    #[test]
    fn a_full_chunk_meets_the_bound_and_fits_the_slot() {
        let mut bytes = Vec::new();
        while bytes.push(0xff).is_ok() {}
        let size = check_bound(&ConsoleInput { bytes });
        assert_eq!(size, ConsoleInput::MAX_SIZE);
    }

    #[test]
    fn input_round_trips_and_other_protocols_are_refused() {
        let msg = ConsoleInput {
            bytes: Vec::from_slice(b"ls\r").unwrap(),
        };
        let mut buf = [0u8; 64];
        let n = crate::encode(&msg, &mut buf).unwrap();
        assert_eq!(crate::decode::<ConsoleInput>(&buf[..n]), Ok(msg));
        assert!(crate::decode::<crate::supervisor::Report>(&buf[..n]).is_err());
    }
}
