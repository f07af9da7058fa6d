//! The syscall layer: the only module of the runtime that talks to the
//! kernel, and the only one with `unsafe`. Everything above it is plain Rust,
//! so a host test harness can replace this one module (see the host variant
//! at the bottom, which keeps message registers in memory and reports
//! kernel calls as unsupported).

use bulkhead_abi::{Error, MessageInfo, MAX_MESSAGE_REGISTERS};
#[cfg(target_os = "none")]
use bulkhead_abi::{Event, Syscall};

/// What `ReplyRecv` returned.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Notifications: bit n = channel n.
    Notified(u64),
    /// A PPC on channel `.0` with message info `.1`.
    Protected(u64, MessageInfo),
    /// Child `.0` faulted: kind, address, RIP.
    Fault(u64, u64, u64, u64),
}

#[cfg(target_os = "none")]
mod imp {
    use super::*;
    use core::arch::asm;

    #[inline(always)]
    fn call(n: Syscall, a: u64, b: u64) -> (u64, u64, u64, u64, u64, u64) {
        let (rax, rdi, rsi, rdx, r8, r9): (u64, u64, u64, u64, u64, u64);
        // SAFETY: `int 0x80` enters the kernel, which reads only the
        // registers named here and writes back only rax, rdi, rsi, rdx, r8,
        // r9 (all declared as outputs); memory it touches (the IPC buffer,
        // a debug string) is read through its checked accessors.
        unsafe {
            asm!(
                "int 0x80",
                inlateout("rax") n as u64 => rax,
                inlateout("rdi") a => rdi,
                inlateout("rsi") b => rsi,
                lateout("rdx") rdx,
                lateout("r8") r8,
                lateout("r9") r9,
                options(nostack),
            );
        }
        (rax, rdi, rsi, rdx, r8, r9)
    }

    fn err(rax: u64) -> Result<(), Error> {
        match Error::from_raw(rax) {
            Some(Error::Ok) => Ok(()),
            Some(e) => Err(e),
            None => Err(Error::CalleeUnavailable),
        }
    }

    pub fn debug_puts(s: &[u8]) {
        call(Syscall::DebugPuts, s.as_ptr() as u64, s.len() as u64);
    }

    /// A VM call (`bulkhead_abi::vcpu::VmCall`): four arguments, the error
    /// code and one result back.
    pub fn vm_call(n: u64, a: u64, b: u64, c: u64, d: u64) -> (u64, u64) {
        let (rax, rdi): (u64, u64);
        // SAFETY: as in `call`; a VM call reads rdi, rsi, rdx, r8 and writes
        // rax and rdi (a vCPU run also writes the IPC buffer, which this
        // runtime reads only through volatile accesses).
        unsafe {
            asm!(
                "int 0x80",
                inlateout("rax") n => rax,
                inlateout("rdi") a => rdi,
                inlateout("rsi") b => _,
                inlateout("rdx") c => _,
                inlateout("r8") d => _,
                lateout("r9") _,
                options(nostack),
            );
        }
        (rax, rdi)
    }
    pub fn notify(ch: u64) {
        call(Syscall::Notify, ch, 0);
    }
    pub fn ppcall(ch: u64, info: MessageInfo) -> Result<MessageInfo, Error> {
        let (rax, rdi, ..) = call(Syscall::PpCall, ch, info.raw());
        err(rax).map(|()| MessageInfo::from_raw(rdi))
    }
    pub fn reply_recv(mut reply: Option<MessageInfo>) -> Received {
        loop {
            let (a, b) = match reply {
                Some(m) => (1, m.raw()),
                None => (0, 0),
            };
            let (_, rdi, rsi, rdx, r8, r9) = call(Syscall::ReplyRecv, a, b);
            match Event::from_raw(rdi) {
                Some(Event::Notified) => return Received::Notified(rsi),
                Some(Event::Protected) => {
                    return Received::Protected(rsi, MessageInfo::from_raw(rdx))
                }
                Some(Event::Fault) => return Received::Fault(rsi, rdx, r8, r9),
                // An error return (nothing to reply): just wait again.
                None => reply = None,
            }
        }
    }
    pub fn irq_ack(ch: u64) {
        call(Syscall::IrqAck, ch, 0);
    }
    pub fn child_restart(id: u64) -> Result<(), Error> {
        err(call(Syscall::ChildRestart, id, 0).0)
    }
    pub fn child_stop(id: u64) -> Result<(), Error> {
        err(call(Syscall::ChildStop, id, 0).0)
    }
    pub fn read_tsc() -> u64 {
        call(Syscall::ReadTsc, 0, 0).1
    }
    pub fn tsc_hz() -> u64 {
        call(Syscall::TscHz, 0, 0).1
    }
    pub fn set_timeout(deadline: u64) {
        call(Syscall::SetTimeout, deadline, 0);
    }
    pub fn panic() -> ! {
        call(Syscall::Panic, 0, 0);
        loop {
            core::hint::spin_loop();
        }
    }

    pub fn rdtsc() -> u64 {
        let (lo, hi): (u32, u32);
        // SAFETY: RDTSC only reads the time-stamp counter (CR4.TSD is clear,
        // so it is allowed in ring 3).
        unsafe {
            asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
        }
        lo as u64 | ((hi as u64) << 32)
    }
    pub fn outb(port: u16, v: u8) {
        // SAFETY: the kernel opens only the ports `system.xml` grants this PD
        // in the TSS I/O bitmap; any other port faults the PD. What the
        // device does is the PD's own business (it owns the device).
        unsafe {
            asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
        }
    }
    pub fn inb(port: u16) -> u8 {
        let v: u8;
        // SAFETY: as in `outb`.
        unsafe {
            asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
        }
        v
    }
    pub fn outl(port: u16, v: u32) {
        // SAFETY: as in `outb`.
        unsafe {
            asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
        }
    }
    pub fn inl(port: u16) -> u32 {
        let v: u32;
        // SAFETY: as in `outb`.
        unsafe {
            asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
        }
        v
    }

    fn mrs() -> *mut u64 {
        bulkhead_abi::IPC_BUFFER_VADDR as *mut u64
    }
    pub fn get_mr(i: usize) -> u64 {
        assert!(
            i < MAX_MESSAGE_REGISTERS,
            "message register index out of range"
        );
        // SAFETY: the kernel maps this PD's IPC buffer page read/write at
        // IPC_BUFFER_VADDR before the PD starts; i < 64 keeps it in the page.
        unsafe { core::ptr::read_volatile(mrs().add(i)) }
    }
    pub fn set_mr(i: usize, v: u64) {
        assert!(
            i < MAX_MESSAGE_REGISTERS,
            "message register index out of range"
        );
        // SAFETY: as in `get_mr`.
        unsafe { core::ptr::write_volatile(mrs().add(i), v) }
    }
    /// `base`/`len` come from one `<map>`'s `setvar_vaddr`/`setvar_size`
    /// (the caller checked: non-null, 8-byte aligned, whole words, no
    /// overflow).
    pub fn shared_words(base: u64, len: u64) -> Option<&'static [core::sync::atomic::AtomicU64]> {
        // SAFETY: the tool patched `base` and `len` from one `<map>` of
        // this PD's `system.xml`, and the kernel maps that region for the
        // PD's whole life, readable (and writable if the map says so), so
        // the range is valid for `'static`. Aligned u64 words have the
        // layout of AtomicU64. Nothing in this PD makes a non-atomic
        // reference to it (this is the only way PD code reaches it), and
        // other PDs are other address spaces, for which the atomic
        // accesses are well defined. A read-only map is only loaded from
        // (atomic loads of aligned words); a store faults the PD, which the
        // kernel delivers to its parent.
        Some(unsafe {
            core::slice::from_raw_parts(
                base as usize as *const core::sync::atomic::AtomicU64,
                (len / 8) as usize,
            )
        })
    }
}

#[cfg(not(target_os = "none"))]
#[allow(dead_code)] // the host stand-in mirrors the target API
mod imp {
    //! Host stand-in: message registers live in a per-thread array; kernel
    //! calls go to the [`crate::host::HostKernel`] a test installed with
    //! [`crate::host::install`] (calls without one panic, saying so).
    use super::*;
    use crate::host::with_kernel;
    use core::sync::atomic::AtomicU64;
    use std::cell::RefCell;

    std::thread_local! {
        static MRS: RefCell<[u64; MAX_MESSAGE_REGISTERS]> = const { RefCell::new([0; MAX_MESSAGE_REGISTERS]) };
    }

    pub fn debug_puts(s: &[u8]) {
        with_kernel("debug_puts", |k| k.debug_puts(s))
    }
    pub fn vm_call(_n: u64, _a: u64, _b: u64, _c: u64, _d: u64) -> (u64, u64) {
        panic!("bulkhead-microkit: VM calls need the kernel; test the VMM's exit handling on ExitMessage values")
    }
    pub fn notify(ch: u64) {
        with_kernel("notify", |k| k.notify(ch as usize))
    }
    pub fn ppcall(ch: u64, info: MessageInfo) -> Result<MessageInfo, Error> {
        with_kernel("ppcall", |k| k.pp_call(ch as usize, info))
    }
    pub fn reply_recv(_reply: Option<MessageInfo>) -> Received {
        panic!("bulkhead-microkit: the event loop needs the kernel; on the host call the Handler methods directly")
    }
    pub fn irq_ack(ch: u64) {
        with_kernel("irq_ack", |k| k.irq_ack(ch as usize))
    }
    pub fn child_restart(id: u64) -> Result<(), Error> {
        with_kernel("child_restart", |k| k.child_restart(id as usize))
    }
    pub fn child_stop(id: u64) -> Result<(), Error> {
        with_kernel("child_stop", |k| k.child_stop(id as usize))
    }
    pub fn read_tsc() -> u64 {
        0
    }
    pub fn set_timeout(deadline: u64) {
        with_kernel("set_timeout", |k| k.set_timeout(deadline))
    }
    pub fn tsc_hz() -> u64 {
        with_kernel("tsc_hz", |k| k.tsc_hz())
    }
    pub fn rdtsc() -> u64 {
        0
    }
    pub fn panic() -> ! {
        panic!("bulkhead-microkit: PD panicked")
    }
    pub fn outb(port: u16, v: u8) {
        with_kernel("outb", |k| k.outb(port, v))
    }
    pub fn inb(port: u16) -> u8 {
        with_kernel("inb", |k| k.inb(port))
    }
    pub fn outl(port: u16, v: u32) {
        with_kernel("outl", |k| k.outl(port, v))
    }
    pub fn inl(port: u16) -> u32 {
        with_kernel("inl", |k| k.inl(port))
    }
    pub fn get_mr(i: usize) -> u64 {
        MRS.with(|m| m.borrow()[i])
    }
    /// Host: only what a harness mapped (no raw pointers at all).
    pub fn shared_words(base: u64, len: u64) -> Option<&'static [AtomicU64]> {
        crate::host::region(base, len)
    }
    pub fn set_mr(i: usize, v: u64) {
        MRS.with(|m| m.borrow_mut()[i] = v)
    }
}

pub use imp::*;
