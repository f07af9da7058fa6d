//! [`Platform`] for a PC-compatible board over port I/O: what the firmware
//! PD plugs its I/O-port capabilities into. Hardware-free (the ports are a
//! trait), so the register protocols are tested on the host against
//! emulated devices.
//!
//! - PCI configuration mechanism #1: address to 0xCF8, data at 0xCFC.
//! - CMOS RTC (0x70/0x71): waits out an update in progress, reads until two
//!   reads agree, converts BCD and 12-hour modes, uses the century register.
//! - 16550 UART loopback: sets MCR's loop bit, drains the receiver, sends,
//!   polls for data ready, restores MCR. Every wait is bounded.
//!
//! Design rules: no `unsafe` here; the PD's port accessors are the unsafe
//! part, behind [`PortIo`]. A device that never answers ends a bounded
//! wait with "nothing came back" / the last value read, never a hang.

use crate::{Platform, RtcTime};

/// Port I/O, the clock and the console, as the firmware PD provides them.
pub trait PortIo {
    /// `in al, dx`.
    fn inb(&mut self, port: u16) -> u8;
    /// `out dx, al`.
    fn outb(&mut self, port: u16, value: u8);
    /// `in eax, dx`.
    fn inl(&mut self, port: u16) -> u32;
    /// `out dx, eax`.
    fn outl(&mut self, port: u16, value: u32);
    /// Monotonic nanoseconds.
    fn now_ns(&mut self) -> u64;
    /// A container's log line to the console.
    fn console(&mut self, container: &str, line: &str);
}

/// PCI configuration address port.
pub const PCI_ADDRESS: u16 = 0xcf8;
/// PCI configuration data port.
pub const PCI_DATA: u16 = 0xcfc;
/// CMOS index port.
pub const CMOS_INDEX: u16 = 0x70;
/// CMOS data port.
pub const CMOS_DATA: u16 = 0x71;
/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// How many polls a device gets before the wait gives up.
pub const POLLS: u32 = 100_000;

/// A PC board: its ports, its UART and the scratch region.
pub struct PcPlatform<IO: PortIo + 'static> {
    io: IO,
    uart: u16,
    scratch: &'static mut [u8],
}

impl<IO: PortIo + 'static> PcPlatform<IO> {
    /// A board using `io`, the 16550 at `uart` (e.g. [`COM1`]) and `scratch`
    /// (the region `system.xml` grants the firmware PD for memory tests).
    pub fn new(io: IO, uart: u16, scratch: &'static mut [u8]) -> Self {
        PcPlatform { io, uart, scratch }
    }

    /// The ports back (after the POST phase).
    pub fn into_io(self) -> IO {
        self.io
    }

    fn cmos(&mut self, reg: u8) -> u8 {
        // Bit 7 of the index keeps NMIs disabled while the CMOS is accessed.
        self.io.outb(CMOS_INDEX, 0x80 | reg);
        self.io.inb(CMOS_DATA)
    }

    fn rtc_raw(&mut self) -> [u8; 7] {
        for _ in 0..POLLS {
            if self.cmos(0x0a) & 0x80 == 0 {
                break;
            }
        }
        [
            self.cmos(0x00),
            self.cmos(0x02),
            self.cmos(0x04),
            self.cmos(0x07),
            self.cmos(0x08),
            self.cmos(0x09),
            self.cmos(0x32),
        ]
    }
}

fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

/// Decodes raw CMOS registers (second, minute, hour, day, month, year,
/// century) under status register B's modes.
pub fn decode_rtc(raw: [u8; 7], status_b: u8) -> RtcTime {
    let binary = status_b & 0x04 != 0;
    let h24 = status_b & 0x02 != 0;
    let conv = |v: u8| if binary { v } else { from_bcd(v) };
    let pm = raw[2] & 0x80 != 0;
    let mut hour = conv(raw[2] & 0x7f);
    if !h24 {
        hour = match (pm, hour) {
            (false, 12) => 0,
            (true, h) if h < 12 => h + 12,
            (_, h) => h,
        };
    }
    let century = if raw[6] != 0 { conv(raw[6]) as u16 } else { 20 };
    RtcTime {
        year: century * 100 + conv(raw[5]) as u16,
        month: conv(raw[4]),
        day: conv(raw[3]),
        hour,
        minute: conv(raw[1]),
        second: conv(raw[0]),
    }
}

impl<IO: PortIo + 'static> Platform for PcPlatform<IO> {
    fn log(&mut self, container: &str, line: &str) {
        self.io.console(container, line);
    }

    fn monotonic_ns(&mut self) -> u64 {
        self.io.now_ns()
    }

    fn rtc(&mut self) -> RtcTime {
        // Two equal reads in a row: no update happened in between.
        let mut last = self.rtc_raw();
        for _ in 0..8 {
            let again = self.rtc_raw();
            if again == last {
                break;
            }
            last = again;
        }
        let b = self.cmos(0x0b);
        decode_rtc(last, b)
    }

    fn pci_config_read32(&mut self, bus: u8, device: u8, function: u8, offset: u8) -> u32 {
        let addr = 0x8000_0000
            | (bus as u32) << 16
            | ((device & 0x1f) as u32) << 11
            | ((function & 7) as u32) << 8
            | (offset & 0xfc) as u32;
        self.io.outl(PCI_ADDRESS, addr);
        self.io.inl(PCI_DATA)
    }

    fn serial_loopback(&mut self, byte: u8) -> Option<u8> {
        let (data, mcr_port, lsr) = (self.uart, self.uart + 4, self.uart + 5);
        let mcr = self.io.inb(mcr_port);
        self.io.outb(mcr_port, mcr | 0x10);
        // Drain anything already received so the answer is ours.
        for _ in 0..16 {
            if self.io.inb(lsr) & 0x01 == 0 {
                break;
            }
            self.io.inb(data);
        }
        for _ in 0..POLLS {
            if self.io.inb(lsr) & 0x20 != 0 {
                break;
            }
        }
        self.io.outb(data, byte);
        let mut got = None;
        for _ in 0..POLLS {
            if self.io.inb(lsr) & 0x01 != 0 {
                got = Some(self.io.inb(data));
                break;
            }
        }
        self.io.outb(mcr_port, mcr);
        got
    }

    fn scratch(&mut self) -> &mut [u8] {
        self.scratch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    /// Emulated ports: PCI mechanism #1, a CMOS RTC and a 16550.
    #[derive(Default)]
    struct Ports {
        pci: BTreeMap<u32, u32>,
        cf8: u32,
        cmos: Vec<u8>,
        index: u8,
        /// Reads of status A that still show an update in progress.
        uip_reads: u32,
        mcr: u8,
        rx: Option<u8>,
        sent_on_the_line: Vec<u8>,
        dead_uart: bool,
        log: Vec<(alloc::string::String, alloc::string::String)>,
    }

    impl PortIo for Ports {
        fn inb(&mut self, port: u16) -> u8 {
            match port {
                CMOS_DATA if self.index & 0x7f == 0x0a && self.uip_reads > 0 => {
                    self.uip_reads -= 1;
                    0x80
                }
                CMOS_DATA => self
                    .cmos
                    .get((self.index & 0x7f) as usize)
                    .copied()
                    .unwrap_or(0),
                0x3f8 => self.rx.take().unwrap_or(0),
                0x3fc => self.mcr,
                0x3fd => 0x60 | self.rx.is_some() as u8,
                _ => 0xff,
            }
        }
        fn outb(&mut self, port: u16, value: u8) {
            match port {
                CMOS_INDEX => self.index = value,
                0x3fc => self.mcr = value,
                0x3f8 if self.mcr & 0x10 != 0 && !self.dead_uart => self.rx = Some(value),
                0x3f8 => self.sent_on_the_line.push(value),
                _ => {}
            }
        }
        fn inl(&mut self, port: u16) -> u32 {
            if port == PCI_DATA {
                *self.pci.get(&self.cf8).unwrap_or(&0xffff_ffff)
            } else {
                0xffff_ffff
            }
        }
        fn outl(&mut self, port: u16, value: u32) {
            if port == PCI_ADDRESS {
                self.cf8 = value;
            }
        }
        fn now_ns(&mut self) -> u64 {
            7
        }
        fn console(&mut self, container: &str, line: &str) {
            self.log.push((container.into(), line.into()));
        }
    }

    fn board(ports: Ports) -> PcPlatform<Ports> {
        PcPlatform::new(ports, COM1, alloc::vec![0u8; 64].leak())
    }

    #[test]
    fn pci_uses_configuration_mechanism_1() {
        let mut p = Ports::default();
        // Bus 0, device 31, function 2, offset 8: 0x8000_fa08.
        p.pci.insert(0x8000_fa08, 0x0106_0102);
        let mut b = board(p);
        assert_eq!(b.pci_config_read32(0, 31, 2, 8), 0x0106_0102);
        assert_eq!(b.pci_config_read32(0, 31, 3, 8), 0xffff_ffff);
        assert_eq!(b.into_io().cf8, 0x8000_fb08);
    }

    #[test]
    fn rtc_waits_for_updates_and_decodes_bcd_12_hour() {
        let mut p = Ports {
            uip_reads: 5,
            cmos: alloc::vec![0; 128],
            ..Default::default()
        };
        // 2026-11-22 11:59:58 PM in BCD, 12-hour mode (status B = 0).
        p.cmos[0x00] = 0x58;
        p.cmos[0x02] = 0x59;
        p.cmos[0x04] = 0x80 | 0x11;
        p.cmos[0x07] = 0x22;
        p.cmos[0x08] = 0x11;
        p.cmos[0x09] = 0x26;
        p.cmos[0x32] = 0x20;
        let mut b = board(p);
        assert_eq!(
            b.rtc(),
            RtcTime {
                year: 2026,
                month: 11,
                day: 22,
                hour: 23,
                minute: 59,
                second: 58
            }
        );
        assert_eq!(b.into_io().uip_reads, 0);
        // Binary, 24-hour, no century register.
        assert_eq!(decode_rtc([58, 59, 23, 22, 11, 26, 0], 0x06).year, 2026);
        assert_eq!(decode_rtc([0, 0, 0x12, 1, 1, 0x26, 0x20], 0).hour, 0); // 12 AM
        assert_eq!(decode_rtc([0, 0, 0x92, 1, 1, 0x26, 0x20], 0).hour, 12); // 12 PM
    }

    #[test]
    fn serial_loopback_restores_the_modem_control_register() {
        let mut b = board(Ports {
            mcr: 0x0b,
            rx: Some(0xee),
            ..Default::default()
        });
        assert_eq!(
            b.serial_loopback(0x55),
            Some(0x55),
            "a stale received byte was taken as the answer"
        );
        let io = b.into_io();
        assert_eq!(io.mcr, 0x0b);
        assert!(
            io.sent_on_the_line.is_empty(),
            "loopback bytes went out on the line"
        );
        let mut dead = board(Ports {
            dead_uart: true,
            ..Default::default()
        });
        assert_eq!(dead.serial_loopback(0x55), None);
    }

    #[test]
    fn the_real_host_api_runs_over_it() {
        // Scratch, log and clock pass through.
        let mut b = board(Ports::default());
        assert_eq!(b.scratch().len(), 64);
        b.log("t", "hello");
        assert_eq!(b.monotonic_ns(), 7);
        assert_eq!(b.into_io().log, [("t".into(), "hello".into())]);
    }
}
