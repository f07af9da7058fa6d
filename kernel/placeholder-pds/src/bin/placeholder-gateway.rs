//! Placeholder gateway: reports up; drives no CAN controller or NIC.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, setvar, ChannelSet, Handler, Infallible,
};
use bulkhead_placeholder_pds::{channel, tell_supervisor, LABEL_UP};

setvar!(gateway_tx);
setvar!(gateway_rx);
setvar!(nic_regs);
setvar!(can0_ioport);
setvar!(can0_port);
setvar!(can1_ioport);
setvar!(can1_port);
setvar!(can0_irq);
setvar!(can1_irq);
setvar!(nic_irq);
setvar!(ch_supervisor);
setvar!(ch_vmm);
bulkhead_placeholder_pds::ring_setvars!(
    rx_gateway_tx_header,
    rx_gateway_tx_header_size,
    rx_gateway_tx_data,
    rx_gateway_tx_data_size,
    tx_gateway_rx_header,
    tx_gateway_rx_header_size,
    tx_gateway_rx_data,
    tx_gateway_rx_data_size,
);

struct Gateway;

fn init() -> Gateway {
    debug_println!("{} ring setvars patched", ring_setvars());
    debug_println!(
        "placeholder gateway: CAN ports {:#x} and {:#x}, NIC registers at {:#x}; no traffic",
        can0_port.get().unwrap_or(0),
        can1_port.get().unwrap_or(0),
        nic_regs.get().unwrap_or(0)
    );
    let _ = (
        gateway_tx.get(),
        gateway_rx.get(),
        can0_ioport.get(),
        can1_ioport.get(),
        can0_irq.get(),
        can1_irq.get(),
        nic_irq.get(),
        ch_vmm.get(),
    );
    tell_supervisor(channel(&ch_supervisor, "ch_supervisor"), LABEL_UP);
    Gateway
}

impl Handler for Gateway {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

protection_domain!(init);
