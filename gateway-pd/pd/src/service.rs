//! The gateway PD's handler: card interrupts feed bus frames to the
//! service (which updates the vehicle state and delivers to applications);
//! application requests are decided by the service and answered by tag.
//!
//! Fairness: on every notification all request rings are served round
//! robin, [`QUOTA`] requests per ring per pass, until all are empty. The
//! gateway outranks the applications, so they cannot refill a ring while it
//! runs: the work is bounded by the rings' capacity, and a babbling
//! application delays a quiet one by at most its ring's worth of requests,
//! never indefinitely. What a babbler may put on the bus is bounded by its
//! budget in the policy.

use bulkhead_channel::{Receiver, RecvError, Sender};
use bulkhead_microkit::{debug_println, set_mr, Channel, ChannelSet, Handler, MessageInfo, SetVar};
use bulkhead_protocols::gateway::{
    AppEvent as WireEvent, AppId, AppToGateway, CanFrame as WireFrame, CanId, Denial, GatewayToApp,
    PortMode, L4,
};
use embedded_can::nb::Can;
use gateway_core::policy::{L4Op, Proto};
use gateway_core::service::{Gateway, Outcome};
use gateway_core::{AppEvent, AppEventKind, Decision, Frame, Reason};
use heapless::Vec;

use crate::card::{self, Driver};
use crate::clock::Clock;
use crate::ring::{self, RingMap};
use crate::{LABEL_CLOCK, LABEL_STATS, REQ_SLOT, RSP_SLOT};

/// Requests served per ring per round-robin pass.
pub const QUOTA: usize = 4;
/// Most application links.
pub const MAX_LINKS: usize = 4;
/// Most cards.
pub const MAX_CARDS: usize = 2;

/// Who speaks on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// One guest application (policy index): its requests are its own, a
    /// request naming another application is refused.
    App(u16),
    /// The application manager: lifecycle events only.
    Manager,
    /// A trusted multiplexer (the VMM carrying all guest applications):
    /// requests for any application, and lifecycle events.
    Multiplex,
}

/// A link's setvars: request ring, reply ring (each one region: header
/// then data) and the channel to the peer.
pub struct LinkConfig {
    /// Where the request ring is mapped.
    pub req: RingMap,
    /// Where the reply ring is mapped.
    pub rsp: RingMap,
    /// Channel `setvar_id`.
    pub ch: &'static SetVar,
    /// Who speaks on it.
    pub role: Role,
}

/// A card's setvars and its PCI slot.
pub struct CardConfig {
    /// Bus 0 slot of the card.
    pub slot: u8,
    /// `setvar_addr` of the S5920 port range (BAR 0).
    pub s5920: &'static SetVar,
    /// `setvar_addr` of the SJA1000 port range (BAR 1).
    pub sja: &'static SetVar,
    /// `setvar_id` of the card's IRQ.
    pub irq: &'static SetVar,
    /// Whether this PD places the card's BARs (it then needs ports
    /// 0xCF8-0xCFF); false when the platform or a PCI helper PD does.
    pub place: bool,
}

struct Link {
    req: Receiver<'static, AppToGateway, REQ_SLOT, Channel>,
    rsp: Sender<'static, GatewayToApp, RSP_SLOT, Channel>,
    role: Role,
}

struct Card {
    driver: Driver,
    irq: Channel,
}

/// What the PD counts beside the service's own counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Frames put on a bus.
    pub forwarded: u64,
    /// Requests refused (policy, state, rate, invalid, wrong application).
    pub denied: u64,
    /// Records rejected by the rings (malformed, wrong protocol, corrupt).
    pub rejected: u64,
    /// Requests naming an application other than the link's own.
    pub wrong_app: u64,
    /// Frames received from the buses.
    pub bus_frames: u64,
    /// Replies or deliveries lost because the application's ring was full.
    pub reply_full: u64,
}

/// The gateway PD.
pub struct GatewayPd {
    gw: Option<Gateway>,
    clock: Clock,
    cards: Vec<Card, MAX_CARDS>,
    links: Vec<Link, MAX_LINKS>,
    counters: Counters,
}

/// Brings the gateway up: loads the policy, opens the cards and rings.
/// Whatever is missing is reported and left out; the PD keeps serving the
/// rest (with no policy, every request is refused).
pub fn init(policy: &[u8], cards: &[CardConfig], links: &[LinkConfig]) -> GatewayPd {
    let clock = Clock::from_kernel();
    let gw = match Gateway::from_bytes(policy, clock.now_us()) {
        Ok(g) => Some(g),
        Err(e) => {
            debug_println!("gateway: policy rejected ({e:?}): refusing every request");
            None
        }
    };
    let mut pd = GatewayPd {
        gw,
        clock,
        cards: Vec::new(),
        links: Vec::new(),
        counters: Counters::default(),
    };
    for c in cards {
        let (Some(s5920), Some(sja), Some(irq)) =
            (c.s5920.get(), c.sja.get(), ring::channel(c.irq))
        else {
            debug_println!("gateway: card at slot {} not granted in system.xml", c.slot);
            continue;
        };
        match card::open(c.slot, s5920 as u16, sja as u16, true, c.place) {
            Ok(driver) => {
                debug_println!(
                    "gateway: CAN card at 00:{:02x}.0, SJA1000 at port {sja:#x}",
                    c.slot
                );
                let _ = pd.cards.push(Card { driver, irq });
            }
            Err(e) => debug_println!("gateway: no CAN card at 00:{:02x}.0: {e:?}", c.slot),
        }
    }
    for l in links {
        let (Some(req), Some(rsp), Some(ch)) = (
            ring::ring_memory(&l.req),
            ring::ring_memory(&l.rsp),
            ring::channel(l.ch),
        ) else {
            debug_println!("gateway: a link is not mapped in system.xml");
            continue;
        };
        let (Ok(req), Ok(rsp)) = (Receiver::new(req, ch), Sender::new(rsp, ch)) else {
            debug_println!("gateway: a link's regions are too small for a ring");
            continue;
        };
        let _ = pd.links.push(Link {
            req,
            rsp,
            role: l.role,
        });
    }
    debug_println!(
        "gateway: up: policy {}, {} card(s), {} link(s), TSC {} per us",
        if pd.gw.is_some() { "loaded" } else { "missing" },
        pd.cards.len(),
        pd.links.len(),
        pd.clock.ticks_per_us()
    );
    pd
}

fn denial(d: &Decision) -> Denial {
    match d.reason {
        Reason::UnknownApp | Reason::AppNotRunning => Denial::UnknownApp,
        Reason::AppBudget | Reason::RateLimited => Denial::RateLimited,
        Reason::StateUnknown(_) | Reason::GuardFailed(_) => Denial::VehicleState,
        Reason::Malformed | Reason::ErrorFrame => Denial::Invalid,
        _ => Denial::Policy,
    }
}

fn wire_frame(f: &Frame) -> Option<WireFrame> {
    let id = if f.extended {
        CanId::Extended(f.id)
    } else {
        CanId::Standard(u16::try_from(f.id).ok()?)
    };
    Some(WireFrame {
        id,
        data: Vec::from_slice(f.payload()).ok()?,
    })
}

impl GatewayPd {
    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    fn reply(counters: &mut Counters, link: &mut Link, msg: &GatewayToApp) {
        if link.rsp.send(msg).is_err() {
            counters.reply_full += 1;
        }
    }

    fn service_card(&mut self, i: usize) {
        let now = self.clock.now_us();
        let Self {
            cards,
            links,
            gw,
            counters,
            ..
        } = self;
        let card = &mut cards[i];
        card.driver.handle_irq();
        while let Ok(rx) = card.driver.receive() {
            counters.bus_frames += 1;
            let f = Frame::from_can(&rx);
            let Some(gw) = gw.as_mut() else { continue };
            gw.bus_frame(&f, now, |app, frame| {
                let Some(wire) = wire_frame(frame) else {
                    return;
                };
                for l in links.iter_mut() {
                    if l.role == Role::App(app) || l.role == Role::Multiplex {
                        let msg = GatewayToApp::CanReceived {
                            app: AppId(app),
                            frame: wire.clone(),
                        };
                        Self::reply(counters, l, &msg);
                    }
                }
            });
        }
        card.irq.irq_ack();
    }

    /// Serves one request of link `i`; false when its ring is empty.
    fn serve_one(&mut self, i: usize) -> bool {
        let now = self.clock.now_us();
        let msg = match self.links[i].req.recv() {
            Ok(m) => m,
            Err(RecvError::Empty) => return false,
            // Already counted by the ring (stats()); the next record follows.
            Err(_) => {
                self.counters.rejected += 1;
                return true;
            }
        };
        let role = self.links[i].role;
        let (tag, result) = self.decide(role, msg, now);
        let reply = match result {
            Ok(()) => GatewayToApp::Done { tag },
            Err(reason) => {
                self.counters.denied += 1;
                GatewayToApp::Denied { tag, reason }
            }
        };
        Self::reply(&mut self.counters, &mut self.links[i], &reply);
        true
    }

    fn decide(&mut self, role: Role, msg: AppToGateway, now: u64) -> (u32, Result<(), Denial>) {
        let (tag, app) = match &msg {
            AppToGateway::SendCan { tag, app, .. }
            | AppToGateway::OpenPort { tag, app, .. }
            | AppToGateway::ClosePort { tag, app, .. }
            | AppToGateway::Lifecycle { tag, app, .. } => (*tag, app.0),
        };
        let lifecycle = matches!(msg, AppToGateway::Lifecycle { .. });
        let allowed_role = match role {
            Role::App(own) => !lifecycle && own == app,
            Role::Manager => lifecycle,
            Role::Multiplex => true,
        };
        if !allowed_role {
            self.counters.wrong_app += 1;
            return (tag, Err(Denial::UnknownApp));
        }
        let Some(gw) = self.gw.as_mut() else {
            return (tag, Err(Denial::Policy));
        };
        let r = match msg {
            AppToGateway::SendCan { frame, .. } => {
                if !frame.is_valid() {
                    return (tag, Err(Denial::Invalid));
                }
                let (id, ext) = match frame.id {
                    CanId::Standard(id) => (u32::from(id), false),
                    CanId::Extended(id) => (id, true),
                };
                let Some(f) = Frame::data(id, ext, &frame.data) else {
                    return (tag, Err(Denial::Invalid));
                };
                let mut wire = [0u8; 16];
                let Some(n) = f.to_wire(&mut wire) else {
                    return (tag, Err(Denial::Invalid));
                };
                let cards = &mut self.cards;
                let counters = &mut self.counters;
                // One bus per policy (docs/gateway.md, Limits): the first card.
                match gw.app_request(app, &wire[..n], now, |f| {
                    let (Some(card), Some(can)) = (cards.first_mut(), card::to_can(f)) else {
                        return false;
                    };
                    let ok = card.driver.transmit(&can).is_ok();
                    if ok {
                        counters.forwarded += 1;
                    }
                    ok
                }) {
                    Outcome::Decided(d) if d.allowed() => Ok(()),
                    Outcome::Decided(d) => Err(denial(&d)),
                    Outcome::Busy(_) => Err(Denial::RateLimited),
                    Outcome::BadRequest(_) => Err(Denial::Invalid),
                }
            }
            AppToGateway::OpenPort { l4, port, mode, .. } => {
                let proto = match l4 {
                    L4::Tcp => Proto::Tcp,
                    L4::Udp => Proto::Udp,
                };
                let op = match mode {
                    PortMode::Listen => L4Op::Listen,
                    PortMode::Connect(_) => L4Op::Connect,
                };
                let d = gw.l4_request(app, proto, op, port, now);
                // The NIC driver is not wired yet: the decision is all
                // there is to an open port.
                if d.allowed() {
                    Ok(())
                } else {
                    Err(denial(&d))
                }
            }
            AppToGateway::ClosePort { .. } => Ok(()),
            AppToGateway::Lifecycle { event, .. } => {
                let kind = match event {
                    WireEvent::Installed(_) => AppEventKind::Install,
                    WireEvent::Started => AppEventKind::Start,
                    WireEvent::Stopped => AppEventKind::Stop,
                    WireEvent::Removed => AppEventKind::Remove,
                };
                match gw.app_event(AppEvent { app, kind }) {
                    Ok(_) => Ok(()),
                    Err(_) => Err(Denial::Invalid),
                }
            }
        };
        (tag, r)
    }

    fn serve_links(&mut self) {
        loop {
            let mut more = false;
            for i in 0..self.links.len() {
                for _ in 0..QUOTA {
                    if !self.serve_one(i) {
                        break;
                    }
                    more = true;
                }
            }
            if !more {
                break;
            }
        }
    }
}

impl Handler for GatewayPd {
    type Error = core::convert::Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        for i in 0..self.cards.len() {
            if channels.contains(self.cards[i].irq) {
                self.service_card(i);
            }
        }
        // Requests may also wait on links whose bell coalesced: serve all.
        self.serve_links();
        // Transmissions completed meanwhile start the next queued frame.
        for i in 0..self.cards.len() {
            let _ = self.cards[i].driver.handle_irq();
        }
        Ok(())
    }

    fn protected(&mut self, _ch: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        if info.label() == LABEL_CLOCK {
            set_mr(0, self.clock.ticks_per_us());
            set_mr(1, self.clock.now_us());
            return Ok(MessageInfo::new(LABEL_CLOCK, 2));
        }
        if info.label() != LABEL_STATS {
            return Ok(MessageInfo::new(0, 0));
        }
        let c = self.counters;
        for (i, v) in [
            c.forwarded,
            c.denied,
            c.rejected,
            c.wrong_app,
            c.bus_frames,
            c.reply_full,
        ]
        .into_iter()
        .enumerate()
        {
            set_mr(i, v);
        }
        Ok(MessageInfo::new(LABEL_STATS, 6))
    }
}
