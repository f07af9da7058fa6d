//! vm/witness: another PD of the system. After the guest's triple fault
//! the VMM notifies it; it answers, proving the rest of the system still
//! runs (the VMM passes only on that answer).

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible,
};

const VMM: Channel = Channel::new(1);

struct Witness;

fn init() -> Witness {
    Witness
}

impl Handler for Witness {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(VMM) {
            debug_println!("alive after the guest's triple fault");
            VMM.notify();
        }
        Ok(())
    }
}

protection_domain!(init);
