//! Carrying one typed record in a protected call's message registers.
//!
//! This is the one register encoding in the project: the supervisor, the
//! firmware PD and the monitor all use it. It lives here, next to the
//! envelope, because it needs nothing else (no ring, no runtime): every
//! PD that links the protocols can frame a call with it.
//!
//! A PPC copies up to 64 message registers (64-bit words) each way, which
//! holds any record up to [`MAX_BYTES`] bytes: word 0 is the record's length
//! in bytes, the record follows packed little-endian from word 1. Small
//! records (a POST summary, an alert) thus need no shared region.
//!
//! The call's label says which protocol the words hold: [`label`] is
//! [`LABEL_BASE`] plus the protocol id, so labels below `LABEL_BASE` stay free
//! for a PD pair's own control calls. Decoding is as strict as
//! [`crate::decode`]: a length past the words given, or non-zero padding,
//! is rejected.

use crate::envelope::{decode, encode, DecodeError, EncodeError, Message};

/// Message registers a protected call carries.
pub const MAX_WORDS: usize = 64;
/// Longest record that fits (word 0 holds the length).
pub const MAX_BYTES: usize = (MAX_WORDS - 1) * 8;
/// First label used for typed records.
pub const LABEL_BASE: u64 = 0x100;

/// The label of a call carrying a record of type `T`.
pub fn label<T: Message>() -> u64 {
    LABEL_BASE + T::PROTOCOL as u64
}

/// Encodes `msg` into `words`; returns how many words to send.
pub fn to_words<T: Message>(msg: &T, words: &mut [u64; MAX_WORDS]) -> Result<usize, EncodeError> {
    let mut bytes = [0u8; MAX_BYTES];
    let n = encode(msg, &mut bytes)?;
    words.fill(0);
    words[0] = n as u64;
    for (i, chunk) in bytes[..n].chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        words[1 + i] = u64::from_le_bytes(w);
    }
    Ok(1 + n.div_ceil(8))
}

/// Decodes the record in `words` (the registers received, word 0 first).
///
/// Pass exactly the registers the call carried (`&words[..info.count()]`,
/// clamped to [`MAX_WORDS`]): a length word that claims more than that is
/// [`DecodeError::Truncated`], never a read of stale registers.
pub fn from_words<T: Message>(words: &[u64]) -> Result<T, DecodeError> {
    let (len, body) = words.split_first().ok_or(DecodeError::Truncated)?;
    let len = usize::try_from(*len).map_err(|_| DecodeError::TooLong)?;
    if len > MAX_BYTES {
        return Err(DecodeError::TooLong);
    }
    let need = len.div_ceil(8);
    if body.len() < need {
        return Err(DecodeError::Truncated);
    }
    let mut bytes = [0u8; MAX_BYTES];
    for (i, w) in body[..need].iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    // One value, one encoding: the padding after the record must be zero.
    if bytes[len..need * 8].iter().any(|b| *b != 0) {
        return Err(DecodeError::Malformed);
    }
    decode(&bytes[..len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::{Decision, Entry, Outcome, PostSummary, Refusal};

    fn summary() -> PostSummary {
        let mut entries = heapless::Vec::new();
        entries
            .push(Entry {
                name: heapless::String::try_from("memtest").unwrap(),
                critical: true,
                outcome: Outcome::Refused(Refusal::HashMismatch),
            })
            .unwrap();
        PostSummary {
            entries,
            omitted: 0,
            decision: Decision::Halt,
        }
    }

    #[test]
    fn round_trip_and_word_count() {
        let mut words = [0u64; MAX_WORDS];
        let n = to_words(&summary(), &mut words).unwrap();
        assert_eq!(n, 1 + (words[0] as usize).div_ceil(8));
        assert_eq!(from_words::<PostSummary>(&words[..n]).unwrap(), summary());
        // Fewer words than the length says: truncated, not garbage.
        assert_eq!(
            from_words::<PostSummary>(&words[..n - 1]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn rejects_bad_lengths_and_padding() {
        let mut words = [0u64; MAX_WORDS];
        let n = to_words(&summary(), &mut words).unwrap();
        let mut long = words;
        long[0] = (MAX_BYTES + 1) as u64;
        assert_eq!(from_words::<PostSummary>(&long), Err(DecodeError::TooLong));
        let mut padded = words;
        if words[0] % 8 != 0 {
            padded[n - 1] |= 0xff << 56;
            assert_eq!(
                from_words::<PostSummary>(&padded[..n]),
                Err(DecodeError::Malformed)
            );
        }
        assert_eq!(from_words::<PostSummary>(&[]), Err(DecodeError::Truncated));
        assert_ne!(label::<PostSummary>(), 1);
        assert!(label::<PostSummary>() >= LABEL_BASE);
    }

    #[test]
    fn vmi_request_round_trips_in_the_fewest_words() {
        use crate::vmi::{MonitorToVmm, Reg};
        let req = MonitorToVmm::ReadRegs {
            tag: 9,
            vcpu: 0,
            regs: heapless::Vec::from_slice(&[Reg::Cr3, Reg::Lstar, Reg::IdtrBase]).unwrap(),
        };
        let mut words = [0u64; MAX_WORDS];
        let n = to_words(&req, &mut words).unwrap();
        assert_eq!(n, 1 + (words[0] as usize).div_ceil(8));
        assert!(words[n..].iter().all(|w| *w == 0));
        assert_eq!(from_words::<MonitorToVmm>(&words[..n]), Ok(req.clone()));
        // Extra zero words after the record are harmless (a caller may
        // send more registers than it needs).
        assert_eq!(from_words::<MonitorToVmm>(&words), Ok(req));
    }

    #[test]
    fn rejects_a_record_of_another_protocol() {
        use crate::vmi::{MonitorToVmm, VmmToMonitor};
        let mut words = [0u64; MAX_WORDS];
        let n = to_words(&MonitorToVmm::Pause { tag: 1, vcpu: 2 }, &mut words).unwrap();
        assert!(matches!(
            from_words::<VmmToMonitor>(&words[..n]),
            Err(DecodeError::WrongProtocol(p)) if p == MonitorToVmm::PROTOCOL as u16
        ));
        // A length word far past what any register file holds.
        let mut huge = words;
        huge[0] = u64::MAX;
        assert_eq!(
            from_words::<MonitorToVmm>(&huge[..n]),
            Err(DecodeError::TooLong)
        );
        // A zero length is an empty record: too short for an envelope.
        assert_eq!(
            from_words::<MonitorToVmm>(&[0]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn worst_case_summary_fits() {
        const { assert!(PostSummary::MAX_SIZE <= MAX_BYTES) };
        let mut words = [0u64; MAX_WORDS];
        let mut entries = heapless::Vec::new();
        while entries
            .push(Entry {
                name: heapless::String::try_from("n".repeat(crate::post::NAME_LEN).as_str())
                    .unwrap(),
                critical: true,
                outcome: Outcome::Failed(u32::MAX),
            })
            .is_ok()
        {}
        let worst = PostSummary {
            entries,
            omitted: u16::MAX,
            decision: Decision::Halt,
        };
        let n = to_words(&worst, &mut words).unwrap();
        assert_eq!(from_words::<PostSummary>(&words[..n]).unwrap(), worst);
    }
}
