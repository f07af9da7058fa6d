//! gateway/app: stands in for the guest's lane-keeping assistant
//! (application 0 of the example policy). It learns the vehicle's speed
//! only from the frames the gateway delivers to it, and asks to send
//! steering torque requests (STEERING_LKA, 0x2E4, torque in bytes 1-2):
//!
//! - parked: torque 100 is refused for the vehicle state; an id out of
//!   range is invalid; a request in another application's name and a
//!   lifecycle event are refused; three malformed records (garbage, the
//!   wrong protocol, a truncated body) get no answer at all;
//! - driving at 10 mph in D: torque 200 is done, torque 3000 (outside
//!   ±1500) is refused by the policy;
//! - parked again: torque 300 is refused for the vehicle state.
//!
//! It reports its progress to the vehicle PD (the judge) in a shared word,
//! and all ones there on any unexpected answer.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_channel::{Producer, Receiver, RecvError};
use bulkhead_gateway_pd::ring;
use bulkhead_gateway_pd::{REQ_SLOT, RSP_SLOT};
use bulkhead_microkit::{
    debug_println, protection_domain, setvar, ChannelSet, Handler, Infallible,
};
use bulkhead_protocols::gateway::{
    AppEvent, AppId, AppToGateway, CanFrame, CanId, Denial, GatewayToApp,
};
use bulkhead_protocols::Message;
use bulkhead_test_pds::Shared;

setvar!(lka_req);
setvar!(lka_req_size);
setvar!(lka_rsp);
setvar!(lka_rsp_size);
setvar!(ch_gateway);
setvar!(progress);

const STEER: u16 = 0x2E4;
const SPEED: u16 = 0xB4;
/// 5 mph in SPEED's raw unit (0.0062 mph): the policy's guard.
const FIVE_MPH: u16 = 807;

/// What answer each tag must get (None: Done).
const EXPECT: &[(u32, Option<Denial>)] = &[
    (1, Some(Denial::VehicleState)),
    (5, Some(Denial::Invalid)),
    (6, Some(Denial::UnknownApp)),
    (7, Some(Denial::UnknownApp)),
    (10, None),
    (11, Some(Denial::Policy)),
    (20, Some(Denial::VehicleState)),
];

struct App {
    req: Producer<'static, REQ_SLOT, bulkhead_microkit::Channel>,
    rsp: Receiver<'static, GatewayToApp, RSP_SLOT, bulkhead_microkit::Channel>,
    progress: Shared,
    step: u32,
    answered: u32,
    failed: bool,
}

fn steer(torque: i16) -> CanFrame {
    let mut data = [0u8; 8];
    data[1..3].copy_from_slice(&torque.to_be_bytes());
    CanFrame {
        id: CanId::Standard(STEER),
        data: heapless::Vec::from_slice(&data).unwrap_or_default(),
    }
}

impl App {
    fn send(&mut self, msg: &AppToGateway) {
        let mut buf = [0u8; REQ_SLOT];
        match bulkhead_protocols::encode(msg, &mut buf) {
            Ok(n) => self.raw(&buf[..n]),
            Err(_) => self.fail("cannot encode a request"),
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        if self.req.try_send(bytes).is_err() {
            self.fail("request ring full");
        }
    }

    /// Tells the judge (the vehicle PD, which owns the exit port).
    fn fail(&mut self, why: &str) {
        if !self.failed {
            self.failed = true;
            debug_println!("app: FAILED: {why}");
            self.progress.write(0, u64::MAX);
        }
    }

    fn send_can(&mut self, tag: u32, app: u16, frame: CanFrame) {
        self.send(&AppToGateway::SendCan {
            tag,
            app: AppId(app),
            frame,
        });
    }

    fn parked_requests(&mut self) {
        self.send_can(1, 0, steer(100));
        // Malformed: garbage, another protocol's record, a truncated body.
        self.raw(&[0xde, 0xad, 0xbe, 0xef, 0x01]);
        let mut buf = [0u8; 64];
        if let Ok(n) = bulkhead_protocols::encode(&GatewayToApp::Done { tag: 3 }, &mut buf) {
            self.raw(&buf[..n]);
        }
        let msg = AppToGateway::SendCan {
            tag: 4,
            app: AppId(0),
            frame: steer(1),
        };
        if let Ok(n) = bulkhead_protocols::encode(&msg, &mut buf) {
            self.raw(&buf[..n - 3]);
        }
        self.send_can(
            5,
            0,
            CanFrame {
                id: CanId::Standard(0x900),
                data: heapless::Vec::new(),
            },
        );
        self.send_can(6, 1, steer(100));
        self.send(&AppToGateway::Lifecycle {
            tag: 7,
            app: AppId(0),
            event: AppEvent::Started,
        });
    }

    fn on_speed(&mut self, speed: u16) {
        match self.step {
            0 => {
                debug_println!("app: parked (speed {speed}): sending the parked requests");
                self.parked_requests();
                self.step = 1;
            }
            2 if speed > FIVE_MPH => {
                debug_println!("app: moving (speed {speed}): torque 200 and 3000");
                self.send_can(10, 0, steer(200));
                self.send_can(11, 0, steer(3000));
                self.step = 3;
            }
            4 if speed == 0 => {
                debug_println!("app: stopped again: torque 300");
                self.send_can(20, 0, steer(300));
                self.step = 5;
            }
            _ => {}
        }
    }

    fn on_answer(&mut self, tag: u32, got: Option<Denial>) {
        let want = EXPECT.iter().find(|(t, _)| *t == tag).map(|(_, w)| *w);
        if want != Some(got) {
            debug_println!("app: tag {tag}: got {got:?}, expected {want:?}");
            self.fail("unexpected answer");
            return;
        }
        self.answered += 1;
        // Parked: 4 answers (1, 5, 6, 7); driving: 2 more; stopped: 1 more.
        let (step, reached) = match (self.step, self.answered) {
            (1, 4) => (2, 1),
            (3, 6) => (4, 2),
            (5, 7) => (6, 3),
            _ => return,
        };
        self.step = step;
        self.progress.write(0, reached);
        debug_println!("app: progress {reached}");
    }
}

fn init() -> App {
    let (Some(ch), Some(req), Some(rsp)) = (
        ring::channel(&ch_gateway),
        ring::memory(&lka_req, &lka_req_size),
        ring::memory(&lka_rsp, &lka_rsp_size),
    ) else {
        panic!("app: rings not mapped: check system.xml");
    };
    let (Ok(req), Ok(rsp)) = (Producer::new(req, ch), Receiver::new(rsp, ch)) else {
        panic!("app: rings too small");
    };
    const { assert!(AppToGateway::MAX_SIZE + 16 <= REQ_SLOT) };
    App {
        req,
        rsp,
        progress: Shared::new(progress.get()),
        step: 0,
        answered: 0,
        failed: false,
    }
}

impl Handler for App {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        loop {
            match self.rsp.recv() {
                Ok(GatewayToApp::CanReceived { frame, .. }) => {
                    if frame.id == CanId::Standard(SPEED) && frame.data.len() == 8 {
                        self.on_speed(u16::from_be_bytes([frame.data[5], frame.data[6]]));
                    }
                }
                Ok(GatewayToApp::Done { tag }) => self.on_answer(tag, None),
                Ok(GatewayToApp::Denied { tag, reason }) => self.on_answer(tag, Some(reason)),
                Err(RecvError::Empty) => break,
                Err(_) => self.fail("corrupt record from the gateway"),
            }
        }
        Ok(())
    }
}

protection_domain!(init);
