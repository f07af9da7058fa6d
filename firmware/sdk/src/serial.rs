//! Serial loopback check: bytes chosen to exercise every data line (all
//! zeros, all ones, alternating bits, walking ones) and a text, each sent in
//! loopback mode and expected back unchanged.

/// The bytes sent, in order.
pub const SEQUENCE: [u8; 20] = [
    0x00, 0xff, 0x55, 0xaa, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, b'B', b'U', b'L', b'K',
    b'H', b'E', b'A', b'D',
];

/// The first byte that did not come back as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopbackFailure {
    /// Index in [`SEQUENCE`].
    pub index: usize,
    /// What was sent.
    pub sent: u8,
    /// What came back, if anything.
    pub received: Option<u8>,
}

/// Sends [`SEQUENCE`] through `loopback`; the number of bytes checked.
pub fn check(mut loopback: impl FnMut(u8) -> Option<u8>) -> Result<usize, LoopbackFailure> {
    for (index, &sent) in SEQUENCE.iter().enumerate() {
        let received = loopback(sent);
        if received != Some(sent) {
            return Err(LoopbackFailure {
                index,
                sent,
                received,
            });
        }
    }
    Ok(SEQUENCE.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_passes_and_faults_are_named() {
        assert_eq!(check(Some), Ok(20));
        // Data line 3 stuck low.
        assert_eq!(
            check(|b| Some(b & !0x08)),
            Err(LoopbackFailure {
                index: 1,
                sent: 0xff,
                received: Some(0xf7)
            })
        );
        assert_eq!(
            check(|_| None),
            Err(LoopbackFailure {
                index: 0,
                sent: 0,
                received: None
            })
        );
    }
}
