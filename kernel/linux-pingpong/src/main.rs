//! `linux-pingpong`: the reference point of `cargo xtask bench`. Runs as
//! `/init` of a Debian kernel booted directly by QEMU (same `-icount
//! shift=0` setup as the Bulkhead bench): the parent writes 8 bytes into one
//! pipe, the child echoes them back through another; the parent times each
//! round trip with `rdtsc` (two context switches, like a PPC call + reply),
//! prints `LINUX pipe_round_trip_cycles mean=.. min=..` and powers off.
//!
//! It is a freestanding static executable (raw Linux syscalls, no libc), so
//! it builds with the same bare-metal target as the PDs and needs nothing
//! installed. On the host build it is a stub.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("linux-pingpong is built for x86_64-unknown-none by `cargo xtask bench` and runs as a Linux /init");
}

#[cfg(target_os = "none")]
mod linux {
    use core::arch::{asm, global_asm};

    global_asm!(
        ".globl _start",
        "_start:",
        "xor ebp, ebp",
        "and rsp, -16",
        "call {main}",
        "ud2",
        main = sym pingpong_main,
    );

    fn syscall3(n: u64, a: u64, b: u64, c: u64) -> i64 {
        let ret: i64;
        // SAFETY: a raw Linux syscall; the arguments are plain values or
        // pointers to live buffers of this process, as each wrapper ensures.
        unsafe {
            asm!("syscall", inlateout("rax") n as i64 => ret, in("rdi") a, in("rsi") b, in("rdx") c,
                 lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    fn syscall4(n: u64, a: u64, b: u64, c: u64, d: u64) -> i64 {
        let ret: i64;
        // SAFETY: as in `syscall3`.
        unsafe {
            asm!("syscall", inlateout("rax") n as i64 => ret, in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
                 lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    const READ: u64 = 0;
    const WRITE: u64 = 1;
    const FORK: u64 = 57;
    const EXIT: u64 = 60;
    const REBOOT: u64 = 169;
    const PIPE2: u64 = 293;

    fn write_all(fd: i32, s: &[u8]) {
        syscall3(WRITE, fd as u64, s.as_ptr() as u64, s.len() as u64);
    }

    fn rdtsc() -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: reads the time-stamp counter only.
        unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
        lo as u64 | ((hi as u64) << 32)
    }

    fn pipe() -> [i32; 2] {
        let mut fds = [0i32; 2];
        syscall3(PIPE2, fds.as_mut_ptr() as u64, 0, 0);
        fds
    }

    fn fmt_u64(mut v: u64, out: &mut [u8; 20]) -> &[u8] {
        let mut i = out.len();
        loop {
            i -= 1;
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        &out[i..]
    }

    fn power_off() -> ! {
        syscall4(REBOOT, 0xfee1_dead, 672_274_793, 0x4321_fedc, 0);
        loop {
            core::hint::spin_loop();
        }
    }

    const N: u64 = 1000;

    extern "C" fn pingpong_main() -> ! {
        let to_child = pipe();
        let to_parent = pipe();
        let mut word = [0u8; 8];
        if syscall3(FORK, 0, 0, 0) == 0 {
            loop {
                if syscall3(READ, to_child[0] as u64, word.as_mut_ptr() as u64, 8) <= 0 {
                    syscall3(EXIT, 0, 0, 0);
                }
                syscall3(WRITE, to_parent[1] as u64, word.as_ptr() as u64, 8);
            }
        }
        let (mut sum, mut min) = (0u64, u64::MAX);
        for round in 0..N + 10 {
            let t0 = rdtsc();
            syscall3(WRITE, to_child[1] as u64, word.as_ptr() as u64, 8);
            syscall3(READ, to_parent[0] as u64, word.as_mut_ptr() as u64, 8);
            let d = rdtsc().wrapping_sub(t0);
            if round >= 10 {
                sum += d;
                min = min.min(d);
            }
        }
        let mut b1 = [0u8; 20];
        let mut b2 = [0u8; 20];
        write_all(1, b"LINUX pipe_round_trip_cycles mean=");
        write_all(1, fmt_u64(sum / N, &mut b1));
        write_all(1, b" min=");
        write_all(1, fmt_u64(min, &mut b2));
        write_all(1, b" n=1000\n");
        power_off()
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        power_off()
    }
}
