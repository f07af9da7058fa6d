//! scheduling/judge: lowest priority. Running at all proves the spinner's
//! budget is enforced; then checks preemption by `high` on notify, and that
//! the spinner keeps getting (only) its share: its counter advances while
//! the judge also makes progress.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, rdtsc, setvar, Channel, Handler, Infallible,
};
use bulkhead_test_pds::{check, pass, Shared};

setvar!(shared);

const T: &str = "scheduling";
const HIGH: Channel = Channel::new(1);

struct Judge;

fn init() -> Judge {
    let sh = Shared::new(shared.get());
    let spins0 = sh.read(0);
    debug_println!("judge runs; spinner counted {spins0} so far");
    if !check(
        T,
        spins0 > 0,
        format_args!("spinner never ran before the judge"),
    ) {
        return Judge;
    }
    HIGH.notify();
    let high_ran = sh.read(1);
    if !check(
        T,
        high_ran == 1,
        format_args!("high did not preempt the judge on notify"),
    ) {
        return Judge;
    }
    debug_println!("high preempted the judge on notify");
    // Over several spinner periods both must make progress: the spinner
    // keeps preempting (its counter grows) but never starves the judge.
    let t0 = rdtsc();
    let mut own = 0u64;
    let mut periods_seen = 0;
    let mut last = sh.read(0);
    while periods_seen < 3 {
        own += 1;
        let now = sh.read(0);
        if now != last {
            periods_seen += 1;
            last = now;
            // Skip to the next burst: wait until the counter stops moving.
            let mut stable = 0;
            while stable < 1000 {
                let n = sh.read(0);
                if n == last {
                    stable += 1
                } else {
                    last = n;
                    stable = 0
                }
                own += 1;
            }
        }
        if rdtsc().wrapping_sub(t0) > 1 << 40 {
            break;
        }
    }
    debug_println!("judge iterations {own}, spinner bursts seen {periods_seen}");
    if check(
        T,
        periods_seen >= 3 && own > 0,
        format_args!("the spinner stopped getting its budget"),
    ) {
        pass(T);
    }
    Judge
}

impl Handler for Judge {
    type Error = Infallible;
}

protection_domain!(init);
