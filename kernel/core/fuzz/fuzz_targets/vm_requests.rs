//! What a VMM or the hardware hands the kernel's VM code: raw exit words,
//! register numbers, injections, exit state of both vendors, map requests.
//! No input may panic; whatever decodes must re-encode to the same words;
//! every normalised exit must encode to a message the VMM can decode; a
//! resolved map request must lie inside one grant and within its rights;
//! a raw VMCS access the VMM may write is guest state only, and every
//! register's VT-x slot is one the VMM may write.
#![no_main]

use bulkhead_abi::vcpu::{ExitMessage, Injection, Perms, Register, EXIT_MESSAGE_WORDS};
use kernel_core::vm::{Grant, GrantSet};
use kernel_core::vmcs;
use kernel_core::vmexit::{normalize_svm, normalize_vmx, Action, SvmExit, VmxExit};
use libfuzzer_sys::fuzz_target;

fn words<const N: usize>(data: &[u8]) -> [u64; N] {
    let mut w = [0u64; N];
    for (i, c) in data.chunks(8).take(N).enumerate() {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        w[i] = u64::from_le_bytes(b);
    }
    w
}

fn deliverable(a: Action) {
    if let Action::Deliver(r) | Action::Stop(r) = a {
        let m = ExitMessage { vcpu: 0, reason: r, rip: 0, insn_len: 0 };
        assert_eq!(ExitMessage::from_words(&m.to_words()), Some(m));
    }
}

fuzz_target!(|data: &[u8]| {
    let w: [u64; 12] = words(data);
    let msg: [u64; EXIT_MESSAGE_WORDS] = [w[0], w[1], w[2], w[3], w[4], w[5]];
    if let Some(m) = ExitMessage::from_words(&msg) {
        assert_eq!(m.to_words(), msg);
    }
    if let Some(r) = Register::from_raw(w[0]) {
        assert_eq!(r.to_raw(), w[0]);
        if let vmcs::Slot::Field(f) | vmcs::Slot::AccessRights(f) | vmcs::Slot::Cr(f, _, _) = vmcs::slot(r) {
            assert!(vmcs::vmm_may_write(f));
        }
    }
    let field = w[0] as u32;
    if vmcs::vmm_may_write(field) {
        assert!(vmcs::vmm_may_read(field) && (field >> 10) & 3 == 2 && field & 1 == 0);
    }
    let _ = vmcs::ar_from_vmcs(vmcs::ar_to_vmcs(w[1]));
    let _ = (vmcs::cr0_write_ok(w[2]), vmcs::xsetbv_ok(w[3], w[4], w[5]));
    let _ = vmcs::control(w[6], w[7] as u32);
    if let Some(i) = Injection::from_raw(w[1]) {
        assert_eq!(i.to_raw(), w[1]);
    }
    deliverable(normalize_svm(&SvmExit { code: w[0], info1: w[1], info2: w[2], rax: w[3], rcx: w[4], rdx: w[5] }));
    deliverable(normalize_vmx(&VmxExit {
        reason: w[0] as u32,
        qualification: w[1],
        gpa: w[2],
        intr_info: w[3] as u32,
        intr_error: (w[3] >> 32) as u32,
        rax: w[4],
        rcx: w[5],
        rdx: w[6],
    }));
    let grants = [
        Grant { gpa: w[7] & !0xfff, size: (w[8] & 0xf_f000).max(0x1000), phys: 0x100_0000, perms: Perms::RWX, uncached: false },
        Grant { gpa: 0xffff_0000, size: 0x1_0000, phys: 0x200_0000, perms: Perms::RX, uncached: true },
    ];
    if let Ok(set) = GrantSet::new(&grants) {
        let perms = Perms::from_raw(w[11] & 7).unwrap_or(Perms::NONE);
        if let Ok(r) = set.resolve(w[9], w[10], perms) {
            let g = set
                .grants()
                .iter()
                .find(|g| g.gpa <= w[9] && w[9] + w[10] <= g.gpa + g.size)
                .expect("resolved outside every grant");
            assert!(perms.within(g.perms));
            assert_eq!(r.phys, g.phys + (w[9] - g.gpa));
        }
    }
});
