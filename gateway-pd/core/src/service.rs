//! The gateway PD's event handling, hardware-free: what to do with a
//! request from a guest application's channel, a frame from a bus, and a
//! lifecycle event. The PD binary only moves bytes between its channels,
//! its CAN drivers and this type, so the whole data path is testable on
//! the host (see `gateway-pd/sja1000/tests/gateway_bus.rs`).
//!
//! Rules: a frame reaches a bus only through [`Gateway::app_request`] and
//! only when the engine allows it; a bus frame reaches an application only
//! through [`Gateway::bus_frame`] and only when that application's receive
//! rules allow it; every bus frame updates the vehicle state first, so
//! guards see the newest value.

use crate::engine::{AppEvent, AppState, Decision, Engine, EventError};
use crate::frame::{Frame, FrameError};
use crate::policy::{LoadError, Policy};

/// Counters the PD reports to the supervisor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Requests that were not frames at all (bad wire encoding).
    pub bad_requests: u64,
    /// Allowed frames the driver could not take (its queue was full).
    pub tx_full: u64,
    /// Frames forwarded to a bus.
    pub forwarded: u64,
    /// Frames delivered to applications.
    pub delivered: u64,
}

/// What became of an application's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The engine decided; when allowed, the frame was handed to the bus.
    Decided(Decision),
    /// Allowed, but the driver's transmit queue was full: not sent.
    Busy(Decision),
    /// The bytes were not a frame.
    BadRequest(FrameError),
}

/// The gateway: an engine plus the routing around it.
#[derive(Clone, Debug)]
pub struct Gateway {
    engine: Engine,
    stats: ServiceStats,
}

impl Gateway {
    /// Loads a compiled policy.
    pub fn from_bytes(policy: &[u8], now_us: u64) -> Result<Gateway, LoadError> {
        Self::new(Policy::from_bytes(policy)?, now_us)
    }

    /// Wraps a policy.
    pub fn new(policy: Policy, now_us: u64) -> Result<Gateway, LoadError> {
        Ok(Gateway {
            engine: Engine::new(policy, now_us)?,
            stats: ServiceStats::default(),
        })
    }

    /// The engine (audit log, counters, state).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Counters.
    pub fn stats(&self) -> ServiceStats {
        self.stats
    }

    /// An application lifecycle event from the VMM / guest agent.
    pub fn app_event(&mut self, ev: AppEvent) -> Result<AppState, EventError> {
        self.engine.on_event(ev)
    }

    /// A frame an application asks to send, in its channel's wire form.
    /// `tx` hands an allowed frame to the bus driver and returns false if
    /// the driver could not take it.
    pub fn app_request<T: FnMut(&Frame) -> bool>(
        &mut self,
        app: u16,
        wire: &[u8],
        now_us: u64,
        mut tx: T,
    ) -> Outcome {
        let frame = match Frame::from_wire(wire) {
            Ok(f) => f,
            Err(e) => {
                self.stats.bad_requests += 1;
                return Outcome::BadRequest(e);
            }
        };
        let d = self.engine.check_send(app, &frame, now_us);
        if !d.allowed() {
            return Outcome::Decided(d);
        }
        if tx(&frame) {
            self.stats.forwarded += 1;
            Outcome::Decided(d)
        } else {
            self.stats.tx_full += 1;
            Outcome::Busy(d)
        }
    }

    /// An L4 request (open a port to listen on or connect to): decided by
    /// the application's L4 rules, which hold only while it runs.
    pub fn l4_request(
        &mut self,
        app: u16,
        proto: crate::policy::Proto,
        op: crate::policy::L4Op,
        port: u16,
        now_us: u64,
    ) -> Decision {
        self.engine.check_l4(app, proto, op, port, now_us)
    }

    /// A frame from a bus: updates the vehicle state, then offers it to
    /// every application; `deliver(app, frame)` is called for each one
    /// whose receive rules allow it.
    pub fn bus_frame<D: FnMut(u16, &Frame)>(&mut self, frame: &Frame, now_us: u64, mut deliver: D) {
        self.engine.observe(frame, now_us);
        let apps = self.engine.policy().apps.len() as u16;
        for app in 0..apps {
            // Only running applications are offered frames: a stopped one
            // would only fill the audit log with AppNotRunning denials.
            if self.engine.app_state(app) != Some(AppState::Running) {
                continue;
            }
            let d = self.engine.check_receive(app, frame, now_us);
            if d.allowed() {
                self.stats.delivered += 1;
                deliver(app, frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AppEventKind;
    use crate::policy::{Action, App, Dir, IdMatch, Rate, Rule};
    use alloc::vec;

    fn gateway() -> Gateway {
        let rule = |app, dir| Rule {
            name: "r".into(),
            app,
            dir,
            ids: IdMatch {
                id: 0x100,
                mask: 0x7FF,
                extended: false,
            },
            action: Action::Allow,
            remote: false,
            min_len: 0,
            constraints: vec![],
            guards: vec![],
            rate: None,
        };
        let p = Policy {
            apps: vec![
                App {
                    name: "a".into(),
                    budget: Rate {
                        per_second: 10,
                        burst: 10,
                    },
                },
                App {
                    name: "b".into(),
                    budget: Rate {
                        per_second: 10,
                        burst: 10,
                    },
                },
                App {
                    name: "c".into(),
                    budget: Rate {
                        per_second: 10,
                        burst: 10,
                    },
                },
            ],
            rules: vec![
                rule(0, Dir::Send),
                rule(1, Dir::Receive),
                rule(2, Dir::Receive),
            ],
            signals: vec![],
            state: vec![],
            l4: vec![],
            stale_after_us: 1,
            audit_capacity: 4,
            audit_rate: Rate {
                per_second: 1,
                burst: 1,
            },
        };
        let mut g = Gateway::from_bytes(&p.to_bytes().unwrap(), 0).unwrap();
        for app in 0..2 {
            g.app_event(AppEvent {
                app,
                kind: AppEventKind::Install,
            })
            .unwrap();
            g.app_event(AppEvent {
                app,
                kind: AppEventKind::Start,
            })
            .unwrap();
        }
        g
    }

    #[test]
    fn requests_and_deliveries() {
        let mut g = gateway();
        let f = Frame::data(0x100, false, &[1]).unwrap();
        let mut w = [0u8; 16];
        let n = f.to_wire(&mut w).unwrap();
        let mut sent = vec![];
        assert!(
            matches!(g.app_request(0, &w[..n], 0, |f| { sent.push(*f); true }), Outcome::Decided(d) if d.allowed())
        );
        assert!(matches!(
            g.app_request(0, &w[..n], 0, |_| false),
            Outcome::Busy(_)
        ));
        assert!(
            matches!(g.app_request(1, &w[..n], 0, |_| panic!("denied frame sent")), Outcome::Decided(d) if !d.allowed())
        );
        assert_eq!(
            g.app_request(0, &w[..3], 0, |_| true),
            Outcome::BadRequest(FrameError::Truncated)
        );
        assert_eq!(sent, vec![f]);
        // Delivered to b (receive rule, running), not to a (no receive
        // rule) nor c (rule, but not running).
        let mut got = vec![];
        g.bus_frame(&f, 0, |app, _| got.push(app));
        assert_eq!(got, vec![1]);
        let s = g.stats();
        assert_eq!(
            (s.forwarded, s.tx_full, s.bad_requests, s.delivered),
            (1, 1, 1, 1)
        );
    }
}
