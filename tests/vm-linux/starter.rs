//! vm-linux/starter: stands in for the reference system's supervisor and
//! firmware around the real VMM PD (`vmm.elf`): answers its protected
//! calls (its "up" and "guest started" reports) and gives it the
//! firmware's go at once — under Bochs the real firmware's POST rightly
//! stops the boot (an i440FX board, not the q35 its policy is for), so
//! the Linux guest would never start there.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible, MessageInfo,
};

/// The channel on which the VMM waits for the firmware's go.
const GO: Channel = Channel::new(1);

struct Starter;

fn init() -> Starter {
    debug_println!("giving the VMM the firmware's go");
    GO.notify();
    Starter
}

impl Handler for Starter {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }

    fn protected(&mut self, _ch: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        debug_println!("the VMM reports label {}", info.label());
        Ok(MessageInfo::new(0, 0))
    }
}

protection_domain!(init);
