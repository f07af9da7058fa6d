//! Trap entry and exit. Every entry into the kernel — exceptions, IRQs, the
//! timer and the syscall vector — goes through one stub that saves all
//! registers into a [`TrapFrame`] on the kernel stack and calls
//! `trap_entry`; the kernel may rewrite the frame (to return into another PD)
//! and the stub restores it with `iretq`. One kernel stack, no kernel
//! threads: the kernel never blocks, it only picks whom to return to.

core::arch::global_asm!(include_str!("vectors.s"), options(att_syntax));

/// The registers saved on entry, in stub push order (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)] // register names
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// All registers zero: a context that has not run yet.
    pub const ZERO: TrapFrame = TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: 0,
        rsi: 0,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: 0,
        error: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    };

    /// Whether the trap came from ring 3.
    pub fn came_from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// A fresh user context starting at `rip` with stack `rsp`, interrupts on.
    pub fn user(rip: u64, rsp: u64) -> Self {
        Self {
            rip,
            rsp,
            cs: super::gdt::USER_CS,
            ss: super::gdt::USER_DS,
            rflags: 0x202,
            ..Self::default()
        }
    }
}

unsafe extern "C" {
    fn trap_return();
}

static mut FIRST_FRAME: TrapFrame = TrapFrame::ZERO;

/// Leaves the kernel for the first time, into the user context `frame`.
/// Later entries arrive on the TSS kernel stack; this boot stack is abandoned.
pub fn enter_user(frame: &TrapFrame) -> ! {
    debug_assert!(frame.came_from_user());
    // SAFETY: FIRST_FRAME is only used here, once; `trap_return` pops a
    // TrapFrame from RSP and irets to ring 3 (cs/ss are user selectors, IF
    // set), never returning here.
    unsafe {
        let f = core::ptr::addr_of_mut!(FIRST_FRAME);
        *f = *frame;
        core::arch::asm!("mov rsp, {}", "jmp {}", in(reg) f, sym trap_return, options(noreturn));
    }
}

#[unsafe(no_mangle)]
extern "C" fn trap_entry(frame: *mut TrapFrame) {
    // SAFETY: the stub passes a pointer to the frame it just pushed on the
    // kernel stack; nothing else references it until we return.
    let frame = unsafe { &mut *frame };
    crate::kernel::trap(frame);
}
