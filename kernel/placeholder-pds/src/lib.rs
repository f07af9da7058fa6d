//! Shared bits of the placeholder PDs. These are NOT the reference system's
//! programs: each one only proves the kernel runs it with its `system.xml`
//! grants (setvars patched, channels working). The real supervisor,
//! firmware, VMM, monitor and gateway PDs replace them as their issues land
//! (`cargo xtask build` prefers no name: it collects these as
//! `<name>.elf`; a real PD crate takes over by producing that name).

#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

use bulkhead_microkit::{Channel, MessageInfo, SetVar};

pub use bulkhead_protocols::supervisor::calls::{LABEL_GUEST_START, LABEL_UP};

/// The channel a setvar names; panics (a PD fault) if the tool left it unset.
pub fn channel(var: &'static SetVar, what: &str) -> Channel {
    match var.get() {
        Some(id) => Channel::new(id as usize),
        None => panic!("setvar {what} was not patched: check system.xml"),
    }
}

/// Calls the supervisor with `label`; true if it answered.
pub fn tell_supervisor(ch: Channel, label: u64) -> bool {
    ch.pp_call(MessageInfo::new(label, 0)).is_ok()
}

/// Declares the setvars of the typed rings a placeholder's `system.xml`
/// maps (`tx_<ring>_header`, `..._size`, ...: the tool refuses an image
/// without them) and a `ring_setvars()` that reads them all and counts the
/// patched ones (reading keeps the symbols in the image).
#[macro_export]
macro_rules! ring_setvars {
    ($($name:ident),* $(,)?) => {
        $( bulkhead_microkit::setvar!($name); )*
        fn ring_setvars() -> usize {
            [$( $name.get() ),*].iter().filter(|v| v.is_some()).count()
        }
    };
}
