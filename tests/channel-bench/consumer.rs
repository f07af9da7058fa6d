//! channel-bench/consumer: receives BENCH_N messages, checks each, and
//! prints the TSC ticks (= guest instructions under -icount shift=0) per
//! message between the first and the last.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_channel::{Receiver, RecvError};
use bulkhead_channel_test_pds::{ping, ring, BENCH_N, PING_SLOT};
use bulkhead_microkit::{
    debug_println, protection_domain, rdtsc, setvar, Channel, ChannelSet, Handler,
};
use bulkhead_protocols::vmi::MonitorToVmm;
use bulkhead_test_pds::{fail, pass};

setvar!(rx_bench_header);
setvar!(rx_bench_header_size);
setvar!(rx_bench_data);
setvar!(rx_bench_data_size);

const PRODUCER: Channel = Channel::new(1);

struct Consumer {
    rx: Receiver<'static, MonitorToVmm, PING_SLOT, Channel>,
    got: u32,
    first: u64,
    done: bool,
}

fn init() -> Consumer {
    let mem = ring(
        &rx_bench_header,
        &rx_bench_header_size,
        &rx_bench_data,
        &rx_bench_data_size,
    );
    let Ok(rx) = Receiver::new(mem, PRODUCER) else {
        panic!("consumer: ring layout")
    };
    Consumer {
        rx,
        got: 0,
        first: 0,
        done: false,
    }
}

impl Handler for Consumer {
    type Error = core::convert::Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        while !self.done {
            match self.rx.recv() {
                Ok(m) if m == ping(self.got) => {
                    if self.got == 0 {
                        self.first = rdtsc();
                    }
                    self.got += 1;
                    if self.got == BENCH_N {
                        let ticks = rdtsc().wrapping_sub(self.first);
                        self.done = true;
                        let per = ticks / u64::from(BENCH_N - 1);
                        debug_println!(
                            "BENCH channel_msg_cycles mean={per} n={BENCH_N} total={ticks}"
                        );
                        pass("channel-bench");
                    }
                }
                Ok(_) => {
                    self.done = true;
                    fail(
                        "channel-bench",
                        format_args!("message {} out of order", self.got),
                    );
                }
                Err(RecvError::Empty) => break,
                Err(e) => {
                    self.done = true;
                    fail("channel-bench", format_args!("rejected: {e:?}"));
                }
            }
        }
        Ok(())
    }
}

protection_domain!(init);
