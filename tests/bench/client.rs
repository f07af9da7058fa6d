//! bench/client: times PPC round trips and notify->wake latency with the TSC.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, rdtsc, set_mr, setvar, Channel, Handler, Infallible,
    MessageInfo,
};
use bulkhead_test_pds::{fail, pass, Shared};

setvar!(stamps);

const SERVER: Channel = Channel::new(1);
const N: u64 = 1000;

struct Client;

fn init() -> Client {
    let sh = Shared::new(stamps.get());
    set_mr(0, 1);
    for _ in 0..10 {
        let _ = SERVER.pp_call(MessageInfo::new(1, 1));
    }
    let (mut sum, mut min) = (0u64, u64::MAX);
    for _ in 0..N {
        let t0 = rdtsc();
        if SERVER.pp_call(MessageInfo::new(1, 1)).is_err() {
            fail("bench", format_args!("ppcall failed"));
            return Client;
        }
        let d = rdtsc().wrapping_sub(t0);
        sum += d;
        min = min.min(d);
    }
    debug_println!(
        "BENCH ppcall_round_trip_cycles mean={} min={} n={N}",
        sum / N,
        min
    );
    let (mut sum, mut min) = (0u64, u64::MAX);
    for _ in 0..N {
        let t0 = rdtsc();
        SERVER.notify();
        let d = sh.read(0).wrapping_sub(t0);
        sum += d;
        min = min.min(d);
    }
    debug_println!(
        "BENCH notify_wake_cycles mean={} min={} n={N}",
        sum / N,
        min
    );
    pass("bench");
    Client
}

impl Handler for Client {
    type Error = Infallible;
}

protection_domain!(init);
