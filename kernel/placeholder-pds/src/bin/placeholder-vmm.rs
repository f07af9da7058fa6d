//! Placeholder VMM: reports up; when the firmware notifies it, asks the
//! supervisor to record the guest start. Runs no guest.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use core::sync::atomic::Ordering;

use bulkhead_microkit::{
    debug_println, protection_domain, setvar, shared_words, Channel, ChannelSet, Handler,
    Infallible,
};
use bulkhead_placeholder_pds::{channel, tell_supervisor, LABEL_GUEST_START, LABEL_UP};

setvar!(guest_ram);
setvar!(guest_ram_size);
setvar!(guest_kernel);
setvar!(guest_kernel_size);
setvar!(guest_initrd);
setvar!(guest_initrd_size);
setvar!(vmi_requests);
setvar!(vmi_events);
setvar!(gateway_tx);
setvar!(gateway_rx);
setvar!(vcpu);
setvar!(ch_supervisor);
setvar!(ch_firmware);
setvar!(ch_monitor);
setvar!(ch_gateway);
bulkhead_placeholder_pds::ring_setvars!(
    rx_vmi_requests_header,
    rx_vmi_requests_header_size,
    rx_vmi_requests_data,
    rx_vmi_requests_data_size,
    tx_vmi_events_header,
    tx_vmi_events_header_size,
    tx_vmi_events_data,
    tx_vmi_events_data_size,
    tx_gateway_tx_header,
    tx_gateway_tx_header_size,
    tx_gateway_tx_data,
    tx_gateway_tx_data_size,
    rx_gateway_rx_header,
    rx_gateway_rx_header_size,
    rx_gateway_rx_data,
    rx_gateway_rx_data_size,
    rx_console_in_header,
    rx_console_in_header_size,
    rx_console_in_data,
    rx_console_in_data_size,
);

struct Vmm {
    supervisor: Channel,
    firmware: Channel,
}

fn init() -> Vmm {
    debug_println!("{} ring setvars patched", ring_setvars());
    debug_println!(
        "placeholder VMM: guest RAM {} MiB at {:#x}, no guest runs",
        guest_ram_size.get().unwrap_or(0) >> 20,
        guest_ram.get().unwrap_or(0)
    );
    // The prefilled boot images: a bzImage says "HdrS" at byte 0x202, a
    // newc cpio starts with "070701".
    let kernel_ok = shared_words(&guest_kernel, &guest_kernel_size)
        .and_then(|w| w.get(0x200 / 8))
        .is_some_and(|w| (w.load(Ordering::Relaxed) >> 16) as u32 == u32::from_le_bytes(*b"HdrS"));
    let initrd_ok = shared_words(&guest_initrd, &guest_initrd_size)
        .and_then(|w| w.first())
        .is_some_and(|w| w.load(Ordering::Relaxed) & 0xffff_ffff_ffff == 0x3130_3730_3730);
    debug_println!(
        "placeholder VMM: guest kernel {} (bzImage), initramfs {} (cpio newc)",
        if kernel_ok { "prefilled" } else { "MISSING" },
        if initrd_ok { "prefilled" } else { "MISSING" }
    );
    let _ = (
        vmi_requests.get(),
        vmi_events.get(),
        gateway_tx.get(),
        gateway_rx.get(),
        vcpu.get(),
    );
    let _ = (ch_monitor.get(), ch_gateway.get());
    let supervisor = channel(&ch_supervisor, "ch_supervisor");
    tell_supervisor(supervisor, LABEL_UP);
    Vmm {
        supervisor,
        firmware: channel(&ch_firmware, "ch_firmware"),
    }
}

impl Handler for Vmm {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(self.firmware) {
            debug_println!("firmware says: start the guest");
            tell_supervisor(self.supervisor, LABEL_GUEST_START);
        }
        Ok(())
    }
}

protection_domain!(init);
