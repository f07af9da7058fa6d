//! Runs verified firmware containers in `wasmi`, the firmware PD's engine.
//!
//! - [`Platform`]: what the PD provides (PCI config space through its I/O
//!   ports, timer, RTC, serial loopback, the scratch region, the console).
//!   The PD implements it over its capabilities; tests use a mock.
//! - [`Loaded`]: one container instantiated against the host API with its
//!   manifest's limits; [`Loaded::run`] calls its entry point in fuel slices
//!   (fuel limit, and the wall-clock budget checked between slices and in
//!   every host call), [`Loaded::wipe`] zeroes and checks its memory, and
//!   [`Loaded::release`] drops it and hands the platform back.
//! - [`post::run_post`]: the POST phase: verify every container, run the
//!   good ones, wipe, and build the [`firmware_core::PostReport`] with the
//!   boot decision.
//!
//! Design rules: `no_std` + `alloc`, no `unsafe`. Only a
//! [`firmware_core::VerifiedContainer`] can be loaded. Whatever a container
//! does ends as an [`Outcome`] for it, never as a panic or error of the PD:
//! every host function checks the capability, then every pointer, length
//! and value, and traps the container on a bad one.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod host;
pub mod pc;
pub mod post;

use alloc::string::String;

use firmware_core::report::{LoadFailure, TrapKind};
use firmware_core::{Outcome, VerifiedContainer};
use wasmi::{
    CompilationMode, Config, Engine, ExternType, Instance, Memory, Module, Store,
    StoreLimitsBuilder, TrapCode, TypedFunc, TypedResumableCall,
};

pub use host::{HostState, HOST_MODULE};

/// Fuel given per slice; between slices the wall-clock budget is checked.
/// About a millisecond of interpretation on a small core.
pub const FUEL_SLICE: u64 = 1_000_000;
/// Most log lines one container may write; the rest are counted, not printed.
pub const MAX_LOG_LINES: u32 = 64;

/// A wall-clock time as the RTC gives it. The guest SDK defines it, with
/// the packed form the host API's `rtc` returns, so both ends share one
/// definition of that ABI.
pub use firmware_sdk::rtc::RtcTime;

/// What the firmware PD offers containers. The PD implements it with its
/// own capabilities (I/O ports 0xCF8/0xCFC for PCI, the PIT/TSC and CMOS
/// RTC, the UART's loopback mode, a memory region from `system.xml`);
/// host tests implement it with a mock board.
pub trait Platform {
    /// A line the container logged (already bounded and UTF-8).
    fn log(&mut self, container: &str, line: &str);
    /// Monotonic nanoseconds since an arbitrary start.
    fn monotonic_ns(&mut self) -> u64;
    /// The real-time clock.
    fn rtc(&mut self) -> RtcTime;
    /// One 32-bit PCI configuration register; `offset` is a multiple of 4,
    /// `device` < 32, `function` < 8 (the runtime checks before calling).
    fn pci_config_read32(&mut self, bus: u8, device: u8, function: u8, offset: u8) -> u32;
    /// Sends `byte` with the UART in loopback mode; what came back, if anything.
    fn serial_loopback(&mut self, byte: u8) -> Option<u8>;
    /// The scratch region containers may test (may be empty).
    fn scratch(&mut self) -> &mut [u8];
}

/// The engine configuration every container runs under: fuel metering on,
/// eager translation (the whole module is validated and translated at load,
/// so load time is the verify-and-load figure and no translation happens
/// mid-run), one memory, no start function, no SIMD.
pub fn engine() -> Engine {
    let mut config = Config::default();
    config
        .consume_fuel(true)
        .compilation_mode(CompilationMode::Eager)
        .wasm_multi_memory(false)
        .allow_start_fn(false);
    Engine::new(&config)
}

/// How a run ended, with what it used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// The outcome for the report.
    pub outcome: Outcome,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall-clock time of the run in nanoseconds.
    pub elapsed_ns: u64,
}

/// A container instantiated and ready to run.
pub struct Loaded<P: Platform + 'static> {
    store: Store<HostState<P>>,
    memory: Option<Memory>,
    entry: TypedFunc<(), ()>,
    _instance: Instance,
}

fn has_start_section(module: &[u8]) -> bool {
    firmware_core::wasm::sections(module).is_some_and(|s| s.iter().any(|s| s.id == 8))
}

impl<P: Platform + 'static> Loaded<P> {
    /// Instantiates `c` against the host API. On failure the platform comes
    /// back with the reason.
    pub fn load(
        engine: &Engine,
        c: &VerifiedContainer,
        platform: P,
    ) -> Result<Loaded<P>, (LoadFailure, P)> {
        let m = c.manifest();
        if has_start_section(c.module()) {
            return Err((LoadFailure::StartFunction, platform));
        }
        let module = match Module::new(engine, c.module()) {
            Ok(m) => m,
            Err(_) => return Err((LoadFailure::InvalidModule, platform)),
        };
        if let Err(f) = host::check_imports(&module) {
            return Err((f, platform));
        }
        // The memory must be exported as `memory` so the PD can wipe it; its
        // initial size must fit the manifest's limit.
        let defines_memory =
            firmware_core::wasm::sections(c.module()).is_some_and(|s| s.iter().any(|s| s.id == 5));
        match module.get_export("memory") {
            Some(ExternType::Memory(mt)) if mt.minimum() > u64::from(m.limits.memory_pages) => {
                return Err((LoadFailure::MemoryAboveLimit, platform));
            }
            Some(ExternType::Memory(_)) => {}
            Some(_) => return Err((LoadFailure::Instantiation, platform)),
            None if defines_memory => return Err((LoadFailure::MemoryNotExported, platform)),
            None => {}
        }
        match module.get_export(&m.entry) {
            Some(ExternType::Func(ft)) if ft.params().is_empty() && ft.results().is_empty() => {}
            _ => return Err((LoadFailure::MissingEntry, platform)),
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(m.limits.memory_pages as usize * 65536)
            .memories(1)
            .tables(1)
            .instances(1)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState::new(
            String::from(m.name.as_str()),
            m.capabilities,
            limits,
            platform,
        );
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        let linker = host::linker::<P>(engine);
        let instance = match linker.instantiate_and_start(&mut store, &module) {
            Ok(i) => i,
            Err(_) => return Err((LoadFailure::Instantiation, store.into_data().platform)),
        };
        let memory = instance.get_memory(&store, "memory");
        let entry = match instance.get_typed_func::<(), ()>(&store, &m.entry) {
            Ok(f) => f,
            Err(_) => return Err((LoadFailure::MissingEntry, store.into_data().platform)),
        };
        Ok(Loaded {
            store,
            memory,
            entry,
            _instance: instance,
        })
    }

    /// Runs the entry point with the fuel and wall-clock budget of `limits`.
    pub fn run(&mut self, limits: &firmware_core::Limits) -> RunRecord {
        let start = self.store.data_mut().platform.monotonic_ns();
        let deadline = start.saturating_add(u64::from(limits.wall_clock_ms) * 1_000_000);
        self.store.data_mut().deadline_ns = deadline;
        let mut used = 0u64;
        let mut set = limits.fuel.min(FUEL_SLICE);
        let outcome = 'run: {
            if self.store.set_fuel(set).is_err() {
                break 'run Outcome::Trapped(TrapKind::Other);
            }
            let mut call = self.entry.call_resumable(&mut self.store, ());
            loop {
                // Fuel left in the store goes back to the container's budget.
                let left = self.store.get_fuel().unwrap_or(0).min(set);
                used += set - left;
                match call {
                    Ok(TypedResumableCall::Finished(())) => break 'run self.finished_outcome(),
                    Ok(TypedResumableCall::HostTrap(h)) => {
                        break 'run self.classify(h.host_error())
                    }
                    Err(e) => break 'run self.classify(&e),
                    Ok(TypedResumableCall::OutOfFuel(r)) => {
                        let budget_left = limits.fuel - used;
                        // One instruction may need more than a slice (bulk memory ops).
                        let need = r.required_fuel();
                        if need > budget_left {
                            break 'run Outcome::OutOfFuel;
                        }
                        if self.store.data_mut().platform.monotonic_ns() > deadline {
                            break 'run Outcome::WallClockExceeded;
                        }
                        set = budget_left.min(FUEL_SLICE.max(need));
                        if self.store.set_fuel(set).is_err() {
                            break 'run Outcome::Trapped(TrapKind::Other);
                        }
                        call = r.resume(&mut self.store);
                    }
                }
            }
        };
        let end = self.store.data_mut().platform.monotonic_ns();
        RunRecord {
            outcome,
            fuel_used: used,
            elapsed_ns: end.saturating_sub(start),
        }
    }

    fn finished_outcome(&mut self) -> Outcome {
        match self.store.data_mut().result.take() {
            Some((true, detail)) => Outcome::Passed { detail },
            Some((false, detail)) => Outcome::Failed { detail },
            None => Outcome::NoResult,
        }
    }

    fn classify(&self, e: &wasmi::Error) -> Outcome {
        if let Some(stop) = e.downcast_ref::<host::HostStop>() {
            return match stop {
                host::HostStop::Trap(k) => Outcome::Trapped(*k),
                host::HostStop::WallClock => Outcome::WallClockExceeded,
            };
        }
        match e.as_trap_code() {
            Some(TrapCode::OutOfFuel) => Outcome::OutOfFuel,
            Some(TrapCode::GrowthOperationLimited) => Outcome::MemoryLimit,
            Some(TrapCode::UnreachableCodeReached) => Outcome::Trapped(TrapKind::Unreachable),
            Some(TrapCode::MemoryOutOfBounds | TrapCode::TableOutOfBounds) => {
                Outcome::Trapped(TrapKind::OutOfBounds)
            }
            Some(
                TrapCode::IntegerDivisionByZero
                | TrapCode::IntegerOverflow
                | TrapCode::BadConversionToInteger,
            ) => Outcome::Trapped(TrapKind::Arithmetic),
            Some(TrapCode::StackOverflow) => Outcome::Trapped(TrapKind::StackOverflow),
            Some(TrapCode::IndirectCallToNull | TrapCode::BadSignature) => {
                Outcome::Trapped(TrapKind::BadIndirectCall)
            }
            _ => Outcome::Trapped(TrapKind::Other),
        }
    }

    /// The container's linear memory as it is now (empty if it has none).
    /// For the PD's wipe check and for tests; containers' secrets live here.
    pub fn memory(&self) -> &[u8] {
        match self.memory {
            Some(m) => m.data(&self.store),
            None => &[],
        }
    }

    /// Zeroes the container's linear memory and checks it reads back as
    /// zeros; the number of bytes wiped, or `None` if the check failed.
    pub fn wipe(&mut self) -> Option<u64> {
        let Some(m) = self.memory else { return Some(0) };
        let data = m.data_mut(&mut self.store);
        data.fill(0);
        let len = data.len() as u64;
        m.data(&self.store).iter().all(|b| *b == 0).then_some(len)
    }

    /// Log lines the container wrote beyond [`MAX_LOG_LINES`] (not printed).
    pub fn suppressed_log_lines(&self) -> u32 {
        self.store.data().suppressed_logs
    }

    /// Drops the instance and its store (releasing its memory) and hands the
    /// platform back. Call [`Loaded::wipe`] first: the allocator does not
    /// zero what it frees.
    pub fn release(self) -> P {
        self.store.into_data().platform
    }
}
