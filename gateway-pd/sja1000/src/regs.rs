//! PeliCAN register map and bits (SJA1000 datasheet, section 6.4).

/// Mode.
pub const MOD: u8 = 0;
/// Command (write only).
pub const CMR: u8 = 1;
/// Status.
pub const SR: u8 = 2;
/// Interrupt (reading clears all but RI).
pub const IR: u8 = 3;
/// Interrupt enable.
pub const IER: u8 = 4;
/// Bus timing 0 (reset mode only).
pub const BTR0: u8 = 6;
/// Bus timing 1 (reset mode only).
pub const BTR1: u8 = 7;
/// Output control (reset mode only).
pub const OCR: u8 = 8;
/// Arbitration lost capture (reading releases it).
pub const ALC: u8 = 11;
/// Error code capture (reading releases it).
pub const ECC: u8 = 12;
/// Error warning limit.
pub const EWLR: u8 = 13;
/// Receive error counter.
pub const RXERR: u8 = 14;
/// Transmit error counter.
pub const TXERR: u8 = 15;
/// Frame information (operating mode: TX buffer on write, RX window on read).
pub const FRAME_INFO: u8 = 16;
/// Acceptance code 0 (reset mode).
pub const ACR0: u8 = 16;
/// Acceptance mask 0 (reset mode).
pub const AMR0: u8 = 20;
/// Receive message counter.
pub const RMC: u8 = 29;
/// Receive buffer start address.
pub const RBSA: u8 = 30;
/// Clock divider.
pub const CDR: u8 = 31;

/// MOD: reset mode.
pub const MOD_RM: u8 = 0x01;
/// MOD: listen only.
pub const MOD_LOM: u8 = 0x02;
/// MOD: self test.
pub const MOD_STM: u8 = 0x04;
/// MOD: single acceptance filter.
pub const MOD_AFM: u8 = 0x08;

/// CMR: transmission request.
pub const CMR_TR: u8 = 0x01;
/// CMR: abort transmission.
pub const CMR_AT: u8 = 0x02;
/// CMR: release receive buffer.
pub const CMR_RRB: u8 = 0x04;
/// CMR: clear data overrun.
pub const CMR_CDO: u8 = 0x08;

/// SR: receive buffer status (a frame is waiting).
pub const SR_RBS: u8 = 0x01;
/// SR: data overrun status.
pub const SR_DOS: u8 = 0x02;
/// SR: transmit buffer status (released: may be written).
pub const SR_TBS: u8 = 0x04;
/// SR: transmission complete status.
pub const SR_TCS: u8 = 0x08;
/// SR: receiving.
pub const SR_RS: u8 = 0x10;
/// SR: transmitting.
pub const SR_TS: u8 = 0x20;
/// SR: error status (a counter reached the warning limit).
pub const SR_ES: u8 = 0x40;
/// SR: bus status (bus-off).
pub const SR_BS: u8 = 0x80;

/// IR: receive.
pub const IR_RI: u8 = 0x01;
/// IR: transmit.
pub const IR_TI: u8 = 0x02;
/// IR: error warning (ES or BS changed).
pub const IR_EI: u8 = 0x04;
/// IR: data overrun.
pub const IR_DOI: u8 = 0x08;
/// IR: wake-up.
pub const IR_WUI: u8 = 0x10;
/// IR: error passive (entered or left).
pub const IR_EPI: u8 = 0x20;
/// IR: arbitration lost.
pub const IR_ALI: u8 = 0x40;
/// IR: bus error.
pub const IR_BEI: u8 = 0x80;
/// IER: everything but wake-up.
pub const IER_ALL: u8 = !IR_WUI;

/// CDR: PeliCAN mode.
pub const CDR_PELICAN: u8 = 0x80;
/// CDR: comparator bypass.
pub const CDR_CBP: u8 = 0x40;
/// OCR: normal output mode, TX0 push-pull.
pub const OCR_NORMAL_PUSHPULL: u8 = 0x1A;

/// Frame info: extended frame format.
pub const FI_FF: u8 = 0x80;
/// Frame info: remote frame.
pub const FI_RTR: u8 = 0x40;
