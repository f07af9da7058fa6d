//! `bulkhead-microkit`: what every Bulkhead protection domain links.
//!
//! The API has the shape of rust-sel4's `sel4-microkit`, so PD code reads the
//! same: a PD is a [`Handler`] created by an init function named in
//! [`protection_domain!`]; the runtime runs the event loop and calls
//! [`Handler::notified`], [`Handler::protected`] and [`Handler::fault`].
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! use bulkhead_microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler, Infallible};
//!
//! const SERVER: Channel = Channel::new(1);
//!
//! fn init() -> Client {
//!     debug_println!("hello");
//!     SERVER.notify();
//!     Client
//! }
//! struct Client;
//! impl Handler for Client {
//!     type Error = Infallible;
//!     fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
//!         for ch in channels.iter() { debug_println!("notified on {}", ch.index()); }
//!         Ok(())
//!     }
//! }
//! protection_domain!(init);
//! ```
//!
//! # Event-loop semantics (Microkit's)
//! - `init` runs once at start (and again after a restart by the parent).
//! - `notified` gets *every* channel signalled since the last call, as a set.
//! - `protected` serves a PPC: read the message registers with [`get_mr`],
//!   write the reply's with [`set_mr`], return the reply's [`MessageInfo`].
//!   Only PDs of strictly lower priority can call in, and the caller waits.
//! - `fault` gets a child's fault; restart the child with
//!   [`Child::restart`] or stop it with [`Child::stop`]; doing neither
//!   leaves it stopped.
//! - A handler returning `Err` is a bug of the PD: the runtime prints the
//!   error and panics, so the PD faults and its parent decides.
//!
//! Ids, addresses and sizes come from `system.xml` through [`setvar!`]
//! symbols the tool patches, never from constants in the code
//! (CONVENTIONS.md §1) — except channel ids, which the SDF fixes per PD.
//!
//! Design rule: all kernel access is in the one small module `sys` (the only
//! `unsafe` here); a host test harness can replace it.

// no_std on the target; on the host the `sys` stand-in uses std.
#![cfg_attr(target_os = "none", no_std)]
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod bytes;
#[allow(unsafe_code)] // the syscall layer; each block has its SAFETY comment
mod sys;
pub mod vcpu;

#[allow(unsafe_code)] // the GlobalAlloc impl; each block has its SAFETY comment
pub mod heap;

pub use bulkhead_abi::{Error as KernelError, FaultKind, MessageInfo, MAX_MESSAGE_REGISTERS};
pub use core::convert::Infallible;

/// A channel, by the id this PD uses for it in `system.xml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel(usize);

impl Channel {
    /// The PD's own timer ([`set_timeout`]): notifications only, above
    /// every id `system.xml` may give a channel.
    pub const TIMER: Channel = Channel(bulkhead_abi::TIMER_CHANNEL as usize);
    /// The channel with id `index`.
    pub const fn new(index: usize) -> Self {
        Self(index)
    }
    /// Its id.
    pub const fn index(self) -> usize {
        self.0
    }
    /// Signals the other end. Notifying a channel the PD does not hold
    /// faults the PD (the kernel's capability check).
    pub fn notify(self) {
        sys::notify(self.0 as u64)
    }
    /// Protected procedure call: the message registers set with [`set_mr`]
    /// go to the callee's `protected`; returns its reply (registers again
    /// via [`get_mr`]). Fails if the callee faulted or was stopped.
    pub fn pp_call(self, msg_info: MessageInfo) -> Result<MessageInfo, KernelError> {
        sys::ppcall(self.0 as u64, msg_info)
    }
    /// Acknowledges the IRQ delivered on this channel, re-enabling it.
    pub fn irq_ack(self) {
        sys::irq_ack(self.0 as u64)
    }
}

/// The set of channels a notification batch arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChannelSet(u64);

impl ChannelSet {
    /// From a bit set (bit n = channel n).
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }
    /// The bits.
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Whether `ch` is in the set.
    pub const fn contains(self, ch: Channel) -> bool {
        ch.0 < 64 && self.0 & (1 << ch.0) != 0
    }
    /// The channels, lowest id first.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        (0..64).filter(move |i| self.0 & (1 << i) != 0).map(Channel)
    }
}

/// A child PD, by the `id` its parent gave it in `system.xml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child(usize);

impl Child {
    /// The child with id `index`.
    pub const fn new(index: usize) -> Self {
        Self(index)
    }
    /// Its id.
    pub const fn index(self) -> usize {
        self.0
    }
    /// Restarts it from its entry point with fresh data, bss and stack.
    pub fn restart(self) -> Result<(), KernelError> {
        sys::child_restart(self.0 as u64)
    }
    /// Stops it for good.
    pub fn stop(self) -> Result<(), KernelError> {
        sys::child_stop(self.0 as u64)
    }
}

/// What a child's fault was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    /// The kind (`None` if the kernel reported a kind this runtime does not know).
    pub kind: Option<FaultKind>,
    /// The faulting address: linear address for page faults, port for I/O
    /// faults, channel id for capability faults, else the RIP.
    pub address: u64,
    /// The child's instruction pointer at the fault.
    pub ip: u64,
}

/// The PD's behaviour: one method per kind of event. Default methods treat
/// an unexpected event as a bug (they return [`UnexpectedEvent`] through
/// `From`), so a PD implements only what its `system.xml` can deliver.
pub trait Handler {
    /// The PD's error type; `Infallible` if it has none.
    type Error: core::fmt::Display;

    /// Notifications arrived on `channels` (including IRQs).
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        panic!("unexpected notification on {:#x}", channels.bits())
    }

    /// A protected procedure call arrived on `channel`; return the reply.
    fn protected(
        &mut self,
        channel: Channel,
        msg_info: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        panic!(
            "unexpected protected call on {} (label {})",
            channel.index(),
            msg_info.label()
        )
    }

    /// A vCPU of this PD's VM exited (the `fault` entry point for vCPUs,
    /// as Microkit delivers them): handle `exit`, then return true to
    /// reply, which resumes the vCPU, or false to hold it (a later
    /// [`vcpu::Vcpu::resume`] starts it again).
    fn vcpu_exit(
        &mut self,
        vcpu: vcpu::Vcpu,
        exit: bulkhead_abi::vcpu::ExitMessage,
    ) -> Result<bool, Self::Error> {
        panic!("unexpected exit of vCPU {} ({:?})", vcpu.0, exit.reason)
    }

    /// A child faulted.
    fn fault(&mut self, child: Child, info: FaultInfo) -> Result<(), Self::Error> {
        panic!(
            "unexpected fault of child {} at {:#x}",
            child.index(),
            info.address
        )
    }
}

/// Marker for handler defaults (kept for API symmetry with sel4-microkit).
#[derive(Debug, Clone, Copy)]
pub struct UnexpectedEvent;

/// Reads message register `i` (< 64) of this PD's IPC buffer.
pub fn get_mr(i: usize) -> u64 {
    sys::get_mr(i)
}

/// Writes message register `i` (< 64).
pub fn set_mr(i: usize, value: u64) {
    sys::set_mr(i, value)
}

/// The time-stamp counter as the kernel reads it (a syscall).
pub fn read_tsc() -> u64 {
    sys::read_tsc()
}

/// The TSC frequency in Hz, as the kernel calibrated it at boot (a
/// syscall). Time a PD measures with [`rdtsc`] converts at this rate; no PD
/// needs the PIT for it.
pub fn tsc_hz() -> u64 {
    sys::tsc_hz()
}

/// Arms this PD's one-shot timer: when the TSC reaches `tsc_deadline` the
/// kernel notifies the PD on [`Channel::TIMER`] (at the resolution of the
/// kernel's 1 ms tick). A later call replaces the deadline; 0 cancels it.
pub fn set_timeout(tsc_deadline: u64) {
    sys::set_timeout(tsc_deadline)
}

/// The time-stamp counter, read directly with `rdtsc` (for benches).
pub fn rdtsc() -> u64 {
    sys::rdtsc()
}

/// Host-side testing: on any target but bare metal, kernel calls made by PD
/// code (`Channel::notify`, `pp_call`, `irq_ack`, `Child::restart`, port
/// I/O, console output) go to a [`HostKernel`](host::HostKernel) the test
/// installs for its thread, so handler code runs unchanged in `cargo test`.
/// Message registers are per-thread memory there.
#[cfg(not(target_os = "none"))]
pub mod host {
    use super::{KernelError, MessageInfo};
    use core::sync::atomic::AtomicU64;
    use std::cell::RefCell;

    /// What PD code can ask of the kernel, as a test double implements it.
    /// Every method has a default that panics with the call's name, so a
    /// test implements only what the code under test uses.
    pub trait HostKernel {
        /// Console output (default: print to stdout).
        fn debug_puts(&mut self, bytes: &[u8]) {
            print!("{}", String::from_utf8_lossy(bytes));
        }
        /// `Channel::notify`.
        fn notify(&mut self, channel: usize) {
            panic!("unexpected notify on channel {channel}")
        }
        /// `Channel::pp_call`; message registers are in [`super::get_mr`]/[`super::set_mr`].
        fn pp_call(
            &mut self,
            channel: usize,
            info: MessageInfo,
        ) -> Result<MessageInfo, KernelError> {
            panic!(
                "unexpected pp_call on channel {channel} (label {})",
                info.label()
            )
        }
        /// `Channel::irq_ack`.
        fn irq_ack(&mut self, channel: usize) {
            panic!("unexpected irq_ack on channel {channel}")
        }
        /// `Child::restart`.
        fn child_restart(&mut self, child: usize) -> Result<(), KernelError> {
            panic!("unexpected restart of child {child}")
        }
        /// `Child::stop`.
        fn child_stop(&mut self, child: usize) -> Result<(), KernelError> {
            panic!("unexpected stop of child {child}")
        }
        /// `io::outb`.
        fn outb(&mut self, port: u16, value: u8) {
            panic!("unexpected outb({port:#x}, {value:#x})")
        }
        /// `io::inb`.
        fn inb(&mut self, port: u16) -> u8 {
            panic!("unexpected inb({port:#x})")
        }
        /// `io::outl`.
        fn outl(&mut self, port: u16, value: u32) {
            panic!("unexpected outl({port:#x}, {value:#x})")
        }
        /// `io::inl`.
        fn inl(&mut self, port: u16) -> u32 {
            panic!("unexpected inl({port:#x})")
        }
        /// `tsc_hz`: the TSC rate the kernel calibrated. Unlike the calls
        /// above it has a working default, [`HOST_TSC_HZ`]: every clock in
        /// PD code asks for it, and a test that cares installs its own.
        fn tsc_hz(&mut self) -> u64 {
            HOST_TSC_HZ
        }
        /// `set_timeout`: arm or cancel the PD's one-shot timer.
        fn set_timeout(&mut self, deadline: u64) {
            panic!("unexpected set_timeout({deadline})")
        }
    }

    /// The TSC rate a host kernel reports unless it says otherwise (1 GHz).
    pub const HOST_TSC_HZ: u64 = 1_000_000_000;

    /// The default host kernel: console output only.
    struct ConsoleOnly;
    impl HostKernel for ConsoleOnly {}

    std::thread_local! {
        static KERNEL: RefCell<Option<Box<dyn HostKernel>>> = RefCell::new(None);
    }

    /// Installs `kernel` for this thread; returns the previous one.
    pub fn install(kernel: Box<dyn HostKernel>) -> Option<Box<dyn HostKernel>> {
        KERNEL.with(|k| k.borrow_mut().replace(kernel))
    }

    /// Removes this thread's kernel and returns it (to inspect what it saw).
    pub fn uninstall() -> Option<Box<dyn HostKernel>> {
        KERNEL.with(|k| k.borrow_mut().take())
    }

    std::thread_local! {
        static SETVARS: RefCell<std::collections::HashMap<String, u64>> =
            RefCell::new(std::collections::HashMap::new());
        static REGIONS: RefCell<Vec<&'static [AtomicU64]>> = const { RefCell::new(Vec::new()) };
    }

    /// Gives the setvar symbol `name` the value `value` for PD code running
    /// on this thread, as the tool would patch it (a harness does this
    /// from `system.xml`).
    pub fn set_setvar(name: &str, value: u64) {
        SETVARS.with(|s| s.borrow_mut().insert(name.to_string(), value));
    }

    /// Forgets every setvar value and mapped region of this thread.
    pub fn clear_setvars() {
        SETVARS.with(|s| s.borrow_mut().clear());
        REGIONS.with(|r| r.borrow_mut().clear());
    }

    pub(crate) fn setvar(name: &str) -> Option<u64> {
        if name.is_empty() {
            return None;
        }
        SETVARS.with(|s| s.borrow().get(name).copied())
    }

    /// Makes `words` reachable through [`super::shared_words`] on this
    /// thread, at the host address of its first word (which is then what
    /// the map's `setvar_vaddr` must be set to).
    pub fn map_region(words: &'static [AtomicU64]) -> u64 {
        REGIONS.with(|r| r.borrow_mut().push(words));
        words.as_ptr() as u64
    }

    /// The words of a mapped region covering `[base, base + len)`, if any.
    pub(crate) fn region(base: u64, len: u64) -> Option<&'static [AtomicU64]> {
        REGIONS.with(|r| {
            r.borrow().iter().find_map(|w| {
                let start = w.as_ptr() as u64;
                let end = start + (w.len() as u64) * 8;
                (base >= start && base.checked_add(len)? <= end).then(|| {
                    let first = ((base - start) / 8) as usize;
                    &w[first..first + (len / 8) as usize]
                })
            })
        })
    }

    pub(crate) fn with_kernel<R>(_what: &str, f: impl FnOnce(&mut dyn HostKernel) -> R) -> R {
        // Take it out while calling, so a kernel double may itself call PD
        // code (e.g. run the callee's handler for a pp_call) without a
        // double borrow.
        let mut k: Box<dyn HostKernel> = KERNEL
            .with(|k| k.borrow_mut().take())
            .unwrap_or_else(|| Box::new(ConsoleOnly));
        let r = f(k.as_mut());
        KERNEL.with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(k);
            }
        });
        r
    }
}

/// Port I/O on the ports `system.xml` grants this PD (`<ioport>`). Safe:
/// the kernel opens exactly the granted ports while this PD runs, and any
/// other port is an [`FaultKind::IoPort`] fault delivered to the parent.
pub mod io {
    /// Writes a byte to `port`.
    pub fn outb(port: u16, value: u8) {
        super::sys::outb(port, value)
    }
    /// Reads a byte from `port`.
    pub fn inb(port: u16) -> u8 {
        super::sys::inb(port)
    }
    /// Writes a 32-bit word to `port` (and the three ports after it).
    pub fn outl(port: u16, value: u32) {
        super::sys::outl(port, value)
    }
    /// Reads a 32-bit word from `port` (and the three ports after it).
    pub fn inl(port: u16) -> u32 {
        super::sys::inl(port)
    }
}

/// Runs the event loop around `handler` forever. Called by the code
/// [`protection_domain!`] generates.
pub fn run_main<H: Handler>(mut handler: H) -> ! {
    let mut reply = None;
    loop {
        // Notifications that arrived while `Vcpu::run` waited for an exit.
        let stashed = vcpu::take_stashed_notifications();
        if stashed != 0 {
            if let Err(e) = handler.notified(ChannelSet(stashed)) {
                panic!("notified handler failed: {e}");
            }
        }
        match sys::reply_recv(reply.take()) {
            sys::Received::Notified(bits) => {
                if let Err(e) = handler.notified(ChannelSet(bits)) {
                    panic!("notified handler failed: {e}");
                }
            }
            sys::Received::Protected(ch, info) => {
                match handler.protected(Channel(ch as usize), info) {
                    Ok(r) => reply = Some(r),
                    Err(e) => panic!("protected handler failed: {e}"),
                }
            }
            sys::Received::Fault(child, _, _, _)
                if child & bulkhead_abi::vcpu::VCPU_FAULT_BIT != 0 =>
            {
                let Some(exit) = vcpu::exit_message() else {
                    panic!("vCPU {} exit message undecodable", child & 0xff);
                };
                match handler.vcpu_exit(vcpu::Vcpu(exit.vcpu), exit) {
                    Ok(true) => reply = Some(MessageInfo::new(0, 0)),
                    Ok(false) => {}
                    Err(e) => panic!("vCPU exit handler failed: {e}"),
                }
            }
            sys::Received::Fault(child, kind, address, ip) => {
                let info = FaultInfo {
                    kind: FaultKind::from_raw(kind),
                    address,
                    ip,
                };
                if let Err(e) = handler.fault(Child(child as usize), info) {
                    panic!("fault handler failed: {e}");
                }
            }
        }
    }
}

/// A symbol the tool patches from `system.xml` (`setvar_vaddr`,
/// `setvar_size`, `setvar_id`, ...). Declare with [`setvar!`].
///
/// On the target it is exactly the 8 bytes the tool overwrites. On the
/// host it also keeps its name, so that a test harness can give it the
/// value `system.xml` gives it (see [`host::set_setvar`]).
#[cfg(target_os = "none")]
#[repr(transparent)]
pub struct SetVar(u64);

/// A symbol the tool patches from `system.xml` (host build: the value, and
/// the name a test harness resolves it by).
#[cfg(not(target_os = "none"))]
pub struct SetVar(u64, &'static str);

impl SetVar {
    /// The value before patching: the tool refuses nothing, so a missing
    /// `setvar_*` attribute leaves this, which [`SetVar::get`] reports.
    #[cfg(target_os = "none")]
    pub const UNSET: SetVar = SetVar(u64::MAX);
    /// The value before patching (host build: nameless, never resolved).
    #[cfg(not(target_os = "none"))]
    pub const UNSET: SetVar = SetVar(u64::MAX, "");

    /// An unpatched symbol named `name` (what [`setvar!`] declares).
    #[doc(hidden)]
    pub const fn unset(name: &'static str) -> SetVar {
        #[cfg(target_os = "none")]
        {
            let _ = name;
            SetVar(u64::MAX)
        }
        #[cfg(not(target_os = "none"))]
        SetVar(u64::MAX, name)
    }

    /// The patched value, or `None` if `system.xml` did not set it.
    pub fn get(&'static self) -> Option<u64> {
        #[cfg(not(target_os = "none"))]
        if let Some(v) = host::setvar(self.1) {
            return Some(v);
        }
        // The load must happen at run time: the tool changed the bytes
        // after compilation, so the compiler must not fold the initial value.
        let v = *core::hint::black_box(&self.0);
        (v != u64::MAX).then_some(v)
    }
}

/// Shared memory that `system.xml` maps into this PD, as the 64-bit words
/// that the channel rings (`bulkhead-channel`'s `RingMemory::new`) and
/// other shared structures are built on: PD code needs no `unsafe`.
///
/// `vaddr` and `size` are the `setvar_vaddr` and `setvar_size` symbols of
/// one `<map>`. Returns `None` if either is unset, the address is null or
/// not 8-byte aligned, or the size is not a whole number of words or does
/// not fit the address space. On the host the region must be one a harness
/// mapped ([`host::map_region`]); anything else is `None`.
///
/// The words are only ever accessed atomically, so the peer PD writing the
/// same memory at the same time is well defined.
pub fn shared_words(
    vaddr: &'static SetVar,
    size: &'static SetVar,
) -> Option<&'static [core::sync::atomic::AtomicU64]> {
    let (base, len) = (vaddr.get()?, size.get()?);
    if base == 0 || base % 8 != 0 || len % 8 != 0 || base.checked_add(len).is_none() {
        return None;
    }
    sys::shared_words(base, len)
}

/// PD crates say `#![deny(unsafe_code)]` (not `forbid`): this macro and
/// [`protection_domain!`] export symbols, which the lint counts as unsafe,
/// and allow that locally.
///
/// Declares a patchable symbol: `setvar!(led_vaddr);` creates a `#[no_mangle]`
/// static `led_vaddr` in `.data` that `bulkhead pack` overwrites.
#[macro_export]
macro_rules! setvar {
    ($(#[$m:meta])* $vis:vis $name:ident) => {
        $(#[$m])*
        // Exported under its own name so the tool finds it: that is all the
        // "unsafety" here (a plain immutable static, read by value).
        #[allow(unsafe_code)]
        #[no_mangle]
        #[link_section = ".data"]
        #[allow(non_upper_case_globals)]
        $vis static $name: $crate::SetVar = $crate::SetVar::unset(stringify!($name));
    };
}

/// Declares the PD's entry: `protection_domain!(init)` where
/// `fn init() -> impl Handler`. On the host it expands to a `main` that only
/// says the binary is for the target.
#[macro_export]
macro_rules! protection_domain {
    ($init:path) => {
        #[cfg(target_os = "none")]
        // The ELF entry point the kernel jumps to; nothing else calls it.
        #[allow(unsafe_code)]
        #[no_mangle]
        extern "C" fn _start() -> ! {
            $crate::run_main($init())
        }

        #[cfg(not(target_os = "none"))]
        fn main() {
            let _ = $init;
            eprintln!(
                "this protection domain is built for x86_64-unknown-none by `cargo xtask build`"
            );
        }
    };
}

/// Console output prefixed with the PD's name by the kernel.
pub mod debug {
    /// Line buffer: one syscall per line (or per 200 bytes).
    pub struct Writer {
        buf: [u8; 200],
        len: usize,
    }

    impl Writer {
        /// An empty writer.
        pub const fn new() -> Self {
            Self {
                buf: [0; 200],
                len: 0,
            }
        }
        /// Sends what is buffered.
        pub fn flush(&mut self) {
            if self.len > 0 {
                super::sys::debug_puts(&self.buf[..self.len]);
                self.len = 0;
            }
        }
    }

    impl Default for Writer {
        fn default() -> Self {
            Self::new()
        }
    }

    impl core::fmt::Write for Writer {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if self.len == self.buf.len() {
                    self.flush();
                }
                self.buf[self.len] = b;
                self.len += 1;
                if b == b'\n' {
                    self.flush();
                }
            }
            Ok(())
        }
    }
}

/// Prints to the console (prefixed with the PD's name by the kernel).
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {{
        let mut w = $crate::debug::Writer::new();
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!($($arg)*));
        w.flush();
    }};
}

/// Prints a line to the console (prefixed with the PD's name by the kernel).
#[macro_export]
macro_rules! debug_println {
    ($($arg:tt)*) => {{
        let mut w = $crate::debug::Writer::new();
        let _ = core::fmt::Write::write_fmt(&mut w, format_args!($($arg)*));
        let _ = core::fmt::Write::write_str(&mut w, "\n");
        w.flush();
    }};
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    debug_println!("panic: {}", info.message());
    sys::panic()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_sets() {
        let s = ChannelSet::from_bits(0b1010_0001);
        let ids: std::vec::Vec<usize> = s.iter().map(Channel::index).collect();
        assert_eq!(ids, [0, 5, 7]);
        assert!(s.contains(Channel::new(5)));
        assert!(!s.contains(Channel::new(6)));
        assert!(!s.contains(Channel::new(200)));
    }

    #[test]
    fn message_registers_on_the_host() {
        set_mr(3, 42);
        assert_eq!(get_mr(3), 42);
        assert_eq!(get_mr(4), 0);
    }

    struct Recorder(std::rc::Rc<std::cell::RefCell<std::vec::Vec<usize>>>);
    impl host::HostKernel for Recorder {
        fn notify(&mut self, channel: usize) {
            self.0.borrow_mut().push(channel);
        }
        fn pp_call(
            &mut self,
            _channel: usize,
            info: MessageInfo,
        ) -> Result<MessageInfo, KernelError> {
            set_mr(0, get_mr(0) * 2);
            Ok(MessageInfo::new(info.label() + 1, 1))
        }
    }

    #[test]
    fn host_kernel_double_sees_the_calls() {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(std::vec::Vec::new()));
        host::install(std::boxed::Box::new(Recorder(seen.clone())));
        Channel::new(3).notify();
        Channel::new(5).notify();
        set_mr(0, 21);
        let r = Channel::new(1).pp_call(MessageInfo::new(7, 1)).unwrap();
        assert_eq!((r.label(), get_mr(0)), (8, 42));
        assert_eq!(*seen.borrow(), [3, 5]);
        assert!(host::uninstall().is_some());
    }

    #[test]
    #[should_panic(expected = "unexpected irq_ack on channel 2")]
    fn calls_a_double_does_not_expect_panic_with_their_name() {
        Channel::new(2).irq_ack();
    }

    #[test]
    fn tsc_hz_comes_from_the_installed_kernel() {
        // Without a double: the documented host default.
        assert_eq!(tsc_hz(), host::HOST_TSC_HZ);
        struct Fixed;
        impl host::HostKernel for Fixed {
            fn tsc_hz(&mut self) -> u64 {
                2_400_000_000
            }
        }
        host::install(std::boxed::Box::new(Fixed));
        assert_eq!(tsc_hz(), 2_400_000_000);
        assert!(host::uninstall().is_some());
    }

    setvar!(test_unset_var);

    #[test]
    fn unset_setvar_reads_as_none() {
        assert_eq!(test_unset_var.get(), None);
    }

    setvar!(test_region);
    setvar!(test_region_size);

    #[test]
    fn shared_words_only_reach_mapped_regions() {
        use core::sync::atomic::{AtomicU64, Ordering};
        assert!(shared_words(&test_region, &test_region_size).is_none());
        let words: &'static [AtomicU64] =
            std::boxed::Box::leak((0..16).map(|_| AtomicU64::new(0)).collect());
        let base = host::map_region(words);
        host::set_setvar("test_region", base + 8);
        host::set_setvar("test_region_size", 32);
        let w = shared_words(&test_region, &test_region_size).unwrap();
        assert_eq!(w.len(), 4);
        w[0].store(7, Ordering::Relaxed);
        assert_eq!(words[1].load(Ordering::Relaxed), 7);
        // Past the end, misaligned, or not whole words: refused.
        host::set_setvar("test_region_size", 128);
        assert!(shared_words(&test_region, &test_region_size).is_none());
        host::set_setvar("test_region_size", 12);
        assert!(shared_words(&test_region, &test_region_size).is_none());
        host::set_setvar("test_region", base + 4);
        host::set_setvar("test_region_size", 8);
        assert!(shared_words(&test_region, &test_region_size).is_none());
        host::clear_setvars();
        assert!(shared_words(&test_region, &test_region_size).is_none());
    }
}
