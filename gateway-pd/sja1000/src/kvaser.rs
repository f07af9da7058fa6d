//! The Kvaser PCIcan card as QEMU's `kvaser_pci` models it (PCI
//! 10e8:8406): where the SJA1000 sits and how its interrupt reaches the CPU.
//! Constants only; the PD maps the BARs as I/O port ranges from
//! `system.xml` and implements [`crate::Registers`] over BAR 1.
//!
//! - BAR 0: AMCC S5920 PCI bridge, 0x80 ports. Its INTCSR register (32-bit,
//!   offset 0x38) gates the SJA1000's interrupt onto the PCI line: set
//!   [`S5920_INTCSR_ADDON_INT_ENABLE`] or the card never interrupts.
//! - BAR 1: the SJA1000, 0x80 ports, one chip per 0x20 (QEMU models one);
//!   register `r` is at port `BAR1 + r`.
//! - BAR 2: Xilinx glue logic, 8 ports; offset 7 reads the version in the
//!   high nibble (13 on QEMU).

/// PCI vendor id.
pub const VENDOR_ID: u16 = 0x10E8;
/// PCI device id.
pub const DEVICE_ID: u16 = 0x8406;
/// Oscillator feeding the SJA1000 (for [`crate::BitTiming::for_bitrate`]).
pub const OSC_HZ: u32 = 16_000_000;
/// BAR holding the S5920 bridge.
pub const S5920_BAR: u8 = 0;
/// BAR holding the SJA1000 registers.
pub const SJA_BAR: u8 = 1;
/// BAR holding the Xilinx logic.
pub const XILINX_BAR: u8 = 2;
/// Ports per SJA1000 channel in BAR 1.
pub const BYTES_PER_SJA: u16 = 0x20;
/// S5920 interrupt control/status register offset (32-bit access).
pub const S5920_INTCSR: u16 = 0x38;
/// INTCSR: pass the add-on (SJA1000) interrupt to PCI.
pub const S5920_INTCSR_ADDON_INT_ENABLE: u32 = 0x2000;
/// INTCSR: an interrupt is asserted (read only).
pub const S5920_INTCSR_INT_ASSERTED: u32 = 0x0080_0000;
/// Xilinx version/interrupt register offset.
pub const XILINX_VERINT: u16 = 7;

/// The INTCSR value that enables the card's interrupt, keeping other bits.
pub fn intcsr_enabled(current: u32) -> u32 {
    (current & !S5920_INTCSR_INT_ASSERTED) | S5920_INTCSR_ADDON_INT_ENABLE
}

/// The port of SJA1000 register `reg` of channel `channel`, given BAR 1's base.
pub fn sja_port(bar1: u16, channel: u8, reg: u8) -> u16 {
    bar1 + u16::from(channel) * BYTES_PER_SJA + u16::from(reg & 0x1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_intcsr() {
        assert_eq!(sja_port(0xC000, 0, 31), 0xC01F);
        assert_eq!(sja_port(0xC000, 1, 0), 0xC020);
        // Register numbers wrap within a channel, never into the next one.
        assert_eq!(sja_port(0xC000, 0, 0x25), 0xC005);
        assert_eq!(intcsr_enabled(0x0080_0001), 0x2001);
    }
}
