//! PCI inventory of bus 0: which functions answer, checked against the list
//! of devices the board must have.
//!
//! The scan follows the PCI rules: a vendor ID of 0xFFFF means nothing is
//! there; functions 1..=7 exist only when function 0's header type has the
//! multi-function bit (0x80).

/// A device the board must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Device number on bus 0.
    pub device: u8,
    /// Function number.
    pub function: u8,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device_id: u16,
    /// What it is, for the report.
    pub name: &'static str,
}

/// One function that answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Device number.
    pub device: u8,
    /// Function number.
    pub function: u8,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device_id: u16,
}

/// Every function on bus 0 (at most 256).
pub struct Inventory {
    found: [Found; 256],
    len: usize,
}

impl Inventory {
    /// The functions found, in device/function order.
    pub fn found(&self) -> &[Found] {
        &self.found[..self.len]
    }
}

/// Scans bus 0. `read(device, function, offset)` returns a 32-bit
/// configuration register.
pub fn scan_bus0(mut read: impl FnMut(u8, u8, u8) -> u32) -> Inventory {
    let mut inv = Inventory {
        found: [Found::default(); 256],
        len: 0,
    };
    for device in 0..32u8 {
        let id0 = read(device, 0, 0);
        if id0 & 0xffff == 0xffff {
            continue;
        }
        let header_type = (read(device, 0, 0x0c) >> 16) & 0xff;
        let functions = if header_type & 0x80 != 0 { 8 } else { 1 };
        for function in 0..functions {
            let id = if function == 0 {
                id0
            } else {
                read(device, function, 0)
            };
            if id & 0xffff == 0xffff {
                continue;
            }
            inv.found[inv.len] = Found {
                device,
                function,
                vendor: id as u16,
                device_id: (id >> 16) as u16,
            };
            inv.len += 1;
        }
    }
    inv
}

/// Why the inventory does not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The expected device.
    pub expected: Expected,
    /// What answered at its address, if anything.
    pub found: Option<Found>,
}

/// Checks that every expected device is present with the right IDs; returns
/// how many other functions answered (allowed: boards carry optional cards).
pub fn check(inv: &Inventory, expected: &[Expected]) -> Result<usize, Mismatch> {
    for e in expected {
        let at = inv
            .found()
            .iter()
            .find(|f| f.device == e.device && f.function == e.function);
        match at {
            Some(f) if f.vendor == e.vendor && f.device_id == e.device_id => {}
            other => {
                return Err(Mismatch {
                    expected: *e,
                    found: other.copied(),
                })
            }
        }
    }
    Ok(inv.found().len().saturating_sub(expected.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(dev: u8, func: u8, off: u8) -> u32 {
        match (dev, func, off) {
            (0, 0, 0) => 0x29c0_8086,
            (0, 0, 0x0c) => 0,
            (31, f, 0) if f <= 3 && f != 1 => 0x2918_8086 + (f as u32) * 0x0001_0000,
            (31, 0, 0x0c) => 0x0080_0000,
            (2, 0, 0) => 0x100e_8086,
            (2, 0, 0x0c) => 0,
            // Function 1 of a single-function device must not be scanned.
            (0, 1, 0) => 0x1234_1234,
            _ => 0xffff_ffff,
        }
    }

    const EXPECTED: &[Expected] = &[
        Expected {
            device: 0,
            function: 0,
            vendor: 0x8086,
            device_id: 0x29c0,
            name: "host bridge",
        },
        Expected {
            device: 31,
            function: 0,
            vendor: 0x8086,
            device_id: 0x2918,
            name: "LPC",
        },
        Expected {
            device: 31,
            function: 2,
            vendor: 0x8086,
            device_id: 0x291a,
            name: "function 2",
        },
    ];

    #[test]
    fn scan_follows_multifunction_rules() {
        let inv = scan_bus0(bus);
        let addrs: std::vec::Vec<_> = inv.found().iter().map(|f| (f.device, f.function)).collect();
        assert_eq!(addrs, [(0, 0), (2, 0), (31, 0), (31, 2), (31, 3)]);
        assert_eq!(check(&inv, EXPECTED), Ok(2));
    }

    #[test]
    fn missing_or_wrong_device_is_named() {
        let inv = scan_bus0(|d, f, o| {
            if (d, f) == (31, 2) {
                0xffff_ffff
            } else {
                bus(d, f, o)
            }
        });
        assert_eq!(
            check(&inv, EXPECTED),
            Err(Mismatch {
                expected: EXPECTED[2],
                found: None
            })
        );
        let inv = scan_bus0(|d, f, o| {
            if (d, f, o) == (0, 0, 0) {
                0x29c1_8086
            } else {
                bus(d, f, o)
            }
        });
        let m = check(&inv, EXPECTED).unwrap_err();
        assert_eq!(m.found.map(|f| f.device_id), Some(0x29c1));
    }
}
