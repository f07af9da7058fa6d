//! Typed messages in message registers, for small synchronous calls over a
//! protected procedure call (PPC), where a ring would be overkill.
//!
//! Layout in the registers: register 0 holds the record's length in bytes;
//! registers 1.. hold the record (the same envelope as on a ring: protocol
//! id, version, postcard body) packed little-endian, zero padded. The
//! caller sets the registers and the count in its `MessageInfo`; the callee
//! decodes them defensively: a length that does not fit the registers it
//! was given, or a record that does not decode, is an error, never a panic.
//! The runtime's `get_mr`/`set_mr` copy registers in and out of the IPC
//! buffer; this module only deals with the `[u64]` copies.
#![forbid(unsafe_code)]

use bulkhead_protocols::envelope::{self, DecodeError, Message};

/// Why registers could not carry or yield a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PpcError {
    /// The message does not fit the registers.
    TooLarge,
    /// Register 0's length does not fit the registers received.
    BadLength,
    /// The record does not decode as this protocol.
    Decode(DecodeError),
}

/// Largest record the registers can carry: 8 bytes per register after the
/// length register.
pub const fn capacity(registers: usize) -> usize {
    registers.saturating_sub(1) * 8
}

/// Encodes `msg` into `mrs`; returns the number of registers used (to put
/// in the `MessageInfo`).
pub fn encode<T: Message>(msg: &T, mrs: &mut [u64]) -> Result<usize, PpcError> {
    let mut buf = [0u8; 512];
    let room = capacity(mrs.len()).min(buf.len());
    let len = envelope::encode(msg, &mut buf[..room]).map_err(|_| PpcError::TooLarge)?;
    let (head, body) = mrs.split_first_mut().ok_or(PpcError::TooLarge)?;
    *head = len as u64;
    let mut used = 1;
    for (r, chunk) in body.iter_mut().zip(buf[..len].chunks(8)) {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        *r = u64::from_le_bytes(bytes);
        used += 1;
    }
    Ok(used)
}

/// Decodes the first `count` registers of `mrs` as a `T` (a `count` larger
/// than `mrs` is treated as `mrs.len()`).
pub fn decode<T: Message>(mrs: &[u64], count: usize) -> Result<T, PpcError> {
    let mrs = mrs.get(..count).unwrap_or(mrs);
    let (&len, body) = mrs.split_first().ok_or(PpcError::BadLength)?;
    if len > capacity(mrs.len()) as u64 || len > 512 {
        return Err(PpcError::BadLength);
    }
    let mut buf = [0u8; 512];
    for (chunk, r) in buf.chunks_mut(8).zip(body) {
        chunk.copy_from_slice(&r.to_le_bytes());
    }
    envelope::decode(&buf[..len as usize]).map_err(PpcError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_protocols::vmi::{MonitorToVmm, Reg, VmmToMonitor};

    #[test]
    fn round_trip_and_register_count() {
        let req = MonitorToVmm::ReadRegs {
            tag: 9,
            vcpu: 0,
            regs: heapless::Vec::from_slice(&[Reg::Cr3, Reg::Lstar, Reg::IdtrBase]).unwrap(),
        };
        let mut mrs = [0u64; 64];
        let n = encode(&req, &mut mrs).unwrap();
        let len = mrs[0] as usize;
        assert_eq!(n, 1 + len.div_ceil(8));
        assert_eq!(decode::<MonitorToVmm>(&mrs, n), Ok(req));
    }

    #[test]
    fn rejects_bad_lengths_small_registers_and_other_protocols() {
        let req = MonitorToVmm::Pause { tag: 1, vcpu: 2 };
        let mut mrs = [0u64; 4];
        let n = encode(&req, &mut mrs).unwrap();
        assert_eq!(encode(&req, &mut [0u64; 1]), Err(PpcError::TooLarge));
        assert_eq!(encode(&req, &mut []), Err(PpcError::TooLarge));
        assert_eq!(decode::<MonitorToVmm>(&[], 0), Err(PpcError::BadLength));
        assert_eq!(
            decode::<MonitorToVmm>(&mrs, n - 1),
            Err(PpcError::BadLength)
        );
        let mut long = mrs;
        long[0] = u64::MAX;
        assert_eq!(decode::<MonitorToVmm>(&long, 4), Err(PpcError::BadLength));
        assert!(matches!(
            decode::<VmmToMonitor>(&mrs, n),
            Err(PpcError::Decode(DecodeError::WrongProtocol(3)))
        ));
        // A count beyond the registers given is clamped, not trusted.
        assert_eq!(decode::<MonitorToVmm>(&mrs, 1000), Ok(req));
    }
}
