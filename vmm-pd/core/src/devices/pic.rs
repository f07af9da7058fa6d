//! The i8259A programmable interrupt controller pair of a PC: master at
//! 0x20/0x21, slave at 0xa0/0xa1 cascaded on the master's IR2, and the
//! EISA edge/level control registers (ELCR) at 0x4d0/0x4d1.
//!
//! Design rules: register behaviour follows the 8259A datasheet — ICW1..4
//! initialisation, OCW1 mask, OCW2 EOI/rotation commands, OCW3 register
//! reads, poll and special mask mode, fully nested priority with rotation,
//! auto-EOI and special fully nested mode. An interrupt request must still be
//! asserted when the CPU acknowledges it (in both trigger modes, as on the
//! chip): a request that went away is answered with the chip's spurious
//! vector (IR7) and no in-service bit, which Linux detects and counts.
//!
//! Not modelled: MCS-80/85 mode (ICW4 bit 0 = 0; vectors are formed as in
//! 8086 mode), buffered mode (ICW4 bits 2-3, a wiring matter), and slaves on
//! any input other than IR2 (the PC wires exactly one). The slave answers
//! the master's cascade acknowledge whatever identity ICW3 gave it.

/// Master command port (ICW1, OCW2, OCW3; reads IRR/ISR/poll).
pub const MASTER_CMD: u16 = 0x20;
/// Master data port (ICW2-4, OCW1 = IMR).
pub const MASTER_DATA: u16 = 0x21;
/// Slave command port.
pub const SLAVE_CMD: u16 = 0xa0;
/// Slave data port.
pub const SLAVE_DATA: u16 = 0xa1;
/// ELCR for IRQ 0-7 (bits 0-2 are fixed to edge).
pub const ELCR_MASTER: u16 = 0x4d0;
/// ELCR for IRQ 8-15 (IRQ 8 and 13 are fixed to edge).
pub const ELCR_SLAVE: u16 = 0x4d1;

/// The master input the slave's INT output drives.
const CASCADE_IR: u8 = 2;

/// Where a chip is in its initialisation sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Init {
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// A snapshot of one chip's registers, for the VMM's reports and for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChipState {
    /// Interrupt request register.
    pub irr: u8,
    /// In-service register.
    pub isr: u8,
    /// Interrupt mask register (OCW1).
    pub imr: u8,
    /// Vector of IR0 (ICW2 with the low three bits clear).
    pub vector_base: u8,
    /// Edge/level control (ELCR, or all ones when ICW1 chose level mode).
    pub level: u8,
    /// Whether the chip is between ICW1 and its last ICW.
    pub initialising: bool,
}

/// One 8259A.
#[derive(Clone, Debug)]
struct Chip {
    irr: u8,
    isr: u8,
    imr: u8,
    /// Current level of each IR input.
    lines: u8,
    elcr: u8,
    elcr_writable: u8,
    /// ICW1 LTIM: every input level-triggered.
    ltim: bool,
    vector_base: u8,
    init: Init,
    single: bool,
    needs_icw4: bool,
    icw3: u8,
    auto_eoi: bool,
    rotate_on_aeoi: bool,
    sfnm: bool,
    /// The IR with the lowest priority; the next one round has the highest.
    lowest: u8,
    read_isr: bool,
    poll: bool,
    special_mask: bool,
    master: bool,
}

impl Chip {
    fn new(master: bool, vector_base: u8, elcr_writable: u8) -> Self {
        Chip {
            irr: 0,
            isr: 0,
            imr: 0xff,
            lines: 0,
            elcr: 0,
            elcr_writable,
            ltim: false,
            vector_base,
            init: Init::Ready,
            single: false,
            needs_icw4: true,
            icw3: if master { 1 << CASCADE_IR } else { CASCADE_IR },
            auto_eoi: false,
            rotate_on_aeoi: false,
            sfnm: false,
            lowest: 7,
            read_isr: false,
            poll: false,
            special_mask: false,
            master,
        }
    }

    fn level_mask(&self) -> u8 {
        if self.ltim {
            0xff
        } else {
            self.elcr
        }
    }

    /// Inputs that lead to a slave (only IR2 of the master can).
    fn cascade_mask(&self) -> u8 {
        if self.master && !self.single {
            self.icw3 & (1 << CASCADE_IR)
        } else {
            0
        }
    }

    /// Priority rank of `ir`: 0 is the highest.
    fn rank(&self, ir: u8) -> u8 {
        ir.wrapping_sub(self.lowest.wrapping_add(1)) & 7
    }

    /// The highest-priority input set in `bits`.
    fn highest(&self, bits: u8) -> Option<u8> {
        (0..8u8)
            .map(|i| (self.lowest.wrapping_add(1).wrapping_add(i)) & 7)
            .find(|ir| bits & (1 << ir) != 0)
    }

    fn set_line(&mut self, ir: u8, high: bool) {
        let bit = 1u8 << (ir & 7);
        if high {
            let rising = self.lines & bit == 0;
            if rising || self.level_mask() & bit != 0 {
                self.irr |= bit;
            }
            self.lines |= bit;
        } else {
            // The request latch is gated by the input level on the chip, so
            // a request that goes away before INTA is lost in either mode.
            self.lines &= !bit;
            self.irr &= !bit;
        }
    }

    /// The IR whose request the chip would present on INT now.
    fn pending_ir(&self) -> Option<u8> {
        if self.init != Init::Ready {
            return None;
        }
        let req = self.highest(self.irr & !self.imr)?;
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.sfnm && self.cascade_mask() & (1 << req) != 0 {
            // Special fully nested mode: a higher-priority request from the
            // slave gets through while the slave's IR is in service.
            in_service &= !(1 << req);
        }
        match self.highest(in_service) {
            Some(s) if self.rank(s) <= self.rank(req) => None,
            _ => Some(req),
        }
    }

    /// The INTA cycle for `ir`: IRR to ISR (or straight through in AEOI).
    fn ack(&mut self, ir: u8) {
        let bit = 1u8 << ir;
        if self.level_mask() & bit == 0 {
            self.irr &= !bit;
        }
        if self.auto_eoi {
            if self.rotate_on_aeoi {
                self.lowest = ir;
            }
        } else {
            self.isr |= bit;
        }
    }

    fn read(&mut self, data: bool) -> u8 {
        if self.poll {
            // The read after a poll command is the acknowledge.
            self.poll = false;
            return match self.pending_ir() {
                Some(ir) => {
                    self.ack(ir);
                    0x80 | ir
                }
                None => 0,
            };
        }
        if data {
            self.imr
        } else if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    fn write(&mut self, data: bool, value: u8) {
        if !data && value & 0x10 != 0 {
            self.icw1(value);
        } else if !data && value & 0x08 != 0 {
            self.ocw3(value);
        } else if !data {
            self.ocw2(value);
        } else {
            match self.init {
                Init::Icw2 => {
                    self.vector_base = value & 0xf8;
                    self.init = match (self.single, self.needs_icw4) {
                        (false, _) => Init::Icw3,
                        (true, true) => Init::Icw4,
                        (true, false) => Init::Ready,
                    };
                }
                Init::Icw3 => {
                    self.icw3 = value;
                    self.init = if self.needs_icw4 {
                        Init::Icw4
                    } else {
                        Init::Ready
                    };
                }
                Init::Icw4 => {
                    self.auto_eoi = value & 0x02 != 0;
                    self.sfnm = value & 0x10 != 0;
                    self.init = Init::Ready;
                }
                Init::Ready => self.imr = value,
            }
        }
    }

    fn icw1(&mut self, value: u8) {
        self.ltim = value & 0x08 != 0;
        self.single = value & 0x02 != 0;
        self.needs_icw4 = value & 0x01 != 0;
        self.init = Init::Icw2;
        self.imr = 0;
        self.isr = 0;
        // The edge-sense latches are reset: an edge input needs a new
        // low-to-high transition; level inputs keep requesting.
        self.irr = self.lines & self.level_mask();
        self.lowest = 7;
        self.read_isr = false;
        self.poll = false;
        self.special_mask = false;
        // Without ICW4 all its functions are zero.
        self.auto_eoi = false;
        self.sfnm = false;
        self.rotate_on_aeoi = false;
    }

    fn ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Non-specific EOI, optionally rotating.
            0b001 | 0b101 => {
                let mut in_service = self.isr;
                if self.special_mask {
                    in_service &= !self.imr;
                }
                if let Some(ir) = self.highest(in_service) {
                    self.isr &= !(1 << ir);
                    if value >> 5 == 0b101 {
                        self.lowest = ir;
                    }
                }
            }
            // Specific EOI, optionally rotating.
            0b011 => self.isr &= !(1 << level),
            0b111 => {
                self.isr &= !(1 << level);
                self.lowest = level;
            }
            0b100 => self.rotate_on_aeoi = true,
            0b000 => self.rotate_on_aeoi = false,
            0b110 => self.lowest = level,
            _ => {} // 0b010: no operation.
        }
    }

    fn ocw3(&mut self, value: u8) {
        if value & 0x40 != 0 {
            self.special_mask = value & 0x20 != 0;
        }
        if value & 0x02 != 0 {
            self.read_isr = value & 0x01 != 0;
        }
        self.poll = value & 0x04 != 0;
    }

    fn write_elcr(&mut self, value: u8) {
        self.elcr = value & self.elcr_writable;
        // Inputs now level-triggered request as long as they are high.
        let level = self.level_mask();
        self.irr = (self.irr & !level) | (self.lines & level);
    }

    fn state(&self) -> ChipState {
        ChipState {
            irr: self.irr,
            isr: self.isr,
            imr: self.imr,
            vector_base: self.vector_base,
            level: self.level_mask(),
            initialising: self.init != Init::Ready,
        }
    }
}

/// The cascaded master/slave pair of a PC, IRQ 0-15.
#[derive(Clone, Debug)]
pub struct PicPair {
    master: Chip,
    slave: Chip,
}

impl Default for PicPair {
    fn default() -> Self {
        Self::new()
    }
}

impl PicPair {
    /// Both chips after power-on: all inputs masked, vectors 0x08 and 0x70
    /// as a PC BIOS would leave them (Linux reprograms both).
    pub fn new() -> Self {
        PicPair {
            master: Chip::new(true, 0x08, 0xf8),
            slave: Chip::new(false, 0x70, 0xde),
        }
    }

    /// Sets the level of ISA interrupt line `irq` (0-15). IRQ 2 is the
    /// cascade input and is not an external line; it and numbers above 15
    /// are ignored.
    pub fn set_irq(&mut self, irq: u8, high: bool) {
        match irq {
            0 | 1 | 3..=7 => self.master.set_line(irq, high),
            8..=15 => self.slave.set_line(irq - 8, high),
            _ => {}
        }
        self.update_cascade();
    }

    /// Raises ISA interrupt line `irq` (see [`PicPair::set_irq`]).
    pub fn raise_irq(&mut self, irq: u8) {
        self.set_irq(irq, true);
    }

    /// Lowers ISA interrupt line `irq` (see [`PicPair::set_irq`]).
    pub fn lower_irq(&mut self, irq: u8) {
        self.set_irq(irq, false);
    }

    /// A low-to-high edge on `irq` that leaves the line high: how the PIT's
    /// output is presented (its rising edges are what requests IRQ 0).
    pub fn pulse_irq(&mut self, irq: u8) {
        self.set_irq(irq, false);
        self.set_irq(irq, true);
    }

    /// The slave's INT output drives the master's IR2.
    fn update_cascade(&mut self) {
        let int = self.slave.pending_ir().is_some();
        self.master.set_line(CASCADE_IR, int);
    }

    /// The vector the pair would deliver if the CPU acknowledged now, or
    /// `None` when INTR is not asserted.
    pub fn pending(&self) -> Option<u8> {
        let ir = self.master.pending_ir()?;
        if self.master.cascade_mask() & (1 << ir) != 0 {
            Some(match self.slave.pending_ir() {
                Some(sir) => self.slave.vector_base | sir,
                None => self.slave.vector_base | 7,
            })
        } else {
            Some(self.master.vector_base | ir)
        }
    }

    /// The CPU's interrupt acknowledge cycle: moves the request to in-service
    /// and returns its vector. Without a request (it went away) the answer is
    /// the master's spurious vector (IR7), or the slave's (IR15, with the
    /// master's IR2 in service) when the slave's request went away.
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.master.pending_ir() {
            None => self.master.vector_base | 7,
            Some(ir) => {
                self.master.ack(ir);
                if self.master.cascade_mask() & (1 << ir) != 0 {
                    match self.slave.pending_ir() {
                        Some(sir) => {
                            self.slave.ack(sir);
                            self.slave.vector_base | sir
                        }
                        None => self.slave.vector_base | 7,
                    }
                } else {
                    self.master.vector_base | ir
                }
            }
        };
        self.update_cascade();
        vector
    }

    /// Whether `port` belongs to the pair (PIC or ELCR).
    pub fn owns(port: u16) -> bool {
        matches!(
            port,
            MASTER_CMD | MASTER_DATA | SLAVE_CMD | SLAVE_DATA | ELCR_MASTER | ELCR_SLAVE
        )
    }

    /// A byte read from one of the pair's ports (0xff for any other port).
    pub fn read(&mut self, port: u16) -> u8 {
        let value = match port {
            MASTER_CMD => self.master.read(false),
            MASTER_DATA => self.master.read(true),
            SLAVE_CMD => self.slave.read(false),
            SLAVE_DATA => self.slave.read(true),
            ELCR_MASTER => self.master.elcr,
            ELCR_SLAVE => self.slave.elcr,
            _ => 0xff,
        };
        // A poll read acknowledges, which can change the slave's output.
        self.update_cascade();
        value
    }

    /// A byte write to one of the pair's ports (others are ignored).
    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            MASTER_CMD => self.master.write(false, value),
            MASTER_DATA => self.master.write(true, value),
            SLAVE_CMD => self.slave.write(false, value),
            SLAVE_DATA => self.slave.write(true, value),
            ELCR_MASTER => self.master.write_elcr(value),
            ELCR_SLAVE => self.slave.write_elcr(value),
            _ => {}
        }
        self.update_cascade();
    }

    /// The master's registers.
    pub fn master(&self) -> ChipState {
        self.master.state()
    }

    /// The slave's registers.
    pub fn slave(&self) -> ChipState {
        self.slave.state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's `init_8259A(0)` (arch/x86/kernel/i8259.c): mask all, ICW1
    /// 0x11 (edge, cascade, ICW4), vectors 0x30/0x38, cascade on IR2, 8086
    /// mode without auto-EOI, then restore the masks.
    fn linux_init(pic: &mut PicPair, auto_eoi: bool) {
        pic.write(MASTER_DATA, 0xff);
        pic.write(SLAVE_DATA, 0xff);
        pic.write(MASTER_CMD, 0x11);
        pic.write(MASTER_DATA, 0x30);
        pic.write(MASTER_DATA, 0x04);
        pic.write(MASTER_DATA, if auto_eoi { 0x03 } else { 0x01 });
        pic.write(SLAVE_CMD, 0x11);
        pic.write(SLAVE_DATA, 0x38);
        pic.write(SLAVE_DATA, 0x02);
        pic.write(SLAVE_DATA, 0x01);
        pic.write(MASTER_DATA, 0xfb);
        pic.write(SLAVE_DATA, 0xff);
    }

    #[test]
    fn linux_probe_reads_back_the_mask() {
        // probe_8259A writes 0xff to the slave, 0xfb to the master, and
        // gives up on the PIC unless the master reads back 0xfb.
        let mut pic = PicPair::new();
        pic.write(SLAVE_DATA, 0xff);
        pic.write(MASTER_DATA, 0xfb);
        assert_eq!(pic.read(MASTER_DATA), 0xfb);
        assert_eq!(pic.read(SLAVE_DATA), 0xff);
    }

    #[test]
    fn init_sequence_programs_vectors_and_masks() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        assert_eq!(pic.master().vector_base, 0x30);
        assert_eq!(pic.slave().vector_base, 0x38);
        assert!(!pic.master().initialising && !pic.slave().initialising);
        assert_eq!(pic.read(MASTER_DATA), 0xfb);
        // Masked: nothing pending until the mask is cleared.
        pic.set_irq(0, true);
        assert_eq!(pic.pending(), None);
        pic.write(MASTER_DATA, 0xfa);
        assert_eq!(pic.pending(), Some(0x30));
    }

    #[test]
    fn icw1_during_operation_resets_state() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0x00);
        pic.set_irq(3, true);
        assert_eq!(pic.acknowledge(), 0x33);
        assert_eq!(pic.master().isr, 0x08);
        // ICW1 clears ISR and IMR and the edge latch; ICW1 without IC4
        // skips ICW4, single mode skips ICW3.
        pic.write(MASTER_CMD, 0x12);
        assert!(pic.master().initialising);
        assert_eq!(pic.master().isr, 0);
        assert_eq!(pic.pending(), None, "no interrupts while initialising");
        pic.write(MASTER_DATA, 0x48);
        assert!(
            !pic.master().initialising,
            "single, no ICW4: done after ICW2"
        );
        assert_eq!(pic.master().imr, 0);
        assert_eq!(
            pic.pending(),
            None,
            "line 3 still high but needs a new edge"
        );
        pic.set_irq(3, false);
        pic.set_irq(3, true);
        assert_eq!(pic.pending(), Some(0x4b));
    }

    #[test]
    fn priority_and_nesting() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0);
        pic.write(SLAVE_DATA, 0);
        pic.set_irq(4, true);
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x31, "IR1 beats IR4");
        // IR1 in service blocks IR4 but not IR0.
        assert_eq!(pic.pending(), None);
        pic.pulse_irq(0);
        assert_eq!(pic.acknowledge(), 0x30);
        // Non-specific EOI clears the highest in service (IR0), then IR1.
        pic.write(MASTER_CMD, 0x20);
        assert_eq!(pic.master().isr, 0x02);
        assert_eq!(pic.pending(), None);
        pic.write(MASTER_CMD, 0x20);
        assert_eq!(pic.pending(), Some(0x34));
    }

    #[test]
    fn cascade_delivers_slave_vectors_and_needs_both_eois() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0x00);
        pic.write(SLAVE_DATA, 0x00);
        pic.set_irq(8, true);
        assert_eq!(pic.master().irr & 0x04, 0x04, "slave INT drives IR2");
        pic.set_irq(5, true);
        assert_eq!(pic.acknowledge(), 0x38, "IR2 (slave) beats IR5");
        assert_eq!(pic.master().isr, 0x04);
        assert_eq!(pic.slave().isr, 0x01);
        // Linux's mask_and_ack for a slave IRQ: specific EOI to both chips.
        pic.write(SLAVE_CMD, 0x60);
        pic.write(MASTER_CMD, 0x62);
        assert_eq!(pic.pending(), Some(0x35));
    }

    #[test]
    fn request_withdrawn_before_ack_is_spurious_irq7() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0);
        pic.write(SLAVE_DATA, 0);
        pic.set_irq(4, true);
        assert_eq!(pic.pending(), Some(0x34));
        pic.set_irq(4, false);
        assert_eq!(pic.pending(), None);
        assert_eq!(pic.acknowledge(), 0x37);
        assert_eq!(pic.master().isr, 0, "spurious IR7 sets no ISR bit");
        // Linux's i8259A_irq_real reads the ISR with OCW3 0x0b.
        pic.write(MASTER_CMD, 0x0b);
        assert_eq!(pic.read(MASTER_CMD), 0);
        pic.write(MASTER_CMD, 0x0a);
    }

    #[test]
    fn spurious_irq15_leaves_cascade_in_service() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0);
        pic.write(SLAVE_DATA, 0);
        // The slave's request vanishes between the master's and the slave's
        // INTA pulse, which the atomic acknowledge() cannot interleave: set
        // the master's latched IR2 with nothing behind it on the slave.
        pic.master.irr |= 0x04;
        assert_eq!(pic.pending(), Some(0x3f));
        assert_eq!(pic.acknowledge(), 0x3f);
        assert_eq!(pic.master().isr, 0x04, "IR2 in service until Linux EOIs it");
        assert_eq!(pic.slave().isr, 0, "spurious IR15 sets no slave ISR bit");
    }

    #[test]
    fn ocw3_selects_irr_or_isr() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0xff);
        pic.set_irq(6, true);
        pic.set_irq(3, true);
        assert_eq!(pic.read(MASTER_CMD), 0x48, "IRR by default, masked or not");
        pic.write(MASTER_DATA, 0);
        pic.acknowledge();
        pic.write(MASTER_CMD, 0x0b);
        assert_eq!(pic.read(MASTER_CMD), 0x08);
        assert_eq!(pic.read(MASTER_CMD), 0x08, "the selection sticks");
        pic.write(MASTER_CMD, 0x0a);
        assert_eq!(pic.read(MASTER_CMD), 0x40);
    }

    #[test]
    fn poll_mode_acknowledges_on_read() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0);
        pic.set_irq(5, true);
        pic.write(MASTER_CMD, 0x0c);
        assert_eq!(pic.read(MASTER_CMD), 0x85);
        assert_eq!(pic.master().isr, 0x20);
        pic.write(MASTER_CMD, 0x0c);
        assert_eq!(pic.read(MASTER_CMD), 0x00, "nothing pending");
        assert_eq!(pic.read(MASTER_DATA), 0x00, "next read is IMR again");
    }

    #[test]
    fn specific_rotation_changes_priority() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0);
        // Set priority: IR4 lowest, so IR5 highest.
        pic.write(MASTER_CMD, 0xc4);
        pic.set_irq(1, true);
        pic.set_irq(6, true);
        assert_eq!(pic.acknowledge(), 0x36);
        // Rotate on non-specific EOI: IR6 becomes lowest, IR7 highest, IR1 next.
        pic.write(MASTER_CMD, 0xa0);
        assert_eq!(pic.pending(), Some(0x31));
        pic.set_irq(6, false);
        pic.set_irq(6, true);
        assert_eq!(pic.acknowledge(), 0x31, "IR1 now beats IR6");
    }

    #[test]
    fn auto_eoi_sets_no_isr_and_can_rotate() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, true);
        pic.write(MASTER_DATA, 0);
        pic.set_irq(3, true);
        pic.set_irq(4, true);
        assert_eq!(pic.acknowledge(), 0x33);
        assert_eq!(pic.master().isr, 0);
        assert_eq!(pic.pending(), Some(0x34), "no EOI needed");
        pic.write(MASTER_CMD, 0x80); // rotate in auto-EOI mode
        assert_eq!(pic.acknowledge(), 0x34);
        pic.set_irq(3, false);
        pic.set_irq(3, true);
        pic.set_irq(5, true);
        assert_eq!(pic.acknowledge(), 0x35, "IR4 went lowest: IR5 beats IR3");
    }

    #[test]
    fn level_triggered_via_elcr_rerequests_until_deasserted() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0);
        pic.write(ELCR_MASTER, 0xff);
        assert_eq!(pic.read(ELCR_MASTER), 0xf8, "IRQ 0-2 are edge only");
        pic.write(ELCR_SLAVE, 0xff);
        assert_eq!(pic.read(ELCR_SLAVE), 0xde, "IRQ 8 and 13 are edge only");
        pic.set_irq(5, true);
        assert_eq!(pic.acknowledge(), 0x35);
        pic.write(MASTER_CMD, 0x65);
        assert_eq!(pic.pending(), Some(0x35), "still asserted: requests again");
        pic.set_irq(5, false);
        assert_eq!(pic.pending(), None);
        // IRQ 1 stays edge-triggered: one edge, one interrupt.
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x31);
        pic.write(MASTER_CMD, 0x61);
        assert_eq!(pic.pending(), None);
    }

    #[test]
    fn special_mask_mode_lets_lower_priorities_through() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0);
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x31);
        pic.set_irq(5, true);
        assert_eq!(pic.pending(), None);
        // Mask IR1 and enter special mask mode: IR5 gets through.
        pic.write(MASTER_DATA, 0x02);
        pic.write(MASTER_CMD, 0x68);
        assert_eq!(pic.pending(), Some(0x35));
        pic.write(MASTER_CMD, 0x48);
        assert_eq!(pic.pending(), None);
    }

    #[test]
    fn special_fully_nested_mode_allows_higher_slave_requests() {
        let mut pic = PicPair::new();
        pic.write(MASTER_CMD, 0x11);
        pic.write(MASTER_DATA, 0x30);
        pic.write(MASTER_DATA, 0x04);
        pic.write(MASTER_DATA, 0x11); // 8086 + SFNM
        pic.write(SLAVE_CMD, 0x11);
        pic.write(SLAVE_DATA, 0x38);
        pic.write(SLAVE_DATA, 0x02);
        pic.write(SLAVE_DATA, 0x01);
        pic.set_irq(12, true);
        assert_eq!(pic.acknowledge(), 0x3c);
        pic.set_irq(9, true);
        assert_eq!(pic.pending(), Some(0x39), "IR9 beats IR12 in service");
        let mut plain = PicPair::new();
        linux_init(&mut plain, false);
        plain.write(MASTER_DATA, 0);
        plain.write(SLAVE_DATA, 0);
        plain.set_irq(12, true);
        assert_eq!(plain.acknowledge(), 0x3c);
        plain.set_irq(9, true);
        assert_eq!(plain.pending(), None, "fully nested: IR2 in service blocks");
    }

    #[test]
    fn irq2_and_out_of_range_lines_are_ignored() {
        let mut pic = PicPair::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0);
        pic.set_irq(2, true);
        pic.set_irq(16, true);
        pic.set_irq(255, true);
        assert_eq!(pic.pending(), None);
        assert_eq!(pic.master().irr, 0);
    }
}
