//! Fuzzes the VMM's device models through the port bus: arbitrary port
//! I/O (known device ports more often than not), time steps, interrupt
//! acknowledges, console input and output drains. No input may panic, the
//! UART's buffers stay bounded, the PIC's pending vector agrees with its
//! registers and with what the acknowledge delivers, the timer deadline is
//! always in the future, and one `advance` raises IRQ 0 at most once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm_core::devices::{ChipState, Platform, INPUT_CAPACITY, OUTPUT_CAPACITY};

/// The ports Linux touches, so most operations reach a model.
const PORTS: &[u16] = &[
    0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71, 0x80, 0x92,
    0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff, 0x64, 0xcf9, 0xed,
];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte();
        }
        out
    }
    fn port(&mut self) -> u16 {
        let b = self.byte();
        if b < 0xe0 {
            PORTS[usize::from(b) % PORTS.len()]
        } else {
            u16::from_le_bytes(self.bytes())
        }
    }
}

/// A pending vector must be an unmasked, requested input of the chip that
/// delivers it (or that chip's spurious IR7).
fn consistent(vector: u8, master: ChipState, slave: ChipState) -> bool {
    let from = |chip: ChipState| {
        let ir = vector & 7;
        vector & 0xf8 == chip.vector_base
            && !chip.initialising
            && (ir == 7 || (chip.irr & !chip.imr) & (1 << ir) != 0)
    };
    let via_cascade = (master.irr & !master.imr) & 0x04 != 0;
    from(master) || (via_cascade && from(slave))
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let start = u64::from_le_bytes(input.bytes());
    let mut p = Platform::new(start >> 8, u64::from(u32::from_le_bytes(input.bytes())));
    let mut buf = [0u8; 64];
    while !input.0.is_empty() {
        let op = input.byte();
        let size = [1u8, 2, 4, 3][usize::from(op >> 3) & 3];
        match op & 7 {
            0 => {
                let port = input.port();
                let value = u32::from_le_bytes(input.bytes());
                p.io_out(port, size, value);
            }
            1 => {
                let port = input.port();
                let v = p.io_in(port, size);
                if size < 4 && matches!(size, 1 | 2) {
                    assert!(v < 1 << (8 * u32::from(size)), "read wider than its size");
                }
            }
            2 => {
                let delta = match op >> 6 {
                    0 => u64::from(input.byte()) * 100,
                    1 => u64::from(u16::from_le_bytes(input.bytes())) * 1000,
                    2 => u64::from(u32::from_le_bytes(input.bytes())),
                    _ => u64::from_le_bytes(input.bytes()),
                };
                let edges = p.pit().irq_edges();
                p.advance(p.now_ns().saturating_add(delta));
                assert!(p.pit().irq_edges() <= edges + 1, "one IRQ 0 per advance");
            }
            3 => {
                let pending = p.pending_interrupt();
                if let Some(v) = pending {
                    assert!(
                        consistent(v, p.pic().master(), p.pic().slave()),
                        "vector {v:#x}"
                    );
                }
                let master = p.pic().master();
                let acked = p.acknowledge();
                match pending {
                    Some(v) => assert_eq!(acked, v),
                    None => assert_eq!(acked, master.vector_base | 7),
                }
            }
            4 => {
                let n = usize::from(op >> 3);
                let bytes: Vec<u8> = (0..n).map(|_| input.byte()).collect();
                let before = p.uart().input_len();
                let taken = p.push_input(&bytes);
                assert!(taken <= n);
                assert!(p.uart().input_len() <= before + taken);
            }
            5 => {
                let n = p.drain_output(&mut buf[..usize::from(op >> 2) % 65]);
                assert!(n <= 64);
            }
            6 => {
                let b = input.byte();
                p.set_irq(b & 31, b & 0x80 != 0);
            }
            _ => {
                if let Some(next) = p.next_event_ns() {
                    p.advance(next);
                }
            }
        }
        assert!(p.uart().output_len() <= OUTPUT_CAPACITY);
        assert!(p.uart().input_len() <= INPUT_CAPACITY + 16);
        if let Some(next) = p.next_event_ns() {
            assert!(
                next > p.now_ns() || next == u64::MAX,
                "deadline {next} not after {}",
                p.now_ns()
            );
        }
        if let Some(v) = p.pending_interrupt() {
            assert!(
                consistent(v, p.pic().master(), p.pic().slave()),
                "vector {v:#x}"
            );
        }
    }
});
