//! vm/bench: the VM exit round trip. The guest times `cpuid` with `rdtsc`
//! on both sides (the TSC is not intercepted, so this is guest CPUID ->
//! exit -> kernel -> this VMM PD's handling -> resume -> guest), 1000
//! times, and reports the minimum and the sum through I/O exits. In the
//! same run this PD times its own null syscall (`ReadTsc`) as the
//! reference the ratio is taken against. Under `-icount shift=0` the TSC
//! counts guest instructions, so the figures are instruction counts.

#![cfg_attr(target_os = "none", no_std, no_main)]
// Copying the guest image between two linker symbols and writing guest RAM
// through this PD's own map of it need raw pointers; test-only.
#![allow(unsafe_code)]

use bulkhead_abi::vcpu::{ExitReason, Gpr, Register};
use bulkhead_microkit::vcpu::Vcpu;
use bulkhead_microkit::{debug_println, protection_domain, Handler, Infallible};
use bulkhead_test_pds::{fail, pass};

bulkhead_microkit::setvar!(guest_ram);

const T: &str = "vm-bench";
const N: u64 = 1000;

core::arch::global_asm!(
    ".section .rodata.benchguest, \"a\"",
    ".global bulkhead_bench_guest_start",
    ".global bulkhead_bench_guest_end",
    "bulkhead_bench_guest_start:",
    "mov r12, -1",  // min
    "xor r13, r13", // sum
    "mov r14, 1000",
    "2:",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov r15, rax",
    "mov eax, 0x40000000",
    "xor ecx, ecx",
    "cpuid",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "sub rax, r15",
    "add r13, rax",
    "cmp rax, r12",
    "cmovb r12, rax",
    "dec r14",
    "jnz 2b",
    "mov rax, r12",
    "mov dx, 0x510",
    "out dx, eax",
    "mov rax, r13",
    "mov dx, 0x511",
    "out dx, eax",
    "hlt",
    "bulkhead_bench_guest_end:",
    ".text",
);

extern "C" {
    static bulkhead_bench_guest_start: u8;
    static bulkhead_bench_guest_end: u8;
}

fn guest_code() -> &'static [u8] {
    let start = &raw const bulkhead_bench_guest_start;
    let end = &raw const bulkhead_bench_guest_end;
    // SAFETY: both symbols delimit one read-only section of this image.
    unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
}

fn write(base: u64, gpa: u64, bytes: &[u8]) {
    assert!(gpa + bytes.len() as u64 <= 0x20_0000);
    // SAFETY: system.xml maps the 2 MiB of guest RAM read/write at `base`.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), (base + gpa) as *mut u8, bytes.len()) }
}

fn bench() -> Option<(u64, u64, u64, u64)> {
    let base = guest_ram.get()?;
    write(base, 0x1_0000, guest_code());
    write(base, 0x8, &0x00af_9b00_0000_ffffu64.to_le_bytes());
    write(base, 0x10, &0x00cf_9300_0000_ffffu64.to_le_bytes());
    write(base, 0x1000, &0x2003u64.to_le_bytes());
    write(base, 0x2000, &0x3003u64.to_le_bytes());
    write(base, 0x3000, &0x83u64.to_le_bytes());
    let v = Vcpu(0);
    v.write(Register::Rip, 0x1_0000).ok()?;
    v.write(Register::Cr3, 0x1000).ok()?;
    let (mut min, mut sum) = (0, 0);
    loop {
        let m = v.run().ok()?;
        match m.reason {
            ExitReason::Cpuid { .. } => {
                // The handler's work: answer the leaf.
                v.write(Register::Gpr(Gpr::Rax), 0).ok()?;
                v.write(Register::Gpr(Gpr::Rbx), 0x6b6c_7562).ok()?;
            }
            ExitReason::Io {
                port: 0x510, data, ..
            } => min = data as u64,
            ExitReason::Io {
                port: 0x511, data, ..
            } => sum = data as u64,
            ExitReason::Hlt => break,
            other => {
                fail(T, format_args!("unexpected exit {other:?}"));
                return None;
            }
        }
        v.write(Register::Rip, m.rip + m.insn_len as u64).ok()?;
    }
    // The reference: this PD's null syscall round trip.
    let (mut smin, mut ssum) = (u64::MAX, 0);
    for _ in 0..N {
        let a = bulkhead_microkit::rdtsc();
        let _ = bulkhead_microkit::read_tsc();
        let d = bulkhead_microkit::rdtsc() - a;
        smin = smin.min(d);
        ssum += d;
    }
    Some((sum / N, min, ssum / N, smin))
}

struct Bench;

fn init() -> Bench {
    if let Some((mean, min, smean, smin)) = bench() {
        debug_println!("BENCH vm_exit_round_trip_cycles mean={mean} min={min} n={N}");
        debug_println!("BENCH null_syscall_cycles mean={smean} min={smin} n={N}");
        pass(T);
    } else {
        fail(T, format_args!("the bench guest did not complete"));
    }
    Bench
}

impl Handler for Bench {
    type Error = Infallible;
}

protection_domain!(init);
