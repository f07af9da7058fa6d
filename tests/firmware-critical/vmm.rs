//! firmware-critical/vmm: stands in for the VMM. If the firmware ever
//! notifies it (start the guest), it tells the judge, which fails the test.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible, MessageInfo,
};

const FIRMWARE: Channel = Channel::new(1);
const JUDGE: Channel = Channel::new(2);

struct Vmm;

fn init() -> Vmm {
    Vmm
}

impl Handler for Vmm {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(FIRMWARE) {
            debug_println!("vmm: the firmware says start the guest");
            let _ = JUDGE.pp_call(MessageInfo::new(2, 0));
        }
        Ok(())
    }
}

protection_domain!(init);
