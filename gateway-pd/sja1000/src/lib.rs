//! Driver for the NXP SJA1000 stand-alone CAN controller in PeliCAN mode,
//! as QEMU's `kvaser_pci` device emulates it (and as real Kvaser PCIcan
//! boards carry it).
//!
//! Register access goes through the small [`Registers`] trait, so the
//! driver holds no `unsafe`: the gateway PD implements it with I/O port
//! accesses to the card's SJA1000 BAR, the host tests with a register-level
//! model of the chip written from the datasheet (`tests/model/mod.rs`).
//!
//! Design rules:
//! - `no_std`, no `unsafe`, no allocation: fixed-size receive and transmit
//!   queues (`heapless`), so a frame flood costs a counter, not memory.
//! - Interrupt-driven: [`Sja1000::handle_irq`] drains the receive FIFO,
//!   feeds the transmitter and tracks the error state; it reads the
//!   interrupt register a bounded number of times, so a stuck line cannot
//!   hang the PD.
//! - Error states follow the datasheet (error-active, warning, error-passive,
//!   bus-off); bus-off recovery is started by the driver (leaving reset
//!   mode), and completes when the chip has seen 128 x 11 recessive bits.
//! - The driver never reads back BTR0/BTR1 (QEMU reads them as 0).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod frame;
pub mod kvaser;
pub mod regs;
pub mod timing;

use heapless::Deque;

pub use frame::CanFrame;
use regs::*;
pub use timing::{BitTiming, TimingError};

/// Byte-wide access to the chip's 32 registers.
pub trait Registers {
    /// Reads register `reg` (0..=31).
    fn read(&mut self, reg: u8) -> u8;
    /// Writes register `reg` (0..=31).
    fn write(&mut self, reg: u8, value: u8);
}

/// Which frames the chip's acceptance filter lets in (single filter mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Every frame.
    AcceptAll,
    /// Standard frames with `id & mask == code & mask` (11-bit values).
    Standard {
        /// Identifier to compare with.
        code: u16,
        /// Bits that must match.
        mask: u16,
    },
    /// Extended frames with `id & mask == code & mask` (29-bit values).
    Extended {
        /// Identifier to compare with.
        code: u32,
        /// Bits that must match.
        mask: u32,
    },
}

impl Filter {
    /// Whether the filter uses single filter mode (MOD.AFM).
    ///
    /// Standard-frame filters and "accept all" use dual filter mode, with
    /// both filters set alike: QEMU's single-filter model for standard
    /// frames shifts AMR1 the wrong way (so ids whose low three bits
    /// differ from ACR1's are dropped even when AMR says "don't care"),
    /// while its dual-filter model matches the datasheet. Extended filters
    /// need single mode (dual mode compares only ID.28-13), where QEMU is right.
    pub fn single_mode(&self) -> bool {
        matches!(self, Filter::Extended { .. })
    }

    /// ACR0..3 and AMR0..3 (AMR bit 1 = don't care) for the mode that
    /// [`Filter::single_mode`] selects.
    pub fn registers(&self) -> ([u8; 4], [u8; 4]) {
        match *self {
            Filter::AcceptAll => ([0; 4], [0xFF; 4]),
            Filter::Standard { code, mask } => {
                // Dual mode, standard frames: filter 1 is ACR0, ACR1[7:4]
                // (ID.2-0, RTR) plus data byte 1 in ACR1[3:0]/ACR3[3:0];
                // filter 2 is ACR2, ACR3[7:4]. RTR and data: don't care.
                let (code, mask) = (code & 0x7FF, mask & 0x7FF);
                let hi = (code >> 3) as u8;
                let lo = ((code & 7) << 5) as u8;
                let mhi = !((mask >> 3) as u8);
                let mlo = ((!mask & 7) << 5) as u8 | 0x1F;
                ([hi, lo, hi, lo], [mhi, mlo, mhi, mlo])
            }
            Filter::Extended { code, mask } => {
                let c = (code & 0x1FFF_FFFF) << 3;
                let dont = !((mask & 0x1FFF_FFFF) << 3);
                (c.to_be_bytes(), dont.to_be_bytes())
            }
        }
    }
}

/// Controller configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bit timing.
    pub timing: BitTiming,
    /// Acceptance filter.
    pub filter: Filter,
    /// Listen only: never acknowledge or transmit.
    pub listen_only: bool,
    /// Start bus-off recovery automatically.
    pub auto_recover: bool,
}

/// The controller's error state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorState {
    /// Both error counters below 96.
    Active,
    /// An error counter reached the warning limit (96).
    Warning,
    /// An error counter is above 127: the node may only send passive error flags.
    Passive,
    /// The transmit error counter passed 255: the node is off the bus.
    BusOff,
}

/// Driver errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The chip did not enter or leave reset mode when told to.
    ResetTimeout,
    /// The chip is bus-off; frames are queued until it recovers.
    BusOff,
    /// Frames were lost because the receive FIFO or queue overflowed.
    Overrun,
}

impl embedded_can::Error for Error {
    fn kind(&self) -> embedded_can::ErrorKind {
        match self {
            Error::Overrun => embedded_can::ErrorKind::Overrun,
            _ => embedded_can::ErrorKind::Other,
        }
    }
}

/// Counters the PD reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received into the queue.
    pub received: u64,
    /// Frames transmitted successfully.
    pub sent: u64,
    /// Data overruns signalled by the chip (its 64-byte FIFO was full).
    pub fifo_overruns: u64,
    /// Frames dropped because the driver's receive queue was full.
    pub queue_drops: u64,
    /// Bus errors (ECC captures).
    pub bus_errors: u64,
    /// Arbitration losses.
    pub arbitration_lost: u64,
    /// Times the controller went bus-off.
    pub bus_off: u64,
}

/// What one call to [`Sja1000::handle_irq`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqSummary {
    /// Frames moved from the chip to the receive queue.
    pub received: u16,
    /// Transmissions completed.
    pub sent: u16,
    /// The error state changed.
    pub state_changed: bool,
}

/// How many times one `handle_irq` call reads the interrupt register.
const IRQ_ROUNDS: usize = 8;
/// How many frames one round takes from the FIFO (64 bytes hold at most 21).
const RX_PER_ROUND: usize = 32;
/// Polls of the mode register when entering or leaving reset mode.
const RESET_POLLS: usize = 100;

/// The driver, with `RX`/`TX` frames of queue.
pub struct Sja1000<R: Registers, const RX: usize, const TX: usize> {
    regs: R,
    config: Option<Config>,
    rx: Deque<CanFrame, RX>,
    tx: Deque<CanFrame, TX>,
    in_flight: Option<CanFrame>,
    state: ErrorState,
    overrun_pending: bool,
    stats: Stats,
}

impl<R: Registers, const RX: usize, const TX: usize> Sja1000<R, RX, TX> {
    /// Wraps the registers; call [`Sja1000::init`] next.
    pub fn new(regs: R) -> Self {
        Sja1000 {
            regs,
            config: None,
            rx: Deque::new(),
            tx: Deque::new(),
            in_flight: None,
            state: ErrorState::Active,
            overrun_pending: false,
            stats: Stats::default(),
        }
    }

    /// The register access (for the PD's interrupt acknowledgement, tests).
    pub fn registers(&mut self) -> &mut R {
        &mut self.regs
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Current error state.
    pub fn state(&self) -> ErrorState {
        self.state
    }

    /// Frames waiting to be sent (queued and in flight).
    pub fn tx_pending(&self) -> usize {
        self.tx.len() + usize::from(self.in_flight.is_some())
    }

    fn mode_bits(&self) -> u8 {
        let c = self.config;
        let afm = if c.is_some_and(|c| c.filter.single_mode()) {
            MOD_AFM
        } else {
            0
        };
        let lom = if c.is_some_and(|c| c.listen_only) {
            MOD_LOM
        } else {
            0
        };
        afm | lom
    }

    fn set_reset(&mut self, on: bool) -> Result<(), Error> {
        let v = self.mode_bits() | if on { MOD_RM } else { 0 };
        for _ in 0..RESET_POLLS {
            self.regs.write(MOD, v);
            if (self.regs.read(MOD) & MOD_RM != 0) == on {
                return Ok(());
            }
        }
        Err(Error::ResetTimeout)
    }

    /// Puts the chip in PeliCAN mode, programs timing and filter, enables
    /// interrupts and starts it.
    pub fn init(&mut self, config: Config) -> Result<(), Error> {
        self.config = Some(config);
        // Reset mode first (bit 0 of register 0 in both register maps):
        // CDR may only be written in reset mode. Then PeliCAN mode, in
        // which the rest of the map below applies. CBP bypasses the input
        // comparator, as Kvaser boards wire it.
        self.regs.write(MOD, MOD_RM);
        self.regs.write(CDR, CDR_PELICAN | CDR_CBP);
        self.set_reset(true)?;
        self.regs.write(IER, 0);
        let (acr, amr) = config.filter.registers();
        for i in 0..4u8 {
            self.regs.write(ACR0 + i, acr[usize::from(i)]);
            self.regs.write(AMR0 + i, amr[usize::from(i)]);
        }
        self.regs.write(BTR0, config.timing.btr0());
        self.regs.write(BTR1, config.timing.btr1());
        self.regs.write(OCR, OCR_NORMAL_PUSHPULL);
        self.regs.write(TXERR, 0);
        self.regs.write(RXERR, 0);
        self.set_reset(false)?;
        // Reading IR clears stale interrupts from before init.
        let _ = self.regs.read(IR);
        self.regs.write(IER, IER_ALL);
        self.state = ErrorState::Active;
        self.refresh_state();
        Ok(())
    }

    /// Services the chip: call on its interrupt (or periodically to poll).
    pub fn handle_irq(&mut self) -> IrqSummary {
        let mut sum = IrqSummary::default();
        for _ in 0..IRQ_ROUNDS {
            let ir = self.regs.read(IR);
            if ir == 0 {
                break;
            }
            if ir & IR_RI != 0 {
                sum.received += self.drain_rx();
            }
            if ir & IR_DOI != 0 {
                self.stats.fifo_overruns += 1;
                self.overrun_pending = true;
                self.regs.write(CMR, CMR_CDO);
            }
            if ir & IR_ALI != 0 {
                let _ = self.regs.read(ALC);
                self.stats.arbitration_lost += 1;
            }
            if ir & IR_BEI != 0 {
                let _ = self.regs.read(ECC);
                self.stats.bus_errors += 1;
            }
            if ir & (IR_EI | IR_EPI) != 0 {
                let before = self.state;
                self.refresh_state();
                sum.state_changed |= before != self.state;
            }
            if ir & IR_TI != 0 && self.in_flight.is_some() {
                let sr = self.regs.read(SR);
                if sr & SR_TCS != 0 {
                    self.stats.sent += 1;
                    sum.sent += 1;
                    self.in_flight = None;
                } else if let Some(f) = self.in_flight.take() {
                    // Aborted: send it again first.
                    let _ = self.tx.push_front(f);
                }
            }
            self.kick();
        }
        sum
    }

    fn drain_rx(&mut self) -> u16 {
        let mut n = 0;
        for _ in 0..RX_PER_ROUND {
            if self.regs.read(SR) & SR_RBS == 0 {
                break;
            }
            let f = self.read_frame();
            self.regs.write(CMR, CMR_RRB);
            if self.rx.push_back(f).is_err() {
                self.stats.queue_drops += 1;
            } else {
                self.stats.received += 1;
                n += 1;
            }
        }
        n
    }

    fn read_frame(&mut self) -> CanFrame {
        let info = self.regs.read(FRAME_INFO);
        let extended = info & FI_FF != 0;
        let remote = info & FI_RTR != 0;
        let dlc = info & 0x0F;
        let (id, data_at) = if extended {
            let b = [
                self.regs.read(17),
                self.regs.read(18),
                self.regs.read(19),
                self.regs.read(20),
            ];
            (u32::from_be_bytes(b) >> 3, 21)
        } else {
            let b = [self.regs.read(17), self.regs.read(18)];
            (u32::from(u16::from_be_bytes(b) >> 5), 19)
        };
        let mut data = [0u8; 8];
        let len = if remote { 0 } else { dlc.min(8) };
        for i in 0..len {
            data[usize::from(i)] = self.regs.read(data_at + i);
        }
        CanFrame::from_parts(id, extended, remote, dlc.min(8), data)
    }

    fn write_frame(&mut self, f: &CanFrame) {
        let info = if f.extended { FI_FF } else { 0 } | if f.remote { FI_RTR } else { 0 } | f.dlc;
        self.regs.write(FRAME_INFO, info);
        let data_at = if f.extended {
            for (i, b) in (f.raw_id << 3).to_be_bytes().iter().enumerate() {
                self.regs.write(17 + i as u8, *b);
            }
            21
        } else {
            let b = ((f.raw_id as u16) << 5).to_be_bytes();
            self.regs.write(17, b[0]);
            self.regs.write(18, b[1]);
            19
        };
        if !f.remote {
            for i in 0..f.dlc.min(8) {
                self.regs.write(data_at + i, f.data[usize::from(i)]);
            }
        }
    }

    /// Starts the next transmission if the chip is free.
    fn kick(&mut self) {
        if self.in_flight.is_some()
            || self.state == ErrorState::BusOff
            || self.config.is_some_and(|c| c.listen_only)
        {
            return;
        }
        if self.regs.read(SR) & SR_TBS == 0 {
            return;
        }
        if let Some(f) = self.tx.pop_front() {
            self.write_frame(&f);
            self.in_flight = Some(f);
            self.regs.write(CMR, CMR_TR);
        }
    }

    /// Derives the error state from the status register and counters, and
    /// starts bus-off recovery when configured.
    fn refresh_state(&mut self) {
        let sr = self.regs.read(SR);
        let new = if sr & SR_BS != 0 {
            ErrorState::BusOff
        } else {
            let worst = self.regs.read(TXERR).max(self.regs.read(RXERR));
            if worst >= 128 {
                ErrorState::Passive
            } else if sr & SR_ES != 0 {
                ErrorState::Warning
            } else {
                ErrorState::Active
            }
        };
        if new == ErrorState::BusOff && self.state != ErrorState::BusOff {
            self.stats.bus_off += 1;
            // The transmission was abandoned; keep the frame for later.
            if let Some(f) = self.in_flight.take() {
                if self.tx.push_front(f).is_err() {
                    self.stats.queue_drops += 1;
                }
            }
            if self.config.is_some_and(|c| c.auto_recover) {
                // The chip set reset mode; clearing it starts the
                // 128 x 11 recessive-bit recovery sequence.
                let _ = self.set_reset(false);
            }
        }
        self.state = new;
    }

    /// Starts bus-off recovery by hand (when `auto_recover` is off).
    pub fn recover(&mut self) -> Result<(), Error> {
        if self.state != ErrorState::BusOff {
            return Ok(());
        }
        self.set_reset(false)
    }
}

impl<R: Registers, const RX: usize, const TX: usize> embedded_can::nb::Can for Sja1000<R, RX, TX> {
    type Frame = CanFrame;
    type Error = Error;

    /// Queues a frame; `WouldBlock` when the queue is full. Frames queued
    /// while bus-off go out after recovery.
    fn transmit(&mut self, frame: &CanFrame) -> nb::Result<Option<CanFrame>, Error> {
        if self.tx.push_back(*frame).is_err() {
            return Err(nb::Error::WouldBlock);
        }
        self.kick();
        Ok(None)
    }

    /// The next received frame; reports a FIFO overrun once, before the
    /// frames that follow it.
    fn receive(&mut self) -> nb::Result<CanFrame, Error> {
        if self.overrun_pending {
            self.overrun_pending = false;
            return Err(nb::Error::Other(Error::Overrun));
        }
        self.rx.pop_front().ok_or(nb::Error::WouldBlock)
    }
}
