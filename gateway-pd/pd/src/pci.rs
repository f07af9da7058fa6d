//! PCI configuration space (mechanism #1, ports 0xCF8-0xCFF) for one job:
//! placing a Kvaser PCIcan card's I/O BARs where `system.xml` grants this PD
//! its ports, so the static grant and the device agree whatever firmware
//! assigned (SeaBIOS and OVMF place them differently).

use bulkhead_microkit::io;
use sja1000::kvaser;

/// Why a card could not be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// No Kvaser PCIcan (10e8:8406) at that slot; the id read instead.
    NotKvaser(u32),
    /// A BAR did not read back as programmed (not an I/O BAR, or too small).
    BarRejected(u8),
}

fn address(slot: u8, off: u8) -> u32 {
    0x8000_0000 | (u32::from(slot & 0x1f) << 11) | u32::from(off & 0xfc)
}

/// Reads the 32-bit configuration register `off` of bus 0, `slot`, function 0.
pub fn read(slot: u8, off: u8) -> u32 {
    io::outl(0xcf8, address(slot, off));
    io::inl(0xcfc)
}

/// Writes the 32-bit configuration register `off` of bus 0, `slot`, function 0.
pub fn write(slot: u8, off: u8, v: u32) {
    io::outl(0xcf8, address(slot, off));
    io::outl(0xcfc, v);
}

/// Moves the card at bus 0 `slot` so that its S5920 bridge (BAR 0) sits at
/// `s5920` and its SJA1000 (BAR 1) at `sja`, and turns I/O decoding and
/// INTx on.
pub fn place_kvaser(slot: u8, s5920: u16, sja: u16) -> Result<(), PciError> {
    let id = read(slot, 0);
    if id != (u32::from(kvaser::DEVICE_ID) << 16 | u32::from(kvaser::VENDOR_ID)) {
        return Err(PciError::NotKvaser(id));
    }
    let command = read(slot, 4) & 0xffff;
    write(slot, 4, command & !1); // I/O decoding off while the BARs move
    for (bar, port) in [(kvaser::S5920_BAR, s5920), (kvaser::SJA_BAR, sja)] {
        let off = 0x10 + 4 * bar;
        write(slot, off, u32::from(port));
        if read(slot, off) & 0xffff_fffc != u32::from(port) {
            return Err(PciError::BarRejected(bar));
        }
    }
    // I/O space on, interrupt disable (bit 10) off.
    write(slot, 4, (command | 1) & !(1 << 10));
    Ok(())
}
