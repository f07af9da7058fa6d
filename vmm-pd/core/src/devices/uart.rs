//! A 16550A UART, as on COM1 of a PC (0x3f8-0x3ff, IRQ 4).
//!
//! Design rules: registers behave as the 16550A datasheet says, to the
//! extent Linux's 8250 driver looks (autoconfig's scratch, loopback and
//! FIFO tests, the THRE re-assertion test at startup, interrupt
//! identification priority). Transmission is instantaneous: a byte written
//! to THR goes straight to a bounded output buffer that the VMM drains, so
//! THRE and TEMT always read as set; when the buffer is full the byte is
//! dropped and counted, never buffered without bound. Console input is
//! queued by the VMM in a bounded line queue that refills the receive FIFO
//! (16 bytes, or 1 in 16450 mode) as the guest reads it, so console input
//! never overruns; loopback mode disconnects that queue as the chip
//! disconnects its serial input.
//!
//! The interrupt output reaches the PIC only when MCR.OUT2 is set and
//! loopback is off, as on a PC where OUT2 enables the IRQ driver.
//!
//! Not modelled: baud rate timing (DLL/DLM are stored only), parity, framing
//! and break errors (a virtual line has none), DMA modes, the transmitter
//! FIFO (THR empties at once), and the 4-character receive timeout delay: a
//! receive FIFO below its trigger level reports the timeout interrupt at once.

use heapless::Deque;

/// COM1's first port.
pub const COM1_BASE: u16 = 0x3f8;
/// COM1's ISA interrupt line.
pub const COM1_IRQ: u8 = 4;
/// Bytes the output buffer holds before transmitted bytes are dropped.
pub const OUTPUT_CAPACITY: usize = 4096;
/// Bytes of console input the line queue holds ahead of the receive FIFO.
pub const INPUT_CAPACITY: usize = 256;
/// The 16550A's receive FIFO depth.
pub const RX_FIFO_DEPTH: usize = 16;

// Register offsets.
const RBR_THR_DLL: u8 = 0;
const IER_DLM: u8 = 1;
const IIR_FCR: u8 = 2;
const LCR: u8 = 3;
const MCR: u8 = 4;
const LSR: u8 = 5;
const MSR: u8 = 6;
const SCR: u8 = 7;

// IER bits.
const IER_RDA: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const IER_RLS: u8 = 0x04;
const IER_MS: u8 = 0x08;

// IIR values.
const IIR_NONE: u8 = 0x01;
const IIR_MS: u8 = 0x00;
const IIR_THRE: u8 = 0x02;
const IIR_RDA: u8 = 0x04;
const IIR_RLS: u8 = 0x06;
const IIR_TIMEOUT: u8 = 0x0c;
const IIR_FIFO: u8 = 0xc0;

// LCR, MCR, LSR bits.
const LCR_DLAB: u8 = 0x80;
const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;
const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;

/// Modem inputs outside loopback: a terminal that is there and ready
/// (DCD, DSR, CTS; no ring).
const MSR_CONNECTED: u8 = 0xb0;

/// The 16550A and its host-side buffers.
#[derive(Clone, Debug)]
pub struct Uart {
    ier: u8,
    lcr: u8,
    mcr: u8,
    /// FCR as written (bit 0: FIFOs on; bits 6-7: receive trigger).
    fcr: u8,
    /// OE/PE/FE/BI, sticky until LSR is read.
    lsr_errors: u8,
    /// MSR delta bits (0-3), cleared when MSR is read.
    msr_delta: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    /// The THRE interrupt is armed (set when THR empties or the interrupt
    /// is enabled while it is empty; cleared by reading it from IIR or by
    /// writing THR).
    thr_ipending: bool,
    last_rbr: u8,
    rx: Deque<u8, RX_FIFO_DEPTH>,
    line_in: Deque<u8, INPUT_CAPACITY>,
    out: Deque<u8, OUTPUT_CAPACITY>,
    dropped: u64,
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart {
    /// The UART after reset: interrupts off, FIFOs off, 8N1 not yet set.
    pub fn new() -> Self {
        Uart {
            ier: 0,
            lcr: 0,
            mcr: 0,
            fcr: 0,
            lsr_errors: 0,
            msr_delta: 0,
            scr: 0,
            dll: 0x0c,
            dlm: 0,
            thr_ipending: false,
            last_rbr: 0,
            rx: Deque::new(),
            line_in: Deque::new(),
            out: Deque::new(),
            dropped: 0,
        }
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & 0x01 != 0
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            RX_FIFO_DEPTH
        } else {
            1
        }
    }

    fn rx_trigger(&self) -> usize {
        match self.fcr >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        }
    }

    /// Moves queued console input into the receive FIFO while it has room.
    fn refill(&mut self) {
        if self.loopback() {
            return;
        }
        while self.rx.len() < self.rx_capacity() {
            match self.line_in.pop_front() {
                Some(b) => {
                    // Cannot fail: the length was checked against a
                    // capacity no larger than the deque's.
                    let _ = self.rx.push_back(b);
                }
                None => break,
            }
        }
    }

    /// The modem status inputs (MSR bits 4-7) as the chip sees them now.
    fn modem_inputs(&self) -> u8 {
        if self.loopback() {
            // DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
            let m = self.mcr;
            (if m & MCR_RTS != 0 { 0x10 } else { 0 })
                | (if m & MCR_DTR != 0 { 0x20 } else { 0 })
                | (if m & MCR_OUT1 != 0 { 0x40 } else { 0 })
                | (if m & MCR_OUT2 != 0 { 0x80 } else { 0 })
        } else {
            MSR_CONNECTED
        }
    }

    /// The interrupt identification, highest priority first (datasheet
    /// table: line status, received data / timeout, THRE, modem status).
    fn iir_id(&self) -> u8 {
        if self.ier & IER_RLS != 0 && self.lsr_errors != 0 {
            IIR_RLS
        } else if self.ier & IER_RDA != 0 && !self.rx.is_empty() {
            if self.fifo_enabled() && self.rx.len() < self.rx_trigger() {
                IIR_TIMEOUT
            } else {
                IIR_RDA
            }
        } else if self.ier & IER_THRE != 0 && self.thr_ipending {
            IIR_THRE
        } else if self.ier & IER_MS != 0 && self.msr_delta != 0 {
            IIR_MS
        } else {
            IIR_NONE
        }
    }

    /// Whether the UART's interrupt is asserted towards the PIC.
    pub fn irq_line(&self) -> bool {
        self.iir_id() != IIR_NONE && self.mcr & MCR_OUT2 != 0 && !self.loopback()
    }

    /// Reads register `offset` (0-7; higher bits are ignored).
    pub fn read(&mut self, offset: u8) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset & 7 {
            RBR_THR_DLL if dlab => self.dll,
            RBR_THR_DLL => {
                if let Some(b) = self.rx.pop_front() {
                    self.last_rbr = b;
                    self.refill();
                }
                self.last_rbr
            }
            IER_DLM if dlab => self.dlm,
            IER_DLM => self.ier,
            IIR_FCR => {
                let id = self.iir_id();
                if id == IIR_THRE {
                    self.thr_ipending = false;
                }
                id | if self.fifo_enabled() { IIR_FIFO } else { 0 }
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let lsr = LSR_THRE
                    | LSR_TEMT
                    | self.lsr_errors
                    | if self.rx.is_empty() { 0 } else { LSR_DR };
                self.lsr_errors = 0;
                lsr
            }
            MSR => {
                let msr = self.modem_inputs() | self.msr_delta;
                self.msr_delta = 0;
                msr
            }
            SCR.. => self.scr,
        }
    }

    /// Writes register `offset` (0-7; higher bits are ignored).
    pub fn write(&mut self, offset: u8, value: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset & 7 {
            RBR_THR_DLL if dlab => self.dll = value,
            RBR_THR_DLL => self.transmit(value),
            IER_DLM if dlab => self.dlm = value,
            IER_DLM => {
                let old = self.ier;
                self.ier = value & 0x0f;
                // Enabling the THRE interrupt while THR is empty raises it,
                // which Linux's startup test relies on.
                if (old ^ self.ier) & IER_THRE != 0 {
                    self.thr_ipending = self.ier & IER_THRE != 0;
                }
            }
            IIR_FCR => self.write_fcr(value),
            LCR => self.lcr = value,
            MCR => {
                let before = self.modem_inputs();
                self.mcr = value & 0x1f;
                self.note_modem_change(before);
                self.refill();
            }
            // LSR and MSR writes are factory tests on the chip.
            LSR | MSR => {}
            SCR.. => self.scr = value,
        }
    }

    fn write_fcr(&mut self, value: u8) {
        let was_enabled = self.fifo_enabled();
        let enable = value & 0x01 != 0;
        if enable != was_enabled {
            // Switching modes clears both FIFOs.
            self.rx.clear();
        }
        if enable {
            if value & 0x02 != 0 {
                self.rx.clear();
            }
            self.fcr = value & 0xc9;
        } else {
            self.fcr = 0;
        }
        self.refill();
    }

    fn note_modem_change(&mut self, before: u8) {
        let after = self.modem_inputs();
        let changed = before ^ after;
        if changed & 0x10 != 0 {
            self.msr_delta |= 0x01; // DCTS
        }
        if changed & 0x20 != 0 {
            self.msr_delta |= 0x02; // DDSR
        }
        if before & 0x40 != 0 && after & 0x40 == 0 {
            self.msr_delta |= 0x04; // TERI: trailing edge of RI
        }
        if changed & 0x80 != 0 {
            self.msr_delta |= 0x08; // DDCD
        }
    }

    fn transmit(&mut self, value: u8) {
        if self.loopback() {
            if self.rx.len() >= self.rx_capacity() || self.rx.push_back(value).is_err() {
                self.lsr_errors |= LSR_OE;
            }
        } else if self.out.push_back(value).is_err() {
            self.dropped = self.dropped.saturating_add(1);
        }
        // THR and the shift register empty at once: THRE re-arms.
        self.thr_ipending = true;
    }

    /// Queues console input for the guest; returns how many bytes were
    /// taken (the rest did not fit and should be offered again later).
    pub fn push_input(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        for &b in bytes {
            if self.line_in.push_back(b).is_err() {
                break;
            }
            taken += 1;
        }
        self.refill();
        taken
    }

    /// Moves transmitted bytes into `buf`; returns how many.
    pub fn drain_output(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in buf.iter_mut() {
            match self.out.pop_front() {
                Some(b) => {
                    *slot = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// Transmitted bytes waiting to be drained.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// Transmitted bytes dropped because the output buffer was full.
    pub fn output_dropped(&self) -> u64 {
        self.dropped
    }

    /// Console input bytes not yet read by the guest (queue and FIFO).
    pub fn input_len(&self) -> usize {
        self.line_in.len() + self.rx.len()
    }

    /// The divisor latch (DLM:DLL); the baud rate is 115200 / divisor.
    pub fn divisor(&self) -> u16 {
        u16::from_le_bytes([self.dll, self.dlm])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(u: &mut Uart) -> Vec<u8> {
        let mut buf = [0u8; OUTPUT_CAPACITY];
        let n = u.drain_output(&mut buf);
        buf[..n].to_vec()
    }

    /// The decision tree of Linux 6.1's 8250 `autoconfig` and
    /// `autoconfig_16550a`, register access for register access; returns
    /// the type it would settle on.
    fn linux_autoconfig(u: &mut Uart) -> &'static str {
        let scratch = u.read(1);
        u.write(1, 0);
        let s2 = u.read(1) & 0x0f;
        u.write(1, 0x0f);
        let s3 = u.read(1) & 0x0f;
        u.write(1, scratch);
        if s2 != 0 || s3 != 0x0f {
            return "none";
        }
        let (save_mcr, save_lcr) = (u.read(4), u.read(3));
        u.write(4, MCR_LOOP | 0x0a);
        let st = u.read(6) & 0xf0;
        u.write(4, save_mcr);
        if st != 0x90 {
            return "none (loopback)";
        }
        u.write(3, 0xbf);
        u.write(2, 0); // EFR, which on a 16550A is FCR
        u.write(3, 0);
        u.write(2, 0x01);
        let kind = match u.read(2) >> 6 {
            0 => "8250/16450",
            1 => "unknown",
            2 => "16550",
            _ => {
                u.write(3, 0x80);
                let efr_a = u.read(2);
                u.write(3, 0xbf);
                let efr_b = u.read(2);
                u.write(3, 0);
                let st1 = u.read(4);
                u.write(3, 0xe0);
                let mut st2 = u.read(2);
                let mut natsemi = false;
                if (st2 ^ st1) & MCR_LOOP == 0 {
                    u.write(3, 0);
                    u.write(4, st1 ^ MCR_LOOP);
                    u.write(3, 0xe0);
                    st2 = u.read(2);
                    u.write(3, 0);
                    u.write(4, st1);
                    natsemi = (st2 ^ st1) & MCR_LOOP != 0;
                }
                u.write(3, 0);
                u.write(2, 0x21);
                let iir1 = u.read(2) >> 5;
                u.write(2, 0x01);
                u.write(3, 0x80);
                u.write(2, 0x21);
                let iir2 = u.read(2) >> 5;
                u.write(2, 0x01);
                u.write(3, 0);
                let ier = u.read(1);
                u.write(1, ier & !0x40);
                let mut xscale = false;
                if u.read(1) & 0x40 == 0 {
                    u.write(1, ier | 0x40);
                    xscale = u.read(1) & 0x40 != 0;
                }
                u.write(1, ier);
                if efr_a == 0 {
                    "ST16650"
                } else if efr_b == 0 {
                    "EFRv2"
                } else if natsemi {
                    "NS16550A"
                } else if iir1 == 6 && iir2 == 7 {
                    "TI16750"
                } else if xscale {
                    "XScale"
                } else {
                    "16550A"
                }
            }
        };
        u.write(3, save_lcr);
        u.write(4, save_mcr);
        kind
    }

    #[test]
    fn linux_autoconfig_detects_a_16550a() {
        let mut u = Uart::new();
        assert_eq!(linux_autoconfig(&mut u), "16550A");
        // The same with interrupts enabled and pending while it probes.
        let mut u = Uart::new();
        u.write(MCR, MCR_OUT2);
        u.write(IER_DLM, 0x0f);
        u.push_input(b"typed ahead");
        assert_eq!(linux_autoconfig(&mut u), "16550A");
    }

    #[test]
    fn linux_autoconfig_scratch_test_sees_a_uart() {
        // 8250 autoconfig: IER=0 reads 0, IER=0x0f reads 0x0f.
        let mut u = Uart::new();
        u.write(IER_DLM, 0);
        assert_eq!(u.read(IER_DLM) & 0x0f, 0);
        u.write(IER_DLM, 0x0f);
        assert_eq!(u.read(IER_DLM) & 0x0f, 0x0f);
        // The upper nibble is not implemented on a 16550A (the XScale UUE
        // test writes 0x40 and must read it back as 0).
        u.write(IER_DLM, 0x40);
        assert_eq!(u.read(IER_DLM), 0);
    }

    #[test]
    fn loopback_routes_modem_outputs_to_inputs() {
        // autoconfig: MCR = LOOP|0x0a must read MSR & 0xf0 == 0x90.
        let mut u = Uart::new();
        u.write(MCR, MCR_LOOP | 0x0a);
        assert_eq!(u.read(MSR) & 0xf0, 0x90);
        u.write(MCR, MCR_LOOP | 0x05);
        assert_eq!(u.read(MSR) & 0xf0, 0x60);
        u.write(MCR, MCR_LOOP);
        let msr = u.read(MSR);
        assert_eq!(msr & 0xf0, 0);
        assert_eq!(msr & 0x0f, 0x06, "DSR changed (DDSR), RI fell (TERI)");
        assert_eq!(u.read(MSR) & 0x0f, 0, "deltas clear on read");
    }

    #[test]
    fn fifo_identifies_as_16550a() {
        let mut u = Uart::new();
        assert_eq!(u.read(IIR_FCR), 0x01, "16450 mode: bits 6-7 clear");
        u.write(IIR_FCR, 0xe7);
        assert_eq!(u.read(IIR_FCR) >> 6, 3, "FIFOs enabled");
        assert_eq!(u.read(IIR_FCR) & 0x20, 0, "no 64-byte FIFO (not a 16750)");
        // With DLAB set (Linux's EFR probes) register 2 still reads IIR,
        // which is nonzero: no EFR, so not a 16650.
        u.write(LCR, 0xbf);
        assert_ne!(u.read(IIR_FCR), 0);
    }

    #[test]
    fn divisor_latch_behind_dlab() {
        let mut u = Uart::new();
        u.write(LCR, 0x83);
        u.write(RBR_THR_DLL, 0x01);
        u.write(IER_DLM, 0x00);
        assert_eq!(u.divisor(), 1);
        assert_eq!(u.read(RBR_THR_DLL), 0x01);
        u.write(LCR, 0x03);
        assert_eq!(u.read(IER_DLM), 0, "IER untouched by the DLM write");
        u.write(RBR_THR_DLL, b'x');
        assert_eq!(drained(&mut u), b"x");
        assert_eq!(u.divisor(), 1, "THR write did not touch DLL");
    }

    #[test]
    fn thre_interrupt_rearms_as_linux_startup_tests() {
        // serial8250_do_startup: IER=THRI, read IIR (expect THRE), IER=0,
        // IER=THRI, read IIR (expect THRE again) — otherwise UART_BUG_THRE.
        let mut u = Uart::new();
        u.write(MCR, MCR_OUT2 | MCR_DTR | MCR_RTS);
        u.write(IER_DLM, IER_THRE);
        assert!(u.irq_line());
        assert_eq!(u.read(IIR_FCR), IIR_THRE);
        assert!(!u.irq_line(), "reading IIR cleared THRE");
        assert_eq!(u.read(IIR_FCR), IIR_NONE);
        u.write(IER_DLM, 0);
        u.write(IER_DLM, IER_THRE);
        assert_eq!(u.read(IIR_FCR), IIR_THRE);
        // Writing THR re-arms THRE (transmission is instantaneous).
        u.write(RBR_THR_DLL, b'a');
        assert!(u.irq_line());
        assert_eq!(u.read(IIR_FCR), IIR_THRE);
        assert_eq!(u.read(LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
    }

    #[test]
    fn iir_priority_order() {
        let mut u = Uart::new();
        u.write(IIR_FCR, 0x01); // FIFO, trigger 1
        u.write(MCR, MCR_LOOP);
        u.write(IER_DLM, 0x0f);
        // Make every source pending: modem delta, THRE, data, overrun.
        u.write(MCR, MCR_LOOP | MCR_RTS);
        for b in 0..17u8 {
            u.write(RBR_THR_DLL, b);
        }
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_RLS, "overrun first");
        assert_eq!(u.read(LSR) & LSR_OE, LSR_OE);
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_RDA, "then received data");
        for b in 0..16u8 {
            assert_eq!(u.read(RBR_THR_DLL), b);
        }
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_THRE, "then THRE");
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_MS, "then modem status");
        assert_eq!(u.read(MSR) & 0x01, 0x01, "DCTS");
        assert_eq!(u.read(IIR_FCR), IIR_FIFO | IIR_NONE);
    }

    #[test]
    fn rx_trigger_level_and_timeout() {
        let mut u = Uart::new();
        u.write(IIR_FCR, 0x81); // FIFO, trigger 8 (Linux's 16550A setting)
        u.write(IER_DLM, IER_RDA);
        assert_eq!(u.push_input(b"abc"), 3);
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_TIMEOUT, "below trigger");
        u.push_input(b"defgh");
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_RDA, "at trigger");
        let got: Vec<u8> = (0..8).map(|_| u.read(RBR_THR_DLL)).collect();
        assert_eq!(got, b"abcdefgh");
        assert_eq!(u.read(LSR) & LSR_DR, 0);
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_NONE);
    }

    #[test]
    fn input_is_bounded_and_never_overruns() {
        let mut u = Uart::new();
        let big = [b'z'; INPUT_CAPACITY + 100];
        // FIFO off: one byte in RBR, the rest queued.
        let taken = u.push_input(&big);
        assert_eq!(taken, INPUT_CAPACITY);
        assert_eq!(u.input_len(), INPUT_CAPACITY);
        assert_eq!(u.push_input(b"more"), 1, "RBR took a byte, freeing one");
        let mut n = 0;
        while u.read(LSR) & LSR_DR != 0 {
            u.read(RBR_THR_DLL);
            n += 1;
        }
        assert_eq!(n, INPUT_CAPACITY + 1);
        assert_eq!(u.read(LSR) & LSR_OE, 0);
    }

    #[test]
    fn output_flood_is_dropped_and_counted() {
        let mut u = Uart::new();
        for i in 0..(OUTPUT_CAPACITY + 10) {
            u.write(RBR_THR_DLL, i as u8);
        }
        assert_eq!(u.output_len(), OUTPUT_CAPACITY);
        assert_eq!(u.output_dropped(), 10);
        let out = drained(&mut u);
        assert_eq!(out.len(), OUTPUT_CAPACITY);
        assert_eq!(out[0], 0);
        assert_eq!(out[OUTPUT_CAPACITY - 1], (OUTPUT_CAPACITY - 1) as u8);
        u.write(RBR_THR_DLL, b'!');
        assert_eq!(drained(&mut u), b"!");
    }

    #[test]
    fn out2_gates_the_irq_and_loopback_disconnects_it() {
        let mut u = Uart::new();
        u.write(IER_DLM, IER_RDA);
        u.push_input(b"k");
        assert!(!u.irq_line(), "OUT2 clear: line tri-stated");
        u.write(MCR, MCR_OUT2);
        assert!(u.irq_line());
        u.write(MCR, MCR_OUT2 | MCR_LOOP);
        assert!(!u.irq_line());
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_RDA, "still identified");
    }

    #[test]
    fn loopback_keeps_console_input_queued() {
        let mut u = Uart::new();
        u.write(IIR_FCR, 0x07);
        u.write(MCR, MCR_LOOP);
        u.push_input(b"ext");
        assert_eq!(u.read(LSR) & LSR_DR, 0, "serial input disconnected");
        u.write(RBR_THR_DLL, b'L');
        assert_eq!(u.read(RBR_THR_DLL), b'L');
        assert_eq!(u.output_len(), 0, "loopback transmits nothing");
        u.write(MCR, 0);
        assert_eq!(u.read(RBR_THR_DLL), b'e');
    }

    #[test]
    fn fcr_clears_and_mode_switch_clears() {
        let mut u = Uart::new();
        u.write(IIR_FCR, 0x01);
        u.push_input(b"12345");
        assert_eq!(u.input_len(), 5);
        u.write(IIR_FCR, 0x03); // clear RX FIFO
        assert_eq!(u.input_len(), 0);
        u.push_input(b"67");
        u.write(IIR_FCR, 0x00); // FIFOs off: cleared, then RBR refills
        assert_eq!(u.input_len(), 0);
        assert_eq!(u.read(IIR_FCR), IIR_NONE);
    }

    #[test]
    fn lcr_mcr_scr_read_back() {
        let mut u = Uart::new();
        u.write(LCR, 0x1b);
        u.write(MCR, 0xff);
        u.write(SCR, 0x5a);
        assert_eq!(u.read(LCR), 0x1b);
        assert_eq!(u.read(MCR), 0x1f);
        assert_eq!(u.read(SCR), 0x5a);
        assert_eq!(u.read(MSR) & 0xf0, 0xf0, "loopback: all modem lines up");
    }
}
