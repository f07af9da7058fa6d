//! gateway/babbler: stands in for a misbehaving diagnostics tool
//! (application 2 of the example policy): it sends ISO-TP requests to
//! 0x7E0 as fast as its ring takes them, forever. The policy lets through
//! at most its rule's rate (20/s, bursts of 5) and only while parked; the
//! test checks that the steering assistant is served all the same.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_channel::{Receiver, Sender};
use bulkhead_gateway_pd::ring;
use bulkhead_gateway_pd::{REQ_SLOT, RSP_SLOT};
use bulkhead_microkit::{protection_domain, setvar, Channel, ChannelSet, Handler, Infallible};
use bulkhead_protocols::gateway::{AppId, AppToGateway, CanFrame, CanId, GatewayToApp};

setvar!(diag_req);
setvar!(diag_req_size);
setvar!(diag_rsp);
setvar!(diag_rsp_size);
setvar!(ch_gateway);

struct Babbler;

fn init() -> Babbler {
    let (Some(ch), Some(req), Some(rsp)) = (
        ring::channel(&ch_gateway),
        ring::memory(&diag_req, &diag_req_size),
        ring::memory(&diag_rsp, &diag_rsp_size),
    ) else {
        panic!("babbler: rings not mapped: check system.xml");
    };
    let (Ok(mut req), Ok(mut rsp)) = (
        Sender::<AppToGateway, REQ_SLOT, Channel>::new(req, ch),
        Receiver::<GatewayToApp, RSP_SLOT, Channel>::new(rsp, ch),
    ) else {
        panic!("babbler: rings too small");
    };
    let data = heapless::Vec::from_slice(&[0x02, 0x01, 0x0d, 0, 0, 0, 0, 0]).unwrap_or_default();
    let mut tag = 0u32;
    loop {
        let msg = AppToGateway::SendCan {
            tag,
            app: AppId(2),
            frame: CanFrame {
                id: CanId::Standard(0x7E0),
                data: data.clone(),
            },
        };
        if req.send(&msg).is_ok() {
            tag = tag.wrapping_add(1);
        }
        // Answers are ignored, but drained so the gateway can keep answering.
        while rsp.recv().is_ok() {}
    }
}

impl Handler for Babbler {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

protection_domain!(init);
