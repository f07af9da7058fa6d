//! The guest's PC: vmm-core's device models behind the ports Linux uses,
//! and its CPUID and MSR policy, as one [`Board`].
//!
//! Design rules: the host's CPUID is read here (ring 3 may execute it) and
//! only ever reaches the guest through `vmm_core::cpuid`'s allow-list; the
//! guest's TSC is the host's (no offset), so the TSC MSR and the device
//! clocks derive from the same count.

use bulkhead_abi::vcpu::Vendor;
use vmm_core::cpuid::{self, CpuidConfig, CpuidResult};
use vmm_core::devices::Platform;
use vmm_core::msr::{self, MsrContext, ReadAction, WriteAction};

use crate::exits::Board;

/// Seconds since the Unix epoch the guest's RTC starts at: the platform
/// has no wall clock of its own (the CMOS clock is the firmware PD's), so
/// the guest's date is fixed per boot; a board with a time source would
/// pass its time here.
pub const RTC_EPOCH: u64 = 1_767_225_600; // 2026-01-01 00:00:00 UTC

fn host_cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// The virtualization vendor of this CPU, as the kernel uses it: AMD-V if
/// the CPU has SVM, else VT-x.
pub fn host_vendor() -> Vendor {
    if host_cpuid(0x8000_0000, 0).eax >= 0x8000_0001
        && host_cpuid(0x8000_0001, 0).ecx & (1 << 2) != 0
    {
        Vendor::Svm
    } else {
        Vendor::Vmx
    }
}

/// The emulated PC of one VM.
pub struct PcBoard {
    /// The devices.
    pub platform: Platform,
    cpuid: CpuidConfig,
    vendor: Vendor,
    tsc_khz: u32,
    /// TSC at the board's time zero.
    start_tsc: u64,
    now_ns: u64,
}

impl PcBoard {
    /// A board whose time zero is TSC `start_tsc`, on a CPU of `vendor`
    /// whose TSC runs at `tsc_khz`.
    pub fn new(vendor: Vendor, tsc_khz: u32, start_tsc: u64) -> Self {
        Self {
            platform: Platform::new(0, RTC_EPOCH),
            cpuid: CpuidConfig::from_host(host_cpuid(0, 0), host_cpuid(0x8000_0000, 0), tsc_khz),
            vendor,
            tsc_khz,
            start_tsc,
            now_ns: 0,
        }
    }

    fn tsc(&self) -> u64 {
        self.start_tsc
            .wrapping_add((self.now_ns as u128 * self.tsc_khz as u128 / 1_000_000) as u64)
    }

    fn msr_context(&self, efer: u64) -> MsrContext {
        MsrContext {
            vendor: self.vendor,
            tsc: self.tsc(),
            tsc_khz: self.tsc_khz,
            efer,
        }
    }
}

impl Board for PcBoard {
    fn io_in(&mut self, port: u16, size: u8) -> u32 {
        self.platform.io_in(port, size)
    }
    fn io_out(&mut self, port: u16, size: u8, value: u32) {
        self.platform.io_out(port, size, value)
    }
    fn advance(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        self.platform.advance(now_ns)
    }
    fn next_event_ns(&self) -> Option<u64> {
        self.platform.next_event_ns()
    }
    fn pending_vector(&self) -> Option<u8> {
        self.platform.pending_interrupt()
    }
    fn acknowledge(&mut self) {
        self.platform.acknowledge();
    }
    fn drain_output(&mut self, buf: &mut [u8]) -> usize {
        self.platform.drain_output(buf)
    }
    fn cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        // XSAVE stays hidden (the config's default), so the answer never
        // depends on the guest's CR4.
        let r = cpuid::guest_cpuid(leaf, subleaf, host_cpuid(leaf, subleaf), &self.cpuid, 0);
        [r.eax, r.ebx, r.ecx, r.edx]
    }
    fn msr_read(&mut self, m: u32) -> ReadAction {
        msr::read(m, &self.msr_context(0))
    }
    fn msr_write(&mut self, m: u32, value: u64, efer: u64) -> WriteAction {
        msr::write(m, value, &self.msr_context(efer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_sees_the_policy_not_the_host() {
        let b = PcBoard::new(Vendor::Svm, 2_000_000, 0);
        let [_, _, ecx, edx] = b.cpuid(1, 0);
        assert_ne!(ecx & (1 << 31), 0, "hypervisor bit set");
        assert_eq!(ecx & (1 << 5), 0, "VMX hidden");
        assert_eq!(edx & (1 << 9), 0, "APIC hidden: no LAPIC is emulated");
        let [_, ebx, ecx, edx] = b.cpuid(0x4000_0000, 0);
        let mut sig = [0u8; 12];
        sig[..4].copy_from_slice(&ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&ecx.to_le_bytes());
        sig[8..].copy_from_slice(&edx.to_le_bytes());
        assert_eq!(&sig, b"BulkheadVMM\0");
        let [_, _, ecx, _] = b.cpuid(0x8000_0001, 0);
        assert_eq!(ecx & (1 << 2), 0, "SVM hidden");
    }

    #[test]
    fn the_tsc_msr_follows_the_board_clock() {
        let mut b = PcBoard::new(Vendor::Svm, 1_000_000, 5_000);
        b.advance(2_000_000); // 2 ms at 1 GHz
        assert_eq!(b.msr_read(0x10), ReadAction::Value(5_000 + 2_000_000));
        assert!(
            matches!(b.msr_read(0x1b), ReadAction::Refuse(_)),
            "no APIC base"
        );
    }

    #[test]
    fn the_uart_output_reaches_the_console_drain() {
        let mut b = PcBoard::new(Vendor::Vmx, 1_000_000, 0);
        for &c in b"ok" {
            b.io_out(0x3f8, 1, c as u32);
        }
        let mut buf = [0u8; 8];
        let n = b.drain_output(&mut buf);
        assert_eq!(&buf[..n], b"ok");
    }
}
