//! channel-bench/producer: sends BENCH_N typed messages as fast as the ring
//! takes them, sleeping while it is full.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_channel::Sender;
use bulkhead_channel_test_pds::{ping, ring, BENCH_N, PING_SLOT};
use bulkhead_microkit::{protection_domain, setvar, Channel, ChannelSet, Handler};
use bulkhead_protocols::vmi::MonitorToVmm;

setvar!(tx_bench_header);
setvar!(tx_bench_header_size);
setvar!(tx_bench_data);
setvar!(tx_bench_data_size);

const CONSUMER: Channel = Channel::new(1);

struct Producer {
    tx: Sender<'static, MonitorToVmm, PING_SLOT, Channel>,
    sent: u32,
}

impl Producer {
    fn pump(&mut self) {
        while self.sent < BENCH_N && self.tx.send(&ping(self.sent)).is_ok() {
            self.sent += 1;
        }
    }
}

fn init() -> Producer {
    let mem = ring(
        &tx_bench_header,
        &tx_bench_header_size,
        &tx_bench_data,
        &tx_bench_data_size,
    );
    let Ok(tx) = Sender::new(mem, CONSUMER) else {
        panic!("producer: ring layout")
    };
    let mut p = Producer { tx, sent: 0 };
    p.pump();
    p
}

impl Handler for Producer {
    type Error = core::convert::Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        self.pump();
        Ok(())
    }
}

protection_domain!(init);
