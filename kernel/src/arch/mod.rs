//! The architecture layer: everything that touches x86_64 hardware state.
//! This is the only place in the kernel where `unsafe` lives; the kernel
//! logic above it (`crate::kernel`) is plain Rust over these safe wrappers.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod paging;
pub mod pci;
pub mod serial;
pub mod svm;
pub mod trap;
pub mod vmx;

/// The kernel's one global state object. Single CPU, interrupts off in the
/// kernel: the only concurrency is a nested interrupt while the kernel idles
/// in `hlt`, and the trap path re-fetches the reference after every wait,
/// so callers never hold two live `&mut` at once. This is the discipline
/// the `unsafe` below relies on.
pub struct Global<T> {
    cell: core::cell::UnsafeCell<core::mem::MaybeUninit<T>>,
    ready: core::sync::atomic::AtomicBool,
}

// SAFETY: one CPU; access discipline documented on the type.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// Not yet initialised.
    pub const fn new() -> Self {
        Self {
            cell: core::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit()),
            ready: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Stores the value (once, at boot) and returns it.
    // A `&mut` from `&self` is the point of this cell; the type's docs state
    // the single-CPU discipline that keeps it unaliased.
    #[allow(clippy::mut_from_ref)]
    pub fn init(&'static self, value: T) -> &'static mut T {
        assert!(
            !self.ready.swap(true, core::sync::atomic::Ordering::SeqCst),
            "Global initialised twice"
        );
        // SAFETY: first and only initialisation; nobody can hold a reference
        // yet because `get` refuses before `ready` was set.
        unsafe { (*self.cell.get()).write(value) }
    }

    /// The value; a kernel bug (panic) if called before `init`.
    // See `init`.
    #[allow(clippy::mut_from_ref)]
    pub fn get(&'static self) -> &'static mut T {
        assert!(
            self.ready.load(core::sync::atomic::Ordering::SeqCst),
            "Global used before init"
        );
        // SAFETY: initialised (checked above); aliasing discipline as
        // documented on the type.
        unsafe { (*self.cell.get()).assume_init_mut() }
    }
}

unsafe extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
}

/// Physical range of the kernel image (from the linker script).
pub fn kernel_phys_range() -> (u64, u64) {
    // Linker-defined symbols: only their addresses are taken.
    (
        core::ptr::addr_of!(__kernel_phys_start) as u64,
        core::ptr::addr_of!(__kernel_phys_end) as u64,
    )
}

/// CPU protection features found and switched on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Protections {
    /// Supervisor-mode execution prevention.
    pub smep: bool,
    /// Supervisor-mode access prevention.
    pub smap: bool,
    /// Process-context identifiers: each PD's TLB entries survive switches.
    pub pcid: bool,
    /// TSC-deadline timer mode (reported; the kernel uses the periodic
    /// LAPIC timer for now).
    pub tsc_deadline: bool,
}

/// Turns on SMEP and SMAP where the CPU has them (NX and WP are on since the
/// trampoline). Returns what it found.
pub fn enable_protections() -> Protections {
    let (_, ebx, _, _) = cpu::cpuid(7, 0);
    let (_, _, ecx1, _) = cpu::cpuid(1, 0);
    let p = Protections {
        smep: ebx & (1 << 7) != 0,
        smap: ebx & (1 << 20) != 0,
        pcid: ecx1 & (1 << 17) != 0,
        tsc_deadline: ecx1 & (1 << 24) != 0,
    };
    let mut cr4 = cpu::cr4();
    if p.pcid && cpu::cr3() & 0xfff == 0 {
        cr4 |= 1 << 17;
        paging::enable_pcid();
    }
    if p.smep {
        cr4 |= 1 << 20;
    }
    if p.smap {
        cr4 |= 1 << 21;
    }
    // SAFETY: only bits CPUID reports; the kernel never executes user pages
    // and reads user memory only through the direct map (supervisor pages);
    // PCIDE is set only while CR3's PCID field is 0, as the SDM requires.
    unsafe { cpu::set_cr4(cr4) };
    p
}

/// Exits QEMU through isa-debug-exit (port 0xf4) if present; used only when
/// the kernel itself cannot go on (a bad boot plan), so tests fail fast.
pub fn debug_exit(code: u8) {
    // SAFETY: port 0xf4 is QEMU's debug-exit device or nothing; a write to an
    // absent port is ignored.
    unsafe { cpu::outb(0xf4, code) }
}

/// The Multiboot2 information as bytes (its first word is its size, capped
/// at 64 KiB; the parser checks everything inside).
pub fn boot_info_bytes(phys: u64) -> &'static [u8] {
    // SAFETY: the caller checked `phys + 8` is below the direct-map limit;
    // GRUB placed the information in RAM the frame allocator then reserves.
    let total =
        unsafe { core::ptr::read_unaligned(paging::phys_to_virt(phys) as *const u32) } as u64;
    let total = total.min(65536).min(paging::DIRECT_MAP_LIMIT - phys);
    phys_slice(phys, total)
}

/// Physical memory `[phys, phys+len)` as a byte slice through the direct map.
pub fn phys_slice(phys: u64, len: u64) -> &'static [u8] {
    assert!(phys.saturating_add(len) <= paging::DIRECT_MAP_LIMIT);
    // SAFETY: in the direct map (checked above); used only for memory that
    // the kernel reserved and never writes (boot information, modules).
    unsafe { core::slice::from_raw_parts(paging::phys_to_virt(phys), len as usize) }
}

/// Reads physical memory (a PD's IPC buffer) into `out`.
pub fn read_phys(phys: u64, out: &mut [u8]) {
    assert!(phys.saturating_add(out.len() as u64) <= paging::DIRECT_MAP_LIMIT);
    // SAFETY: in the direct map (checked above); `out` is kernel memory.
    unsafe {
        core::ptr::copy_nonoverlapping(paging::phys_to_virt(phys), out.as_mut_ptr(), out.len())
    }
}
