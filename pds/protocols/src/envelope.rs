//! The envelope every typed record travels in, and the versioning scheme.
//!
//! Wire format of one record (the payload of one ring slot):
//!
//! ```text
//! byte 0..2  protocol id   (u16, little-endian)  which enum this is
//! byte 2..4  version       (u16, little-endian)  that enum's wire version
//! byte 4..   body          postcard encoding of the enum value
//! ```
//!
//! The header is fixed-width (not postcard varints) so a receiver can reject
//! a record for the wrong protocol or version before it decodes a single
//! byte of the body. Versioning rules:
//! - a change that alters the encoding of an existing variant or field
//!   (reordering, retyping, removing) bumps `VERSION`;
//! - adding a variant at the end of an enum also bumps `VERSION`, because an
//!   old receiver cannot decode it; there is no silent "unknown variant";
//! - a receiver accepts exactly its own version: the two ends of a channel
//!   are built from the same `bulkhead-protocols`, so a mismatch means a
//!   stale or hostile peer, and the record is rejected and counted.
//!
//! Decoding is strict: the body must decode completely, with no trailing
//! bytes, so one value has exactly one accepted encoding.

use serde::{de::DeserializeOwned, Serialize};

/// Size of the fixed envelope header in bytes.
pub const HEADER_LEN: usize = 4;

/// Identifies which message enum a record carries. Every protocol has its
/// own id, one per direction: a record sent on the wrong channel is rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u16)]
pub enum ProtocolId {
    /// [`crate::supervisor::Report`]: any PD → supervisor.
    SupervisorReport = 1,
    /// [`crate::post::PostSummary`]: firmware → supervisor.
    PostSummary = 2,
    /// [`crate::vmi::MonitorToVmm`]: monitor → VMM.
    MonitorToVmm = 3,
    /// [`crate::vmi::VmmToMonitor`]: VMM → monitor.
    VmmToMonitor = 4,
    /// [`crate::gateway::AppToGateway`]: guest applications → gateway.
    AppToGateway = 5,
    /// [`crate::gateway::GatewayToApp`]: gateway → guest applications.
    GatewayToApp = 6,
    /// [`crate::console::ConsoleInput`]: console owner → VMM.
    ConsoleInput = 7,
}

/// A message enum that can travel over a typed channel.
pub trait Message: Serialize + DeserializeOwned {
    /// Which protocol (and direction) this type is.
    const PROTOCOL: ProtocolId;
    /// Wire version of this type; see the module docs for when it changes.
    const VERSION: u16;
    /// Upper bound on the whole record (envelope header included) in bytes.
    /// Every protocol module has a test that encodes its largest values and
    /// checks them against this bound; ring slots are sized from it.
    const MAX_SIZE: usize;
}

/// Why a record could not be encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EncodeError {
    /// The output buffer is smaller than the encoded record.
    BufferTooSmall,
}

/// Why a received record was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// Shorter than the envelope header.
    Truncated,
    /// The header names another protocol (carries the raw id seen).
    WrongProtocol(u16),
    /// The header carries another version of this protocol.
    WrongVersion(u16),
    /// The body does not decode as this protocol's enum, or has bytes left over.
    Malformed,
    /// Longer than the protocol's declared maximum.
    TooLong,
}

/// Encodes `msg` with its envelope into `buf`; returns the record length.
pub fn encode<T: Message>(msg: &T, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let (head, body) = buf
        .split_at_mut_checked(HEADER_LEN)
        .ok_or(EncodeError::BufferTooSmall)?;
    head[0..2].copy_from_slice(&(T::PROTOCOL as u16).to_le_bytes());
    head[2..4].copy_from_slice(&T::VERSION.to_le_bytes());
    let used = postcard::to_slice(msg, body)
        .map_err(|_| EncodeError::BufferTooSmall)?
        .len();
    Ok(HEADER_LEN + used)
}

/// Reads the envelope header: `(protocol id, version)`, unchecked.
pub fn peek_header(record: &[u8]) -> Result<(u16, u16), DecodeError> {
    match record {
        [p0, p1, v0, v1, ..] => Ok((
            u16::from_le_bytes([*p0, *p1]),
            u16::from_le_bytes([*v0, *v1]),
        )),
        _ => Err(DecodeError::Truncated),
    }
}

/// Decodes one record as `T`, checking protocol, version, size and that the
/// body is consumed exactly.
pub fn decode<T: Message>(record: &[u8]) -> Result<T, DecodeError> {
    if record.len() > T::MAX_SIZE {
        return Err(DecodeError::TooLong);
    }
    let (protocol, version) = peek_header(record)?;
    if protocol != T::PROTOCOL as u16 {
        return Err(DecodeError::WrongProtocol(protocol));
    }
    if version != T::VERSION {
        return Err(DecodeError::WrongVersion(version));
    }
    let body = record.get(HEADER_LEN..).ok_or(DecodeError::Truncated)?;
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok(_) | Err(_) => Err(DecodeError::Malformed),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes `msg` and checks the declared bound and the round trip;
    /// returns the encoded length so callers can assert it is the worst case.
    pub(crate) fn check_bound<T: Message + PartialEq + core::fmt::Debug>(msg: &T) -> usize {
        let mut buf = [0u8; 4096];
        let n = encode(msg, &mut buf).expect("fits in 4 KiB");
        assert!(
            n <= T::MAX_SIZE,
            "{:?} encodes to {n} bytes, over MAX_SIZE {}",
            T::PROTOCOL,
            T::MAX_SIZE
        );
        assert_eq!(&decode::<T>(&buf[..n]).expect("round trip"), msg);
        // Every shorter buffer must fail cleanly, never panic or truncate.
        for short in 0..n {
            assert_eq!(
                encode(msg, &mut buf[..short]),
                Err(EncodeError::BufferTooSmall)
            );
        }
        n
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    enum Probe {
        A(u32),
        B,
    }
    impl Message for Probe {
        const PROTOCOL: ProtocolId = ProtocolId::SupervisorReport;
        const VERSION: u16 = 7;
        const MAX_SIZE: usize = 10;
    }

    #[test]
    fn header_is_fixed_little_endian() {
        let mut buf = [0u8; 16];
        let n = encode(&Probe::A(300), &mut buf).unwrap();
        assert_eq!(&buf[..4], &[1, 0, 7, 0]);
        assert_eq!(&buf[4..n], &[0, 0xac, 0x02]);
    }

    #[test]
    fn rejects_wrong_protocol_version_truncation_and_trailing_bytes() {
        let mut buf = [0u8; 16];
        let n = encode(&Probe::A(5), &mut buf).unwrap();
        assert_eq!(decode::<Probe>(&buf[..3]), Err(DecodeError::Truncated));
        let mut other = buf;
        other[0] = 9;
        assert_eq!(
            decode::<Probe>(&other[..n]),
            Err(DecodeError::WrongProtocol(9))
        );
        let mut old = buf;
        old[2] = 6;
        assert_eq!(
            decode::<Probe>(&old[..n]),
            Err(DecodeError::WrongVersion(6))
        );
        assert_eq!(decode::<Probe>(&buf[..n + 1]), Err(DecodeError::Malformed));
        assert_eq!(decode::<Probe>(&buf[..n - 1]), Err(DecodeError::Malformed));
        let mut bad_variant = buf;
        bad_variant[4] = 2;
        assert_eq!(
            decode::<Probe>(&bad_variant[..n]),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            decode::<Probe>(&[1, 0, 7, 0, 1, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::TooLong)
        );
        assert_eq!(decode::<Probe>(&buf[..n]), Ok(Probe::A(5)));
    }
}
