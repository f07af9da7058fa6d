//! firmware-critical/idle: the lowest priority PD. Its init runs only once
//! every other PD is blocked, i.e. after the firmware finished (and would
//! have notified the VMM); it then checks in with the judge.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{protection_domain, Channel, Handler, Infallible, MessageInfo};

struct Idle;

fn init() -> Idle {
    let _ = Channel::new(1).pp_call(MessageInfo::new(3, 0));
    Idle
}

impl Handler for Idle {
    type Error = Infallible;
}

protection_domain!(init);
