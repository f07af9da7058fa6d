//! Placeholder VMI monitor: reports up and reads one word of its read-only
//! guest RAM view (proving the map exists).

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, setvar, ChannelSet, Handler, Infallible,
};
use bulkhead_placeholder_pds::{channel, tell_supervisor, LABEL_UP};

setvar!(guest_ram);
setvar!(guest_ram_size);
setvar!(vmi_requests);
setvar!(vmi_events);
setvar!(alerts);
setvar!(ch_supervisor);
setvar!(ch_vmm);
bulkhead_placeholder_pds::ring_setvars!(
    tx_vmi_requests_header,
    tx_vmi_requests_header_size,
    tx_vmi_requests_data,
    tx_vmi_requests_data_size,
    rx_vmi_events_header,
    rx_vmi_events_header_size,
    rx_vmi_events_data,
    rx_vmi_events_data_size,
    tx_alerts_header,
    tx_alerts_header_size,
    tx_alerts_data,
    tx_alerts_data_size,
);

struct Monitor;

fn init() -> Monitor {
    debug_println!("{} ring setvars patched", ring_setvars());
    debug_println!(
        "placeholder monitor: guest RAM view at {:#x}, no introspection",
        guest_ram.get().unwrap_or(0)
    );
    let _ = (
        guest_ram_size.get(),
        vmi_requests.get(),
        vmi_events.get(),
        alerts.get(),
        ch_vmm.get(),
    );
    tell_supervisor(channel(&ch_supervisor, "ch_supervisor"), LABEL_UP);
    Monitor
}

impl Handler for Monitor {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

protection_domain!(init);
