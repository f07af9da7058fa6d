//! Interrupt hardware: the legacy PICs (masked for good), the local APIC
//! (timer and EOI), the IOAPIC (device pins routed to the vectors the plan
//! declares) and the PIT (only to calibrate the TSC and LAPIC timer at boot).
//!
//! The IOAPIC's address comes from the ACPI MADT when the boot loader passed
//! the RSDP, else the PC default 0xFEC0_0000.

use super::cpu::{inb, outb, rdmsr, rdtsc};
use super::paging::phys_to_virt;
use core::ptr::{read_volatile, write_volatile};

/// The PC default, used when ACPI does not say otherwise.
pub const DEFAULT_IOAPIC_BASE: u64 = 0xfec0_0000;
static mut IOAPIC_BASE: u64 = DEFAULT_IOAPIC_BASE;

/// Uses the IOAPIC at `base` (from the ACPI MADT); boot time only.
pub fn set_ioapic_base(base: u64) {
    // SAFETY: single CPU, boot time, before any IOAPIC access.
    unsafe { IOAPIC_BASE = base }
}
/// Vector of the LAPIC timer.
pub const TIMER_VECTOR: u8 = 0x20;
/// Vector of spurious LAPIC interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

static mut LAPIC_BASE: u64 = 0xfee0_0000;

fn lapic_reg(off: u64) -> *mut u32 {
    // SAFETY: single CPU; written once in `init` before any use.
    let base = unsafe { LAPIC_BASE };
    phys_to_virt(base + off) as *mut u32
}

fn lapic_write(off: u64, v: u32) {
    // SAFETY: `off` is a LAPIC register in the direct-mapped LAPIC page.
    unsafe { write_volatile(lapic_reg(off), v) }
}

fn lapic_read(off: u64) -> u32 {
    // SAFETY: as in `lapic_write`.
    unsafe { read_volatile(lapic_reg(off)) }
}

/// Masks both 8259 PICs, enables the LAPIC. Returns the TSC frequency in
/// kHz and the LAPIC timer count per millisecond, both measured with the PIT.
pub fn init() -> (u64, u32) {
    // SAFETY: the PIC ports and the APIC base MSR belong to the kernel; the
    // writes remap then mask the PICs so they never raise a vector.
    unsafe {
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, 0xf0);
        outb(0xa1, 0xf8);
        outb(0x21, 0x04);
        outb(0xa1, 0x02);
        outb(0x21, 0x01);
        outb(0xa1, 0x01);
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
        LAPIC_BASE = rdmsr(0x1b) & 0x000f_ffff_f000;
    }
    lapic_write(0xf0, 0x100 | SPURIOUS_VECTOR as u32);
    lapic_write(0x80, 0); // task priority: accept all
                          // Calibrate: 10 ms of PIT channel 2 (1.193182 MHz), counting TSC and
                          // LAPIC timer ticks (divide by 16) over the same interval.
    lapic_write(0x3e0, 0x3);
    lapic_write(0x320, 1 << 16); // masked, one-shot
    let pit_ticks: u16 = 11932;
    // SAFETY: PIT channel 2 and port 0x61 gate are used only here, at boot.
    let (tsc0, tsc1, lapic_left) = unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01);
        outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0
        outb(0x42, pit_ticks as u8);
        outb(0x42, (pit_ticks >> 8) as u8);
        lapic_write(0x380, u32::MAX);
        let tsc0 = rdtsc();
        let mut spins = 0u64;
        while inb(0x61) & 0x20 == 0 && spins < 200_000_000 {
            spins += 1;
        }
        (tsc0, rdtsc(), lapic_read(0x390))
    };
    let tsc_khz = ((tsc1 - tsc0) / 10).max(1);
    let lapic_per_ms = ((u32::MAX - lapic_left) / 10).max(1);
    (tsc_khz, lapic_per_ms)
}

/// TSC cycles per tick in TSC-deadline mode; 0 = periodic LAPIC mode.
static mut DEADLINE_STEP: u64 = 0;
const IA32_TSC_DEADLINE: u32 = 0x6e0;

/// Starts the kernel tick: in TSC-deadline mode (`tsc_step` cycles per tick)
/// when the CPU has it, else the periodic LAPIC timer with `count` ticks
/// (divide by 16). Both were calibrated against the PIT.
pub fn start_timer(count: u32, tsc_step: u64, deadline: bool) {
    if deadline {
        lapic_write(0x320, (0b10 << 17) | TIMER_VECTOR as u32);
        // SAFETY: boot time, single CPU; the MSR exists (CPUID said so).
        unsafe {
            DEADLINE_STEP = tsc_step.max(1);
            super::cpu::wrmsr(IA32_TSC_DEADLINE, rdtsc() + tsc_step.max(1));
        }
    } else {
        lapic_write(0x3e0, 0x3);
        lapic_write(0x320, (1 << 17) | TIMER_VECTOR as u32);
        lapic_write(0x380, count);
    }
}

/// Called on every tick: in TSC-deadline mode arms the next deadline.
pub fn rearm_timer() {
    // SAFETY: written once at boot before interrupts were enabled.
    let step = unsafe { DEADLINE_STEP };
    if step != 0 {
        // SAFETY: the MSR exists when `step` is set.
        unsafe { super::cpu::wrmsr(IA32_TSC_DEADLINE, rdtsc() + step) }
    }
}

/// Signals end of interrupt to the LAPIC.
pub fn eoi() {
    lapic_write(0xb0, 0);
}

fn ioapic_write(reg: u32, v: u32) {
    // SAFETY: written only at boot, before the first IOAPIC access.
    let base = phys_to_virt(unsafe { IOAPIC_BASE }) as *mut u32;
    // SAFETY: IOREGSEL/IOWIN of the IOAPIC, direct-mapped; single CPU.
    unsafe {
        write_volatile(base, reg);
        write_volatile(base.add(4), v);
    }
}

/// Routes IOAPIC `pin` to `vector` on this CPU; `masked` leaves it off.
pub fn route(pin: u8, vector: u8, level: bool, active_low: bool, masked: bool) {
    let mut lo = vector as u32;
    if active_low {
        lo |= 1 << 13;
    }
    if level {
        lo |= 1 << 15;
    }
    if masked {
        lo |= 1 << 16;
    }
    ioapic_write(0x10 + 2 * pin as u32 + 1, 0); // destination: APIC id 0
    ioapic_write(0x10 + 2 * pin as u32, lo);
}
