//! restart/parent: checks each crash of its child (a read fault at 0) and
//! that the child found fresh state; restarts it twice, then stops it.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, setvar, Child, FaultInfo, FaultKind, Handler, Infallible,
};
use bulkhead_test_pds::{check, pass, Shared};

setvar!(shared);

const T: &str = "restart";
const RUNS: u64 = 3;

struct Parent {
    sh: Shared,
    faults: u64,
}

fn init() -> Parent {
    Parent {
        sh: Shared::new(shared.get()),
        faults: 0,
    }
}

impl Handler for Parent {
    type Error = Infallible;

    fn fault(&mut self, child: Child, info: FaultInfo) -> Result<(), Self::Error> {
        self.faults += 1;
        let (boots, fresh) = (self.sh.read(0), self.sh.read(1));
        debug_println!(
            "child fault #{}: {:?} at {:#x}; child boots {boots}, fresh {fresh}",
            self.faults,
            info.kind,
            info.address
        );
        let ok = info.kind == Some(FaultKind::ReadFault)
            && info.address == 0
            && boots == self.faults
            && fresh == 1;
        if !check(
            T,
            ok,
            format_args!("unexpected state after fault #{}", self.faults),
        ) {
            return Ok(());
        }
        if self.faults < RUNS {
            let _ = child.restart();
        } else {
            let _ = child.stop();
            pass(T);
        }
        Ok(())
    }
}

protection_domain!(init);
