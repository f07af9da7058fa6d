//! The real sample containers (built for wasm32 and signed by
//! `cargo xtask test`) against the mock q35 board: each verifies under the
//! reference trust configuration, produces its expected result on a good
//! board and names the fault on a bad one, and the whole POST set boots.

mod common;

use std::path::PathBuf;

use common::MockBoard;
use firmware_core::{verify, Decision, Outcome, Policy, Refusal};
use firmware_runtime::post::run_post;
use firmware_runtime::{engine, Loaded, RtcTime};

const NEEDS: &str = "needs the signed sample containers: run via cargo xtask test";

fn dir() -> PathBuf {
    match std::env::var_os("BULKHEAD_FW_CONTAINERS") {
        Some(d) => PathBuf::from(d),
        None => panic!("BULKHEAD_FW_CONTAINERS is not set: these tests need the signed sample containers; run them with `cargo xtask test`"),
    }
}

fn container(name: &str) -> Vec<u8> {
    let p = dir().join(format!("{name}.bhc"));
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask test` to build it)", p.display()))
}

fn policy() -> Policy {
    firmware_host::trust::load(&dir().join("trust.toml"))
        .expect("the reference trust configuration loads")
}

/// Runs one container on `board`; its outcome and the board.
fn run(name: &str, board: MockBoard) -> (Outcome, MockBoard) {
    let v = verify(&container(name), &policy()).unwrap_or_else(|r| panic!("{name}: refused: {r}"));
    let mut l = Loaded::load(&engine(), &v, board)
        .unwrap_or_else(|(f, _)| panic!("{name}: not loaded: {f:?}"));
    let rec = l.run(&v.manifest().limits);
    assert!(rec.fuel_used > 0);
    (rec.outcome, l.release())
}

fn detail(o: &Outcome) -> &str {
    match o {
        Outcome::Passed { detail } | Outcome::Failed { detail } => detail,
        other => panic!("no result: {other:?}"),
    }
}

#[test]
#[ignore = "needs the signed sample containers: run via cargo xtask test"]
fn memtest_covers_the_scratch_region() {
    let _ = NEEDS;
    let (o, board) = run("memtest", MockBoard::q35(256 * 1024));
    assert_eq!(
        o,
        Outcome::Passed {
            detail: "7 patterns over 262144 bytes".into()
        }
    );
    // The last pattern (walking ones) is what the container left in scratch.
    assert_eq!(&board.scratch[4..8], &2u32.to_le_bytes());
    let (o, _) = run("memtest", MockBoard::q35(0));
    assert_eq!(
        o,
        Outcome::Failed {
            detail: "no scratch region to test".into()
        }
    );
}

#[test]
#[ignore = "needs the signed sample containers: run via cargo xtask test"]
fn pci_inventory_checks_bus_0() {
    let (o, board) = run("pci-inventory", MockBoard::q35(0));
    assert_eq!(
        detail(&o),
        "bus 0: 6 functions, all 4 expected devices present (2 others)"
    );
    assert!(o.passed());
    let logged: Vec<&str> = board.logs.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        logged,
        [
            "00:00.0 8086:29c0",
            "00:01.0 1234:1111",
            "00:02.0 8086:100e",
            "00:1f.0 8086:2918",
            "00:1f.2 8086:2922",
            "00:1f.3 8086:2930"
        ]
    );
    // Without the AHCI controller the container names it.
    let mut board = MockBoard::q35(0);
    board.pci.remove(&(0, 31, 2, 0));
    let (o, _) = run("pci-inventory", board);
    assert_eq!(
        o,
        Outcome::Failed {
            detail: "ICH9 AHCI controller (8086:2922) at 00:1f.2: nothing answers".into()
        }
    );
    // A wrong device ID is named with what answered instead.
    let mut board = MockBoard::q35(0);
    board.pci.insert((0, 0, 0, 0), 0x1237_8086);
    let (o, _) = run("pci-inventory", board);
    assert_eq!(
        detail(&o),
        "Q35 host bridge (8086:29c0) at 00:00.0: found 8086:1237 instead"
    );
}

#[test]
#[ignore = "needs the signed sample containers: run via cargo xtask test"]
fn timer_and_rtc_sanity() {
    let (o, _) = run("timer-rtc", MockBoard::q35(0));
    // The mock clock moves 1 us per read; each `timer_ns` call reads it twice
    // (the runtime's wall-clock check, then the value): 7 intervals x 2 us.
    assert_eq!(
        o,
        Outcome::Passed {
            detail: "timer advanced 14000 ns over 8 reads; RTC 2026-11-22 01:02:03".into()
        }
    );
    let mut board = MockBoard::q35(0);
    board.step_ns = 0; // a stopped timer
    let (o, _) = run("timer-rtc", board);
    assert!(
        detail(&o).starts_with("timer did not advance: read 1"),
        "{o:?}"
    );
    assert!(!o.passed());
    let mut board = MockBoard::q35(0);
    board.rtc = RtcTime {
        year: 2000,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
    };
    let (o, _) = run("timer-rtc", board);
    assert_eq!(
        o,
        Outcome::Failed {
            detail:
                "RTC 2000-01-01 00:00:00: year outside 2020..=2099 (battery lost or century wrong)"
                    .into()
        }
    );
}

#[test]
#[ignore = "needs the signed sample containers: run via cargo xtask test"]
fn serial_loopback_checks_every_data_line() {
    let (o, _) = run("serial-loopback", MockBoard::q35(0));
    assert_eq!(
        o,
        Outcome::Passed {
            detail: "20 bytes came back unchanged".into()
        }
    );
    let mut board = MockBoard::q35(0);
    board.serial_fault = 0x08;
    let (o, _) = run("serial-loopback", board);
    assert_eq!(
        o,
        Outcome::Failed {
            detail: "byte 0 sent 0x00, received 0x08".into()
        }
    );
}

#[test]
#[ignore = "needs the signed sample containers: run via cargo xtask test"]
fn container_memory_is_zeroed_after_the_run() {
    let v = verify(&container("memtest"), &policy()).unwrap();
    let mut l = Loaded::load(&engine(), &v, MockBoard::q35(64 * 1024))
        .ok()
        .unwrap();
    l.run(&v.manifest().limits);
    // The chunk buffer on the container's stack still holds pattern data.
    let walking = [1u8, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0];
    assert!(
        l.memory().windows(walking.len()).any(|w| w == walking),
        "no pattern data in the container's memory"
    );
    let len = l.memory().len() as u64;
    assert_eq!(l.wipe(), Some(len));
    assert!(l.memory().iter().all(|b| *b == 0));
}

#[test]
#[ignore = "needs the signed sample containers: run via cargo xtask test"]
fn the_reference_post_set_boots_and_a_tampered_critical_one_stops_it() {
    let names = ["memtest", "pci-inventory", "timer-rtc", "serial-loopback"];
    let set: Vec<Vec<u8>> = names.iter().map(|n| container(n)).collect();
    let refs: Vec<&[u8]> = set.iter().map(Vec::as_slice).collect();
    let (report, board) = run_post(&policy(), &refs, MockBoard::q35(128 * 1024));
    println!("{report}");
    assert!(
        report.entries.iter().all(|e| e.outcome.passed()),
        "{report}"
    );
    assert_eq!(report.decision, Decision::Boot);
    assert!(report.entries.iter().all(|e| e.wiped_bytes == 2 * 65536));
    assert!(board.scratch.iter().all(|b| *b == 0));

    // Flip one bit in pci-inventory's module (a critical container by policy).
    let mut tampered = set.clone();
    let module_byte = tampered[1].len() - 64 - 32 - 100;
    tampered[1][module_byte] ^= 0x10;
    let refs: Vec<&[u8]> = tampered.iter().map(Vec::as_slice).collect();
    let (report, _) = run_post(&policy(), &refs, MockBoard::q35(4096));
    assert_eq!(
        report.entries[1].outcome,
        Outcome::Refused(Refusal::ModuleHashMismatch)
    );
    assert_eq!(report.decision, Decision::Stop { slot: 1 });
    // Dropping it from the set does not skip it: the policy names it critical.
    let refs: Vec<&[u8]> = [&set[0], &set[2], &set[3]]
        .iter()
        .map(|v| v.as_slice())
        .collect();
    let (report, _) = run_post(&policy(), &refs, MockBoard::q35(4096));
    assert_eq!(report.entries[3].outcome, Outcome::Missing);
    assert_eq!(report.decision, Decision::Stop { slot: 3 });
}

/// A PC's ports as the firmware PD sees them: a q35 bus 0 behind
/// 0xCF8/0xCFC, a BCD CMOS RTC and a 16550 at COM1.
struct PcPorts {
    bus0: std::collections::BTreeMap<u32, u32>,
    cf8: u32,
    cmos: [u8; 128],
    index: u8,
    mcr: u8,
    rx: Option<u8>,
    now: u64,
}

impl PcPorts {
    fn q35() -> PcPorts {
        let mut bus0 = std::collections::BTreeMap::new();
        let board = MockBoard::q35(0);
        for (&(_, d, f, off), &v) in &board.pci {
            bus0.insert(
                0x8000_0000 | (d as u32) << 11 | (f as u32) << 8 | off as u32,
                v,
            );
        }
        let mut cmos = [0u8; 128];
        // 2026-11-22 13:45:30 in BCD, 24-hour mode.
        cmos[0x00] = 0x30;
        cmos[0x02] = 0x45;
        cmos[0x04] = 0x13;
        cmos[0x07] = 0x22;
        cmos[0x08] = 0x11;
        cmos[0x09] = 0x26;
        cmos[0x32] = 0x20;
        cmos[0x0b] = 0x02;
        PcPorts {
            bus0,
            cf8: 0,
            cmos,
            index: 0,
            mcr: 0,
            rx: None,
            now: 0,
        }
    }
}

impl firmware_runtime::pc::PortIo for PcPorts {
    fn inb(&mut self, port: u16) -> u8 {
        match port {
            0x71 => self.cmos[(self.index & 0x7f) as usize],
            0x3f8 => self.rx.take().unwrap_or(0),
            0x3fc => self.mcr,
            0x3fd => 0x60 | self.rx.is_some() as u8,
            _ => 0xff,
        }
    }
    fn outb(&mut self, port: u16, value: u8) {
        match port {
            0x70 => self.index = value,
            0x3fc => self.mcr = value,
            0x3f8 if self.mcr & 0x10 != 0 => self.rx = Some(value),
            _ => {}
        }
    }
    fn inl(&mut self, port: u16) -> u32 {
        if port == 0xcfc {
            *self.bus0.get(&self.cf8).unwrap_or(&0xffff_ffff)
        } else {
            0xffff_ffff
        }
    }
    fn outl(&mut self, port: u16, value: u32) {
        if port == 0xcf8 {
            self.cf8 = value;
        }
    }
    fn now_ns(&mut self) -> u64 {
        self.now += 500;
        self.now
    }
    fn console(&mut self, _: &str, _: &str) {}
}

#[test]
#[ignore = "needs the signed sample containers: run via cargo xtask test"]
fn the_post_set_passes_over_the_pc_port_layer() {
    use firmware_runtime::pc::{PcPlatform, COM1};
    let names = ["memtest", "pci-inventory", "timer-rtc", "serial-loopback"];
    let set: Vec<Vec<u8>> = names.iter().map(|n| container(n)).collect();
    let refs: Vec<&[u8]> = set.iter().map(Vec::as_slice).collect();
    let scratch: &'static mut [u8] = vec![0xa5u8; 32 * 1024].leak();
    let board = PcPlatform::new(PcPorts::q35(), COM1, scratch);
    let (report, board) = run_post(&policy(), &refs, board);
    assert_eq!(report.decision, Decision::Boot, "{report}");
    assert_eq!(
        report.entries[2].outcome,
        Outcome::Passed {
            detail: "timer advanced 7000 ns over 8 reads; RTC 2026-11-22 13:45:30".into()
        }
    );
    assert_eq!(board.into_io().mcr, 0, "the UART was left in loopback mode");
}
