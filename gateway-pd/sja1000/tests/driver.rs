//! The driver against the register-level chip model: initialisation,
//! acceptance filtering, interrupt-driven receive with FIFO overrun, the
//! transmit queue, and every error-state transition including bus-off
//! recovery.

mod model;

use std::cell::RefCell;
use std::rc::Rc;

use embedded_can::nb::Can;
use embedded_can::{ExtendedId, Frame as _, Id, StandardId};
use model::{BusFrame, Chip, Port};
use proptest::prelude::*;
use sja1000::regs::*;
use sja1000::{BitTiming, CanFrame, Config, Error, ErrorState, Filter, Sja1000};

type Driver = Sja1000<Port, 16, 8>;

fn config(filter: Filter) -> Config {
    Config {
        timing: BitTiming::for_bitrate(16_000_000, 500_000).unwrap(),
        filter,
        listen_only: false,
        auto_recover: true,
    }
}

fn setup(filter: Filter) -> (Driver, Rc<RefCell<Chip>>) {
    let chip = Rc::new(RefCell::new(Chip::new()));
    let mut d = Driver::new(Port(chip.clone()));
    d.init(config(filter)).unwrap();
    (d, chip)
}

fn std_frame(id: u16, data: &[u8]) -> CanFrame {
    CanFrame::new(StandardId::new(id).unwrap(), data).unwrap()
}

fn bus(id: u32, extended: bool, data: &[u8]) -> BusFrame {
    BusFrame {
        id,
        extended,
        remote: false,
        dlc: data.len() as u8,
        data: data.to_vec(),
    }
}

fn no_violations(chip: &Rc<RefCell<Chip>>) {
    let v = chip.borrow().violations.clone();
    assert!(v.is_empty(), "driver broke the datasheet's rules: {v:?}");
}

#[test]
fn init_programs_the_chip() {
    let (d, chip) = setup(Filter::AcceptAll);
    let c = chip.borrow();
    assert_eq!(c.cdr & CDR_PELICAN, CDR_PELICAN);
    assert_eq!(c.mode & MOD_RM, 0, "still in reset mode");
    assert_eq!(c.mode & MOD_AFM, 0, "accept-all uses dual filter mode");
    assert_eq!(c.btr, [0x00, 0x1C]);
    assert_eq!(c.ier, IER_ALL);
    assert_eq!(d.state(), ErrorState::Active);
    drop(c);
    no_violations(&chip);
}

#[test]
fn init_fails_when_the_chip_ignores_reset() {
    struct Dead;
    impl sja1000::Registers for Dead {
        fn read(&mut self, _: u8) -> u8 {
            0
        }
        fn write(&mut self, _: u8, _: u8) {}
    }
    let mut d: Sja1000<Dead, 4, 4> = Sja1000::new(Dead);
    assert_eq!(d.init(config(Filter::AcceptAll)), Err(Error::ResetTimeout));
}

#[test]
fn receive_by_interrupt_in_order() {
    let (mut d, chip) = setup(Filter::AcceptAll);
    assert_eq!(d.receive(), Err(nb::Error::WouldBlock));
    chip.borrow_mut().deliver(&bus(0x123, false, &[1, 2, 3]));
    chip.borrow_mut().deliver(&bus(0x1234_5678, true, &[9; 8]));
    chip.borrow_mut().deliver(&BusFrame {
        id: 0x7FF,
        extended: false,
        remote: true,
        dlc: 4,
        data: vec![],
    });
    assert!(chip.borrow().irq_line());
    let s = d.handle_irq();
    assert_eq!(s.received, 3);
    assert!(
        !chip.borrow().irq_line(),
        "interrupt still pending after service"
    );
    let a = d.receive().unwrap();
    assert_eq!(
        (a.id(), a.data()),
        (
            Id::Standard(StandardId::new(0x123).unwrap()),
            &[1u8, 2, 3][..]
        )
    );
    let b = d.receive().unwrap();
    assert_eq!(b.id(), Id::Extended(ExtendedId::new(0x1234_5678).unwrap()));
    assert_eq!(b.data(), &[9; 8]);
    let c = d.receive().unwrap();
    assert!(c.is_remote_frame() && c.dlc() == 4 && c.data().is_empty());
    assert_eq!(d.receive(), Err(nb::Error::WouldBlock));
    no_violations(&chip);
}

#[test]
fn acceptance_filter_standard_and_extended() {
    let (mut d, chip) = setup(Filter::Standard {
        code: 0x120,
        mask: 0x7F0,
    });
    for id in [0x120, 0x12F, 0x130, 0x020] {
        chip.borrow_mut().deliver(&bus(id, false, &[0xAA, 0xBB]));
    }
    d.handle_irq();
    let got: Vec<u32> = std::iter::from_fn(|| d.receive().ok())
        .map(|f| f.raw_id())
        .collect();
    assert_eq!(got, vec![0x120, 0x12F]);

    assert_eq!(
        chip.borrow().mode & MOD_AFM,
        0,
        "standard filters use dual filter mode"
    );
    let (mut d, chip) = setup(Filter::Extended {
        code: 0x18DA_F110,
        mask: 0x1FFF_FF00,
    });
    for id in [0x18DA_F110, 0x18DA_F1FF, 0x18DA_F210] {
        chip.borrow_mut().deliver(&bus(id, true, &[]));
    }
    d.handle_irq();
    let got: Vec<u32> = std::iter::from_fn(|| d.receive().ok())
        .map(|f| f.raw_id())
        .collect();
    assert_eq!(got, vec![0x18DA_F110, 0x18DA_F1FF]);
    assert_eq!(
        chip.borrow().mode & MOD_AFM,
        MOD_AFM,
        "extended filters use single filter mode"
    );
    no_violations(&chip);
}

#[test]
fn fifo_overrun_is_reported_and_cleared() {
    let (mut d, chip) = setup(Filter::AcceptAll);
    // 64 bytes hold five 8-byte standard frames (11 bytes each); the rest overrun.
    for i in 0..10 {
        chip.borrow_mut()
            .deliver(&bus(0x100 + i, false, &[i as u8; 8]));
    }
    assert_ne!(chip.borrow().sr & SR_DOS, 0);
    let s = d.handle_irq();
    assert_eq!(s.received, 5);
    assert_eq!(d.stats().fifo_overruns, 1);
    assert_eq!(chip.borrow().sr & SR_DOS, 0, "data overrun not cleared");
    assert_eq!(d.receive(), Err(nb::Error::Other(Error::Overrun)));
    assert_eq!(d.receive().unwrap().raw_id(), 0x100);
    no_violations(&chip);
}

#[test]
fn receive_queue_full_drops_and_counts() {
    let chip = Rc::new(RefCell::new(Chip::new()));
    let mut d: Sja1000<Port, 2, 2> = Sja1000::new(Port(chip.clone()));
    d.init(config(Filter::AcceptAll)).unwrap();
    for i in 0..4 {
        chip.borrow_mut().deliver(&bus(i, false, &[]));
    }
    d.handle_irq();
    assert_eq!(d.stats().received, 2);
    assert_eq!(d.stats().queue_drops, 2);
    assert_eq!(chip.borrow().sr & SR_RBS, 0, "FIFO not drained");
}

#[test]
fn transmit_queue_in_order_and_bounded() {
    let (mut d, chip) = setup(Filter::AcceptAll);
    // The first frame starts at once; the rest wait for TI.
    for i in 0..9u16 {
        assert_eq!(d.transmit(&std_frame(0x200 + i, &[i as u8])), Ok(None));
    }
    // Queue of 8 plus one in flight is full.
    assert_eq!(
        d.transmit(&std_frame(0x300, &[])),
        Err(nb::Error::WouldBlock)
    );
    for _ in 0..20 {
        d.handle_irq();
    }
    let sent: Vec<u32> = chip.borrow().sent.iter().map(|f| f.id).collect();
    assert_eq!(sent, (0x200..0x209).collect::<Vec<_>>());
    assert_eq!(d.stats().sent, 9);
    assert_eq!(d.tx_pending(), 0);
    no_violations(&chip);
}

#[test]
fn error_warning_passive_busoff_and_recovery() {
    let (mut d, chip) = setup(Filter::AcceptAll);
    chip.borrow_mut().fail_tx = 100; // the bus is broken: no acknowledgement
    d.transmit(&std_frame(0x42, &[1, 2])).unwrap();
    let mut seen = vec![d.state()];
    for _ in 0..40 {
        chip.borrow_mut().bus_tick();
        d.handle_irq();
        if seen.last() != Some(&d.state()) {
            seen.push(d.state());
        }
    }
    assert_eq!(
        seen,
        vec![
            ErrorState::Active,
            ErrorState::Warning,
            ErrorState::Passive,
            ErrorState::BusOff
        ]
    );
    assert_eq!(d.stats().bus_off, 1);
    assert!(d.stats().bus_errors > 0);
    // The driver left reset mode to start recovery; the frame is kept.
    assert_eq!(chip.borrow().mode & MOD_RM, 0, "recovery not started");
    assert_eq!(d.tx_pending(), 1);
    // Frames queued while bus-off wait.
    d.transmit(&std_frame(0x43, &[])).unwrap();
    assert!(chip.borrow().sent.is_empty());
    // Repair the bus; recovery needs 128 x 11 recessive bits.
    chip.borrow_mut().fail_tx = 0;
    chip.borrow_mut().recessive_bits(128 * 11 - 1);
    d.handle_irq();
    assert_eq!(d.state(), ErrorState::BusOff);
    chip.borrow_mut().recessive_bits(1);
    let s = d.handle_irq();
    assert!(s.state_changed);
    assert_eq!(d.state(), ErrorState::Active);
    for _ in 0..5 {
        chip.borrow_mut().bus_tick();
        d.handle_irq();
    }
    let sent: Vec<u32> = chip.borrow().sent.iter().map(|f| f.id).collect();
    assert_eq!(sent, vec![0x42, 0x43], "frames lost across bus-off");
    no_violations(&chip);
}

#[test]
fn manual_recovery_when_auto_is_off() {
    let chip = Rc::new(RefCell::new(Chip::new()));
    let mut d: Sja1000<Port, 4, 4> = Sja1000::new(Port(chip.clone()));
    d.init(Config {
        auto_recover: false,
        ..config(Filter::AcceptAll)
    })
    .unwrap();
    chip.borrow_mut().fail_tx = 32;
    d.transmit(&std_frame(1, &[])).unwrap();
    for _ in 0..32 {
        chip.borrow_mut().bus_tick();
        d.handle_irq();
    }
    assert_eq!(d.state(), ErrorState::BusOff);
    chip.borrow_mut().recessive_bits(10_000);
    d.handle_irq();
    assert_eq!(
        d.state(),
        ErrorState::BusOff,
        "recovered without being asked"
    );
    d.recover().unwrap();
    chip.borrow_mut().recessive_bits(128 * 11);
    d.handle_irq();
    assert_eq!(d.state(), ErrorState::Active);
}

#[test]
fn receive_errors_go_passive_and_back() {
    let (mut d, chip) = setup(Filter::AcceptAll);
    chip.borrow_mut().rx_error(100);
    d.handle_irq();
    assert_eq!(d.state(), ErrorState::Warning);
    chip.borrow_mut().rx_error(30);
    d.handle_irq();
    assert_eq!(d.state(), ErrorState::Passive);
    // A good frame received brings REC back below 128 (to 119).
    chip.borrow_mut().deliver(&bus(5, false, &[]));
    d.handle_irq();
    assert_eq!(d.state(), ErrorState::Warning);
    for _ in 0..30 {
        chip.borrow_mut().deliver(&bus(5, false, &[]));
        d.handle_irq();
        while d.receive().is_ok() {}
    }
    assert_eq!(d.state(), ErrorState::Active);
    no_violations(&chip);
}

#[test]
fn a_stuck_interrupt_does_not_hang_the_driver() {
    let (mut d, chip) = setup(Filter::AcceptAll);
    chip.borrow_mut().stuck_irq = true;
    let before = chip.borrow().ir_reads;
    d.handle_irq();
    assert!(chip.borrow().ir_reads - before <= 8);
}

#[test]
fn listen_only_never_transmits() {
    let chip = Rc::new(RefCell::new(Chip::new()));
    let mut d: Sja1000<Port, 4, 4> = Sja1000::new(Port(chip.clone()));
    d.init(Config {
        listen_only: true,
        ..config(Filter::AcceptAll)
    })
    .unwrap();
    d.transmit(&std_frame(1, &[])).unwrap();
    d.handle_irq();
    assert!(chip.borrow().sent.is_empty());
    assert_eq!(chip.borrow().mode & MOD_LOM, MOD_LOM);
    no_violations(&chip);
}

proptest! {
    /// Any frame sent through the driver appears on the bus unchanged, and
    /// any frame from the bus arrives unchanged.
    #[test]
    fn frames_round_trip(frames in proptest::collection::vec(
        (any::<bool>(), any::<u32>(), any::<bool>(), 0u8..=8, proptest::array::uniform8(any::<u8>())), 1..30)) {
        let (mut d, chip) = setup(Filter::AcceptAll);
        let mut want = Vec::new();
        for (ext, id, remote, dlc, data) in frames {
            let id_v: Id = if ext { ExtendedId::new(id & 0x1FFF_FFFF).unwrap().into() } else { StandardId::new((id & 0x7FF) as u16).unwrap().into() };
            let f = if remote { CanFrame::new_remote(id_v, usize::from(dlc)).unwrap() } else { CanFrame::new(id_v, &data[..usize::from(dlc)]).unwrap() };
            while d.transmit(&f).is_err() { d.handle_irq(); }
            d.handle_irq();
            want.push(f);
            // Echo it back in through the receive side.
            let b = BusFrame { id: f.raw_id(), extended: ext, remote, dlc, data: f.data().to_vec() };
            chip.borrow_mut().deliver(&b);
            d.handle_irq();
            prop_assert_eq!(d.receive().ok(), Some(f));
        }
        for _ in 0..40 { d.handle_irq(); }
        let sent = chip.borrow().sent.clone();
        prop_assert_eq!(sent.len(), want.len());
        for (s, f) in sent.iter().zip(&want) {
            prop_assert_eq!(s.id, f.raw_id());
            prop_assert_eq!(s.extended, f.is_extended());
            prop_assert_eq!(s.remote, f.is_remote_frame());
            prop_assert_eq!(usize::from(s.dlc), f.dlc());
            prop_assert_eq!(&s.data[..], f.data());
        }
        no_violations(&chip);
    }
}
