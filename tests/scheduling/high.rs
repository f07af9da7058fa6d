//! scheduling/high: marks in shared memory that it ran on notification.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{protection_domain, setvar, ChannelSet, Handler, Infallible};
use bulkhead_test_pds::Shared;

setvar!(shared);

struct High(Shared);

fn init() -> High {
    High(Shared::new(shared.get()))
}

impl Handler for High {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        self.0.write(1, 1);
        Ok(())
    }
}

protection_domain!(init);
