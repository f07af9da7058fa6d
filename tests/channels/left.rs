//! channels/left: streams N pings to right and reads right's N pongs, both
//! at full rate (send until the ring is full, sleep until notified); then
//! sends the DONE ping. Any rejected or out-of-order pong is a failure.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_channel::{Receiver, RecvError, Sender};
use bulkhead_channel_test_pds::{ping, pong, ring, DONE, N, PING_SLOT, PONG_SLOT};
use bulkhead_microkit::{debug_println, protection_domain, setvar, Channel, ChannelSet, Handler};
use bulkhead_protocols::vmi::{MonitorToVmm, VmmToMonitor};
use bulkhead_test_pds::fail;

setvar!(tx_ping_header);
setvar!(tx_ping_header_size);
setvar!(tx_ping_data);
setvar!(tx_ping_data_size);
setvar!(rx_pong_header);
setvar!(rx_pong_header_size);
setvar!(rx_pong_data);
setvar!(rx_pong_data_size);

const RIGHT: Channel = Channel::new(1);

struct Left {
    tx: Sender<'static, MonitorToVmm, PING_SLOT, bulkhead_microkit::Channel>,
    rx: Receiver<'static, VmmToMonitor, PONG_SLOT, bulkhead_microkit::Channel>,
    sent: u32,
    got: u32,
    done_sent: bool,
}

impl Left {
    fn pump(&mut self) {
        while self.got < N {
            match self.rx.recv() {
                Ok(m) if m == pong(self.got) => self.got += 1,
                Ok(_) => {
                    return fail(
                        "channels",
                        format_args!("left: pong {} out of order", self.got),
                    )
                }
                Err(RecvError::Empty) => break,
                Err(e) => return fail("channels", format_args!("left: pong rejected: {e:?}")),
            }
        }
        while self.sent < N && self.tx.send(&ping(self.sent)).is_ok() {
            self.sent += 1;
        }
        if self.got == N && self.sent == N && !self.done_sent && self.tx.send(&ping(DONE)).is_ok() {
            self.done_sent = true;
            debug_println!("left: sent {N} pings, got {N} pongs");
        }
    }
}

fn init() -> Left {
    let tx = Sender::new(
        ring(
            &tx_ping_header,
            &tx_ping_header_size,
            &tx_ping_data,
            &tx_ping_data_size,
        ),
        RIGHT,
    );
    let rx = Receiver::new(
        ring(
            &rx_pong_header,
            &rx_pong_header_size,
            &rx_pong_data,
            &rx_pong_data_size,
        ),
        RIGHT,
    );
    let (Ok(tx), Ok(rx)) = (tx, rx) else {
        panic!("left: ring layout")
    };
    let mut l = Left {
        tx,
        rx,
        sent: 0,
        got: 0,
        done_sent: false,
    };
    l.pump();
    l
}

impl Handler for Left {
    type Error = core::convert::Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        self.pump();
        Ok(())
    }
}

protection_domain!(init);
