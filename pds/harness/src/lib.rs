//! `bulkhead-harness`: runs one protection domain's `Handler` on the host,
//! with exactly the grants its `system.xml` gives it, and lets a test play
//! every other party: the kernel (notifications, protected calls with
//! message registers, faults of its children, IRQs) and the peers at the
//! other end of each channel and ring.
//!
//! ```ignore
//! let mut h = Harness::load("system.xml", &std::fs::read_to_string(p)?, "supervisor")?;
//! let mut sup = h.start(bulkhead_supervisor::init);        // runs init
//! let mem = h.ring("alerts")?;                              // the peer's view
//! let mut tx = Sender::<Report, 128, _>::new(mem, NoNotify)?;
//! tx.send(&report)?;
//! sup.notify(&mut h, &[2])?;                                // channel id 2
//! assert!(h.console().iter().any(|l| l.contains("alert")));
//! ```
//!
//! Design rules:
//! - Setvars resolve by name from `system.xml`, as `bulkhead pack` patches
//!   them: ids, sizes and port addresses get the file's values; a map's
//!   `setvar_vaddr` gets the host address of the region's memory (the
//!   only value that has to differ from the target).
//! - Each memory region is one block of zeroed 64-bit words, shared by
//!   every PD and test peer that maps it, reachable from PD code only
//!   through `bulkhead_microkit::shared_words`.
//! - The harness enforces the kernel's capability checks: a notify, call,
//!   IRQ acknowledgement, restart or stop that `system.xml` does not allow
//!   is what would fault the PD on the target, so it fails the test (a
//!   panic naming the call and the rule), as does a handler error.
//! - It lives on one thread (the runtime's host backend is thread-local);
//!   the region memory is `'static` and `Sync`, so a peer may run on
//!   another thread.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;

use bulkhead_channel::region::{LayoutError, RingMemory};
use bulkhead_microkit::host::{self, HostKernel};
use bulkhead_microkit::{
    get_mr, set_mr, Channel, ChannelSet, Child, FaultInfo, FaultKind, Handler, KernelError,
    MessageInfo, MAX_MESSAGE_REGISTERS,
};

/// Why the harness could not set a PD up, or refused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarnessError {
    /// `system.xml` did not check; the diagnostics, one per line.
    Sdf(String),
    /// No such PD in the file.
    NoSuchPd(String),
    /// The PD does not map a ring of that name (or maps only part of it).
    NoSuchRing(String),
    /// The ring regions are too small for a ring.
    Layout(String),
    /// The event is not one `system.xml` lets reach this PD.
    NotGranted(String),
    /// The handler returned an error (on the target the PD would panic).
    Handler(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Sdf(d) => write!(f, "system.xml does not check:\n{d}"),
            HarnessError::NoSuchPd(p) => {
                write!(f, "no protection_domain named \"{p}\" in system.xml")
            }
            HarnessError::NoSuchRing(r) => write!(f, "{r}"),
            HarnessError::Layout(r) => write!(f, "{r}"),
            HarnessError::NotGranted(w) => write!(f, "not granted by system.xml: {w}"),
            HarnessError::Handler(e) => write!(f, "the PD's handler failed: {e}"),
        }
    }
}

impl std::error::Error for HarnessError {}

/// A kernel call the PD made, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `Channel::notify` on this channel id.
    Notify(usize),
    /// `Channel::irq_ack` on this IRQ id.
    IrqAck(usize),
    /// `Channel::pp_call` on this channel id, with the label and count sent.
    PpCall(usize, u64, usize),
    /// `Child::restart`.
    Restart(usize),
    /// `Child::stop`.
    Stop(usize),
}

/// What a test's stand-in for a callee does with a protected call: gets
/// the message info and the message registers, may change the registers,
/// returns the reply (or the kernel's error).
pub type PpHandler = Box<dyn FnMut(MessageInfo, &mut [u64]) -> Result<MessageInfo, KernelError>>;

/// The kernel's view of the PD under test, from `system.xml`.
struct Grants {
    name: String,
    /// Channel id -> (may notify, may pp).
    channels: HashMap<usize, (bool, bool)>,
    /// Channel ids on which other ends may notify us / pp us.
    incoming_notify: BTreeSet<usize>,
    incoming_pp: BTreeSet<usize>,
    irqs: BTreeSet<usize>,
    children: BTreeSet<usize>,
    ioports: Vec<(u32, u32)>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    console: Vec<String>,
    partial: String,
    pp: HashMap<usize, PpHandler>,
    /// IRQs delivered and not yet acknowledged (masked on the target).
    irq_pending_ack: BTreeSet<usize>,
    /// Children stopped (by `stop`, or by a fault the PD did not answer).
    stopped: BTreeSet<usize>,
    ports: HashMap<u16, u8>,
}

/// The host kernel installed for the PD's thread.
struct Kernel {
    grants: Rc<Grants>,
    state: Rc<RefCell<State>>,
}

impl Kernel {
    fn deny(&self, what: String) -> ! {
        panic!(
            "PD \"{}\" {what}: on the target this faults the PD (its parent is told)",
            self.grants.name
        )
    }
    fn port_granted(&self, port: u16, width: u32) -> bool {
        let (p, w) = (u32::from(port), width);
        self.grants
            .ioports
            .iter()
            .any(|&(a, n)| p >= a && p + w <= a + n)
    }
}

impl HostKernel for Kernel {
    fn debug_puts(&mut self, bytes: &[u8]) {
        let mut st = self.state.borrow_mut();
        st.partial.push_str(&String::from_utf8_lossy(bytes));
        while let Some(i) = st.partial.find('\n') {
            let line: String = st.partial.drain(..=i).collect();
            let line = line.trim_end_matches('\n').to_string();
            println!("{}: {line}", self.grants.name);
            st.console.push(line);
        }
    }
    fn notify(&mut self, channel: usize) {
        match self.grants.channels.get(&channel) {
            Some((true, _)) => self.state.borrow_mut().calls.push(Call::Notify(channel)),
            Some((false, _)) => self.deny(format!(
                "notified channel {channel}, but its <end> says notify=\"false\""
            )),
            None => self.deny(format!(
                "notified channel {channel}, which it does not hold"
            )),
        }
    }
    fn pp_call(&mut self, channel: usize, info: MessageInfo) -> Result<MessageInfo, KernelError> {
        match self.grants.channels.get(&channel) {
            Some((_, true)) => {}
            Some((_, false)) => self.deny(format!(
                "called channel {channel}, but its <end> does not say pp=\"true\""
            )),
            None => self.deny(format!("called channel {channel}, which it does not hold")),
        }
        let count = info.count().min(MAX_MESSAGE_REGISTERS);
        self.state
            .borrow_mut()
            .calls
            .push(Call::PpCall(channel, info.label(), count));
        let mut mrs: Vec<u64> = (0..MAX_MESSAGE_REGISTERS).map(get_mr).collect();
        // Take the stand-in out while it runs, so it may itself look at
        // the harness state.
        let handler = self.state.borrow_mut().pp.remove(&channel);
        let Some(mut handler) = handler else {
            panic!(
                "PD \"{}\" called channel {channel} (label {}), but the test gave no stand-in for the callee (Harness::on_pp_call)",
                self.grants.name,
                info.label()
            );
        };
        let r = handler(info, &mut mrs);
        self.state.borrow_mut().pp.insert(channel, handler);
        if let Ok(reply) = r {
            for (i, v) in mrs.iter().enumerate().take(reply.count()) {
                set_mr(i, *v);
            }
        }
        r
    }
    fn irq_ack(&mut self, channel: usize) {
        if !self.grants.irqs.contains(&channel) {
            self.deny(format!(
                "acknowledged IRQ {channel}, which it does not hold"
            ));
        }
        let mut st = self.state.borrow_mut();
        st.irq_pending_ack.remove(&channel);
        st.calls.push(Call::IrqAck(channel));
    }
    fn child_restart(&mut self, child: usize) -> Result<(), KernelError> {
        if !self.grants.children.contains(&child) {
            self.deny(format!("restarted child {child}, which is not its child"));
        }
        let mut st = self.state.borrow_mut();
        st.stopped.remove(&child);
        st.calls.push(Call::Restart(child));
        Ok(())
    }
    fn child_stop(&mut self, child: usize) -> Result<(), KernelError> {
        if !self.grants.children.contains(&child) {
            self.deny(format!("stopped child {child}, which is not its child"));
        }
        let mut st = self.state.borrow_mut();
        st.stopped.insert(child);
        st.calls.push(Call::Stop(child));
        Ok(())
    }
    fn outb(&mut self, port: u16, value: u8) {
        if !self.port_granted(port, 1) {
            self.deny(format!(
                "wrote I/O port {port:#x}, which it was not granted"
            ));
        }
        self.state.borrow_mut().ports.insert(port, value);
    }
    fn inb(&mut self, port: u16) -> u8 {
        if !self.port_granted(port, 1) {
            self.deny(format!("read I/O port {port:#x}, which it was not granted"));
        }
        self.state
            .borrow()
            .ports
            .get(&port)
            .copied()
            .unwrap_or(0xff)
    }
    fn outl(&mut self, port: u16, value: u32) {
        if !self.port_granted(port, 4) {
            self.deny(format!(
                "wrote I/O port {port:#x} (32 bits), which it was not granted"
            ));
        }
        let mut st = self.state.borrow_mut();
        for (i, b) in value.to_le_bytes().into_iter().enumerate() {
            st.ports.insert(port + i as u16, b);
        }
    }
    fn inl(&mut self, port: u16) -> u32 {
        if !self.port_granted(port, 4) {
            self.deny(format!(
                "read I/O port {port:#x} (32 bits), which it was not granted"
            ));
        }
        let st = self.state.borrow();
        let b = |i: u16| st.ports.get(&(port + i)).copied().unwrap_or(0xff);
        u32::from_le_bytes([b(0), b(1), b(2), b(3)])
    }
}

/// One PD of a `system.xml`, set up on this thread: its setvars, its
/// regions, and the kernel double. Create with [`Harness::load`], then
/// [`Harness::start`] the PD's init.
pub struct Harness {
    grants: Rc<Grants>,
    state: Rc<RefCell<State>>,
    /// Memory region name -> its words (shared with every peer).
    regions: HashMap<String, &'static [AtomicU64]>,
    /// The PD's maps: setvar_vaddr symbol -> region name.
    map_symbols: HashMap<String, String>,
}

fn words(bytes: u64) -> &'static [AtomicU64] {
    Box::leak((0..bytes.div_ceil(8)).map(|_| AtomicU64::new(0)).collect())
}

impl Harness {
    /// Checks `text` (a `system.xml`; `path` labels its diagnostics) and
    /// sets up PD `pd` on this thread: every setvar of the PD resolves, the
    /// regions it maps exist (zeroed), and kernel calls from PD code go to
    /// this harness. Replaces any harness set up earlier on this thread.
    pub fn load(path: &str, text: &str, pd: &str) -> Result<Harness, HarnessError> {
        let system = bulkhead_sdf::parse(path, text).map_err(|diags| {
            HarnessError::Sdf(
                diags
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        let (index, p) = system
            .pd(pd)
            .ok_or_else(|| HarnessError::NoSuchPd(pd.to_string()))?;
        let mut grants = Grants {
            name: pd.to_string(),
            channels: HashMap::new(),
            incoming_notify: BTreeSet::new(),
            incoming_pp: BTreeSet::new(),
            irqs: p.irqs.iter().map(|i| usize::from(i.id)).collect(),
            children: p
                .children
                .iter()
                .filter_map(|&c| system.pds[c].child_id.map(usize::from))
                .collect(),
            ioports: p
                .ioports
                .iter()
                .map(|i| (u32::from(i.addr), i.size))
                .collect(),
        };
        for ch in &system.channels {
            for (me, other) in [(0, 1), (1, 0)] {
                if ch.ends[me].pd_index == index {
                    let (mine, theirs) = (&ch.ends[me], &ch.ends[other]);
                    let id = usize::from(mine.id);
                    grants.channels.insert(id, (mine.notify, mine.pp));
                    if theirs.notify {
                        grants.incoming_notify.insert(id);
                    }
                    if theirs.pp {
                        grants.incoming_pp.insert(id);
                    }
                }
            }
        }
        host::clear_setvars();
        let mut regions = HashMap::new();
        let mut map_symbols = HashMap::new();
        let mut vaddr_of = HashMap::new();
        for m in &p.maps {
            let mr = &system.memory_regions[m.mr_index];
            let w = *regions
                .entry(mr.name.clone())
                .or_insert_with(|| words(mr.size));
            let base = host::map_region(w);
            vaddr_of.insert(m.vaddr, base);
            if let Some(s) = &m.setvar_vaddr {
                map_symbols.insert(s.clone(), mr.name.clone());
            }
        }
        for sv in &p.setvars {
            let value = match sv.value {
                bulkhead_sdf::SetVarValue::Vaddr(v) => vaddr_of.get(&v).copied().unwrap_or(v),
                ref other => other.value(),
            };
            host::set_setvar(&sv.symbol, value);
        }
        // Regions other PDs map (a test peer reaches them by name).
        for mr in &system.memory_regions {
            regions
                .entry(mr.name.clone())
                .or_insert_with(|| words(mr.size));
        }
        let grants = Rc::new(grants);
        let state = Rc::new(RefCell::new(State::default()));
        host::install(Box::new(Kernel {
            grants: grants.clone(),
            state: state.clone(),
        }));
        Ok(Harness {
            grants,
            state,
            regions,
            map_symbols,
        })
    }

    /// Runs the PD's init (as the kernel does at boot, and again after a
    /// restart by its parent) and returns the running PD.
    pub fn start<H: Handler>(&self, init: impl FnOnce() -> H) -> Pd<H> {
        Pd {
            handler: init(),
            grants: self.grants.clone(),
            state: self.state.clone(),
        }
    }

    /// The words of memory region `mr`, as a peer PD (or device) sees them.
    pub fn region(&self, mr: &str) -> Option<&'static [AtomicU64]> {
        self.regions.get(mr).copied()
    }

    /// The other end's view of the ring `name` this PD maps (its
    /// `tx_<name>_header`/`_data` or `rx_<name>_header`/`_data` maps): a
    /// test builds its `Sender` or `Receiver` on it.
    pub fn ring(&self, name: &str) -> Result<RingMemory<'static>, HarnessError> {
        let find = |area: &str| {
            ["tx", "rx"].iter().find_map(|dir| {
                self.map_symbols
                    .get(&format!("{dir}_{name}_{area}"))
                    .and_then(|mr| self.regions.get(mr).copied())
            })
        };
        match (find("header"), find("data")) {
            (Some(h), Some(d)) => RingMemory::new(h, d).map_err(|e: LayoutError| {
                HarnessError::Layout(format!("ring \"{name}\": its regions do not hold a ring ({e:?})"))
            }),
            _ => Err(HarnessError::NoSuchRing(format!(
                "PD \"{}\" maps no ring \"{name}\": it needs maps with setvar_vaddr tx_{name}_header and tx_{name}_data (or rx_...)",
                self.grants.name
            ))),
        }
    }

    /// Stands in for the callee at the other end of channel `channel`:
    /// `f` answers every protected call the PD makes on it.
    pub fn on_pp_call(
        &self,
        channel: usize,
        f: impl FnMut(MessageInfo, &mut [u64]) -> Result<MessageInfo, KernelError> + 'static,
    ) {
        self.state.borrow_mut().pp.insert(channel, Box::new(f));
    }

    /// Every kernel call the PD made since the last `take_calls`.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.borrow_mut().calls)
    }

    /// The channels the PD notified since the last `take_calls` (without
    /// taking them).
    pub fn notified(&self) -> Vec<usize> {
        self.state
            .borrow()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Notify(ch) => Some(*ch),
                _ => None,
            })
            .collect()
    }

    /// Every complete console line the PD printed so far.
    pub fn console(&self) -> Vec<String> {
        self.state.borrow().console.clone()
    }

    /// Whether child `child` is stopped (it faulted and was not restarted,
    /// or the PD stopped it).
    pub fn child_stopped(&self, child: usize) -> bool {
        self.state.borrow().stopped.contains(&child)
    }

    /// The last byte the PD wrote to I/O port `port`, if any.
    pub fn port(&self, port: u16) -> Option<u8> {
        self.state.borrow().ports.get(&port).copied()
    }

    /// Makes I/O port `port` read `value` (a device the PD drives, e.g. a
    /// UART with received data), until the PD writes it.
    pub fn set_port(&self, port: u16, value: u8) {
        self.state.borrow_mut().ports.insert(port, value);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        host::uninstall();
        host::clear_setvars();
    }
}

/// A running PD: deliver events to it as the kernel would.
pub struct Pd<H: Handler> {
    handler: H,
    grants: Rc<Grants>,
    state: Rc<RefCell<State>>,
}

impl<H: Handler> Pd<H> {
    /// The handler, to inspect its state.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The peers at the other end of `channels` notify it (one batch, as
    /// the kernel delivers them). Fails if one of them cannot notify it.
    pub fn notify(&mut self, channels: &[usize]) -> Result<(), HarnessError> {
        let mut bits = 0u64;
        for &ch in channels {
            if !self.grants.incoming_notify.contains(&ch) {
                return Err(HarnessError::NotGranted(format!(
                    "no peer may notify \"{}\" on channel {ch}",
                    self.grants.name
                )));
            }
            bits |= 1 << ch;
        }
        self.handler
            .notified(ChannelSet::from_bits(bits))
            .map_err(|e| HarnessError::Handler(e.to_string()))
    }

    /// IRQ `id` fires. Like the kernel, it is masked until the PD
    /// acknowledges it: firing it again before that is refused.
    pub fn irq(&mut self, id: usize) -> Result<(), HarnessError> {
        if !self.grants.irqs.contains(&id) {
            return Err(HarnessError::NotGranted(format!(
                "\"{}\" holds no IRQ {id}",
                self.grants.name
            )));
        }
        if !self.state.borrow_mut().irq_pending_ack.insert(id) {
            return Err(HarnessError::NotGranted(format!(
                "IRQ {id} is masked: \"{}\" has not acknowledged it yet",
                self.grants.name
            )));
        }
        self.handler
            .notified(ChannelSet::from_bits(1 << id))
            .map_err(|e| HarnessError::Handler(e.to_string()))
    }

    /// Whether IRQ `id` was delivered and not yet acknowledged.
    pub fn irq_masked(&self, id: usize) -> bool {
        self.state.borrow().irq_pending_ack.contains(&id)
    }

    /// The peer at the other end of `channel` calls the PD with `label` and
    /// message registers `mrs`; returns the reply's info and registers.
    pub fn pp_call(
        &mut self,
        channel: usize,
        label: u64,
        mrs: &[u64],
    ) -> Result<(MessageInfo, Vec<u64>), HarnessError> {
        if !self.grants.incoming_pp.contains(&channel) {
            return Err(HarnessError::NotGranted(format!(
                "no peer may call \"{}\" on channel {channel} (pp=\"true\" on the other <end>)",
                self.grants.name
            )));
        }
        if mrs.len() > MAX_MESSAGE_REGISTERS {
            return Err(HarnessError::NotGranted(format!(
                "{} message registers (at most {MAX_MESSAGE_REGISTERS})",
                mrs.len()
            )));
        }
        for i in 0..MAX_MESSAGE_REGISTERS {
            set_mr(i, mrs.get(i).copied().unwrap_or(0));
        }
        let reply = self
            .handler
            .protected(Channel::new(channel), MessageInfo::new(label, mrs.len()))
            .map_err(|e| HarnessError::Handler(e.to_string()))?;
        let n = reply.count().min(MAX_MESSAGE_REGISTERS);
        Ok((reply, (0..n).map(get_mr).collect()))
    }

    /// Child `child` faults: the kernel stops it and tells the PD. If the
    /// PD neither restarts nor stops it, it stays stopped.
    pub fn fault(
        &mut self,
        child: usize,
        kind: FaultKind,
        address: u64,
        ip: u64,
    ) -> Result<(), HarnessError> {
        if !self.grants.children.contains(&child) {
            return Err(HarnessError::NotGranted(format!(
                "\"{}\" has no child with id {child}",
                self.grants.name
            )));
        }
        self.state.borrow_mut().stopped.insert(child);
        let info = FaultInfo {
            kind: Some(kind),
            address,
            ip,
        };
        self.handler
            .fault(Child::new(child), info)
            .map_err(|e| HarnessError::Handler(e.to_string()))
    }
}
