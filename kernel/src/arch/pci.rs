//! PCI configuration space (mechanism #1, ports 0xCF8/0xCFC) — only what
//! MSI needs: find a function's MSI capability, program it to deliver a
//! vector to this CPU, and mask/unmask it (when the function supports
//! per-vector masking). Used at boot and on IRQ delivery/ack.

fn address(bus: u8, dev: u8, func: u8, off: u8) -> u32 {
    0x8000_0000
        | (bus as u32) << 16
        | ((dev as u32) & 31) << 11
        | ((func as u32) & 7) << 8
        | (off as u32 & 0xfc)
}

fn outl(port: u16, v: u32) {
    // SAFETY: the PCI configuration ports belong to the kernel while it
    // runs (interrupts off; a PD granted them is not running now).
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as in `outl`.
    unsafe {
        core::arch::asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

fn read32(bdf: (u8, u8, u8), off: u8) -> u32 {
    outl(0xcf8, address(bdf.0, bdf.1, bdf.2, off));
    inl(0xcfc)
}

fn write32(bdf: (u8, u8, u8), off: u8, v: u32) {
    outl(0xcf8, address(bdf.0, bdf.1, bdf.2, off));
    outl(0xcfc, v);
}

fn read16(bdf: (u8, u8, u8), off: u8) -> u16 {
    (read32(bdf, off) >> ((off & 2) * 8)) as u16
}

fn write16(bdf: (u8, u8, u8), off: u8, v: u16) {
    let shift = (off & 2) * 8;
    let old = read32(bdf, off);
    write32(bdf, off, (old & !(0xffff << shift)) | ((v as u32) << shift));
}

/// Where a function's MSI capability is and what it can do.
#[derive(Clone, Copy, Debug)]
pub struct Msi {
    cap: u8,
    is64: bool,
    maskable: bool,
}

/// Finds the MSI capability of `bdf`.
pub fn find_msi(bdf: (u8, u8, u8)) -> Result<Msi, &'static str> {
    if read32(bdf, 0) & 0xffff == 0xffff {
        return Err("no PCI function at that address");
    }
    if read16(bdf, 0x06) & 0x10 == 0 {
        return Err("the function has no capability list");
    }
    let mut ptr = (read32(bdf, 0x34) & 0xfc) as u8;
    for _ in 0..48 {
        if ptr < 0x40 {
            break;
        }
        let head = read32(bdf, ptr);
        if head & 0xff == 0x05 {
            let control = (head >> 16) as u16;
            return Ok(Msi {
                cap: ptr,
                is64: control & (1 << 7) != 0,
                maskable: control & (1 << 8) != 0,
            });
        }
        ptr = ((head >> 8) & 0xfc) as u8;
    }
    Err("the function has no MSI capability")
}

/// Programs single-message MSI to `vector` on APIC 0, enables it and turns
/// the function's legacy INTx off. Returns the capability for masking.
pub fn enable_msi(bdf: (u8, u8, u8), vector: u8) -> Result<Msi, &'static str> {
    // Off while reprogramming, so no half-written message is sent.
    let msi = find_msi(bdf)?;
    let control_off = msi.cap + 2;
    let control = read16(bdf, control_off);
    write16(bdf, control_off, control & !1 & !(7 << 4));
    write32(bdf, msi.cap + 4, 0xfee0_0000);
    let data_off = if msi.is64 {
        write32(bdf, msi.cap + 8, 0);
        msi.cap + 12
    } else {
        msi.cap + 8
    };
    write16(bdf, data_off, vector as u16);
    set_masked(bdf, msi, false);
    let command = read16(bdf, 0x04);
    write16(bdf, 0x04, command | (1 << 10) | (1 << 2));
    write16(bdf, control_off, (control & !(7 << 4)) | 1);
    Ok(msi)
}

/// Masks or unmasks the function's message, if it supports per-vector
/// masking (else MSI stays on: edge-triggered messages cannot storm unless
/// the device keeps sending them).
pub fn set_masked(bdf: (u8, u8, u8), msi: Msi, masked: bool) {
    if msi.maskable {
        let off = if msi.is64 { msi.cap + 16 } else { msi.cap + 12 };
        write32(bdf, off, masked as u32);
    }
}
