//! The guest's console: bytes the guest writes to its UART become lines on
//! the platform console, each prefixed with the VM's name; the line that
//! carries the guest's ready marker is noticed.
//!
//! Design rules: a line is cut at [`LINE_MAX`] bytes (a guest that never
//! writes a newline cannot grow memory); carriage returns are dropped and
//! bytes outside printable ASCII are shown as `?` by the kernel's console.

use heapless::Vec;

/// Longest line kept before it is printed as is.
pub const LINE_MAX: usize = 200;

/// The marker the guest's `/init` prints when it is up.
pub const READY_MARKER: &[u8] = b"BULKHEAD_GUEST_READY";

/// Assembles the guest's output into lines.
pub struct Console {
    line: Vec<u8, LINE_MAX>,
    /// Whether a line with [`READY_MARKER`] has been seen.
    pub ready: bool,
    /// Lines printed.
    pub lines: u64,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    /// An empty console.
    pub const fn new() -> Self {
        Self {
            line: Vec::new(),
            ready: false,
            lines: 0,
        }
    }

    /// Takes `bytes` from the guest; `emit` gets every complete line
    /// (without its newline). Returns true if the ready marker's line was
    /// among them (the first time only).
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) -> bool {
        let mut became_ready = false;
        for &b in bytes {
            match b {
                b'\r' => {}
                b'\n' => became_ready |= self.flush(&mut emit),
                _ => {
                    if self.line.push(b).is_err() {
                        became_ready |= self.flush(&mut emit);
                        let _ = self.line.push(b);
                    }
                }
            }
        }
        became_ready
    }

    fn flush(&mut self, emit: &mut impl FnMut(&[u8])) -> bool {
        emit(&self.line);
        self.lines += 1;
        let hit = !self.ready
            && self
                .line
                .windows(READY_MARKER.len())
                .any(|w| w == READY_MARKER);
        self.ready |= hit;
        self.line.clear();
        hit
    }
}

/// Shows bytes that are not UTF-8 as ASCII with `?` for the rest.
pub struct Lossy<'a>(pub &'a [u8]);

impl core::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write as _;
        for &b in self.0 {
            f.write_char(if b.is_ascii() { b as char } else { '?' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(c: &mut Console, input: &[u8]) -> (std::vec::Vec<std::string::String>, bool) {
        let mut out = std::vec::Vec::new();
        let r = c.push(input, |l| {
            out.push(std::string::String::from_utf8_lossy(l).into_owned())
        });
        (out, r)
    }

    #[test]
    fn lines_are_split_and_carriage_returns_dropped() {
        let mut c = Console::new();
        let (l, r) = collect(&mut c, b"Linux version 6.1\r\nsecond ");
        assert_eq!(l, ["Linux version 6.1"]);
        assert!(!r);
        let (l, _) = collect(&mut c, b"half\n");
        assert_eq!(l, ["second half"]);
        assert_eq!(c.lines, 2);
    }

    #[test]
    fn the_ready_marker_is_noticed_once() {
        let mut c = Console::new();
        let (_, r) = collect(&mut c, b"init: BULKHEAD_GUEST_READY\n");
        assert!(r && c.ready);
        let (_, r) = collect(&mut c, b"BULKHEAD_GUEST_READY\n");
        assert!(!r, "only the first time");
        let mut d = Console::new();
        let (_, r) = collect(&mut d, b"BULKHEAD_GUEST_REA\nDY\n");
        assert!(!r && !d.ready, "a marker split across lines is not one");
    }

    #[test]
    fn an_endless_line_is_cut_not_grown() {
        let mut c = Console::new();
        let flood = [b'x'; LINE_MAX * 3 + 5];
        let (l, _) = collect(&mut c, &flood);
        assert_eq!(l.len(), 3);
        assert!(l.iter().all(|x| x.len() == LINE_MAX));
        let (l, _) = collect(&mut c, b"\n");
        assert_eq!(l, ["xxxxx"]);
    }
}
