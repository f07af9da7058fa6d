//! The host API containers import (module `bulkhead`): the ABI the guest SDK's
//! `ffi` module declares.
//!
//! | function | type | capability |
//! |---|---|---|
//! | `log(ptr, len)` | `(i32, i32) -> ()` | `log` |
//! | `report(passed, ptr, len)` | `(i32, i32, i32) -> ()` | `report` |
//! | `scratch_size()` | `() -> i64` | `scratch` |
//! | `scratch_read(offset, ptr, len)` | `(i64, i32, i32) -> ()` | `scratch` |
//! | `scratch_write(offset, ptr, len)` | `(i64, i32, i32) -> ()` | `scratch` |
//! | `pci_read32(bus, device, function, offset)` | `(i32, i32, i32, i32) -> i32` | `pci-config` |
//! | `timer_ns()` | `() -> i64` | `timer` |
//! | `rtc()` | `() -> i64` (packed, see [`crate::RtcTime::pack`]) | `rtc` |
//! | `serial_loopback(byte)` | `(i32) -> i32` (-1: nothing came back) | `serial` |
//!
//! Design rules: a module importing anything else is refused at load with
//! [`LoadFailure::UnknownImport`] (or `ImportTypeMismatch`), so there are no
//! unresolved imports at run time. Every function first checks that the
//! manifest declared its capability (verification already checked the PD
//! holds it) and that the wall-clock budget is not spent, then every
//! argument; any failure traps the container with a [`HostStop`], never
//! the PD.

use alloc::string::String;

use firmware_core::report::{LoadFailure, TrapKind, MAX_DETAIL};
use firmware_core::{Capability, CapabilitySet};
use wasmi::{Caller, Engine, Error, ExternType, Linker, Memory, Module, StoreLimits, ValType};

use crate::{Platform, MAX_LOG_LINES};

/// The import module name of the host API.
pub const HOST_MODULE: &str = "bulkhead";

/// Longest log line or report detail a container may pass, in bytes; longer
/// is a bad argument (what is printed is cut to [`MAX_DETAIL`]).
const MAX_TEXT_ARG: u32 = 4096;

use ValType::{I32, I64};

/// Name, capability, parameter and result types of every host function.
const FUNCS: &[(&str, Capability, &[ValType], &[ValType])] = &[
    ("log", Capability::Log, &[I32, I32], &[]),
    ("report", Capability::Report, &[I32, I32, I32], &[]),
    ("scratch_size", Capability::Scratch, &[], &[I64]),
    ("scratch_read", Capability::Scratch, &[I64, I32, I32], &[]),
    ("scratch_write", Capability::Scratch, &[I64, I32, I32], &[]),
    (
        "pci_read32",
        Capability::PciConfig,
        &[I32, I32, I32, I32],
        &[I32],
    ),
    ("timer_ns", Capability::Timer, &[], &[I64]),
    ("rtc", Capability::Rtc, &[], &[I64]),
    ("serial_loopback", Capability::Serial, &[I32], &[I32]),
];

/// Why a host function stopped the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostStop {
    /// A trap with its kind.
    Trap(TrapKind),
    /// The wall-clock budget ran out during or before a host call.
    WallClock,
}

impl core::fmt::Display for HostStop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HostStop::Trap(k) => write!(f, "container trapped in a host call: {k}"),
            HostStop::WallClock => f.write_str("wall-clock budget exceeded"),
        }
    }
}

impl wasmi::errors::HostError for HostStop {}

/// The store data of one container: its grants, its limits, what it
/// reported, and the platform while it runs.
pub struct HostState<P> {
    pub(crate) name: String,
    pub(crate) granted: CapabilitySet,
    pub(crate) limits: StoreLimits,
    pub(crate) platform: P,
    pub(crate) result: Option<(bool, String)>,
    pub(crate) deadline_ns: u64,
    pub(crate) log_lines: u32,
    pub(crate) suppressed_logs: u32,
}

impl<P> HostState<P> {
    pub(crate) fn new(
        name: String,
        granted: CapabilitySet,
        limits: StoreLimits,
        platform: P,
    ) -> Self {
        HostState {
            name,
            granted,
            limits,
            platform,
            result: None,
            deadline_ns: u64::MAX,
            log_lines: 0,
            suppressed_logs: 0,
        }
    }
}

/// Refuses modules that import anything but the host API's functions with
/// their exact types.
pub(crate) fn check_imports(module: &Module) -> Result<(), LoadFailure> {
    for import in module.imports() {
        let ExternType::Func(ft) = import.ty() else {
            return Err(LoadFailure::UnknownImport);
        };
        if import.module() != HOST_MODULE {
            return Err(LoadFailure::UnknownImport);
        }
        let Some((_, _, params, results)) = FUNCS.iter().find(|f| f.0 == import.name()) else {
            return Err(LoadFailure::UnknownImport);
        };
        if ft.params() != *params || ft.results() != *results {
            return Err(LoadFailure::ImportTypeMismatch);
        }
    }
    Ok(())
}

fn stop(k: TrapKind) -> Error {
    Error::host(HostStop::Trap(k))
}

/// The capability and wall-clock check every host function starts with.
fn enter<P: Platform>(caller: &mut Caller<'_, HostState<P>>, cap: Capability) -> Result<(), Error> {
    let s = caller.data_mut();
    if !s.granted.contains(cap) {
        return Err(stop(TrapKind::CapabilityDenied(cap)));
    }
    if s.platform.monotonic_ns() > s.deadline_ns {
        return Err(Error::host(HostStop::WallClock));
    }
    Ok(())
}

fn memory<P>(caller: &Caller<'_, HostState<P>>) -> Result<Memory, Error> {
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| stop(TrapKind::BadHostArgument))
}

/// `ptr..ptr+len` as a checked range.
fn range(ptr: i32, len: i32, max: u32) -> Result<core::ops::Range<usize>, Error> {
    let (ptr, len) = (ptr as u32, len as u32);
    if len > max {
        return Err(stop(TrapKind::BadHostArgument));
    }
    let end = ptr
        .checked_add(len)
        .ok_or_else(|| stop(TrapKind::BadHostArgument))?;
    Ok(ptr as usize..end as usize)
}

/// The guest's text at `ptr..ptr+len`, cut to [`MAX_DETAIL`] bytes on a
/// character boundary, invalid UTF-8 replaced.
fn guest_text<P>(caller: &Caller<'_, HostState<P>>, ptr: i32, len: i32) -> Result<String, Error> {
    let mem = memory(caller)?;
    let r = range(ptr, len, MAX_TEXT_ARG)?;
    let bytes = mem
        .data(caller)
        .get(r)
        .ok_or_else(|| stop(TrapKind::BadHostArgument))?;
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    Ok(s)
}

/// Scratch range `offset..offset+len`, checked against the scratch size.
fn scratch_range(offset: i64, len: usize, size: usize) -> Result<core::ops::Range<usize>, Error> {
    let off = usize::try_from(offset).map_err(|_| stop(TrapKind::BadHostArgument))?;
    let end = off
        .checked_add(len)
        .filter(|e| *e <= size)
        .ok_or_else(|| stop(TrapKind::BadHostArgument))?;
    Ok(off..end)
}

/// The linker with every host function defined. A module only reaches the
/// ones it imports, and [`check_imports`] has checked those.
pub(crate) fn linker<P: Platform + 'static>(engine: &Engine) -> Linker<HostState<P>> {
    let mut l = Linker::<HostState<P>>::new(engine);
    // Each name is defined once, so defining cannot fail; a failure would
    // leave the function undefined and the import refused at instantiation.
    let _ = l.func_wrap(
        HOST_MODULE,
        "log",
        |mut c: Caller<'_, HostState<P>>, ptr: i32, len: i32| -> Result<(), Error> {
            enter(&mut c, Capability::Log)?;
            let line = guest_text(&c, ptr, len)?;
            let s = c.data_mut();
            if s.log_lines < MAX_LOG_LINES {
                s.log_lines += 1;
                s.platform.log(&s.name, &line);
            } else {
                s.suppressed_logs = s.suppressed_logs.saturating_add(1);
            }
            Ok(())
        },
    );
    let _ = l.func_wrap(
        HOST_MODULE,
        "report",
        |mut c: Caller<'_, HostState<P>>, passed: i32, ptr: i32, len: i32| -> Result<(), Error> {
            enter(&mut c, Capability::Report)?;
            let passed = match passed {
                0 => false,
                1 => true,
                _ => return Err(stop(TrapKind::BadHostArgument)),
            };
            let detail = guest_text(&c, ptr, len)?;
            c.data_mut().result = Some((passed, detail));
            Ok(())
        },
    );
    let _ = l.func_wrap(
        HOST_MODULE,
        "scratch_size",
        |mut c: Caller<'_, HostState<P>>| -> Result<i64, Error> {
            enter(&mut c, Capability::Scratch)?;
            Ok(c.data_mut().platform.scratch().len() as i64)
        },
    );
    let _ = l.func_wrap(
        HOST_MODULE,
        "scratch_read",
        |mut c: Caller<'_, HostState<P>>, offset: i64, ptr: i32, len: i32| -> Result<(), Error> {
            enter(&mut c, Capability::Scratch)?;
            let mem = memory(&c)?;
            let dst = range(ptr, len, u32::MAX)?;
            let (data, state) = mem.data_and_store_mut(&mut c);
            let scratch = state.platform.scratch();
            let src = scratch_range(offset, dst.len(), scratch.len())?;
            let dst = data
                .get_mut(dst)
                .ok_or_else(|| stop(TrapKind::BadHostArgument))?;
            dst.copy_from_slice(&scratch[src]);
            Ok(())
        },
    );
    let _ = l.func_wrap(
        HOST_MODULE,
        "scratch_write",
        |mut c: Caller<'_, HostState<P>>, offset: i64, ptr: i32, len: i32| -> Result<(), Error> {
            enter(&mut c, Capability::Scratch)?;
            let mem = memory(&c)?;
            let src = range(ptr, len, u32::MAX)?;
            let (data, state) = mem.data_and_store_mut(&mut c);
            let scratch = state.platform.scratch();
            let dst = scratch_range(offset, src.len(), scratch.len())?;
            let src = data
                .get(src)
                .ok_or_else(|| stop(TrapKind::BadHostArgument))?;
            scratch[dst].copy_from_slice(src);
            Ok(())
        },
    );
    let _ = l.func_wrap(
        HOST_MODULE,
        "pci_read32",
        |mut c: Caller<'_, HostState<P>>,
         bus: i32,
         device: i32,
         function: i32,
         offset: i32|
         -> Result<i32, Error> {
            enter(&mut c, Capability::PciConfig)?;
            let ok = (0..256).contains(&bus)
                && (0..32).contains(&device)
                && (0..8).contains(&function)
                && (0..256).contains(&offset)
                && offset % 4 == 0;
            if !ok {
                return Err(stop(TrapKind::BadHostArgument));
            }
            let v = c.data_mut().platform.pci_config_read32(
                bus as u8,
                device as u8,
                function as u8,
                offset as u8,
            );
            Ok(v as i32)
        },
    );
    let _ = l.func_wrap(
        HOST_MODULE,
        "timer_ns",
        |mut c: Caller<'_, HostState<P>>| -> Result<i64, Error> {
            enter(&mut c, Capability::Timer)?;
            Ok(c.data_mut().platform.monotonic_ns() as i64)
        },
    );
    let _ = l.func_wrap(
        HOST_MODULE,
        "rtc",
        |mut c: Caller<'_, HostState<P>>| -> Result<i64, Error> {
            enter(&mut c, Capability::Rtc)?;
            Ok(c.data_mut().platform.rtc().pack() as i64)
        },
    );
    let _ = l.func_wrap(
        HOST_MODULE,
        "serial_loopback",
        |mut c: Caller<'_, HostState<P>>, byte: i32| -> Result<i32, Error> {
            enter(&mut c, Capability::Serial)?;
            let byte = u8::try_from(byte).map_err(|_| stop(TrapKind::BadHostArgument))?;
            Ok(c.data_mut()
                .platform
                .serial_loopback(byte)
                .map_or(-1, i32::from))
        },
    );
    l
}
