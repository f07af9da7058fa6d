//! The COM1 (8250/16550) serial console: the kernel's only output. Polled,
//! so it works from any context, including fault reports.

use super::cpu::{inb, outb};

const COM1: u16 = 0x3f8;

/// Programs COM1 for 115200 8N1, FIFOs on, interrupts off.
pub fn init() {
    // SAFETY: COM1 belongs to the kernel console; these writes only set its
    // line parameters.
    unsafe {
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x80);
        outb(COM1, 0x01);
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03);
        outb(COM1 + 2, 0xc7);
        outb(COM1 + 4, 0x03);
    }
}

/// Writes one byte, waiting for the transmitter (bounded, so a missing UART
/// cannot hang the kernel).
pub fn put(b: u8) {
    for _ in 0..100_000 {
        // SAFETY: reading COM1's line status register has no side effects.
        if unsafe { inb(COM1 + 5) } & 0x20 != 0 {
            break;
        }
    }
    // SAFETY: writing the transmit register of the kernel's console.
    unsafe { outb(COM1, b) }
}

/// `core::fmt` sink for the console; `\n` becomes `\r\n`.
pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
        Ok(())
    }
}

/// Prints to the console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::arch::serial::Console, format_args!($($arg)*));
    }};
}

/// Prints a line to the console.
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {{
        $crate::kprint!($($arg)*);
        $crate::kprint!("\n");
    }};
}
