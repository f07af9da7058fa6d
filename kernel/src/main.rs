//! The Bulkhead separation kernel.
//!
//! Boots by Multiboot2 (GRUB), reads the boot plan module that `bulkhead pack`
//! wrote, creates every PD, region, channel, IRQ route and I/O grant at boot,
//! then only schedules PDs and serves their syscalls; it allocates nothing
//! after boot. See `docs/kernel.md` for the design and the ABI.
//!
//! Layout: `arch` holds all hardware access and all `unsafe`; `kernel` is
//! the object model and syscall semantics over it; the decisions that need
//! no hardware (plan checks, scheduling, capabilities) live in `kernel-core`
//! and are unit-tested on the host.
//!
//! On the host (`cargo test --workspace`) this crate builds to a stub that
//! only says how to build the real thing.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
mod vm;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("bulkhead-kernel is a bare-metal binary: build it with `cargo xtask build` (target x86_64-unknown-none)");
    std::process::exit(2);
}

/// Called by the boot trampoline in long mode on the kernel stack.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn kmain(magic: u32, info_phys: u64) -> ! {
    kernel::boot(magic, info_phys)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // Only a kernel bug gets here: no PD action may cause a panic.
    kprintln!("bulkhead: KERNEL PANIC: {}", info.message());
    if let Some(l) = info.location() {
        kprintln!("  at {}:{}", l.file(), l.line());
    }
    arch::debug_exit(0x7f);
    arch::cpu::halt_forever()
}
