//! Control-flow integrity from Intel PT: the seeds' two-path design.
//!
//! **Fast path** ([`Checker`]): runs on every packet. It follows the guest's
//! control flow at the granularity of straight-line runs using the policy's
//! precomputed tables (no instruction decoding at run time): TNT bits pick
//! conditional branches and compressed returns, TIPs give indirect targets.
//! It keeps a shadow stack (calls push, returns pop; a compressed return
//! pops without a TIP, a return the processor left uncompressed after a PSB
//! is checked against it, and OVF clears it) and gives
//! every indirect edge a *credit*: 100 for an edge the policy fully vouches
//! for (compressed return, return matching the shadow stack, indirect call to
//! a listed target), less for edges that are merely plausible (a call to
//! some function entry: 70; a jump inside its own function: 50; a return to
//! a call-preceded address after the shadow stack was lost: 40; against the
//! shadow stack: 20), 0 for impossible ones. Edges below the threshold mark
//! the current check window suspicious.
//!
//! **Check windows** follow the monitored environment's "controlled mode"
//! enter/leave messages: edges are judged only inside a window, and a
//! syscall made inside one is held ([`Checker::gate`]) until the window's
//! trace is cleared — at once if it holds no suspicious edge, otherwise by
//! the slow path.
//!
//! **Slow path** ([`slow_check`]): replays the window's trace from its PSB
//! and reconstructs the flow instruction by instruction with iced-x86 over
//! the code image, applying the strict policy, and names the first illegal
//! edge (source, target, symbols) — or clears the window.
//!
//! Allocation: the policy tables and the shadow stack are allocated when the
//! checker is created; the fast path allocates nothing per packet.

pub mod policy;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

pub use policy::{Branch, BuildError, Kind, Policy, Symbol};

use crate::decoder::Decoded;
use crate::packet::{Config, Packet};
use crate::stream::{Event, StreamDecoder};

/// What kind of edge was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// Indirect call.
    IndCall,
    /// Indirect jump.
    IndJmp,
    /// Return reported by a TIP.
    Ret,
    /// Return compressed into a TNT bit.
    CompressedRet,
    /// A stack pivot instruction was executed.
    Pivot,
    /// The trace does not fit the code (TNT where an indirect branch is,
    /// an IP outside the image...).
    Desync,
}

/// One judged edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The kind.
    pub kind: EdgeKind,
    /// The branch instruction.
    pub source: u64,
    /// Where it went.
    pub target: u64,
    /// How much the policy vouches for it (0..=100).
    pub credit: u8,
    /// Trace offset of the packet that revealed it.
    pub offset: u64,
}

/// Strict judgements of the slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A return to an address no call instruction precedes (ROP).
    RetNotCallPreceded,
    /// A return to a call site other than the one the shadow stack holds.
    RetMismatch,
    /// An indirect call to an address that is not a function entry (JOP/COOP).
    IndCallNotEntry,
    /// An indirect call or jump to a target outside its site's list.
    NotAllowedTarget,
    /// An indirect jump out of its function to a non-entry.
    IndJmpOutside,
    /// RSP loaded from a register or memory (stack pivot).
    StackPivot,
    /// The trace does not fit the code image.
    Desync,
}

/// The first illegal edge of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// What rule it breaks.
    pub kind: ViolationKind,
    /// The branch (or pivot) instruction.
    pub source: u64,
    /// Where control went (for a pivot: the next instruction).
    pub target: u64,
    /// For returns: what the shadow stack expected.
    pub expected: Option<u64>,
    /// Trace offset of the packet that revealed it.
    pub offset: u64,
}

fn sym(p: &Policy, ip: u64) -> String {
    match p.symbolize(ip) {
        Some((n, 0)) => format!("{ip:#x} <{n}>"),
        Some((n, o)) => format!("{ip:#x} <{n}+{o:#x}>"),
        None => format!("{ip:#x} <?>"),
    }
}

impl Violation {
    /// A one-line description with symbols.
    pub fn describe(&self, p: &Policy) -> String {
        let what = match self.kind {
            ViolationKind::RetNotCallPreceded => "return to an address no call precedes (ROP)",
            ViolationKind::RetMismatch => "return against the shadow stack",
            ViolationKind::IndCallNotEntry => "indirect call to a non-function-entry (JOP/COOP)",
            ViolationKind::NotAllowedTarget => {
                "indirect branch to a target outside its allowed set"
            }
            ViolationKind::IndJmpOutside => "indirect jump out of its function to a non-entry",
            ViolationKind::StackPivot => "stack pivot (RSP loaded from a register or memory)",
            ViolationKind::Desync => "trace does not match the code image",
        };
        let mut s = format!(
            "{what}: {} -> {} (trace offset {:#x})",
            sym(p, self.source),
            sym(p, self.target),
            self.offset
        );
        if let Some(e) = self.expected {
            s.push_str(&format!("; shadow stack expected {}", sym(p, e)));
        }
        s
    }
}

/// Fixed-capacity shadow stack; on overflow the oldest frames are lost.
#[derive(Clone, Debug)]
struct ShadowStack {
    buf: Vec<u64>,
    top: usize,
    depth: usize,
}

impl ShadowStack {
    fn new(cap: usize) -> Self {
        ShadowStack {
            buf: vec![0; cap.max(1)],
            top: 0,
            depth: 0,
        }
    }
    /// Pushes `v`; false if that dropped the oldest frame (stack full).
    #[inline(always)]
    fn push(&mut self, v: u64) -> bool {
        self.buf[self.top] = v;
        self.top = (self.top + 1) % self.buf.len();
        let kept = self.depth < self.buf.len();
        self.depth = (self.depth + 1).min(self.buf.len());
        kept
    }
    #[inline(always)]
    fn pop(&mut self) -> Option<u64> {
        if self.depth == 0 {
            return None;
        }
        self.top = (self.top + self.buf.len() - 1) % self.buf.len();
        self.depth -= 1;
        Some(self.buf[self.top])
    }
    fn clear(&mut self) {
        self.depth = 0;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Fast,
    Slow,
}

/// The flow follower shared by both paths; `Mode` decides how runs are
/// found (tables vs. iced-x86 per instruction) and how edges are judged.
#[derive(Clone, Debug)]
struct Walker {
    mode: Mode,
    ip: Option<u64>,
    pending: Option<Branch>,
    /// The conditional branch the walk stopped at, waiting for a TNT bit.
    held: Option<Branch>,
    tnt: u64,
    tnt_n: u32,
    stack: ShadowStack,
    /// The stack's lower frames are unknown (start of trace, OVF, overflow).
    lost: bool,
    in_psb: bool,
    async_pending: bool,
    offset: u64,
    instructions: u64,
}

/// Where the walker reports judged edges.
trait Judge {
    fn edge(&mut self, w: &Walker, p: &Policy, e: Edge, expected: Option<u64>);
    fn syscall(&mut self, ip: u64, offset: u64);
}

/// Runs followed without consuming a packet (only direct jumps and calls,
/// or pivots) before the walk gives up as a desync: real code does not chain
/// thousands of unconditional transfers, and a bound keeps a hostile trace
/// pointing into a `jmp $` loop from costing more than microseconds.
const STEP_BUDGET: u32 = 1 << 12;

/// Longest straight-line run the slow path decodes.
const MAX_RUN: u32 = 1 << 16;

impl Walker {
    fn new(mode: Mode, stack: usize) -> Self {
        Walker {
            mode,
            ip: None,
            pending: None,
            held: None,
            tnt: 0,
            tnt_n: 0,
            stack: ShadowStack::new(stack),
            lost: true,
            in_psb: false,
            async_pending: false,
            offset: 0,
            instructions: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, ret: u64) {
        if !self.stack.push(ret) {
            // The oldest frame was dropped: returns that deep are unknown.
            self.lost = true;
        }
    }

    fn desync(&mut self, p: &Policy, j: &mut impl Judge, source: u64, target: u64) {
        let e = Edge {
            kind: EdgeKind::Desync,
            source,
            target,
            credit: 0,
            offset: self.offset,
        };
        j.edge(self, p, e, None);
        self.ip = None;
        self.pending = None;
        self.held = None;
        self.tnt_n = 0;
        self.stack.clear();
        self.lost = true;
    }

    #[inline(always)]
    fn run_end(&mut self, p: &Policy, ip: u64) -> Option<Branch> {
        match self.mode {
            Mode::Fast => p.run_end(ip).copied(),
            Mode::Slow => {
                // One instruction at a time with iced-x86, independent of the
                // fast path's tables.
                let mut at = ip;
                // A straight run longer than this is data, not code: stop
                // (as a desync) rather than decode megabytes per packet.
                for _ in 0..MAX_RUN {
                    let i = p.decode_at(at)?;
                    self.instructions += 1;
                    if let Some(kind) = policy::classify(&i) {
                        return Some(Branch {
                            ip: at,
                            next: i.next_ip(),
                            kind,
                        });
                    }
                    at = i.next_ip();
                }
                None
            }
        }
    }

    /// Follows the flow as far as the buffered TNT bits allow.
    fn walk(&mut self, p: &Policy, j: &mut impl Judge) {
        let mut budget = STEP_BUDGET;
        while let Some(ip) = self.ip {
            if self.pending.is_some() {
                return;
            }
            budget -= 1;
            if budget == 0 {
                self.desync(p, j, ip, ip);
                return;
            }
            let b = match self.held.take() {
                Some(b) => b,
                None => match self.run_end(p, ip) {
                    Some(b) => b,
                    None => {
                        self.desync(p, j, ip, ip);
                        return;
                    }
                },
            };
            match b.kind {
                Kind::Cond { target } => {
                    if self.tnt_n == 0 {
                        self.ip = Some(b.ip);
                        self.held = Some(b);
                        return;
                    }
                    self.tnt_n -= 1;
                    let taken = (self.tnt >> self.tnt_n) & 1 != 0;
                    self.ip = Some(if taken { target } else { b.next });
                    budget = STEP_BUDGET;
                }
                Kind::Jmp { target } => self.ip = Some(target),
                Kind::Call { target } => {
                    self.push(b.next);
                    self.ip = Some(target);
                }
                Kind::Ret if self.tnt_n > 0 => {
                    self.tnt_n -= 1;
                    let taken = (self.tnt >> self.tnt_n) & 1 != 0;
                    // A compressed return is always "taken" and returns to
                    // a call the processor saw; if we hold no such call the
                    // trace and the code disagree.
                    let Some(target) = self.stack.pop().filter(|_| taken) else {
                        self.desync(p, j, b.ip, b.next);
                        return;
                    };
                    let e = Edge {
                        kind: EdgeKind::CompressedRet,
                        source: b.ip,
                        target,
                        credit: 100,
                        offset: self.offset,
                    };
                    j.edge(self, p, e, Some(target));
                    self.ip = Some(target);
                    budget = STEP_BUDGET;
                }
                Kind::Pivot => {
                    let credit = if p.pivot_allowed(b.ip) { 100 } else { 0 };
                    let e = Edge {
                        kind: EdgeKind::Pivot,
                        source: b.ip,
                        target: b.next,
                        credit,
                        offset: self.offset,
                    };
                    j.edge(self, p, e, None);
                    self.ip = Some(b.next);
                }
                Kind::Ret => {
                    // Either a TNT bit (compressed) or a TIP comes next.
                    self.ip = Some(b.ip);
                    self.held = Some(b);
                    return;
                }
                Kind::IndCall | Kind::IndJmp | Kind::Syscall | Kind::Far | Kind::Stop => {
                    if self.tnt_n > 0 {
                        self.desync(p, j, b.ip, b.ip);
                        return;
                    }
                    self.ip = Some(b.ip);
                    self.pending = Some(b);
                    return;
                }
            }
        }
    }

    fn push_tnt(&mut self, p: &Policy, j: &mut impl Judge, bits: u8, payload: u64) {
        if self.ip.is_none() {
            return; // Not following any flow (tracing was off or lost).
        }
        if self.tnt_n + bits as u32 > 64 {
            self.desync(p, j, self.ip.unwrap_or(0), 0);
            return;
        }
        self.tnt = (self.tnt << bits) | payload;
        self.tnt_n += bits as u32;
        self.walk(p, j);
    }

    fn tip(&mut self, p: &Policy, j: &mut impl Judge, target: Option<u64>) {
        self.walk(p, j);
        if self.async_pending {
            // The TIP after an asynchronous FUP is the event's target
            // (interrupt, exception): outside the program's own edges.
            self.async_pending = false;
            self.pending = None;
            self.ip = target;
            return;
        }
        let pending = match (self.pending.take(), self.held) {
            (Some(b), _) => Some(b),
            (None, Some(b)) if b.kind == Kind::Ret => {
                self.held = None;
                Some(b)
            }
            _ => None,
        };
        let Some(b) = pending else {
            match self.ip {
                None => self.ip = target,
                Some(ip) => self.desync(p, j, ip, target.unwrap_or(0)),
            }
            return;
        };
        let Some(target) = target else {
            self.ip = None;
            return;
        };
        let off = self.offset;
        match b.kind {
            Kind::IndCall => {
                self.push(b.next);
                let credit = match p.site_targets(b.ip) {
                    Some(list) if list.binary_search(&target).is_ok() => 100,
                    Some(_) => 0,
                    None if p.is_entry(target) => 70,
                    None => 0,
                };
                let credit = if credit > 0 && p.is_trusted(b.ip, target) {
                    100
                } else {
                    credit
                };
                j.edge(
                    self,
                    p,
                    Edge {
                        kind: EdgeKind::IndCall,
                        source: b.ip,
                        target,
                        credit,
                        offset: off,
                    },
                    None,
                );
            }
            Kind::IndJmp => {
                let credit = match p.site_targets(b.ip) {
                    Some(list) if list.binary_search(&target).is_ok() => 100,
                    Some(_) => 0,
                    None if p.is_entry(target) => 70,
                    None if p.is_insn(target)
                        && p.function_of(target).is_some()
                        && p.function_of(target) == p.function_of(b.ip) =>
                    {
                        50
                    }
                    None => 0,
                };
                let credit = if credit > 0 && p.is_trusted(b.ip, target) {
                    100
                } else {
                    credit
                };
                j.edge(
                    self,
                    p,
                    Edge {
                        kind: EdgeKind::IndJmp,
                        source: b.ip,
                        target,
                        credit,
                        offset: off,
                    },
                    None,
                );
            }
            Kind::Ret => {
                let expected = self.stack.pop();
                let credit = match expected {
                    Some(e) if e == target => 100,
                    Some(_) if p.is_call_preceded(target) => 20,
                    None if self.lost && p.is_call_preceded(target) => 40,
                    _ => 0,
                };
                j.edge(
                    self,
                    p,
                    Edge {
                        kind: EdgeKind::Ret,
                        source: b.ip,
                        target,
                        credit,
                        offset: off,
                    },
                    expected,
                );
            }
            Kind::Syscall => j.syscall(b.ip, off),
            Kind::Far => {}
            _ => {
                self.desync(p, j, b.ip, target);
                return;
            }
        }
        self.ip = Some(target);
        self.walk(p, j);
    }

    /// Applies one decoded packet.
    fn packet(&mut self, p: &Policy, j: &mut impl Judge, d: &Decoded) {
        self.offset = d.offset;

        match d.packet {
            Packet::Tnt { bits, payload, .. } => self.push_tnt(p, j, bits, payload),
            Packet::Tip(_) => self.tip(p, j, d.ip),
            Packet::TipPge(_) => {
                self.pending = None;
                self.held = None;
                self.async_pending = false;
                self.ip = d.ip;
                self.walk(p, j);
            }
            Packet::TipPgd(_) => {
                self.walk(p, j);
                if let Some(b) = self.pending.take() {
                    if b.kind == Kind::Syscall {
                        j.syscall(b.ip, d.offset);
                    }
                }
                self.async_pending = false;
                self.held = None;
                self.ip = None;
            }
            Packet::Fup(_) => {
                if self.ip.is_none() {
                    // Where flow resumes: PSB+ status, or after OVF.
                    self.ip = d.ip;
                    self.pending = None;
                } else if self.in_psb {
                    // Status only; we are already following the flow.
                } else {
                    // An asynchronous event at this IP: flow up to it, then
                    // the next TIP (or TIP.PGD) is the event's transfer.
                    self.walk(p, j);
                    self.pending = None;
                    self.held = None;
                    self.tnt_n = 0;
                    self.async_pending = true;
                    self.ip = d.ip;
                }
            }
            Packet::Psb => {
                // The processor stops compressing returns to calls made
                // before a PSB; those come as TIPs and are checked against
                // the shadow stack, which outlives the PSB.
                self.in_psb = true;
            }
            Packet::Psbend => self.in_psb = false,
            Packet::Ovf => self.reset(),
            _ => {}
        }
    }

    fn reset(&mut self) {
        self.ip = None;
        self.pending = None;
        self.held = None;
        self.tnt_n = 0;
        self.stack.clear();
        self.lost = true;
        self.async_pending = false;
    }
}

/// Checker settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Edges with less credit go to the slow path.
    pub threshold: u8,
    /// Shadow stack capacity (frames).
    pub stack_frames: usize,
    /// Packet decoding options.
    pub decoder: Config,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            threshold: 60,
            stack_frames: 1024,
            decoder: Config::default(),
        }
    }
}

/// What the fast path knows about the current (or last) check window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Trace offset where the window began.
    pub start: u64,
    /// Offset of the last PSB at or before `start`: where a replay begins.
    pub replay_from: u64,
    /// Trace offset where it ended (or the current end).
    pub end: u64,
    /// Edges judged in it.
    pub edges: u64,
    /// The first edge below the threshold.
    pub first_suspicious: Option<Edge>,
    /// Syscalls made in it (held until the window is cleared).
    pub syscalls: u32,
    /// The last syscall's IP.
    pub last_syscall: Option<u64>,
    /// Decoding errors (each also loses the flow until the next PSB).
    pub decode_errors: u32,
    /// The first decoding error in it (trace offset and kind).
    pub first_decode_error: Option<crate::decoder::Error>,
}

/// The fast path's answer for a held syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Nothing suspicious in the window: release the syscall.
    Allow,
    /// Run [`slow_check`] on the window's trace from `replay_from` to `end`.
    SlowPath(Window),
}

struct FastJudge<'a> {
    threshold: u8,
    window: Option<&'a mut Window>,
}

impl Judge for FastJudge<'_> {
    #[inline(always)]
    fn edge(&mut self, _w: &Walker, _p: &Policy, e: Edge, _expected: Option<u64>) {
        if let Some(w) = self.window.as_deref_mut() {
            w.edges += 1;
            if e.credit < self.threshold && w.first_suspicious.is_none() {
                w.first_suspicious = Some(e);
            }
        }
    }
    fn syscall(&mut self, ip: u64, _offset: u64) {
        if let Some(w) = self.window.as_deref_mut() {
            w.syscalls += 1;
            w.last_syscall = Some(ip);
        }
    }
}

/// The fast path over a streamed trace. See the module docs.
pub struct Checker<'p> {
    policy: &'p Policy,
    cfg: CheckConfig,
    dec: StreamDecoder,
    walker: Walker,
    window: Option<Window>,
    last_psb: u64,
    packets: u64,
}

impl<'p> Checker<'p> {
    /// A checker for `policy`; no window is open.
    pub fn new(policy: &'p Policy, cfg: CheckConfig) -> Self {
        Checker {
            policy,
            cfg,
            dec: StreamDecoder::new(cfg.decoder),
            walker: Walker::new(Mode::Fast, cfg.stack_frames),
            window: None,
            last_psb: 0,
            packets: 0,
        }
    }

    /// The monitored environment entered controlled mode: open a window at
    /// the current trace offset.
    pub fn enter_controlled(&mut self) {
        let at = self.dec.offset();
        self.window = Some(Window {
            start: at,
            replay_from: self.last_psb,
            end: at,
            ..Window::default()
        });
    }

    /// It left controlled mode: close the window and return what it holds.
    pub fn leave_controlled(&mut self) -> Option<Window> {
        let mut w = self.window.take()?;
        w.end = self.dec.offset();
        Some(w)
    }

    /// A syscall in the window is held: may it go?
    pub fn gate(&mut self) -> Gate {
        let end = self.dec.offset();
        match self.window.as_mut() {
            Some(w) => {
                w.end = end;
                if w.first_suspicious.is_some() || w.decode_errors > 0 {
                    Gate::SlowPath(*w)
                } else {
                    Gate::Allow
                }
            }
            None => Gate::Allow,
        }
    }

    /// The open window, if any.
    pub fn window(&self) -> Option<&Window> {
        self.window.as_ref()
    }

    /// Packets checked so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Feeds the next piece of trace.
    pub fn feed(&mut self, piece: &[u8]) {
        let Checker {
            policy,
            cfg,
            dec,
            walker,
            window,
            last_psb,
            packets,
        } = self;
        let mut judge = FastJudge {
            threshold: cfg.threshold,
            window: window.as_mut(),
        };
        dec.feed(piece, |ev| match ev {
            Event::Packet(d) => {
                *packets += 1;
                if d.packet == Packet::Psb {
                    *last_psb = d.offset;
                }
                walker.packet(policy, &mut judge, &d);
            }
            Event::Error(e) => {
                if let Some(w) = judge.window.as_deref_mut() {
                    w.decode_errors += 1;
                    w.first_decode_error.get_or_insert(e);
                }
                walker.reset();
            }
            Event::Sync { .. } => {}
        });
    }
}

struct SlowJudge {
    window: (u64, u64),
    violation: Option<Violation>,
    edges: u64,
}

impl Judge for SlowJudge {
    fn edge(&mut self, w: &Walker, p: &Policy, e: Edge, expected: Option<u64>) {
        if e.offset < self.window.0 || e.offset >= self.window.1 || self.violation.is_some() {
            return;
        }
        self.edges += 1;
        let kind = match e.kind {
            EdgeKind::CompressedRet => None,
            EdgeKind::Desync => Some(ViolationKind::Desync),
            EdgeKind::Pivot => (!p.pivot_allowed(e.source)).then_some(ViolationKind::StackPivot),
            EdgeKind::Ret => match expected {
                Some(x) if x == e.target => None,
                _ if !p.is_call_preceded(e.target) => Some(ViolationKind::RetNotCallPreceded),
                Some(_) => Some(ViolationKind::RetMismatch),
                None if w.lost => None,
                None => Some(ViolationKind::RetMismatch),
            },
            EdgeKind::IndCall => match p.site_targets(e.source) {
                Some(l) if l.binary_search(&e.target).is_err() => {
                    Some(ViolationKind::NotAllowedTarget)
                }
                Some(_) => None,
                None if !p.is_entry(e.target) => Some(ViolationKind::IndCallNotEntry),
                None => None,
            },
            EdgeKind::IndJmp => match p.site_targets(e.source) {
                Some(l) if l.binary_search(&e.target).is_err() => {
                    Some(ViolationKind::NotAllowedTarget)
                }
                Some(_) => None,
                None if p.is_entry(e.target) => None,
                None if p.is_insn(e.target)
                    && p.function_of(e.target).is_some()
                    && p.function_of(e.target) == p.function_of(e.source) =>
                {
                    None
                }
                None => Some(ViolationKind::IndJmpOutside),
            },
        };
        if let Some(kind) = kind {
            self.violation = Some(Violation {
                kind,
                source: e.source,
                target: e.target,
                expected: if e.kind == EdgeKind::Ret {
                    expected
                } else {
                    None
                },
                offset: e.offset,
            });
        }
    }
    fn syscall(&mut self, _ip: u64, _offset: u64) {}
}

struct LearnJudge {
    edges: Vec<(u64, u64)>,
}

impl Judge for LearnJudge {
    fn edge(&mut self, _w: &Walker, _p: &Policy, e: Edge, _expected: Option<u64>) {
        if matches!(e.kind, EdgeKind::IndCall | EdgeKind::IndJmp) && e.credit > 0 {
            self.edges.push((e.source, e.target));
        }
    }
    fn syscall(&mut self, _ip: u64, _offset: u64) {}
}

/// Training: the indirect call and jump edges of a known-good trace that
/// the rules allow (sorted, without duplicates), for
/// [`Policy::trust_edges`]. Edges the rules forbid are never learned.
pub fn learn(policy: &Policy, trace: &[u8], cfg: CheckConfig) -> Vec<(u64, u64)> {
    let mut walker = Walker::new(Mode::Fast, cfg.stack_frames);
    let mut judge = LearnJudge { edges: Vec::new() };
    for item in crate::decoder::Decoder::new(trace, cfg.decoder).items() {
        match item {
            crate::decoder::Item::Packet(d) => walker.packet(policy, &mut judge, &d),
            crate::decoder::Item::Error { .. } => walker.reset(),
            crate::decoder::Item::Skipped { .. } => {}
        }
    }
    judge.edges.sort_unstable();
    judge.edges.dedup();
    judge.edges
}

/// What the slow path found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowReport {
    /// The first illegal edge in the window, if any.
    pub violation: Option<Violation>,
    /// Instructions reconstructed.
    pub instructions: u64,
    /// Edges judged inside the window.
    pub edges: u64,
}

/// The slow path: replays `trace` (whose first byte is at trace offset
/// `trace_offset`, normally a window's `replay_from`) instruction by
/// instruction and judges every edge revealed by packets at offsets in
/// `window` (`start..end`) against the strict policy.
pub fn slow_check(
    policy: &Policy,
    trace: &[u8],
    trace_offset: u64,
    window: (u64, u64),
    cfg: CheckConfig,
) -> SlowReport {
    let mut walker = Walker::new(Mode::Slow, cfg.stack_frames);
    let mut judge = SlowJudge {
        window,
        violation: None,
        edges: 0,
    };
    for item in crate::decoder::Decoder::new(trace, cfg.decoder).items() {
        match item {
            crate::decoder::Item::Packet(mut d) => {
                d.offset += trace_offset;
                if d.offset >= window.1 {
                    break;
                }
                walker.packet(policy, &mut judge, &d);
                if judge.violation.is_some() {
                    break;
                }
            }
            crate::decoder::Item::Error { error, .. } => {
                let off = error.offset + trace_offset;
                if off >= window.0 && off < window.1 && judge.violation.is_none() {
                    judge.violation = Some(Violation {
                        kind: ViolationKind::Desync,
                        source: walker.ip.unwrap_or(0),
                        target: 0,
                        expected: None,
                        offset: off,
                    });
                    break;
                }
                walker.reset();
            }
            crate::decoder::Item::Skipped { .. } => {}
        }
    }
    SlowReport {
        violation: judge.violation,
        instructions: walker.instructions,
        edges: judge.edges,
    }
}
