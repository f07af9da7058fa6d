//! The reference system's gateway PD (replaces the placeholder `gateway`):
//! the example policy (`gateway-pd/policies/example.toml`, compiled by
//! `bulkhead gateway check ... -o example.bin`) embedded at build time, the
//! two CAN cards `system.xml` grants, and the VMM's ring carrying every
//! guest application's requests.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_gateway_pd::ring::RingMap;
use bulkhead_gateway_pd::service::{self, CardConfig, GatewayPd, LinkConfig, Role};
use bulkhead_microkit::{protection_domain, setvar, Channel, MessageInfo};

// The VMM's rings (requests in, replies out), header and data apart.
setvar!(rx_gateway_tx_header);
setvar!(rx_gateway_tx_header_size);
setvar!(rx_gateway_tx_data);
setvar!(rx_gateway_tx_data_size);
setvar!(tx_gateway_rx_header);
setvar!(tx_gateway_rx_header_size);
setvar!(tx_gateway_rx_data);
setvar!(tx_gateway_rx_data_size);
setvar!(can0_s5920);
setvar!(can0_port);
setvar!(can0_irq);
setvar!(can1_s5920);
setvar!(can1_port);
setvar!(can1_irq);
setvar!(ch_supervisor);
setvar!(ch_vmm);
// Granted but not used yet: the NIC (its driver is not written) and the
// cards' I/O capability ids (port I/O needs no invocation here).
setvar!(nic_regs);
setvar!(nic_irq);
setvar!(can0_ioport);
setvar!(can1_ioport);

static POLICY: &[u8] = include_bytes!("../../../policies/example.bin");

fn init() -> GatewayPd {
    let pd = service::init(
        POLICY,
        &[
            CardConfig {
                slot: 4,
                s5920: &can0_s5920,
                sja: &can0_port,
                irq: &can0_irq,
                place: false,
            },
            CardConfig {
                slot: 5,
                s5920: &can1_s5920,
                sja: &can1_port,
                irq: &can1_irq,
                place: false,
            },
        ],
        &[LinkConfig {
            req: RingMap::Split {
                header: &rx_gateway_tx_header,
                header_size: &rx_gateway_tx_header_size,
                data: &rx_gateway_tx_data,
                data_size: &rx_gateway_tx_data_size,
            },
            rsp: RingMap::Split {
                header: &tx_gateway_rx_header,
                header_size: &tx_gateway_rx_header_size,
                data: &tx_gateway_rx_data,
                data_size: &tx_gateway_rx_data_size,
            },
            ch: &ch_vmm,
            role: Role::Multiplex,
        }],
    );
    // Tell the supervisor we are up (label 1, as every reference PD does).
    if let Some(ch) = ch_supervisor.get() {
        let _ = Channel::new(ch as usize).pp_call(MessageInfo::new(1, 0));
    }
    pd
}

protection_domain!(init);
