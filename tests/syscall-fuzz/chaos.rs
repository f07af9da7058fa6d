//! syscall-fuzz/chaos: random syscalls with hostile arguments, forever.
//! `shared[0]` is the seed (the parent changes it on every restart),
//! `shared[1]` counts syscalls that returned.

#![cfg_attr(target_os = "none", no_std, no_main)]
// Issues raw syscalls with hostile arguments on purpose.
#![allow(unsafe_code)]

use bulkhead_microkit::{protection_domain, setvar, Handler, Infallible};
use bulkhead_test_pds::Shared;

setvar!(shared);

struct Chaos;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, from: &[u64]) -> u64 {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn init() -> Chaos {
    let sh = Shared::new(shared.get());
    let mut rng = Rng(sh.read(0) | 1);
    let stack_word = 0u64;
    let pointers = [
        0,
        8,
        core::ptr::addr_of!(stack_word) as u64,
        bulkhead_microkit_abi_ipc(),
        0x1000_0000,
        0x5000_0000,
        0x7fff_ffff_fff8,
        0x8000_0000_0000,
        0xffff_8000_0000_0000,
        0xffff_ffff_8010_0000,
        u64::MAX,
    ];
    // Lengths that print little when they succeed: the log stays readable.
    let lengths = [0, 1, 7, 4097, 1 << 40, u64::MAX];
    let small = [0, 1, 2, 9, 61, 62, 63, 64, 255, 1 << 32, u64::MAX];
    loop {
        // Syscalls 1..=9 are real (4 = ReplyRecv only with a reply, which
        // returns at once: nothing is being served); others are unknown.
        let n = match rng.next() % 16 {
            0 => rng.pick(&[0, 10, 11, 0x80, u64::MAX]),
            4 => 4,
            9 if !rng.next().is_multiple_of(8) => 1, // panics rarely
            x => x.min(9),
        };
        let (a, b) = match n {
            1 => (rng.pick(&pointers), rng.pick(&lengths)),
            4 => (1, rng.next()),
            _ => (rng.pick(&small), rng.next() >> rng.pick(&[0, 8, 52, 60])),
        };
        let (rax, rdi, rsi): (u64, u64, u64);
        // SAFETY: none — hostile syscalls on purpose; the kernel must either
        // return (clobbering only the declared registers) or fault this PD.
        unsafe {
            core::arch::asm!("int 0x80", inlateout("rax") n => rax, inlateout("rdi") a => rdi, inlateout("rsi") b => rsi,
                             lateout("rdx") _, lateout("r8") _, lateout("r9") _);
        }
        let _ = (rax, rdi, rsi);
        sh.write(1, sh.read(1) + 1);
    }
}

fn bulkhead_microkit_abi_ipc() -> u64 {
    0x0000_7fff_ff00_0000
}

impl Handler for Chaos {
    type Error = Infallible;
}

protection_domain!(init);
