//! hello/server: counts the client's notification, answers its PPC (sum and
//! product of the message registers) and then notifies it back.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, get_mr, protection_domain, set_mr, Channel, ChannelSet, Handler, Infallible,
    MessageInfo,
};

const CLIENT: Channel = Channel::new(2);

struct Server {
    notified: u32,
}

fn init() -> Server {
    debug_println!("server up");
    Server { notified: 0 }
}

impl Handler for Server {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(CLIENT) {
            self.notified += 1;
            debug_println!("notified by the client ({})", self.notified);
        }
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        debug_println!(
            "call on {} label {} with {} words",
            channel.index(),
            msg_info.label(),
            msg_info.count()
        );
        let words: [u64; 3] = [get_mr(0), get_mr(1), get_mr(2)];
        let n = msg_info.count().min(3);
        let sum: u64 = words[..n].iter().sum();
        let product: u64 = words[..n].iter().product();
        set_mr(0, sum);
        set_mr(1, product);
        // Tell the client after the reply (it runs once we wait again).
        CLIENT.notify();
        Ok(MessageInfo::new(msg_info.label() + 1, 2))
    }
}

protection_domain!(init);
