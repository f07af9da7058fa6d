//! syscall-fuzz/parent: restarts the chaos PD with a new seed after every
//! fault and answers its calls and notifications; passes once the chaos PD
//! has made enough syscalls and faults, the kernel still standing.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, setvar, Channel, ChannelSet, Child, FaultInfo, Handler,
    Infallible, MessageInfo,
};
use bulkhead_test_pds::{pass, Shared};

setvar!(shared);

const CALLS: u64 = 20_000;
const FAULTS: u64 = 200;

struct Parent {
    sh: Shared,
    faults: u64,
    kinds: u32,
    done: bool,
}

fn init() -> Parent {
    let sh = Shared::new(shared.get());
    sh.write(0, 0x9e37_79b9_7f4a_7c15);
    Parent {
        sh,
        faults: 0,
        kinds: 0,
        done: false,
    }
}

impl Parent {
    fn maybe_pass(&mut self) {
        let calls = self.sh.read(1);
        if !self.done && calls >= CALLS && self.faults >= FAULTS {
            self.done = true;
            debug_println!(
                "{calls} syscalls returned, {} faults (kinds seen {:#x}); kernel still running",
                self.faults,
                self.kinds
            );
            pass("syscall-fuzz");
        }
    }
}

impl Handler for Parent {
    type Error = Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        self.maybe_pass();
        Ok(())
    }

    fn protected(&mut self, _ch: Channel, info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        self.maybe_pass();
        Ok(MessageInfo::new(info.label(), 0))
    }

    fn fault(&mut self, child: Child, info: FaultInfo) -> Result<(), Self::Error> {
        self.faults += 1;
        self.kinds |= 1 << info.kind.map_or(0, |k| k as u32);
        let seed = self.sh.read(0);
        self.sh.write(
            0,
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
        self.maybe_pass();
        if !self.done {
            let _ = child.restart();
        }
        Ok(())
    }
}

protection_domain!(init);
