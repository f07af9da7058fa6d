//! msi/driver: drives QEMU's `edu` device: relocates BAR0 to 0xC000_0000
//! (the region's `phys_addr`), raises its interrupt three times and counts
//! the MSI notifications, acknowledging each.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, io, protection_domain, setvar, Channel, ChannelSet, Handler, Infallible,
};
use bulkhead_test_pds::{check, fail, pass, Shared};

setvar!(regs);

const T: &str = "msi";
const IRQ: Channel = Channel::new(3);
const BAR: u32 = 0xc000_0000;
const EDU: u32 = 0x8000_0000 | (0x10 << 11); // bus 0, device 0x10, function 0

fn config_read(off: u32) -> u32 {
    io::outl(0xcf8, EDU | off);
    io::inl(0xcfc)
}

fn config_write(off: u32, v: u32) {
    io::outl(0xcf8, EDU | off);
    io::outl(0xcfc, v);
}

struct Driver {
    regs: Shared,
    count: u32,
}

fn init() -> Driver {
    let id = config_read(0);
    if !check(
        T,
        id == 0x11e8_1234,
        format_args!("no edu device at 00:10.0 (id {id:#x})"),
    ) {
        return Driver {
            regs: Shared::new(regs.get()),
            count: 0,
        };
    }
    let command = config_read(4);
    config_write(4, command & !2); // memory decoding off while moving BAR0
    config_write(0x10, BAR);
    config_write(4, (command & 0xffff) | 2);
    let regs_words = Shared::new(regs.get());
    let ident = regs_words.read_u32(0);
    debug_println!("edu identification {ident:#x} through the uncached map");
    if !check(
        T,
        ident & 0xff == 0xed,
        format_args!("BAR0 not at the mapped address"),
    ) {
        return Driver {
            regs: regs_words,
            count: 0,
        };
    }
    raise(regs_words);
    Driver {
        regs: regs_words,
        count: 0,
    }
}

/// Interrupt raise register (0x60): sets status bit 0 and sends the MSI.
fn raise(words: Shared) {
    words.write_u32(0x60, 1);
}

impl Handler for Driver {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(IRQ) {
            fail(T, format_args!("notified on {:#x}", channels.bits()));
            return Ok(());
        }
        self.count += 1;
        debug_println!("MSI {}", self.count);
        // Acknowledge at the device (0x64 = interrupt acknowledge), then the kernel.
        self.regs.write_u32(0x64, 1);
        IRQ.irq_ack();
        if self.count == 3 {
            pass(T);
        } else {
            raise(self.regs);
        }
        Ok(())
    }
}

protection_domain!(init);
