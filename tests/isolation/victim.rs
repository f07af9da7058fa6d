//! isolation/victim: misbehaves as the current stage says (see the
//! supervisor's EXPECTED list). It reports the
//! address the fault should carry in `report[0]` first, so the supervisor
//! can check the kernel's report against it.

#![cfg_attr(target_os = "none", no_std, no_main)]
// This PD breaks the rules on purpose; the kernel must contain it.
#![allow(unsafe_code)]

use bulkhead_microkit::{
    debug_println, io, protection_domain, setvar, Channel, Handler, Infallible,
};
use bulkhead_test_pds::Shared;

#[path = "stages.rs"]
mod stages;
use stages::*;

setvar!(ctl);
setvar!(report);

static mut DATA_CODE: [u8; 16] = [0xc3; 16]; // `ret`s, in a writable (NX) page

struct Victim;

fn init() -> Victim {
    let ctl_words = Shared::new(ctl.get());
    let report_words = Shared::new(report.get());
    let stage = ctl_words.read(0);
    debug_println!("stage {stage}");
    match stage {
        0 => {
            report_words.write(0, UNMAPPED);
            // SAFETY: none — an unmapped read, on purpose.
            let v = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
            debug_println!("read {v} from an unmapped address?!");
        }
        1 => {
            let addr = ctl_words.read(1); // the supervisor stores the ctl address
            report_words.write(0, addr);
            ctl_words.write(0, 99); // read-only map: write fault
            debug_println!("wrote a read-only map?!");
        }
        2 => {
            let addr = core::ptr::addr_of!(DATA_CODE) as u64;
            report_words.write(0, addr);
            // SAFETY: none — jumping into a data page, on purpose.
            let f: extern "C" fn() = unsafe { core::mem::transmute(addr as *const ()) };
            f();
            debug_println!("executed a data page?!");
        }
        3 => {
            report_words.write(0, UNGRANTED_PORT as u64);
            io::outb(UNGRANTED_PORT, 1);
            debug_println!("used an ungranted port?!");
        }
        4 => {
            report_words.write(0, MISSING_CHANNEL as u64);
            Channel::new(MISSING_CHANNEL).notify();
            debug_println!("notified a channel it does not have?!");
        }
        5 => {
            report_words.write(0, BAD_SYSCALL);
            // SAFETY: none — an unknown syscall number, on purpose; the kernel
            // faults this PD instead of returning.
            unsafe {
                core::arch::asm!("int 0x80", in("rax") BAD_SYSCALL, in("rdi") 0u64, in("rsi") 0u64)
            };
            debug_println!("unknown syscall returned?!");
        }
        6 => {
            report_words.write(0, UNMAPPED);
            // SAFETY: none — DebugPuts (1) with a pointer into nothing, on
            // purpose; the kernel's checked accessor must refuse it.
            unsafe {
                core::arch::asm!("int 0x80", in("rax") 1u64, in("rdi") UNMAPPED, in("rsi") 16u64)
            };
            debug_println!("printed from an unmapped buffer?!");
        }
        7 => panic!("deliberate panic: the runtime reports it and faults"),
        _ => debug_println!("behaving"),
    }
    Victim
}

impl Handler for Victim {
    type Error = Infallible;
}

protection_domain!(init);
