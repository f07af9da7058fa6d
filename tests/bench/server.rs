//! bench/server: answers PPCs at once; stamps the TSC when notified.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    protection_domain, rdtsc, setvar, Channel, ChannelSet, Handler, Infallible, MessageInfo,
};
use bulkhead_test_pds::Shared;

setvar!(stamps);

struct Server(Shared);

fn init() -> Server {
    Server(Shared::new(stamps.get()))
}

impl Handler for Server {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        self.0.write(0, rdtsc());
        Ok(())
    }

    fn protected(&mut self, _ch: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        Ok(info)
    }
}

protection_domain!(init);
