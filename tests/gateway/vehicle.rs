//! gateway/vehicle: the vehicle simulator on the card at 00:04.0, the
//! application manager, and the judge of the gateway system test.
//!
//! It drives a Prius powertrain bus (SPEED 0xB4, GEAR_PACKET 0x127, as the
//! DBC lays them out) through three phases — parked, driving at 10 mph in
//! D, parked again — advancing when the steering-assistant PD reports its
//! progress in a shared word. It watches the bus: the assistant's steering
//! frame (0x2E4) must appear exactly once, with the torque the policy
//! allows while driving, and never with a value the gateway denied; the
//! babbling diagnostics tool's requests (0x7E0) may appear only within its
//! rule's rate and never while driving (its rule's guard). At the end it asks the gateway for its counters: exactly
//! the three malformed records the assistant sent were rejected.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_channel::{Receiver, RecvError, Sender};
use bulkhead_gateway_pd::card::{self, Driver};
use bulkhead_gateway_pd::clock::Clock;
use bulkhead_gateway_pd::ring;
use bulkhead_gateway_pd::{LABEL_CLOCK, LABEL_STATS, REQ_SLOT, RSP_SLOT};
use bulkhead_microkit::{
    debug_println, get_mr, protection_domain, setvar, ChannelSet, Handler, Infallible, MessageInfo,
};
use bulkhead_protocols::gateway::{AppEvent, AppId, AppToGateway, GatewayToApp};
use bulkhead_test_pds::{fail, pass, Shared};
use embedded_can::nb::Can;
use embedded_can::{Frame as _, Id, StandardId};

setvar!(can_s5920);
setvar!(can_sja);
setvar!(mgr_req);
setvar!(mgr_req_size);
setvar!(mgr_rsp);
setvar!(mgr_rsp_size);
setvar!(ch_gateway);
setvar!(progress);

const T: &str = "gateway";
const SPEED: u16 = 0xB4;
const GEAR: u16 = 0x127;
const STEER: u16 = 0x2E4;
const DIAG: u16 = 0x7E0;
/// 10 mph in SPEED's raw unit (0.0062 mph).
const TEN_MPH: u16 = 1613;
const GEAR_P: u8 = 0;
const GEAR_D: u8 = 3;
/// Policy indices (order of `[[app]]` in example.toml).
const LKA: u16 = 0;
const DIAGNOSTICS: u16 = 2;

struct Vehicle;

fn frame(id: u16, data: &[u8]) -> sja1000::CanFrame {
    let id = StandardId::new(id).map(Id::Standard);
    match id.and_then(|id| sja1000::CanFrame::new(id, data)) {
        Some(f) => f,
        None => panic!("bad simulator frame"),
    }
}

fn broadcast(d: &mut Driver, gear: u8, speed: u16) {
    let mut g = [0u8; 8];
    g[5] = gear << 4;
    let mut s = [0u8; 8];
    s[5..7].copy_from_slice(&speed.to_be_bytes());
    let _ = d.transmit(&frame(GEAR, &g));
    let _ = d.transmit(&frame(SPEED, &s));
}

#[derive(Default)]
struct Seen {
    steer: u32,
    steer_torque: i16,
    bad_steer: Option<i16>,
    diag: u32,
}

fn watch(d: &mut Driver, seen: &mut Seen) {
    d.handle_irq();
    while let Ok(f) = d.receive() {
        let id = match f.id() {
            Id::Standard(s) => s.as_raw(),
            Id::Extended(_) => continue,
        };
        let data = f.data();
        if id == STEER && data.len() == 8 {
            let torque = i16::from_be_bytes([data[1], data[2]]);
            seen.steer += 1;
            seen.steer_torque = torque;
            if torque != 200 {
                seen.bad_steer = Some(torque);
            }
        } else if id == DIAG {
            seen.diag += 1;
        }
    }
}

fn run() -> Result<(), &'static str> {
    let (Some(s5920), Some(sja)) = (can_s5920.get(), can_sja.get()) else {
        return Err("card ports not granted");
    };
    // The `pci` PD placed the card; this PD polls it (no interrupt).
    let mut d =
        card::open(4, s5920 as u16, sja as u16, false, false).map_err(|_| "no card at 00:04.0")?;
    let gw = ring::channel(&ch_gateway).ok_or("no gateway channel")?;
    // The gateway's time base (the kernel's calibrated TSC rate, as it sees it).
    gw.pp_call(MessageInfo::new(LABEL_CLOCK, 0))
        .map_err(|_| "clock call failed")?;
    let clock = Clock::with_rate(get_mr(0));
    debug_println!("TSC {} ticks per us (from the gateway)", get_mr(0));
    let req = ring::memory(&mgr_req, &mgr_req_size).ok_or("manager request ring not mapped")?;
    let rsp = ring::memory(&mgr_rsp, &mgr_rsp_size).ok_or("manager reply ring not mapped")?;
    let mut req: Sender<AppToGateway, REQ_SLOT, bulkhead_microkit::Channel> =
        Sender::new(req, gw).map_err(|_| "manager ring too small")?;
    let mut rsp: Receiver<GatewayToApp, RSP_SLOT, bulkhead_microkit::Channel> =
        Receiver::new(rsp, gw).map_err(|_| "manager reply ring too small")?;
    let shared = Shared::new(progress.get());

    // The application manager: install and start both applications; an
    // event for an application the policy does not know is refused.
    let events = [
        (LKA, AppEvent::Installed([1; 32])),
        (LKA, AppEvent::Started),
        (DIAGNOSTICS, AppEvent::Installed([2; 32])),
        (DIAGNOSTICS, AppEvent::Started),
        (99, AppEvent::Started),
    ];
    for (tag, (app, event)) in events.iter().enumerate() {
        req.send(&AppToGateway::Lifecycle {
            tag: tag as u32,
            app: AppId(*app),
            event: *event,
        })
        .map_err(|_| "manager ring full")?;
    }
    let mut answers = 0;
    let start = clock.now_us();
    while answers < events.len() {
        match rsp.recv() {
            Ok(GatewayToApp::Done { tag }) if (tag as usize) < 4 => answers += 1,
            Ok(GatewayToApp::Denied { tag: 4, .. }) => answers += 1,
            Ok(_) => return Err("unexpected answer to a lifecycle event"),
            Err(RecvError::Empty) => {}
            Err(_) => return Err("corrupt record on the manager reply ring"),
        }
        if clock.now_us() - start > 5_000_000 {
            return Err("the gateway did not answer the lifecycle events");
        }
    }
    debug_println!("applications installed and started; parked");

    let mut seen = Seen::default();
    let mut phase = 0u32; // 0 parked, 1 driving, 2 parked again, 3 settling
    let mut phase_start = clock.now_us();
    let mut next = 0u64;
    let mut drive_start = 0u64;
    loop {
        let now = clock.now_us();
        if now >= next {
            let (gear, speed) = if phase == 1 {
                (GEAR_D, TEN_MPH)
            } else {
                (GEAR_P, 0)
            };
            broadcast(&mut d, gear, speed);
            next = now + 10_000;
        }
        let diag_before = seen.diag;
        watch(&mut d, &mut seen);
        // Diagnostics are allowed only while parked: once the gateway has
        // had 50 ms of D frames, none may pass.
        if phase == 1 && now - phase_start > 50_000 && seen.diag != diag_before {
            return Err("a diagnostics frame reached the bus while driving");
        }
        if let Some(t) = seen.bad_steer {
            debug_println!("denied steering torque {t} reached the bus");
            return Err("a denied steering frame reached the bus");
        }
        let p = shared.read(0);
        if p == u64::MAX {
            return Err("the steering assistant got an unexpected answer (see its log)");
        }
        let advance = match phase {
            0 => p >= 1,
            // Drive at least 300 ms, so the diagnostics guard is exercised.
            1 => p >= 2 && seen.steer == 1 && now - phase_start > 300_000,
            2 => p >= 3,
            _ => now - phase_start > 200_000,
        };
        if advance {
            phase += 1;
            phase_start = now;
            match phase {
                1 => {
                    drive_start = now;
                    debug_println!("shifting to D, 10 mph");
                }
                2 => debug_println!(
                    "steering frame seen (torque {}); stopping, P",
                    seen.steer_torque
                ),
                3 => debug_println!("assistant done; watching the bus a little longer"),
                _ => break,
            }
        }
        if now - phase_start > 20_000_000 {
            debug_println!("stuck in phase {phase}, assistant progress {p}");
            return Err("no progress for 20 s");
        }
    }
    let _ = drive_start;
    // Diagnostics may send only while parked, at most 5 + 20/s.
    let elapsed_s = (clock.now_us() - start) / 1_000_000 + 1;
    debug_println!("diagnostics frames on the bus: {}", seen.diag);
    if seen.diag == 0 {
        return Err("no diagnostics frame reached the bus (the babbler was starved)");
    }
    if u64::from(seen.diag) > 5 + 20 * elapsed_s {
        return Err("diagnostics frames exceeded their rule's rate");
    }
    if seen.steer != 1 {
        return Err("the allowed steering frame did not appear exactly once");
    }
    let before = u64::from(seen.steer + seen.diag);
    let info = gw
        .pp_call(MessageInfo::new(LABEL_STATS, 0))
        .map_err(|_| "statistics call failed")?;
    if info.label() != LABEL_STATS || info.count() != 6 {
        return Err("bad statistics reply");
    }
    let (forwarded, denied, rejected, wrong_app, bus, full) = (
        get_mr(0),
        get_mr(1),
        get_mr(2),
        get_mr(3),
        get_mr(4),
        get_mr(5),
    );
    debug_println!(
        "gateway counters: forwarded {forwarded}, denied {denied}, rejected {rejected}, \
         wrong application {wrong_app}, bus frames {bus}, replies lost {full}"
    );
    if rejected != 3 {
        return Err("the gateway did not reject exactly the 3 malformed records");
    }
    if wrong_app < 2 {
        return Err("requests for another application were not refused");
    }
    watch(&mut d, &mut seen);
    let after = u64::from(seen.steer + seen.diag);
    // Diagnostics may still be sending (parked): the count must lie between
    // what the bus carried before and after the call.
    if forwarded < before || forwarded > after {
        return Err("the gateway forwarded frames the bus never carried");
    }
    Ok(())
}

fn init() -> Vehicle {
    match run() {
        Ok(()) => pass(T),
        Err(why) => fail(T, format_args!("{why}")),
    }
    Vehicle
}

impl Handler for Vehicle {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}

protection_domain!(init);
