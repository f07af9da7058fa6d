//! isolation/supervisor: drives the victim through the stages and checks each
//! fault's kind and address, then checks the bystander still answers.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_microkit::{
    debug_println, protection_domain, setvar, Channel, Child, FaultInfo, FaultKind, Handler,
    Infallible, MessageInfo,
};
use bulkhead_test_pds::{check, fail, pass, Shared};

#[path = "stages.rs"]
mod stages;
use stages::*;

setvar!(ctl);
setvar!(report);

const T: &str = "isolation";
const BYSTANDER: Channel = Channel::new(1);
const VICTIM: usize = 1;
const EXPECTED: [FaultKind; STAGES as usize] = [
    FaultKind::ReadFault,
    FaultKind::WriteFault,
    FaultKind::ExecFault,
    FaultKind::IoPort,
    FaultKind::Capability,
    FaultKind::BadSyscall,
    FaultKind::BadUserPointer,
    FaultKind::Panic,
];

struct Supervisor {
    ctl: Shared,
    report: Shared,
    stage: u64,
}

fn init() -> Supervisor {
    let ctl_s = Shared::new(ctl.get());
    ctl_s.write(1, ctl.get().unwrap_or(0));
    debug_println!("isolation test: {} stages", STAGES);
    // The victim (lower priority) already ran stage 0 if it was set: it
    // starts with ctl[0] == 0 (fresh memory), which is stage 0.
    Supervisor {
        ctl: ctl_s,
        report: Shared::new(report.get()),
        stage: 0,
    }
}

impl Handler for Supervisor {
    type Error = Infallible;

    fn fault(&mut self, child: Child, info: FaultInfo) -> Result<(), Self::Error> {
        if !check(
            T,
            child.index() == VICTIM,
            format_args!("fault of child {}", child.index()),
        ) {
            return Ok(());
        }
        let want_kind = EXPECTED.get(self.stage as usize).copied();
        // A panic's address is where the runtime gave up (its RIP).
        let want_addr = if want_kind == Some(FaultKind::Panic) {
            info.ip
        } else {
            self.report.read(0)
        };
        debug_println!(
            "stage {}: {:?} at {:#x} (RIP {:#x}); expected {:?} at {:#x}",
            self.stage,
            info.kind,
            info.address,
            info.ip,
            want_kind,
            want_addr
        );
        if !check(
            T,
            info.kind == want_kind && info.address == want_addr,
            format_args!("stage {} wrong fault", self.stage),
        ) {
            return Ok(());
        }
        self.stage += 1;
        self.ctl.write(0, self.stage);
        if self.stage < STAGES {
            let _ = child.restart();
            return Ok(());
        }
        let _ = child.stop();
        match BYSTANDER.pp_call(MessageInfo::new(1, 0)) {
            Ok(r) if r.label() == 42 => {
                debug_println!("bystander still answers");
                pass(T);
            }
            Ok(r) => fail(T, format_args!("bystander answered {}", r.label())),
            Err(e) => fail(T, format_args!("bystander call failed: {e:?}")),
        }
        Ok(())
    }
}

protection_domain!(init);
