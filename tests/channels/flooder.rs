//! channels/flooder: the hostile neighbour. It is the producer of the junk
//! ring (system.xml lets it write there) and fills it with ROUNDS rounds of
//! every attack of `bulkhead_channel::adversary`, waking right after each
//! batch, then stops. It runs at the lowest priority, so it floods whenever
//! the other two wait.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_channel::adversary::{Adversary, Attack};
use bulkhead_channel_test_pds::{ring, JUNK_SLOT, ROUNDS};
use bulkhead_microkit::{debug_println, protection_domain, setvar, Channel, ChannelSet, Handler};
use bulkhead_protocols::supervisor::Report;

setvar!(tx_junk_header);
setvar!(tx_junk_header_size);
setvar!(tx_junk_data);
setvar!(tx_junk_data_size);

const RIGHT: Channel = Channel::new(1);

struct Flooder;

fn init() -> Flooder {
    let mem = ring(
        &tx_junk_header,
        &tx_junk_header_size,
        &tx_junk_data,
        &tx_junk_data_size,
    );
    let mut adv = Adversary::<Report, JUNK_SLOT>::new(mem, 0x5eed);
    let total = ROUNDS * Attack::ALL.len() as u64;
    let mut struck = 0;
    while struck < total {
        match adv.strike() {
            // Let right look while the index is out of range: it must
            // report it and consume nothing.
            Some(Attack::IndexJump) => {
                struck += 1;
                RIGHT.notify();
            }
            Some(_) => struck += 1,
            // Full: let right drain it (it preempts us on the notify).
            None => RIGHT.notify(),
        }
    }
    adv.stop();
    RIGHT.notify();
    debug_println!("flooder: {struck} hostile writes done");
    Flooder
}

impl Handler for Flooder {
    type Error = core::convert::Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        // Right's ring hook says space was freed: we no longer care.
        Ok(())
    }
}

protection_domain!(init);
