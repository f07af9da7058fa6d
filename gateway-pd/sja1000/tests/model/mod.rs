//! A register-level model of the SJA1000 in PeliCAN mode, written from the
//! datasheet (NXP SJA1000 Stand-alone CAN controller, rev. 3): reset and
//! operating mode, the 64-byte receive FIFO with overrun, the transmit
//! buffer, the single acceptance filter, the interrupt register (read
//! clears all but RI), and fault confinement: TEC/REC, error warning (96),
//! error passive (128), bus-off (TEC > 255: reset mode set, TEC = 127),
//! recovery after 128 x 11 recessive bits once reset mode is left.
//!
//! The test drives the bus side: frames arriving, transmissions that fail,
//! receive errors, recessive bits. The model records driver mistakes
//! (writing reset-mode registers while operating, writing the transmit
//! buffer while it is busy, touching PeliCAN registers in BasicCAN mode)
//! in `violations`, which tests assert is empty.

#![allow(dead_code)] // each test binary uses a subset

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use sja1000::regs::*;
use sja1000::Registers;

/// A frame on the model's bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusFrame {
    pub id: u32,
    pub extended: bool,
    pub remote: bool,
    pub dlc: u8,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub struct Chip {
    pub mode: u8,
    pub cdr: u8,
    pub sr: u8,
    pub ir: u8,
    pub ier: u8,
    pub btr: [u8; 2],
    pub ocr: u8,
    pub acr: [u8; 4],
    pub amr: [u8; 4],
    pub tec: u16,
    pub rec: u16,
    pub tx_buf: [u8; 13],
    fifo: VecDeque<Vec<u8>>,
    fifo_bytes: usize,
    /// Transmission requested and not yet completed.
    pending_tx: bool,
    /// The next `n` transmission attempts fail (no acknowledgement).
    pub fail_tx: u32,
    /// Recessive bits seen since bus-off recovery started.
    recessive: u32,
    recovering: bool,
    pub sent: Vec<BusFrame>,
    pub violations: Vec<String>,
    pub ecc: u8,
    pub alc: u8,
    /// When true, IR reads return RI forever (a stuck chip).
    pub stuck_irq: bool,
    pub ir_reads: u64,
    passive: bool,
}

impl Chip {
    /// State after hardware reset: reset mode, BasicCAN, TBS set.
    pub fn new() -> Chip {
        Chip {
            mode: MOD_RM,
            sr: SR_TBS | SR_TCS,
            amr: [0xFF; 4],
            ..Default::default()
        }
    }

    fn reset_mode(&self) -> bool {
        self.mode & MOD_RM != 0
    }

    pub fn irq_line(&self) -> bool {
        self.ir & self.ier != 0
    }

    fn update_error_state(&mut self) {
        let old_es = self.sr & SR_ES != 0;
        let old_bs = self.sr & SR_BS != 0;
        let old_passive = self.passive;
        if self.tec > 255 {
            // Bus-off: reset mode, counters frozen, TEC = 127 (datasheet 6.4.10).
            self.sr |= SR_BS;
            self.mode |= MOD_RM;
            self.tec = 127;
            self.pending_tx = false;
            self.sr |= SR_TBS;
            self.sr &= !SR_TCS;
        }
        let es = self.tec >= 96 || self.rec >= 96;
        if es {
            self.sr |= SR_ES;
        } else {
            self.sr &= !SR_ES;
        }
        let bs = self.sr & SR_BS != 0;
        self.passive = !bs && (self.tec >= 128 || self.rec >= 128);
        if es != old_es || bs != old_bs {
            self.ir |= IR_EI;
        }
        if self.passive != old_passive {
            self.ir |= IR_EPI;
        }
    }

    /// The bus delivers a frame to this node.
    pub fn deliver(&mut self, f: &BusFrame) {
        if self.cdr & CDR_PELICAN == 0 || self.reset_mode() {
            return;
        }
        if !self.accepts(f) {
            return;
        }
        let mut bytes =
            vec![if f.extended { 0x80 } else { 0 } | if f.remote { 0x40 } else { 0 } | f.dlc];
        if f.extended {
            bytes.extend_from_slice(&(f.id << 3).to_be_bytes());
        } else {
            bytes.extend_from_slice(&((f.id as u16) << 5).to_be_bytes());
        }
        if !f.remote {
            bytes.extend_from_slice(&f.data[..usize::from(f.dlc.min(8))]);
        }
        // Successful reception decrements REC (datasheet: by 1 when 1..127).
        if self.rec > 0 && self.rec < 128 {
            self.rec -= 1;
        } else if self.rec >= 128 {
            self.rec = 119;
        }
        if self.fifo_bytes + bytes.len() > 64 {
            self.sr |= SR_DOS;
            self.ir |= IR_DOI;
        } else {
            self.fifo_bytes += bytes.len();
            self.fifo.push_back(bytes);
            self.sr |= SR_RBS;
            self.ir |= IR_RI;
        }
        self.update_error_state();
    }

    /// Acceptance filtering (datasheet 6.4.15): AMR bit 1 = don't care.
    fn accepts(&self, f: &BusFrame) -> bool {
        let ok = |v: u8, i: usize, bits: u8| (v ^ self.acr[i]) & !self.amr[i] & bits == 0;
        let d0 = f.data.first().copied().unwrap_or(0);
        let d1 = f.data.get(1).copied().unwrap_or(0);
        if self.mode & MOD_AFM != 0 {
            // Single filter: one 32-bit comparison.
            let v: [u8; 4] = if f.extended {
                ((f.id << 3) | (u32::from(f.remote) << 2)).to_be_bytes()
            } else {
                let id = ((f.id as u16) << 5) | (u16::from(f.remote) << 4);
                let b = id.to_be_bytes();
                [b[0], b[1], d0, d1]
            };
            (0..4).all(|i| ok(v[i], i, 0xFF))
        } else if f.extended {
            // Dual filter, extended: each filter sees ID.28-13 only.
            let b = ((f.id >> 13) as u16).to_be_bytes();
            (ok(b[0], 0, 0xFF) && ok(b[1], 1, 0xFF)) || (ok(b[0], 2, 0xFF) && ok(b[1], 3, 0xFF))
        } else {
            // Dual filter, standard: filter 1 = ACR0, ACR1[7:4] (ID.2-0,
            // RTR), data byte 1 in ACR1[3:0] (high nibble) and ACR3[3:0]
            // (low nibble); filter 2 = ACR2, ACR3[7:4].
            let id = ((f.id as u16) << 5) | (u16::from(f.remote) << 4);
            let b = id.to_be_bytes();
            let f1 = ok(b[0], 0, 0xFF)
                && ok(b[1], 1, 0xF0)
                && ok(d0 >> 4, 1, 0x0F)
                && ok(d0 & 0x0F, 3, 0x0F);
            let f2 = ok(b[0], 2, 0xFF) && ok(b[1], 3, 0xF0);
            f1 || f2
        }
    }

    /// A receive error on the bus (REC += 1).
    pub fn rx_error(&mut self, n: u16) {
        if self.sr & SR_BS != 0 {
            return;
        }
        self.rec = (self.rec + n).min(255);
        self.ecc = 0x48;
        self.ir |= IR_BEI;
        self.update_error_state();
    }

    /// One transmission attempt of the pending frame.
    pub fn bus_tick(&mut self) {
        if !self.pending_tx || self.reset_mode() {
            return;
        }
        if self.fail_tx > 0 {
            self.fail_tx -= 1;
            self.tec += 8;
            self.ecc = 0x19;
            self.ir |= IR_BEI;
            self.update_error_state();
            return;
        }
        let b = &self.tx_buf;
        let extended = b[0] & 0x80 != 0;
        let remote = b[0] & 0x40 != 0;
        let dlc = b[0] & 0x0F;
        let (id, at) = if extended {
            (u32::from_be_bytes([b[1], b[2], b[3], b[4]]) >> 3, 5)
        } else {
            (u32::from(u16::from_be_bytes([b[1], b[2]]) >> 5), 3)
        };
        let data = if remote {
            vec![]
        } else {
            b[at..at + usize::from(dlc.min(8))].to_vec()
        };
        self.sent.push(BusFrame {
            id,
            extended,
            remote,
            dlc,
            data,
        });
        self.pending_tx = false;
        self.sr |= SR_TBS | SR_TCS;
        self.ir |= IR_TI;
        self.tec = self.tec.saturating_sub(1);
        self.update_error_state();
    }

    /// The bus stays recessive for `n` bits (bus-off recovery counts them).
    pub fn recessive_bits(&mut self, n: u32) {
        if self.recovering {
            self.recessive += n;
            if self.recessive >= 128 * 11 {
                self.recovering = false;
                self.sr &= !SR_BS;
                self.tec = 0;
                self.rec = 0;
                self.update_error_state();
                self.ir |= IR_EI;
            }
        }
    }
}

// `passive` is kept apart from the register image: the chip has no
// status bit for it, only the EPI interrupt on each change.
impl Chip {
    fn read(&mut self, reg: u8) -> u8 {
        match reg {
            MOD => self.mode,
            CMR => 0xFF,
            SR => self.sr,
            IR => {
                self.ir_reads += 1;
                if self.stuck_irq {
                    return IR_RI;
                }
                let v = self.ir;
                self.ir = if self.fifo.is_empty() { 0 } else { IR_RI };
                v
            }
            IER => self.ier,
            BTR0 => self.btr[0],
            BTR1 => self.btr[1],
            OCR => self.ocr,
            ALC => std::mem::take(&mut self.alc),
            ECC => std::mem::take(&mut self.ecc),
            RXERR => self.rec.min(255) as u8,
            TXERR => self.tec.min(255) as u8,
            16..=28 if self.reset_mode() => match reg {
                16..=19 => self.acr[usize::from(reg - 16)],
                20..=23 => self.amr[usize::from(reg - 20)],
                _ => 0,
            },
            16..=28 => self
                .fifo
                .front()
                .and_then(|f| f.get(usize::from(reg - 16)).copied())
                .unwrap_or(0),
            RMC => self.fifo.len() as u8,
            CDR => self.cdr,
            _ => 0,
        }
    }

    fn write(&mut self, reg: u8, v: u8) {
        if self.cdr & CDR_PELICAN == 0 && reg != CDR && reg != MOD {
            self.violations
                .push(format!("write {reg} = {v:#x} in BasicCAN mode"));
        }
        match reg {
            MOD => {
                let was_reset = self.reset_mode();
                if was_reset {
                    self.mode = v & 0x1F;
                } else {
                    // Only RM (and sleep) may change in operating mode.
                    self.mode = (self.mode & !MOD_RM) | (v & MOD_RM);
                }
                if was_reset && !self.reset_mode() && self.sr & SR_BS != 0 {
                    self.recovering = true;
                    self.recessive = 0;
                }
                if !was_reset && self.reset_mode() {
                    self.pending_tx = false;
                    self.sr |= SR_TBS;
                }
            }
            CMR => {
                if self.reset_mode() {
                    return;
                }
                if v & CMR_TR != 0 {
                    if self.mode & MOD_LOM != 0 {
                        self.violations
                            .push("transmission requested in listen-only mode".into());
                    } else if self.sr & SR_TBS == 0 {
                        self.violations
                            .push("transmission requested while the buffer is busy".into());
                    } else {
                        self.sr &= !(SR_TBS | SR_TCS);
                        self.pending_tx = true;
                        self.bus_tick();
                    }
                }
                if v & CMR_AT != 0 && self.pending_tx {
                    self.pending_tx = false;
                    self.sr |= SR_TBS;
                    self.ir |= IR_TI;
                }
                if v & CMR_RRB != 0 {
                    if let Some(f) = self.fifo.pop_front() {
                        self.fifo_bytes -= f.len();
                    }
                    if self.fifo.is_empty() {
                        self.sr &= !SR_RBS;
                    }
                }
                if v & CMR_CDO != 0 {
                    self.sr &= !SR_DOS;
                }
            }
            IER => self.ier = v,
            BTR0 | BTR1 | OCR => {
                if !self.reset_mode() {
                    self.violations
                        .push(format!("write {reg} in operating mode"));
                    return;
                }
                match reg {
                    BTR0 => self.btr[0] = v,
                    BTR1 => self.btr[1] = v,
                    _ => self.ocr = v,
                }
            }
            // The counters are writable in reset mode only.
            RXERR if self.reset_mode() => self.rec = u16::from(v),
            TXERR if self.reset_mode() => self.tec = u16::from(v),
            16..=28 => {
                if self.reset_mode() {
                    match reg {
                        16..=19 => self.acr[usize::from(reg - 16)] = v,
                        20..=23 => self.amr[usize::from(reg - 20)] = v,
                        _ => {}
                    }
                } else if self.sr & SR_TBS == 0 {
                    self.violations
                        .push(format!("write to TX buffer {reg} while busy"));
                } else {
                    self.tx_buf[usize::from(reg - 16)] = v;
                }
            }
            CDR => {
                if !self.reset_mode() {
                    self.violations.push("CDR written in operating mode".into());
                    return;
                }
                self.cdr = v;
            }
            _ => {}
        }
    }
}

/// The model shared between the driver (as its registers) and the test.
#[derive(Clone)]
pub struct Port(pub Rc<RefCell<Chip>>);

impl Registers for Port {
    fn read(&mut self, reg: u8) -> u8 {
        self.0.borrow_mut().read(reg)
    }
    fn write(&mut self, reg: u8, value: u8) {
        self.0.borrow_mut().write(reg, value)
    }
}
