//! The control-flow policy: what the guest's code may do, computed once
//! from its code image (disassembled with iced-x86) and symbols, plus what
//! the integrator adds (allowed targets per indirect call/jump site,
//! sanctioned stack switches).
//!
//! Lookup tables are dense arrays indexed by code offset, so the fast path
//! answers "which branch ends the straight-line run starting here?", "is
//! this a function entry?" and "is this call-preceded?" with one load each.
//! Memory: 5 bytes per code byte, allocated once when the policy is built.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register,
};

/// A function symbol of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Name, as in the symbol table.
    pub name: String,
    /// Entry address.
    pub addr: u64,
    /// Size in bytes (0 if unknown).
    pub size: u64,
}

/// How a straight-line run of code ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Conditional branch (one TNT bit).
    Cond {
        /// Taken target.
        target: u64,
    },
    /// Direct jump.
    Jmp {
        /// Target.
        target: u64,
    },
    /// Direct call.
    Call {
        /// Target.
        target: u64,
    },
    /// Indirect call (TIP).
    IndCall,
    /// Indirect jump (TIP).
    IndJmp,
    /// Near return (TNT bit if compressed, else TIP).
    Ret,
    /// SYSCALL/SYSENTER: the guest enters the kernel.
    Syscall,
    /// Far transfer (INT, IRET, far call/jmp/ret, SYSRET...): TIP or FUP.
    Far,
    /// Not a branch: an instruction that loads RSP from a register or
    /// memory (a stack pivot), made a stop so it is seen and judged.
    Pivot,
    /// Execution cannot continue (HLT, UD2, undecodable bytes, end of image).
    Stop,
}

/// The instruction that ends a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branch {
    /// Its address.
    pub ip: u64,
    /// The address after it.
    pub next: u64,
    /// What it does.
    pub kind: Kind,
}

const NONE: u32 = u32::MAX;
const F_ENTRY: u8 = 1;
const F_RETSITE: u8 = 2;
const F_INSN: u8 = 4;
const F_PIVOT_OK: u8 = 8;

/// Why a policy could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The image is empty or larger than 4 GiB.
    BadImageSize,
    /// A symbol lies outside the image.
    SymbolOutsideImage,
}

/// The policy. Build with [`Policy::build`], refine with `allow_*`.
#[derive(Clone, Debug)]
pub struct Policy {
    base: u64,
    code: Vec<u8>,
    /// Per code byte: index into `branches` of the run ending branch, for
    /// instruction starts; `NONE` elsewhere.
    run_end: Vec<u32>,
    flags: Vec<u8>,
    branches: Vec<Branch>,
    symbols: Vec<Symbol>,
    site_targets: BTreeMap<u64, Vec<u64>>,
    /// Indirect edges seen in known-good runs (sorted): full credit.
    trusted: Vec<(u64, u64)>,
}

/// True if `i` loads RSP from somewhere other than the frame pointer.
pub fn is_stack_pivot(i: &Instruction) -> bool {
    let writes_rsp = i.op_count() > 0
        && i.op0_kind() == OpKind::Register
        && matches!(
            i.op0_register(),
            Register::RSP | Register::ESP | Register::SP
        );
    let xchg_rsp = i.mnemonic() == Mnemonic::Xchg
        && i.op_count() == 2
        && (i.op1_kind() == OpKind::Register && i.op1_register() == Register::RSP);
    if xchg_rsp {
        return true;
    }
    if !writes_rsp {
        return false;
    }
    match i.mnemonic() {
        // Frame teardown (mov rsp, rbp / lea rsp, [rbp-n]) is the normal
        // epilogue, and lea rsp, [rsp+n] a plain adjustment.
        Mnemonic::Mov => !(i.op1_kind() == OpKind::Register && i.op1_register() == Register::RBP),
        Mnemonic::Lea => !matches!(i.memory_base(), Register::RBP | Register::RSP),
        Mnemonic::Xchg | Mnemonic::Pop => true,
        m => matches!(
            m,
            Mnemonic::Cmova
                | Mnemonic::Cmovae
                | Mnemonic::Cmovb
                | Mnemonic::Cmovbe
                | Mnemonic::Cmove
                | Mnemonic::Cmovg
                | Mnemonic::Cmovge
                | Mnemonic::Cmovl
                | Mnemonic::Cmovle
                | Mnemonic::Cmovne
        ),
    }
}

/// Classifies one instruction: `None` if execution simply goes on.
pub fn classify(i: &Instruction) -> Option<Kind> {
    if i.is_invalid() {
        return Some(Kind::Stop);
    }
    match i.mnemonic() {
        Mnemonic::Syscall | Mnemonic::Sysenter => return Some(Kind::Syscall),
        Mnemonic::Hlt | Mnemonic::Ud2 | Mnemonic::Ud0 | Mnemonic::Ud1 => return Some(Kind::Stop),
        _ => {}
    }
    if is_stack_pivot(i) {
        return Some(Kind::Pivot);
    }
    let near = i.near_branch_target();
    match i.flow_control() {
        FlowControl::Next => None,
        FlowControl::ConditionalBranch => Some(Kind::Cond { target: near }),
        FlowControl::UnconditionalBranch => {
            if i.is_jmp_far() {
                Some(Kind::Far)
            } else {
                Some(Kind::Jmp { target: near })
            }
        }
        FlowControl::IndirectBranch => {
            if i.is_jmp_far_indirect() {
                Some(Kind::Far)
            } else {
                Some(Kind::IndJmp)
            }
        }
        FlowControl::Call => {
            if i.is_call_near() {
                Some(Kind::Call { target: near })
            } else {
                Some(Kind::Far)
            }
        }
        FlowControl::IndirectCall => {
            if i.is_call_far_indirect() {
                Some(Kind::Far)
            } else {
                Some(Kind::IndCall)
            }
        }
        FlowControl::Return => {
            if matches!(
                i.code(),
                Code::Retnq
                    | Code::Retnq_imm16
                    | Code::Retnd
                    | Code::Retnd_imm16
                    | Code::Retnw
                    | Code::Retnw_imm16
            ) {
                Some(Kind::Ret)
            } else {
                Some(Kind::Far)
            }
        }
        FlowControl::Interrupt | FlowControl::Exception => Some(Kind::Far),
        FlowControl::XbeginXabortXend => None,
    }
}

impl Policy {
    /// Builds the policy for 64-bit code `code` loaded at `base`.
    ///
    /// Function entries are the symbols' addresses and every direct call
    /// target; call-preceded addresses follow every call. The code is swept
    /// linearly; each symbol's entry restarts the sweep there, so data
    /// between functions does not hide the next function.
    pub fn build(base: u64, code: Vec<u8>, mut symbols: Vec<Symbol>) -> Result<Policy, BuildError> {
        let len = code.len();
        if len == 0 || len >= u32::MAX as usize {
            return Err(BuildError::BadImageSize);
        }
        let end = base.wrapping_add(len as u64);
        if symbols.iter().any(|s| s.addr < base || s.addr >= end) {
            return Err(BuildError::SymbolOutsideImage);
        }
        symbols.sort_by_key(|s| s.addr);
        let mut flags = vec![0u8; len];
        // Only run-ending instructions have a kind: keep them sparse
        // (a dense table would cost 24 bytes per code byte while building).
        let mut kinds: Vec<(u32, Kind)> = Vec::new();
        let mut lens = vec![0u8; len];
        // Sweep from the start and from every symbol; stop a sweep where it
        // meets instructions already decoded.
        let mut starts: Vec<u64> = symbols.iter().map(|s| s.addr).collect();
        starts.insert(0, base);
        for &s in &starts {
            let off = (s - base) as usize;
            if flags[off] & F_INSN != 0 {
                continue;
            }
            let mut dec = Decoder::with_ip(64, &code[off..], s, DecoderOptions::NONE);
            let mut ins = Instruction::default();
            while dec.can_decode() {
                let o = (dec.ip() - base) as usize;
                if flags[o] & F_INSN != 0 && o != off {
                    break;
                }
                dec.decode_out(&mut ins);
                flags[o] |= F_INSN;
                lens[o] = ins.len() as u8;
                let k = classify(&ins);
                if let Some(k) = k {
                    kinds.push((o as u32, k));
                }
                if let Some(Kind::Call { .. } | Kind::IndCall) = k {
                    let n = ins.next_ip();
                    if n < end {
                        flags[(n - base) as usize] |= F_RETSITE;
                    }
                }
                if let Some(Kind::Call { target }) = k {
                    if target >= base && target < end {
                        flags[(target - base) as usize] |= F_ENTRY;
                    }
                }
            }
        }
        for s in &symbols {
            flags[(s.addr - base) as usize] |= F_ENTRY;
        }
        kinds.sort_unstable_by_key(|&(o, _)| o);
        let kind_at = |o: usize| -> Option<Kind> {
            kinds
                .binary_search_by_key(&(o as u32), |&(k, _)| k)
                .ok()
                .map(|i| kinds[i].1)
        };
        // Backward pass: each instruction start learns the branch ending its run.
        let mut branches = Vec::new();
        let mut run_end = vec![NONE; len];
        let mut next_end = NONE;
        for o in (0..len).rev() {
            if flags[o] & F_INSN == 0 {
                continue;
            }
            let ip = base + o as u64;
            let next = ip + lens[o] as u64;
            // A run also ends where the following instruction is unknown.
            let fall_known =
                (next - base) < len as u64 && flags[(next - base) as usize] & F_INSN != 0;
            let kind = match kind_at(o) {
                Some(k) => Some(k),
                None if !fall_known => Some(Kind::Stop),
                None => None,
            };
            if let Some(kind) = kind {
                branches.push(Branch { ip, next, kind });
                next_end = (branches.len() - 1) as u32;
                run_end[o] = next_end;
            } else {
                run_end[o] = run_end[(next - base) as usize];
            }
        }
        let _ = next_end;
        Ok(Policy {
            base,
            code,
            run_end,
            flags,
            branches,
            symbols,
            site_targets: BTreeMap::new(),
            trusted: Vec::new(),
        })
    }

    /// Restricts the indirect call or jump at `site` to `targets`.
    pub fn allow_targets(&mut self, site: u64, targets: &[u64]) {
        let mut t = targets.to_vec();
        t.sort_unstable();
        self.site_targets.insert(site, t);
    }

    /// Sanctions the stack switch at `ip` (e.g. a scheduler's context switch).
    pub fn allow_pivot(&mut self, ip: u64) {
        if let Some(o) = self.offset(ip) {
            self.flags[o] |= F_PIVOT_OK;
        }
    }

    /// Load address of the image.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The code bytes.
    pub fn code(&self) -> &[u8] {
        &self.code
    }

    #[inline(always)]
    fn offset(&self, ip: u64) -> Option<usize> {
        let o = ip.wrapping_sub(self.base);
        if o < self.code.len() as u64 {
            Some(o as usize)
        } else {
            None
        }
    }

    /// The branch that ends the straight-line run starting at `ip`, or
    /// `None` if `ip` is not an instruction start of the image.
    #[inline(always)]
    pub fn run_end(&self, ip: u64) -> Option<&Branch> {
        let o = self.offset(ip)?;
        let i = self.run_end[o];
        if i == NONE {
            None
        } else {
            self.branches.get(i as usize)
        }
    }

    /// True if `ip` is a function entry.
    #[inline(always)]
    pub fn is_entry(&self, ip: u64) -> bool {
        self.offset(ip)
            .is_some_and(|o| self.flags[o] & F_ENTRY != 0)
    }

    /// True if `ip` follows a call instruction (a legitimate return site).
    #[inline(always)]
    pub fn is_call_preceded(&self, ip: u64) -> bool {
        self.offset(ip)
            .is_some_and(|o| self.flags[o] & F_RETSITE != 0)
    }

    /// True if `ip` is an instruction start found by the sweep.
    #[inline(always)]
    pub fn is_insn(&self, ip: u64) -> bool {
        self.offset(ip).is_some_and(|o| self.flags[o] & F_INSN != 0)
    }

    /// True if the stack switch at `ip` was sanctioned.
    pub fn pivot_allowed(&self, ip: u64) -> bool {
        self.offset(ip)
            .is_some_and(|o| self.flags[o] & F_PIVOT_OK != 0)
    }

    /// Marks indirect edges (source branch, target) as trusted, e.g. those
    /// [`crate::cfi::learn`] saw in known-good runs: they get full credit,
    /// so a strict threshold sends only never-seen edges to the slow path.
    /// Trust raises credit; it never makes an edge legal that the rules
    /// forbid (the slow path still judges by the rules).
    pub fn trust_edges(&mut self, edges: &[(u64, u64)]) {
        self.trusted.extend_from_slice(edges);
        self.trusted.sort_unstable();
        self.trusted.dedup();
    }

    /// True if the edge was marked trusted.
    #[inline]
    pub fn is_trusted(&self, source: u64, target: u64) -> bool {
        !self.trusted.is_empty() && self.trusted.binary_search(&(source, target)).is_ok()
    }

    /// The explicit target list of an indirect site, if one was given.
    #[inline]
    pub fn site_targets(&self, site: u64) -> Option<&[u64]> {
        if self.site_targets.is_empty() {
            return None;
        }
        self.site_targets.get(&site).map(|v| v.as_slice())
    }

    /// The symbol containing `ip` (by size, or the nearest below if sizes
    /// are unknown) and the offset into it.
    pub fn symbolize(&self, ip: u64) -> Option<(&str, u64)> {
        let i = self.symbols.partition_point(|s| s.addr <= ip);
        let s = self.symbols.get(i.checked_sub(1)?)?;
        if s.size != 0 && ip >= s.addr.saturating_add(s.size) {
            return None;
        }
        Some((s.name.as_str(), ip - s.addr))
    }

    /// The function (symbol) containing `ip`, as its entry address.
    pub fn function_of(&self, ip: u64) -> Option<u64> {
        let i = self.symbols.partition_point(|s| s.addr <= ip);
        let s = self.symbols.get(i.checked_sub(1)?)?;
        if s.size != 0 && ip >= s.addr.saturating_add(s.size) {
            return None;
        }
        Some(s.addr)
    }

    /// Decodes the instruction at `ip` (for the slow path).
    pub fn decode_at(&self, ip: u64) -> Option<Instruction> {
        let o = self.offset(ip)?;
        let mut dec = Decoder::with_ip(64, &self.code[o..], ip, DecoderOptions::NONE);
        let i = dec.decode();
        if i.is_invalid() {
            None
        } else {
            Some(i)
        }
    }
}
