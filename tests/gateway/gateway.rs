//! gateway/gateway: the gateway PD as the system test configures it: the
//! example policy, the card at 00:05.0 (placed by the `pci` PD), and three links — the steering
//! assistant (application 0), the babbling diagnostics tool (application 2)
//! and the application manager (the vehicle PD, lifecycle events only).

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_gateway_pd::ring::RingMap;
use bulkhead_gateway_pd::service::{self, CardConfig, GatewayPd, LinkConfig, Role};
use bulkhead_microkit::{protection_domain, setvar};

setvar!(can_s5920);
setvar!(can_sja);
setvar!(can_irq);
setvar!(lka_req);
setvar!(lka_req_size);
setvar!(lka_rsp);
setvar!(lka_rsp_size);
setvar!(ch_lka);
setvar!(diag_req);
setvar!(diag_req_size);
setvar!(diag_rsp);
setvar!(diag_rsp_size);
setvar!(ch_diag);
setvar!(mgr_req);
setvar!(mgr_req_size);
setvar!(mgr_rsp);
setvar!(mgr_rsp_size);
setvar!(ch_mgr);

static POLICY: &[u8] = include_bytes!("../../gateway-pd/policies/example.bin");

fn init() -> GatewayPd {
    service::init(
        POLICY,
        &[CardConfig {
            slot: 5,
            s5920: &can_s5920,
            sja: &can_sja,
            irq: &can_irq,
            place: false,
        }],
        &[
            LinkConfig {
                req: RingMap::Whole {
                    vaddr: &lka_req,
                    size: &lka_req_size,
                },
                rsp: RingMap::Whole {
                    vaddr: &lka_rsp,
                    size: &lka_rsp_size,
                },
                ch: &ch_lka,
                role: Role::App(0),
            },
            LinkConfig {
                req: RingMap::Whole {
                    vaddr: &diag_req,
                    size: &diag_req_size,
                },
                rsp: RingMap::Whole {
                    vaddr: &diag_rsp,
                    size: &diag_rsp_size,
                },
                ch: &ch_diag,
                role: Role::App(2),
            },
            LinkConfig {
                req: RingMap::Whole {
                    vaddr: &mgr_req,
                    size: &mgr_req_size,
                },
                rsp: RingMap::Whole {
                    vaddr: &mgr_rsp,
                    size: &mgr_rsp_size,
                },
                ch: &ch_mgr,
                role: Role::Manager,
            },
        ],
    )
}

protection_domain!(init);
