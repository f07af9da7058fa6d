//! irq/timer: programs the PIT and counts its IRQs, acknowledging each.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, io, protection_domain, Channel, ChannelSet, Handler, Infallible,
};
use bulkhead_test_pds::{check, pass};

const T: &str = "irq";
const PIT_IRQ: Channel = Channel::new(5);

struct Timer {
    ticks: u32,
}

fn init() -> Timer {
    // Channel 0, lobyte/hibyte, mode 2 (rate generator), 1193182/11932 = 100 Hz.
    let divisor: u16 = 11932;
    io::outb(0x43, 0x34);
    io::outb(0x40, divisor as u8);
    io::outb(0x40, (divisor >> 8) as u8);
    debug_println!("PIT programmed for 100 Hz");
    Timer { ticks: 0 }
}

impl Handler for Timer {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !check(
            T,
            channels.contains(PIT_IRQ),
            format_args!("notified on {:#x}", channels.bits()),
        ) {
            return Ok(());
        }
        self.ticks += 1;
        debug_println!("PIT IRQ {}", self.ticks);
        PIT_IRQ.irq_ack();
        if self.ticks == 5 {
            pass(T);
        }
        Ok(())
    }
}

protection_domain!(init);
