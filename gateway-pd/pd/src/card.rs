//! One Kvaser PCIcan card: its SJA1000's registers over the I/O ports
//! `system.xml` grants (`io::inb`/`outb` are safe: an ungranted port is a
//! fault of this PD, never another PD's device), and its S5920 bridge's
//! interrupt gate.

use bulkhead_microkit::io;
use sja1000::{kvaser, BitTiming, Config, Filter, Registers, Sja1000};

/// The SJA1000's 32 registers at `base` (the card's BAR 1, channel 0).
#[derive(Clone, Copy, Debug)]
pub struct PortRegs {
    base: u16,
}

impl PortRegs {
    /// Registers at `base`.
    pub fn new(base: u16) -> PortRegs {
        PortRegs { base }
    }
}

impl Registers for PortRegs {
    fn read(&mut self, reg: u8) -> u8 {
        io::inb(kvaser::sja_port(self.base, 0, reg))
    }
    fn write(&mut self, reg: u8, value: u8) {
        io::outb(kvaser::sja_port(self.base, 0, reg), value)
    }
}

/// The driver as the PD uses it: 64 received frames, 32 queued for transmit.
pub type Driver = Sja1000<PortRegs, 64, 32>;

/// Why a card could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardError {
    /// Placing its BARs failed.
    Pci(crate::pci::PciError),
    /// The chip refused initialisation (did not enter reset mode).
    Chip(sja1000::Error),
    /// No bit timing for the requested rate.
    Timing,
}

/// Places the card at `slot` on the granted ports if `place` (else the
/// platform or another PD placed it), initialises the chip at 500 kbit/s
/// accepting every frame, and opens its interrupt gate if `irq` (a PD that
/// polls the chip leaves the card's interrupt line quiet).
pub fn open(slot: u8, s5920: u16, sja: u16, irq: bool, place: bool) -> Result<Driver, CardError> {
    if place {
        crate::pci::place_kvaser(slot, s5920, sja).map_err(CardError::Pci)?;
    }
    let mut d = Driver::new(PortRegs::new(sja));
    let timing = BitTiming::for_bitrate(kvaser::OSC_HZ, 500_000).map_err(|_| CardError::Timing)?;
    d.init(Config {
        timing,
        filter: Filter::AcceptAll,
        listen_only: false,
        auto_recover: true,
    })
    .map_err(CardError::Chip)?;
    let intcsr = s5920 + kvaser::S5920_INTCSR;
    if irq {
        io::outl(intcsr, kvaser::intcsr_enabled(io::inl(intcsr)));
    }
    Ok(d)
}

/// A driver frame from a core frame (data frames; the id was checked).
pub fn to_can(f: &gateway_core::Frame) -> Option<sja1000::CanFrame> {
    use embedded_can::{ExtendedId, Frame as _, Id, StandardId};
    let id: Id = if f.extended {
        ExtendedId::new(f.id)?.into()
    } else {
        StandardId::new(u16::try_from(f.id).ok()?)?.into()
    };
    sja1000::CanFrame::new(id, f.payload())
}
