//! Between guest applications and the gateway: applications ask to send CAN
//! frames and to open or close L4 ports; the guest's application manager
//! reports application start/stop/install/remove events, which is what the
//! gateway's per-application policy keys on. The gateway answers each
//! request (by `tag`) and forwards the frames an application may receive.
//!
//! Decoding checks only the encoding; whether a CAN id is in range
//! ([`CanFrame::is_valid`]) and whether the application may do what it asks
//! is the gateway policy's job, which sees every request.

use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::envelope::{Message, ProtocolId};

/// Identifies a guest application (assigned by the gateway's policy file).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct AppId(pub u16);

/// A CAN identifier.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum CanId {
    /// 11-bit identifier (at most `0x7FF`).
    Standard(u16),
    /// 29-bit identifier (at most `0x1FFF_FFFF`).
    Extended(u32),
}

/// A classic CAN data frame.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct CanFrame {
    /// Identifier.
    pub id: CanId,
    /// Up to 8 data bytes.
    pub data: Vec<u8, 8>,
}

impl CanFrame {
    /// Whether the identifier fits its width (decoding alone does not check it).
    pub fn is_valid(&self) -> bool {
        match self.id {
            CanId::Standard(id) => id <= 0x7FF,
            CanId::Extended(id) => id <= 0x1FFF_FFFF,
        }
    }
}

/// Transport protocol of a port.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum L4 {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What an application wants a port for.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortMode {
    /// Accept connections or datagrams on the port.
    Listen,
    /// Reach this IPv4 address on the port.
    Connect([u8; 4]),
}

/// An application lifecycle event, reported by the guest's application manager.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum AppEvent {
    /// Installed, with the SHA-256 digest of its package.
    Installed([u8; 32]),
    /// Started: its ports may now be opened.
    Started,
    /// Stopped: the gateway closes its ports.
    Stopped,
    /// Removed.
    Removed,
}

/// Guest applications → gateway.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub enum AppToGateway {
    /// Put a frame on the bus.
    SendCan {
        /// Echoed in the answer.
        tag: u32,
        /// The asking application.
        app: AppId,
        /// The frame.
        frame: CanFrame,
    },
    /// Open a port.
    OpenPort {
        /// Echoed in the answer.
        tag: u32,
        /// The asking application.
        app: AppId,
        /// Transport.
        l4: L4,
        /// Port number.
        port: u16,
        /// Listen or connect.
        mode: PortMode,
    },
    /// Close a port the application opened.
    ClosePort {
        /// Echoed in the answer.
        tag: u32,
        /// The asking application.
        app: AppId,
        /// Transport.
        l4: L4,
        /// Port number.
        port: u16,
    },
    /// A lifecycle event of an application.
    Lifecycle {
        /// Echoed in the answer.
        tag: u32,
        /// The application.
        app: AppId,
        /// What happened.
        event: AppEvent,
    },
}

/// Why the gateway refused a request.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Denial {
    /// The application is unknown or not running.
    UnknownApp,
    /// The policy forbids it.
    Policy,
    /// A rate limit is exhausted; try later.
    RateLimited,
    /// The vehicle state guard does not hold (e.g. moving).
    VehicleState,
    /// The request itself is invalid (e.g. CAN id out of range).
    Invalid,
}

/// Gateway → guest applications.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub enum GatewayToApp {
    /// The request with this tag was carried out.
    Done {
        /// The request's tag.
        tag: u32,
    },
    /// The request with this tag was refused.
    Denied {
        /// The request's tag.
        tag: u32,
        /// Why.
        reason: Denial,
    },
    /// A frame from the bus the application may receive.
    CanReceived {
        /// The receiving application.
        app: AppId,
        /// The frame.
        frame: CanFrame,
    },
}

impl Message for AppToGateway {
    const PROTOCOL: ProtocolId = ProtocolId::AppToGateway;
    const VERSION: u16 = 1;
    /// Lifecycle/Installed: header 4, variant 1, tag 5, app 3, event 1, digest 32.
    const MAX_SIZE: usize = 46;
}

impl Message for GatewayToApp {
    const PROTOCOL: ProtocolId = ProtocolId::GatewayToApp;
    const VERSION: u16 = 1;
    /// CanReceived: header 4, variant 1, app 3, id 1 + 5, length 1, data 8.
    const MAX_SIZE: usize = 23;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::check_bound;

    fn frame() -> CanFrame {
        CanFrame {
            id: CanId::Extended(u32::MAX),
            data: Vec::from_slice(&[0xff; 8]).unwrap(),
        }
    }

    #[test]
    fn worst_cases_fit_max_size() {
        let (tag, app) = (u32::MAX, AppId(u16::MAX));
        let sizes = [
            check_bound(&AppToGateway::SendCan {
                tag,
                app,
                frame: frame(),
            }),
            check_bound(&AppToGateway::OpenPort {
                tag,
                app,
                l4: L4::Udp,
                port: u16::MAX,
                mode: PortMode::Connect([255; 4]),
            }),
            check_bound(&AppToGateway::ClosePort {
                tag,
                app,
                l4: L4::Tcp,
                port: u16::MAX,
            }),
            check_bound(&AppToGateway::Lifecycle {
                tag,
                app,
                event: AppEvent::Installed([0xff; 32]),
            }),
        ];
        assert_eq!(sizes.iter().max(), Some(&AppToGateway::MAX_SIZE));
        let sizes = [
            check_bound(&GatewayToApp::Done { tag }),
            check_bound(&GatewayToApp::Denied {
                tag,
                reason: Denial::Invalid,
            }),
            check_bound(&GatewayToApp::CanReceived {
                app,
                frame: frame(),
            }),
        ];
        assert_eq!(sizes.iter().max(), Some(&GatewayToApp::MAX_SIZE));
    }

    #[test]
    fn can_id_range_is_checked_by_is_valid_not_decode() {
        let mut f = frame();
        assert!(!f.is_valid());
        f.id = CanId::Extended(0x1FFF_FFFF);
        assert!(f.is_valid());
        f.id = CanId::Standard(0x800);
        assert!(!f.is_valid());
        f.id = CanId::Standard(0x7FF);
        assert!(f.is_valid());
    }
}
