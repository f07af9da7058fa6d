//! gateway/pci: the PCI helper of the gateway system test. It alone owns
//! configuration space (ports 0xCF8-0xCFF) and, at the highest priority,
//! places both Kvaser cards' I/O BARs at the ranges system.xml grants to
//! their PDs before those start: the vehicle simulator's card (00:04.0) at
//! 0xD100/0xD180, the gateway's (00:05.0) at 0xD000/0xD080. (The reference
//! system's gateway places its own cards: there it owns 0xCF8.)

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_gateway_pd::pci;
use bulkhead_microkit::{debug_println, protection_domain, ChannelSet, Handler, Infallible};

struct Pci;

fn init() -> Pci {
    for (slot, s5920, sja) in [(4u8, 0xd100u16, 0xd180u16), (5, 0xd000, 0xd080)] {
        match pci::place_kvaser(slot, s5920, sja) {
            Ok(()) => {
                debug_println!("card 00:{slot:02x}.0: S5920 at {s5920:#x}, SJA1000 at {sja:#x}")
            }
            Err(e) => debug_println!("card 00:{slot:02x}.0 not placed: {e:?}"),
        }
    }
    Pci
}

impl Handler for Pci {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

protection_domain!(init);
