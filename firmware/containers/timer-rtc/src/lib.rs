//! POST container: the monotonic timer must advance across busy loops, and
//! the real-time clock must hold a plausible date and time that does not go
//! back between two reads.

#![no_std]
#![deny(unsafe_code)]

use core::fmt::Write;

use firmware_sdk::rtc::timer_monotonic;
use firmware_sdk::{host, text::Text};

fn spin(n: u32) {
    let mut x = 0u32;
    for i in 0..n {
        x = core::hint::black_box(x.wrapping_add(i));
    }
}

/// The entry point named in the manifest.
#[allow(unsafe_code)] // Exporting the entry point by name; nothing else.
#[no_mangle]
pub extern "C" fn run() {
    let mut t = Text::<256>::new();
    let mut reads = [0u64; 8];
    for r in reads.iter_mut() {
        *r = host::timer_ns();
        spin(1000);
    }
    if let Err(i) = timer_monotonic(&reads) {
        let _ = write!(
            t,
            "timer did not advance: read {} gave {} ns after {} ns",
            i,
            reads[i],
            reads[i - 1]
        );
        host::report(false, t.as_str());
        return;
    }
    let first = host::rtc();
    spin(1000);
    let second = host::rtc();
    for rtc in [first, second] {
        if let Some(why) = rtc.implausible() {
            let _ = write!(
                t,
                "RTC {:04}-{:02}-{:02} {:02}:{:02}:{:02}: {}",
                rtc.year, rtc.month, rtc.day, rtc.hour, rtc.minute, rtc.second, why
            );
            host::report(false, t.as_str());
            return;
        }
    }
    if second < first {
        host::report(false, "RTC went back between two reads");
        return;
    }
    let _ = write!(
        t,
        "timer advanced {} ns over 8 reads; RTC {:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        reads[7] - reads[0],
        second.year,
        second.month,
        second.day,
        second.hour,
        second.minute,
        second.second
    );
    host::report(true, t.as_str());
}
