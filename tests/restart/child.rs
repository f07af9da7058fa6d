//! restart/child: on every start, checks its state is fresh (initialised
//! data at its initial value, bss zero, a stack word zero), records the
//! result in shared memory, dirties that state, and crashes.

#![cfg_attr(target_os = "none", no_std, no_main)]
// Crashes on purpose and reads its own stack below the stack pointer.
#![allow(unsafe_code)]

use bulkhead_microkit::{debug_println, protection_domain, setvar, Handler, Infallible};
use bulkhead_test_pds::Shared;

setvar!(shared);

static mut COUNTER: u64 = 5; // .data
static mut DIRTY: u64 = 0; // .bss

struct Child;

fn init() -> Child {
    let sh = Shared::new(shared.get());
    // SAFETY: single-threaded PD; plain reads and writes of its own statics.
    let (counter, dirty) = unsafe { (COUNTER, DIRTY) };
    let fresh = counter == 5 && dirty == 0;
    // SAFETY: as above.
    unsafe {
        COUNTER += 1;
        DIRTY = 0xdead;
    }
    let boots = sh.read(0) + 1;
    sh.write(0, boots);
    sh.write(1, fresh as u64);
    debug_println!(
        "start #{boots}: data {counter}, bss {dirty:#x} -> {}",
        if fresh { "fresh" } else { "STALE" }
    );
    // SAFETY: none — a null read, on purpose.
    let v = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) };
    debug_println!("read {v} from address 0?!");
    Child
}

impl Handler for Child {
    type Error = Infallible;
}

protection_domain!(init);
