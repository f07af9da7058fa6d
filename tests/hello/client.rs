//! hello/client: notifies the server, calls it with message registers and
//! checks the reply, then waits for the server's notification and passes.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, get_mr, protection_domain, set_mr, Channel, ChannelSet, Handler, Infallible,
    MessageInfo,
};
use bulkhead_test_pds::{check, fail, pass, Shared};

const SERVER: Channel = Channel::new(1);

bulkhead_microkit::setvar!(vga);
const T: &str = "hello";

struct Client;

fn init() -> Client {
    debug_println!("hello from the client");
    // Device memory: 'OK' in the top-left corner of the VGA text screen.
    let screen = Shared::new(vga.get());
    screen.write(0, 0x0f4b_0f4f);
    if !check(
        T,
        screen.read(0) & 0xffff_ffff == 0x0f4b_0f4f,
        format_args!("VGA text buffer did not read back"),
    ) {
        return Client;
    }
    debug_println!("wrote and read back the VGA text buffer (uncached device map)");
    SERVER.notify();
    for (i, v) in [3u64, 4, 5].iter().enumerate() {
        set_mr(i, *v);
    }
    match SERVER.pp_call(MessageInfo::new(7, 3)) {
        Ok(reply) => {
            let ok = reply.label() == 8 && reply.count() == 2 && get_mr(0) == 12 && get_mr(1) == 60;
            if check(
                T,
                ok,
                format_args!(
                    "bad reply label {} count {} mr0 {} mr1 {}",
                    reply.label(),
                    reply.count(),
                    get_mr(0),
                    get_mr(1)
                ),
            ) {
                debug_println!("reply ok: sum {} product {}", get_mr(0), get_mr(1));
            }
        }
        Err(e) => fail(T, format_args!("ppcall failed: {e:?}")),
    }
    Client
}

impl Handler for Client {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if check(
            T,
            channels.contains(SERVER),
            format_args!("notified on {:#x}", channels.bits()),
        ) {
            debug_println!("server notified us back");
            pass(T);
        }
        Ok(())
    }
}

protection_domain!(init);
