//! isolation/bystander: answers calls with label 42, proving it kept running
//! while its sibling faulted.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{protection_domain, Channel, Handler, Infallible, MessageInfo};

struct Bystander;

fn init() -> Bystander {
    Bystander
}

impl Handler for Bystander {
    type Error = Infallible;

    fn protected(&mut self, _ch: Channel, _info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        Ok(MessageInfo::new(42, 0))
    }
}

protection_domain!(init);
