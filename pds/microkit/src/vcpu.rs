//! The VMM side of the vCPU/VM interface (`bulkhead_abi::vcpu`): a safe
//! wrapper over the VM calls for the PD that owns a `<virtual_machine>`.
//!
//! Design rules: typed arguments in, `Result<_, VmError>` out; the exit of
//! a run is decoded from the message registers with the ABI's total decoder
//! (a garbled message is an error, never acted on). Exits arrive as
//! Microkit delivers them, at the event loop's `Handler::vcpu_exit`, whose
//! reply resumes the vCPU; `Vcpu::run` wraps that for straight-line VMMs.

use bulkhead_abi::vcpu::{
    ExitMessage, Injection, Intercepts, Perms, Register, VmCall, VmError, EXIT_MESSAGE_WORDS,
};

use crate::sys;

fn result(rax: u64) -> Result<(), VmError> {
    match VmError::from_raw(rax) {
        Some(VmError::Ok) => Ok(()),
        Some(e) => Err(e),
        None => Err(VmError::NotSupported),
    }
}

/// A vCPU of the VM this PD owns (its `<vcpu id=..>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vcpu(pub u8);

/// Notifications that arrived while [`Vcpu::run`] waited for its exit;
/// the event loop hands them to `notified` first.
static STASHED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The vCPU (id + 1; 0 = none) whose exit [`Vcpu::run`] returned last and
/// that a reply resumes: the next `run` of it replies instead of making a
/// separate resume call (one syscall per exit instead of two).
static REPLY_RESUMES: core::sync::atomic::AtomicU16 = core::sync::atomic::AtomicU16::new(0);

fn forget_reply() {
    REPLY_RESUMES.store(0, core::sync::atomic::Ordering::Relaxed);
}

/// Takes the notifications [`Vcpu::run`] set aside.
pub(crate) fn take_stashed_notifications() -> u64 {
    STASHED.swap(0, core::sync::atomic::Ordering::Relaxed)
}

/// Decodes the exit message the kernel wrote into the message registers.
pub(crate) fn exit_message() -> Option<ExitMessage> {
    let mut w = [0u64; EXIT_MESSAGE_WORDS];
    for (i, x) in w.iter_mut().enumerate() {
        *x = sys::get_mr(i);
    }
    ExitMessage::from_words(&w)
}

impl Vcpu {
    /// Makes the vCPU runnable: it runs while this PD waits for events, and
    /// its next exit arrives at [`crate::Handler::vcpu_exit`]. (Replying to
    /// an exit resumes it too; this starts it, or restarts a held one.)
    pub fn resume(self) -> Result<(), VmError> {
        forget_reply();
        result(sys::vm_call(VmCall::Run as u64, self.0 as u64, 0, 0, 0).0)
    }

    /// Holds the vCPU: it does not run until [`Vcpu::resume`].
    pub fn pause(self) -> Result<(), VmError> {
        forget_reply();
        result(sys::vm_call(VmCall::Pause as u64, self.0 as u64, 0, 0, 0).0)
    }

    /// Resets the vCPU to the kernel's start state (64-bit mode, flat
    /// segments, GPRs zero) and holds it, ending a triple-fault stop: how
    /// a VMM reboots its guest.
    pub fn reset(self) -> Result<(), VmError> {
        forget_reply();
        result(sys::vm_call(VmCall::Reset as u64, self.0 as u64, 0, 0, 0).0)
    }

    /// Runs the guest until this vCPU's next exit and returns it: for a
    /// VMM that drives one vCPU as a straight-line program (tests, benches)
    /// instead of an event loop. Notifications arriving meanwhile are kept
    /// for the event loop; another vCPU's exit is held (not replied to).
    pub fn run(self) -> Result<ExitMessage, VmError> {
        use core::sync::atomic::Ordering::Relaxed;
        // Its last exit is with us: the reply resumes it.
        let mut reply = if REPLY_RESUMES.swap(0, Relaxed) == self.0 as u16 + 1 {
            Some(crate::MessageInfo::new(0, 0))
        } else {
            self.resume()?;
            None
        };
        loop {
            match sys::reply_recv(reply.take()) {
                sys::Received::Fault(child, _, _, _)
                    if child & bulkhead_abi::vcpu::VCPU_FAULT_BIT != 0 =>
                {
                    let exit = exit_message().ok_or(VmError::NotSupported)?;
                    if exit.vcpu == self.0 {
                        // A triple fault stopped it: no reply resumes it
                        // (`resume` then says so).
                        if exit.reason != bulkhead_abi::vcpu::ExitReason::TripleFault {
                            REPLY_RESUMES.store(self.0 as u16 + 1, Relaxed);
                        }
                        return Ok(exit);
                    }
                }
                sys::Received::Notified(bits) => {
                    STASHED.fetch_or(bits, core::sync::atomic::Ordering::Relaxed);
                }
                // A VMM has no children and takes no calls (`system.xml`
                // rules); anything else is not this loop's to handle.
                _ => {}
            }
        }
    }

    /// Reads a register.
    pub fn read(self, r: Register) -> Result<u64, VmError> {
        let (rax, v) = sys::vm_call(VmCall::ReadRegister as u64, self.0 as u64, r.to_raw(), 0, 0);
        result(rax).map(|()| v)
    }
    /// Writes a register.
    pub fn write(self, r: Register, v: u64) -> Result<(), VmError> {
        result(
            sys::vm_call(
                VmCall::WriteRegister as u64,
                self.0 as u64,
                r.to_raw(),
                v,
                0,
            )
            .0,
        )
    }
    /// Queues an event for the next entry.
    pub fn inject(self, i: Injection) -> Result<(), VmError> {
        result(sys::vm_call(VmCall::Inject as u64, self.0 as u64, i.to_raw(), 0, 0).0)
    }
    /// Sets the optional intercepts.
    pub fn set_intercepts(self, i: Intercepts) -> Result<(), VmError> {
        result(sys::vm_call(VmCall::SetIntercepts as u64, self.0 as u64, i.raw(), 0, 0).0)
    }
    /// VT-x: lets the guest switch views itself with VMFUNC (EPTP switching).
    pub fn allow_vmfunc(self, allow: bool) -> Result<(), VmError> {
        result(sys::vm_call(VmCall::AllowVmfunc as u64, self.0 as u64, allow as u64, 0, 0).0)
    }
    /// VT-x: #VE delivery with the VE information area at `gpa` (0: off).
    pub fn set_ve_info(self, gpa: u64) -> Result<(), VmError> {
        result(sys::vm_call(VmCall::SetVeInfo as u64, self.0 as u64, gpa, 0, 0).0)
    }
    /// VT-x: raw VMCS read of the field with this encoding.
    pub fn read_vmcs(self, encoding: u32) -> Result<u64, VmError> {
        let (rax, v) = sys::vm_call(VmCall::ReadVmcs as u64, self.0 as u64, encoding as u64, 0, 0);
        result(rax).map(|()| v)
    }
    /// VT-x: raw VMCS write of a guest-state field.
    pub fn write_vmcs(self, encoding: u32, value: u64) -> Result<(), VmError> {
        result(
            sys::vm_call(
                VmCall::WriteVmcs as u64,
                self.0 as u64,
                encoding as u64,
                value,
                0,
            )
            .0,
        )
    }
    /// Makes `view` this vCPU's active guest-physical view.
    pub fn switch_view(self, view: u8) -> Result<(), VmError> {
        result(sys::vm_call(VmCall::SwitchView as u64, self.0 as u64, view as u64, 0, 0).0)
    }
}

/// Maps `len` bytes at `gpa` in `view` with `perms` (inside a grant only).
pub fn map(gpa: u64, len: u64, perms: Perms, view: u8) -> Result<(), VmError> {
    let arg = perms.raw() as u64 | (view as u64) << 8;
    result(sys::vm_call(VmCall::Map as u64, 0, gpa, len, arg).0)
}

/// Unmaps `len` bytes at `gpa` in `view`.
pub fn unmap(gpa: u64, len: u64, view: u8) -> Result<(), VmError> {
    result(sys::vm_call(VmCall::Unmap as u64, 0, gpa, len, (view as u64) << 8).0)
}

/// Changes the permissions of mapped pages.
pub fn protect(gpa: u64, len: u64, perms: Perms, view: u8) -> Result<(), VmError> {
    let arg = perms.raw() as u64 | (view as u64) << 8;
    result(sys::vm_call(VmCall::Protect as u64, 0, gpa, len, arg).0)
}

/// Creates a view as a copy of `from`; returns its index.
pub fn create_view(from: u8) -> Result<u8, VmError> {
    let (rax, v) = sys::vm_call(VmCall::CreateView as u64, from as u64, 0, 0, 0);
    result(rax).map(|()| v as u8)
}

/// VT-x: enables (`on`) or disables #VE for `len` bytes of pages at `gpa`
/// in `view`: an EPT violation there reaches the guest as vector 20.
pub fn set_ve(gpa: u64, len: u64, view: u8, on: bool) -> Result<(), VmError> {
    let arg = on as u64 | (view as u64) << 8;
    result(sys::vm_call(VmCall::SetVe as u64, 0, gpa, len, arg).0)
}

/// Intercepts (`intercept`) or passes `count` guest I/O ports from `base`;
/// passing needs the ports to be this PD's own (`PortsNotHeld` otherwise).
pub fn set_io_intercept(base: u16, count: u32, intercept: bool) -> Result<(), VmError> {
    let arg = base as u64 | (count as u64) << 16;
    result(sys::vm_call(VmCall::SetIoIntercept as u64, 0, arg, intercept as u64, 0).0)
}

/// Passes (`intercept` false) or intercepts guest reads and writes of one
/// MSR for every vCPU; passing is refused (`MsrNotSwitched`) unless the
/// hardware switches that MSR between host and guest.
pub fn set_msr_intercept(msr: u32, intercept: bool) -> Result<(), VmError> {
    result(
        sys::vm_call(
            VmCall::SetMsrIntercept as u64,
            0,
            msr as u64,
            intercept as u64,
            0,
        )
        .0,
    )
}
