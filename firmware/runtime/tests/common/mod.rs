//! Shared by the runtime's tests and benchmark: a mock board (fake PCI bus 0
//! of a QEMU q35 machine, RTC, timer, serial loopback, scratch region) and
//! helpers to sign modules as containers with a test key.

#![allow(dead_code)] // each test file uses a different part.

use std::collections::BTreeMap;

use firmware_core::manifest::{Limits, Manifest, Version};
use firmware_core::verify::{InspectionPolicy, Policy, TrustedKey};
use firmware_core::{CapabilitySet, Container};
use firmware_runtime::{Platform, RtcTime};
use sha2::Digest;

pub const PLATFORM: &str = "qemu-q35";

pub struct MockBoard {
    pub logs: Vec<(String, String)>,
    pub now_ns: u64,
    /// How far the clock moves at every read.
    pub step_ns: u64,
    pub rtc: RtcTime,
    pub pci: BTreeMap<(u8, u8, u8, u8), u32>,
    pub pci_reads: u32,
    /// XOR applied to bytes in loopback (0: a working UART).
    pub serial_fault: u8,
    pub scratch: Vec<u8>,
}

impl MockBoard {
    /// A q35-like bus 0: host bridge, VGA, e1000, and the multi-function ICH9 at 1f.
    pub fn q35(scratch_len: usize) -> MockBoard {
        let mut pci = BTreeMap::new();
        let mut dev = |d: u8, f: u8, vendor: u16, device: u16, header: u32| {
            pci.insert((0, d, f, 0), (device as u32) << 16 | vendor as u32);
            pci.insert((0, d, f, 0x0c), header << 16);
        };
        dev(0, 0, 0x8086, 0x29c0, 0);
        dev(1, 0, 0x1234, 0x1111, 0);
        dev(2, 0, 0x8086, 0x100e, 0);
        dev(31, 0, 0x8086, 0x2918, 0x80);
        dev(31, 2, 0x8086, 0x2922, 0);
        dev(31, 3, 0x8086, 0x2930, 0);
        MockBoard {
            logs: Vec::new(),
            now_ns: 1_000_000_000,
            step_ns: 1_000,
            rtc: RtcTime {
                year: 2026,
                month: 11,
                day: 22,
                hour: 1,
                minute: 2,
                second: 3,
            },
            pci,
            pci_reads: 0,
            serial_fault: 0,
            scratch: vec![0x5a; scratch_len],
        }
    }
}

impl Platform for MockBoard {
    fn log(&mut self, container: &str, line: &str) {
        self.logs.push((container.into(), line.into()));
    }
    fn monotonic_ns(&mut self) -> u64 {
        self.now_ns += self.step_ns;
        self.now_ns
    }
    fn rtc(&mut self) -> RtcTime {
        self.rtc
    }
    fn pci_config_read32(&mut self, bus: u8, device: u8, function: u8, offset: u8) -> u32 {
        self.pci_reads += 1;
        *self
            .pci
            .get(&(bus, device, function, offset))
            .unwrap_or(&0xffff_ffff)
    }
    fn serial_loopback(&mut self, byte: u8) -> Option<u8> {
        Some(byte ^ self.serial_fault)
    }
    fn scratch(&mut self) -> &mut [u8] {
        &mut self.scratch
    }
}

pub fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

pub fn policy() -> Policy {
    Policy {
        platform: PLATFORM.into(),
        trusted_keys: vec![TrustedKey {
            name: "test".into(),
            public: key().verifying_key().to_bytes(),
        }],
        held: CapabilitySet::all(),
        max_limits: Limits {
            fuel: 1_000_000_000,
            memory_pages: 64,
            wall_clock_ms: 60_000,
        },
        inspection: InspectionPolicy::default(),
        critical: vec![],
        stop_on_refusal: false,
    }
}

pub fn manifest(name: &str, module: &[u8], caps: CapabilitySet, limits: Limits) -> Manifest {
    Manifest {
        name: name.into(),
        version: Version {
            major: 0,
            minor: 1,
            patch: 0,
        },
        platform: PLATFORM.into(),
        entry: "run".into(),
        critical: false,
        capabilities: caps,
        limits,
        module_len: module.len() as u32,
        module_sha256: sha2::Sha256::digest(module).into(),
        regions: vec![],
        inspection: None,
    }
}

pub fn sign(m: &Manifest, module: &[u8]) -> Vec<u8> {
    Container::sign(m, module.to_vec(), &key())
        .unwrap()
        .encode()
}

pub fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap()
}
