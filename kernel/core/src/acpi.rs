//! Just enough ACPI to find the IOAPIC: the RSDP GRUB hands over (Multiboot2
//! tags 14/15) leads to the RSDT/XSDT, which leads to the MADT ("APIC"),
//! whose IOAPIC entry for GSI 0 gives the IOAPIC's physical address.
//!
//! Rules: firmware tables are input like any other — every length is
//! bounded, every checksum checked; physical memory is read through a
//! caller-supplied function that may refuse (outside the direct map), so
//! this module has no unsafe and is tested on the host.

/// Why no IOAPIC address could be found (the kernel then uses 0xFEC0_0000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// The RSDP is short, has a bad signature or checksum.
    BadRsdp,
    /// A table could not be read or has a bad checksum or length.
    BadTable,
    /// No MADT, or no IOAPIC serving GSI 0 in it.
    NoIoApic,
}

/// Largest table read (the MADT of a big server is a few KiB).
const MAX_TABLE: usize = 16 * 1024;

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32_at(b, at)? as u64 | ((u32_at(b, at + 4)? as u64) << 32))
}

/// Reads a whole table at `phys` into `buf`, checking length and checksum;
/// returns its length.
fn read_table(
    phys: u64,
    buf: &mut [u8; MAX_TABLE],
    read: &mut impl FnMut(u64, &mut [u8]) -> bool,
) -> Result<usize, AcpiError> {
    if !read(phys, &mut buf[..36]) {
        return Err(AcpiError::BadTable);
    }
    let len = u32_at(buf, 4).ok_or(AcpiError::BadTable)? as usize;
    if !(36..=MAX_TABLE).contains(&len) || !read(phys, &mut buf[..len]) || sum(&buf[..len]) != 0 {
        return Err(AcpiError::BadTable);
    }
    Ok(len)
}

/// The physical address of the IOAPIC that serves GSI 0. `rsdp` is the RSDP
/// copy from the boot information; `read(phys, buf)` fills `buf` from
/// physical memory or returns false.
pub fn ioapic_address(
    rsdp: &[u8],
    mut read: impl FnMut(u64, &mut [u8]) -> bool,
) -> Result<u64, AcpiError> {
    if rsdp.len() < 20 || &rsdp[..8] != b"RSD PTR " || sum(&rsdp[..20]) != 0 {
        return Err(AcpiError::BadRsdp);
    }
    let revision = rsdp[15];
    let (root, entry_size) = match (revision >= 2).then(|| u64_at(rsdp, 24)).flatten() {
        Some(x) if x != 0 && rsdp.len() >= 36 => (x, 8),
        _ => (u32_at(rsdp, 16).ok_or(AcpiError::BadRsdp)? as u64, 4),
    };
    let mut root_buf = [0u8; MAX_TABLE];
    let root_len = read_table(root, &mut root_buf, &mut read)?;
    let mut table = [0u8; MAX_TABLE];
    let mut at = 36;
    while at + entry_size <= root_len {
        let phys = if entry_size == 8 {
            u64_at(&root_buf, at)
        } else {
            u32_at(&root_buf, at).map(u64::from)
        }
        .ok_or(AcpiError::BadTable)?;
        at += entry_size;
        let mut head = [0u8; 4];
        if !read(phys, &mut head) || &head != b"APIC" {
            continue;
        }
        let len = read_table(phys, &mut table, &mut read)?;
        let mut e = 44;
        while e + 2 <= len {
            let (kind, elen) = (table[e], table[e + 1] as usize);
            if elen < 2 || e + elen > len {
                return Err(AcpiError::BadTable);
            }
            if kind == 1 && elen >= 12 && u32_at(&table, e + 8) == Some(0) {
                return u32_at(&table, e + 4)
                    .map(u64::from)
                    .ok_or(AcpiError::BadTable);
            }
            e += elen;
        }
    }
    Err(AcpiError::NoIoApic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix_checksum(t: &mut [u8], at: usize) {
        t[at] = 0;
        t[at] = 0u8.wrapping_sub(sum(t));
    }

    fn table(sig: &[u8; 4], body: &[u8]) -> std::vec::Vec<u8> {
        let mut t = std::vec![0u8; 36];
        t[..4].copy_from_slice(sig);
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        fix_checksum(&mut t, 9);
        t
    }

    /// Physical memory: RSDT at 0x1000 listing a FACP at 0x2000 and the MADT
    /// at 0x3000 (a LAPIC entry, an IOAPIC for GSI 24, then one for GSI 0).
    fn memory() -> (std::vec::Vec<u8>, std::vec::Vec<u8>) {
        let mut mem = std::vec![0u8; 0x4000];
        let mut rsdt_body = std::vec::Vec::new();
        rsdt_body.extend_from_slice(&0x2000u32.to_le_bytes());
        rsdt_body.extend_from_slice(&0x3000u32.to_le_bytes());
        let rsdt = table(b"RSDT", &rsdt_body);
        mem[0x1000..0x1000 + rsdt.len()].copy_from_slice(&rsdt);
        let facp = table(b"FACP", &[0; 8]);
        mem[0x2000..0x2000 + facp.len()].copy_from_slice(&facp);
        let mut madt_body = std::vec![0u8; 8]; // LAPIC address + flags
        madt_body.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // processor LAPIC
        madt_body.extend_from_slice(&[1, 12, 9, 0]);
        madt_body.extend_from_slice(&0xfec1_0000u32.to_le_bytes());
        madt_body.extend_from_slice(&24u32.to_le_bytes());
        madt_body.extend_from_slice(&[1, 12, 8, 0]);
        madt_body.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        madt_body.extend_from_slice(&0u32.to_le_bytes());
        let madt = table(b"APIC", &madt_body);
        mem[0x3000..0x3000 + madt.len()].copy_from_slice(&madt);
        let mut rsdp = std::vec![0u8; 20];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[16..20].copy_from_slice(&0x1000u32.to_le_bytes());
        fix_checksum(&mut rsdp, 8);
        (rsdp, mem)
    }

    fn reader(mem: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
        move |phys, buf| {
            let Some(src) = mem.get(phys as usize..phys as usize + buf.len()) else {
                return false;
            };
            buf.copy_from_slice(src);
            true
        }
    }

    #[test]
    fn finds_the_ioapic_for_gsi_0() {
        let (rsdp, mem) = memory();
        assert_eq!(ioapic_address(&rsdp, reader(&mem)), Ok(0xfec0_0000));
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let (rsdp, mem) = memory();
        let mut bad = rsdp.clone();
        bad[0] = b'X';
        assert_eq!(ioapic_address(&bad, reader(&mem)), Err(AcpiError::BadRsdp));
        let mut bad = rsdp.clone();
        bad[12] ^= 1;
        assert_eq!(ioapic_address(&bad, reader(&mem)), Err(AcpiError::BadRsdp));
        let mut m = mem.clone();
        m[0x3000 + 50] ^= 1; // MADT checksum now wrong
        assert_eq!(ioapic_address(&rsdp, reader(&m)), Err(AcpiError::BadTable));
        assert_eq!(
            ioapic_address(&rsdp, reader(&mem[..0x1010])),
            Err(AcpiError::BadTable)
        );
        for i in 0..0x4000 {
            let mut m = mem.clone();
            m[i] = m[i].wrapping_add(0x5a);
            let _ = ioapic_address(&rsdp, reader(&m));
        }
        let no_madt = {
            let mut m = mem.clone();
            m[0x3000] = b'X';
            m
        };
        assert_eq!(
            ioapic_address(&rsdp, reader(&no_madt)),
            Err(AcpiError::NoIoApic)
        );
    }
}
