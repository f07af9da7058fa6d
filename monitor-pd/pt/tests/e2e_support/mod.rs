//! End-to-end support shared by the CFI tests here and the libipt
//! cross-check in `bulkhead-pt-ref`: a small x86-64 program with known
//! control flow (assembled with iced-x86's code assembler), an emulator for
//! the instructions it uses (which yields its real execution path), attack
//! scenarios that corrupt its state the way exploits do, and a model of the
//! processor's PT packet generation that turns the path into a trace.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bulkhead_pt::cfi::{Policy, Symbol};
use bulkhead_pt::synth::Rng;
use bulkhead_pt::{encode, IpPayload, Ipc, Packet};
use iced_x86::code_asm::*;
use iced_x86::{BlockEncoderOptions, Decoder, DecoderOptions, Mnemonic, OpKind, Register};

pub const BASE: u64 = 0x40_1000;
pub const STACK_TOP: u64 = 0x7fff_f000;
pub const FAKE_STACK: u64 = 0x6000_0000;

/// The assembled program and the addresses the scenarios need.
pub struct Program {
    pub code: Vec<u8>,
    pub symbols: Vec<Symbol>,
    pub labels: BTreeMap<&'static str, u64>,
}

impl Program {
    pub fn at(&self, l: &str) -> u64 {
        self.labels[l]
    }
    pub fn policy(&self) -> Policy {
        Policy::build(BASE, self.code.clone(), self.symbols.clone()).expect("policy")
    }
}

/// main loops five times over a direct call and an indirect call through a
/// function pointer (handler_a or handler_b), optionally switches stacks
/// (a coroutine-style `mov rsp, rdi`), calls vuln, and exits by syscall.
pub fn program() -> Program {
    let mut a = CodeAssembler::new(64).unwrap();
    // Labels are filled in by `set_label`, so they are collected at the end.
    macro_rules! label {
        ($n:literal) => {
            a.create_label()
        };
    }
    let mut main = label!("main");
    let mut loop_top = label!("loop_top");
    let mut use_a = label!("use_a");
    let mut call_site = label!("call_site");
    let mut no_switch = label!("no_switch");
    let mut stop = label!("stop");
    let mut exit = label!("exit");
    let mut work = label!("work");
    let mut work_even = label!("work_even");
    let mut handler_a = label!("handler_a");
    let mut handler_b = label!("handler_b");
    let mut vuln = label!("vuln");
    let mut vuln_ret = label!("vuln_ret");
    let mut switch_stack = label!("switch_stack");
    let mut helper = label!("helper");
    let mut gadget1 = label!("gadget1");
    let mut gadget3 = label!("gadget3");
    let mut end = label!("end");

    a.set_label(&mut main).unwrap();
    a.push(rbp).unwrap();
    a.mov(rbp, rsp).unwrap();
    a.mov(ecx, 5u32).unwrap();
    a.set_label(&mut loop_top).unwrap();
    a.call(work).unwrap();
    a.lea(rax, ptr(handler_a)).unwrap();
    a.test(ecx, 2u32).unwrap();
    a.jz(use_a).unwrap();
    a.lea(rax, ptr(handler_b)).unwrap();
    a.set_label(&mut use_a).unwrap();
    a.nop().unwrap();
    a.set_label(&mut call_site).unwrap();
    a.call(rax).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(loop_top).unwrap();
    a.test(r12, r12).unwrap();
    a.jz(no_switch).unwrap();
    a.call(switch_stack).unwrap();
    a.set_label(&mut no_switch).unwrap();
    a.call(vuln).unwrap();
    a.set_label(&mut exit).unwrap();
    a.mov(eax, 60u32).unwrap();
    a.syscall().unwrap();
    a.set_label(&mut stop).unwrap();
    a.hlt().unwrap();

    a.set_label(&mut work).unwrap();
    a.push(rbp).unwrap();
    a.mov(rbp, rsp).unwrap();
    a.test(ecx, 1u32).unwrap();
    a.jz(work_even).unwrap();
    a.nop().unwrap();
    a.set_label(&mut work_even).unwrap();
    a.pop(rbp).unwrap();
    a.ret().unwrap();

    a.set_label(&mut handler_a).unwrap();
    a.mov(edx, 1u32).unwrap();
    a.ret().unwrap();
    a.set_label(&mut handler_b).unwrap();
    a.mov(edx, 3u32).unwrap();
    a.ret().unwrap();

    a.set_label(&mut vuln).unwrap();
    a.push(rbp).unwrap();
    a.mov(rbp, rsp).unwrap();
    a.sub(rsp, 16).unwrap();
    a.nop().unwrap();
    a.mov(rsp, rbp).unwrap();
    a.pop(rbp).unwrap();
    a.set_label(&mut vuln_ret).unwrap();
    a.ret().unwrap();

    a.set_label(&mut switch_stack).unwrap();
    a.mov(rsp, rdi).unwrap();
    a.ret().unwrap();

    a.set_label(&mut helper).unwrap();
    a.mov(eax, 1u32).unwrap();
    a.set_label(&mut gadget1).unwrap();
    a.pop(rdi).unwrap();
    a.ret().unwrap();
    a.set_label(&mut gadget3).unwrap();
    a.mov(edx, 2u32).unwrap();
    a.ret().unwrap();
    a.set_label(&mut end).unwrap();
    a.int3().unwrap();

    let names: Vec<(&'static str, CodeLabel)> = vec![
        ("main", main),
        ("loop_top", loop_top),
        ("use_a", use_a),
        ("call_site", call_site),
        ("no_switch", no_switch),
        ("stop", stop),
        ("exit", exit),
        ("work", work),
        ("work_even", work_even),
        ("handler_a", handler_a),
        ("handler_b", handler_b),
        ("vuln", vuln),
        ("vuln_ret", vuln_ret),
        ("switch_stack", switch_stack),
        ("helper", helper),
        ("gadget1", gadget1),
        ("gadget3", gadget3),
        ("end", end),
    ];
    let r = a
        .assemble_options(BASE, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)
        .unwrap();
    let labels: BTreeMap<&'static str, u64> = names
        .iter()
        .map(|(n, l)| (*n, r.label_ip(l).unwrap()))
        .collect();
    let funcs = [
        "main",
        "work",
        "handler_a",
        "handler_b",
        "vuln",
        "switch_stack",
        "helper",
        "end",
    ];
    let mut symbols = Vec::new();
    for w in funcs.windows(2) {
        let (s, e) = (labels[w[0]], labels[w[1]]);
        symbols.push(Symbol {
            name: w[0].to_string(),
            addr: s,
            size: e - s,
        });
    }
    Program {
        code: r.inner.code_buffer,
        symbols,
        labels,
    }
}

/// One control transfer on the executed path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Cond {
        ip: u64,
        taken: bool,
    },
    Call {
        ip: u64,
        next: u64,
        target: u64,
        indirect: bool,
    },
    Jmp {
        ip: u64,
        target: u64,
        indirect: bool,
    },
    Ret {
        ip: u64,
        target: u64,
    },
    Syscall {
        ip: u64,
        next: u64,
    },
    /// The exit syscall (eax = 60): the process ends, so does its trace.
    Exit {
        ip: u64,
    },
    Halt {
        ip: u64,
    },
}

/// The emulated machine: general registers, ZF, sparse 8-byte memory.
pub struct Cpu {
    pub regs: [u64; 16],
    pub rip: u64,
    zf: bool,
    pub mem: BTreeMap<u64, u64>,
    pub executed: u64,
}

fn idx(r: Register) -> usize {
    r.full_register() as usize - Register::RAX as usize
}

pub const RAX: usize = 0;
pub const RSP: usize = 4;
pub const RDI: usize = 7;
pub const R12: usize = 12;

impl Cpu {
    pub fn new(entry: u64) -> Cpu {
        let mut c = Cpu {
            regs: [0; 16],
            rip: entry,
            zf: false,
            mem: BTreeMap::new(),
            executed: 0,
        };
        c.regs[RSP] = STACK_TOP;
        c
    }
    pub fn push(&mut self, v: u64) {
        self.regs[RSP] -= 8;
        self.mem.insert(self.regs[RSP], v);
    }
    pub fn pop(&mut self) -> u64 {
        let v = *self.mem.get(&self.regs[RSP]).unwrap_or(&0);
        self.regs[RSP] += 8;
        v
    }
    fn set(&mut self, r: Register, v: u64) {
        let v = if r.size() == 4 { v & 0xffff_ffff } else { v };
        self.regs[idx(r)] = v;
    }
    fn get(&self, r: Register) -> u64 {
        let v = self.regs[idx(r)];
        if r.size() == 4 {
            v & 0xffff_ffff
        } else {
            v
        }
    }
    fn src(&self, i: &iced_x86::Instruction, n: u32) -> u64 {
        match i.op_kind(n) {
            OpKind::Register => self.get(i.op_register(n)),
            OpKind::Immediate8to64
            | OpKind::Immediate32to64
            | OpKind::Immediate32
            | OpKind::Immediate8
            | OpKind::Immediate8to32 => i.immediate(n),
            k => panic!("operand kind {k:?} not emulated"),
        }
    }

    /// Runs until HLT or `limit` instructions, calling `hook` before each
    /// instruction; returns the path.
    pub fn run(&mut self, code: &[u8], limit: u64, mut hook: impl FnMut(&mut Cpu)) -> Vec<Flow> {
        let mut flows = Vec::new();
        while self.executed < limit {
            hook(self);
            let ip = self.rip;
            let off = (ip - BASE) as usize;
            let i = Decoder::with_ip(64, &code[off..], ip, DecoderOptions::NONE).decode();
            self.executed += 1;
            let next = i.next_ip();
            self.rip = next;
            match i.mnemonic() {
                Mnemonic::Nop => {}
                Mnemonic::Push => {
                    let v = self.src(&i, 0);
                    self.push(v)
                }
                Mnemonic::Pop => {
                    let v = self.pop();
                    self.set(i.op0_register(), v)
                }
                Mnemonic::Mov => {
                    let v = self.src(&i, 1);
                    self.set(i.op0_register(), v)
                }
                Mnemonic::Lea => self.set(i.op0_register(), i.ip_rel_memory_address()),
                Mnemonic::Sub => {
                    let v = self.get(i.op0_register()).wrapping_sub(self.src(&i, 1));
                    self.zf = v == 0;
                    self.set(i.op0_register(), v)
                }
                Mnemonic::Dec => {
                    let v = self.get(i.op0_register()).wrapping_sub(1)
                        & if i.op0_register().size() == 4 {
                            0xffff_ffff
                        } else {
                            u64::MAX
                        };
                    self.zf = v == 0;
                    self.set(i.op0_register(), v)
                }
                Mnemonic::Test => self.zf = self.src(&i, 0) & self.src(&i, 1) == 0,
                Mnemonic::Je | Mnemonic::Jne => {
                    let taken = (i.mnemonic() == Mnemonic::Je) == self.zf;
                    if taken {
                        self.rip = i.near_branch_target();
                    }
                    flows.push(Flow::Cond { ip, taken });
                }
                Mnemonic::Jmp => {
                    let indirect = i.op0_kind() == OpKind::Register;
                    let target = if indirect {
                        self.get(i.op0_register())
                    } else {
                        i.near_branch_target()
                    };
                    self.rip = target;
                    flows.push(Flow::Jmp {
                        ip,
                        target,
                        indirect,
                    });
                }
                Mnemonic::Call => {
                    let indirect = i.op0_kind() == OpKind::Register;
                    let target = if indirect {
                        self.get(i.op0_register())
                    } else {
                        i.near_branch_target()
                    };
                    self.push(next);
                    self.rip = target;
                    flows.push(Flow::Call {
                        ip,
                        next,
                        target,
                        indirect,
                    });
                }
                Mnemonic::Ret => {
                    let target = self.pop();
                    self.rip = target;
                    flows.push(Flow::Ret { ip, target });
                }
                Mnemonic::Syscall if self.regs[RAX] == 60 => {
                    flows.push(Flow::Exit { ip });
                    break;
                }
                Mnemonic::Syscall => flows.push(Flow::Syscall { ip, next }),
                Mnemonic::Hlt => {
                    flows.push(Flow::Halt { ip });
                    break;
                }
                m => panic!("{m:?} at {ip:#x} not emulated"),
            }
        }
        flows
    }
}

/// The attack scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    None,
    /// vuln's return address and the stack above it overwritten by a chain
    /// of gadgets inside `helper`.
    Rop,
    /// The function pointer called at `call_site` overwritten, on the third
    /// iteration, with an address inside handler_a (COOP/JOP-style).
    Jop,
    /// A data-only attack sets the "switch stacks" flag and the new stack
    /// pointer: `switch_stack` pivots to an attacker's fake stack.
    Pivot,
}

/// Runs the program under `attack`; returns the path and instructions executed.
pub fn execute(p: &Program, attack: Attack) -> (Vec<Flow>, u64) {
    let mut cpu = Cpu::new(p.at("main"));
    let chain = [p.at("gadget1"), 0x41, p.at("gadget3"), p.at("exit")];
    if attack == Attack::Pivot {
        cpu.regs[R12] = 1;
        cpu.regs[RDI] = FAKE_STACK;
        for (k, v) in chain.iter().enumerate() {
            cpu.mem.insert(FAKE_STACK + 8 * k as u64, *v);
        }
    }
    let (vuln_ret, call_site, handler_a) = (p.at("vuln_ret"), p.at("call_site"), p.at("handler_a"));
    let mut visits = 0;
    let flows = cpu.run(&p.code, 10_000, |c| {
        if attack == Attack::Rop && c.rip == vuln_ret {
            for (k, v) in chain.iter().enumerate() {
                c.mem.insert(c.regs[RSP] + 8 * k as u64, *v);
            }
        }
        if attack == Attack::Jop && c.rip == call_site {
            visits += 1;
            if visits == 3 {
                c.regs[RAX] = handler_a + 5; // the `ret` inside handler_a
            }
        }
    });
    (flows, cpu.executed)
}

/// How the synthetic processor traces.
#[derive(Clone, Copy, Debug)]
pub struct TraceOpts {
    /// A PSB+ every this many control transfers.
    pub psb_every: usize,
    /// Timing packets (MTC/CYC/TSC) and PADs between packets.
    pub timing: bool,
    /// An internal buffer overflow (OVF) at this control transfer.
    pub ovf_at: Option<usize>,
    pub seed: u64,
}

impl Default for TraceOpts {
    fn default() -> Self {
        TraceOpts {
            psb_every: 7,
            timing: true,
            ovf_at: None,
            seed: 1,
        }
    }
}

/// A model of the processor's packet generation (user-mode tracing).
pub struct Synth {
    pub out: Vec<u8>,
    tnt: u64,
    tnt_n: u8,
    /// Bits per TNT packet: 6 (short TNT) or 47 (long TNT), by seed.
    tnt_max: u8,
    last_ip: u64,
    retc: Vec<u64>,
    rng: Rng,
    opts: TraceOpts,
    pub psb_offsets: Vec<u64>,
}

impl Synth {
    fn put(&mut self, p: Packet) {
        let mut b = [0u8; 16];
        let n = encode(&p, &mut b).expect("valid packet");
        self.out.extend_from_slice(&b[..n]);
    }
    fn timing(&mut self) {
        if !self.opts.timing {
            return;
        }
        let v = self.rng.next_u64();
        match self.rng.below(12) {
            0 => self.put(Packet::Mtc(v as u8)),
            1 => self.put(Packet::Cyc(v % 5000)),
            2 => self.put(Packet::Pad),
            3 => self.put(Packet::Tsc(v & 0xff_ffff_ffff_ffff)),
            _ => {}
        }
    }
    fn flush_tnt(&mut self) {
        if self.tnt_n > 0 {
            self.put(Packet::Tnt {
                long: false,
                bits: self.tnt_n,
                payload: self.tnt,
            });
            self.tnt = 0;
            self.tnt_n = 0;
            self.timing();
        }
    }
    fn bit(&mut self, taken: bool) {
        self.tnt = (self.tnt << 1) | taken as u64;
        self.tnt_n += 1;
        if self.tnt_n == self.tnt_max {
            self.flush_tnt();
        }
    }
    /// An IP payload compressed against the last IP, cycling through the
    /// compressions that can express it.
    fn ip(&mut self, ip: u64) -> IpPayload {
        let last = self.last_ip;
        let sext = ((ip << 16) as i64 >> 16) as u64 == ip;
        let mut options = vec![Ipc::Full];
        if sext {
            options.push(Ipc::Sext48);
        }
        if last >> 48 == ip >> 48 {
            options.push(Ipc::Update48);
        }
        if last >> 32 == ip >> 32 {
            options.push(Ipc::Update32);
        }
        if last >> 16 == ip >> 16 {
            options.push(Ipc::Update16);
        }
        let ipc = options[self.rng.below(options.len() as u64) as usize];
        self.last_ip = ip;
        let mask = match ipc.payload_len() {
            8 => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        IpPayload {
            ipc,
            raw: ip & mask,
        }
    }
    fn psb_plus(&mut self, fup: Option<u64>) {
        self.flush_tnt();
        self.psb_offsets.push(self.out.len() as u64);
        self.put(Packet::Psb);
        self.last_ip = 0;
        self.retc.clear();
        self.put(Packet::ModeExec {
            csl: true,
            csd: false,
        });
        if self.opts.timing {
            let v = self.rng.next_u64();
            self.put(Packet::Tsc(v & 0xff_ffff_ffff_ffff));
            self.put(Packet::Cbr(0x20));
        }
        if let Some(ip) = fup {
            let p = self.ip(ip);
            self.put(Packet::Fup(p));
        }
        self.put(Packet::Psbend);
    }
}

/// The trace the processor would have written for `flows` starting at `entry`.
pub fn synthesize(entry: u64, flows: &[Flow], opts: TraceOpts) -> Vec<u8> {
    let mut s = Synth {
        out: Vec::new(),
        tnt: 0,
        tnt_n: 0,
        tnt_max: if opts.seed % 3 == 2 { 47 } else { 6 },
        last_ip: 0,
        retc: Vec::new(),
        rng: Rng::new(opts.seed),
        opts,
        psb_offsets: Vec::new(),
    };
    s.psb_plus(None);
    let p = s.ip(entry);
    s.put(Packet::TipPge(p));
    for (n, f) in flows.iter().enumerate() {
        if n > 0 && n % opts.psb_every == 0 {
            // The next instruction to execute is where this transfer starts
            // its run; the trace only needs an IP the flow passes through.
            let resume = match flows[n - 1] {
                Flow::Cond { .. } | Flow::Halt { .. } | Flow::Exit { .. } => None,
                Flow::Call { target, .. } | Flow::Jmp { target, .. } | Flow::Ret { target, .. } => {
                    Some(target)
                }
                Flow::Syscall { next, .. } => Some(next),
            };
            if let Some(ip) = resume {
                s.psb_plus(Some(ip));
            }
        }
        if opts.ovf_at == Some(n) {
            // The buffer overflowed: pending bits are lost, the processor
            // forgets its return-compression stack and resumes with an FUP.
            s.tnt = 0;
            s.tnt_n = 0;
            s.retc.clear();
            s.put(Packet::Ovf);
            s.last_ip = 0;
            let resume = match flows[n - 1] {
                Flow::Call { target, .. } | Flow::Jmp { target, .. } | Flow::Ret { target, .. } => {
                    target
                }
                Flow::Syscall { next, .. } => next,
                Flow::Cond { .. } | Flow::Halt { .. } | Flow::Exit { .. } => {
                    panic!("pick an OVF point after an unconditional transfer")
                }
            };
            let p = s.ip(resume);
            s.put(Packet::Fup(p));
        }
        match *f {
            Flow::Cond { taken, .. } => s.bit(taken),
            Flow::Call {
                next,
                target,
                indirect,
                ..
            } => {
                if indirect {
                    s.flush_tnt();
                    let p = s.ip(target);
                    s.put(Packet::Tip(p));
                }
                s.retc.push(next);
            }
            Flow::Jmp {
                target, indirect, ..
            } => {
                if indirect {
                    s.flush_tnt();
                    let p = s.ip(target);
                    s.put(Packet::Tip(p));
                }
            }
            Flow::Ret { target, .. } => {
                if s.retc.last() == Some(&target) {
                    s.retc.pop();
                    s.bit(true);
                } else {
                    s.retc.pop();
                    s.flush_tnt();
                    let p = s.ip(target);
                    s.put(Packet::Tip(p));
                }
            }
            Flow::Syscall { next, .. } => {
                s.flush_tnt();
                s.put(Packet::TipPgd(IpPayload {
                    ipc: Ipc::Suppressed,
                    raw: 0,
                }));
                s.timing();
                let p = s.ip(next);
                s.put(Packet::TipPge(p));
            }
            Flow::Exit { .. } => {
                s.flush_tnt();
                s.put(Packet::TipPgd(IpPayload {
                    ipc: Ipc::Suppressed,
                    raw: 0,
                }));
            }
            // HLT does not disable tracing; the trace just has nothing more.
            Flow::Halt { .. } => s.flush_tnt(),
        }
        s.timing();
    }
    s.flush_tnt();
    s.out
}

/// The program as a minimal 64-bit ELF executable: one executable PT_LOAD
/// segment and a symbol table with its functions.
pub fn elf(p: &Program) -> Vec<u8> {
    let code_off = 0x1000usize;
    let mut strtab = vec![0u8];
    let mut syms = vec![0u8; 24];
    for s in &p.symbols {
        let name = strtab.len() as u32;
        strtab.extend_from_slice(s.name.as_bytes());
        strtab.push(0);
        syms.extend_from_slice(&name.to_le_bytes());
        syms.push(0x12); // STB_GLOBAL, STT_FUNC
        syms.push(0);
        syms.extend_from_slice(&1u16.to_le_bytes());
        syms.extend_from_slice(&s.addr.to_le_bytes());
        syms.extend_from_slice(&s.size.to_le_bytes());
    }
    let sym_off = code_off + p.code.len();
    let str_off = sym_off + syms.len();
    let sh_off = (str_off + strtab.len() + 7) & !7;
    let mut f = vec![0u8; sh_off + 3 * 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[0x18..0x20].copy_from_slice(&p.at("main").to_le_bytes());
    f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    f[0x28..0x30].copy_from_slice(&(sh_off as u64).to_le_bytes());
    f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
    let ph = 64;
    f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes()); // R+X
    f[ph + 8..ph + 16].copy_from_slice(&(code_off as u64).to_le_bytes());
    f[ph + 16..ph + 24].copy_from_slice(&BASE.to_le_bytes());
    f[ph + 24..ph + 32].copy_from_slice(&BASE.to_le_bytes());
    f[ph + 32..ph + 40].copy_from_slice(&(p.code.len() as u64).to_le_bytes());
    f[ph + 40..ph + 48].copy_from_slice(&(p.code.len() as u64).to_le_bytes());
    f[code_off..code_off + p.code.len()].copy_from_slice(&p.code);
    f[sym_off..sym_off + syms.len()].copy_from_slice(&syms);
    f[str_off..str_off + strtab.len()].copy_from_slice(&strtab);
    let sh =
        |f: &mut Vec<u8>, i: usize, ty: u32, off: usize, size: usize, link: u32, entsize: u64| {
            let h = sh_off + i * 64;
            f[h + 4..h + 8].copy_from_slice(&ty.to_le_bytes());
            f[h + 24..h + 32].copy_from_slice(&(off as u64).to_le_bytes());
            f[h + 32..h + 40].copy_from_slice(&(size as u64).to_le_bytes());
            f[h + 40..h + 44].copy_from_slice(&link.to_le_bytes());
            f[h + 56..h + 64].copy_from_slice(&entsize.to_le_bytes());
        };
    sh(&mut f, 1, 2, sym_off, syms.len(), 2, 24);
    sh(&mut f, 2, 3, str_off, strtab.len(), 0, 0);
    f
}
