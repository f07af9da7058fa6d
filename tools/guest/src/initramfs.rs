//! The guest's initramfs layout and its `/init`.
//!
//! ```text
//! bin/busybox          the static busybox (0755)
//! bin/sh -> busybox    so /init has a shell; /init installs every other
//!                      applet link at boot (`busybox --install -s`)
//! sbin usr/bin usr/sbin   where those links go
//! dev/console (c 5 1), dev/null (c 1 3)   before devtmpfs is mounted
//! proc sys tmp         mount points, /tmp sticky and world-writable
//! init                 the script below (0755)
//! scripts/NN-name      the test scripts, run in order (0755)
//! ```
//!
//! `/init` prints [`READY_MARKER`] once the kernel filesystems are mounted,
//! each script between `BULKHEAD_GUEST_SCRIPT <name>` and
//! `BULKHEAD_GUEST_SCRIPT_EXIT <name> <status>` lines, then
//! [`DONE_MARKER`], and then offers a shell on the console (what is typed
//! on the platform's console reaches it through the VMM).
//!
//! Design rules: busybox must be a static x86_64 executable (an initramfs
//! has no C library, so a dynamic one fails only at boot, far from the
//! cause); script names are plain file names, so `/scripts/NN-name` is
//! always one path component and sorts in the order given.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::cpio::{Archive, CpioError};

/// Printed on the console once /proc, /sys and /dev are mounted.
pub const READY_MARKER: &str = "BULKHEAD_GUEST_READY";
/// Printed once every script has run.
pub const DONE_MARKER: &str = "BULKHEAD_GUEST_DONE";
/// Most scripts (their two-digit order prefix).
pub const MAX_SCRIPTS: usize = 99;

/// A test script to run at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// File name (letters, digits, `.`, `_`, `-`), stored as
    /// `/scripts/NN-name`.
    pub name: String,
    /// Its text; run with busybox `sh`.
    pub body: Vec<u8>,
}

/// Why an initramfs cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestError {
    /// The busybox given is not a static x86_64 ELF executable.
    Busybox(String),
    /// A script name that is not a plain file name.
    ScriptName(String),
    /// Two scripts with the same name.
    DuplicateScript(String),
    /// More than [`MAX_SCRIPTS`] scripts.
    TooManyScripts(usize),
    /// The archive refused an entry (a bug in the layout, or a file too large).
    Cpio(CpioError),
    /// An input file cannot be read.
    Io {
        /// Which file, and what it is for.
        what: String,
        /// The system's reason.
        error: String,
    },
    /// The busybox package given cannot be read.
    Deb {
        /// The package's path.
        path: String,
        /// Which layer is wrong.
        error: String,
    },
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::Busybox(why) => write!(
                f,
                "busybox: {why}; give the `busybox` binary of Debian's busybox-static package (or the .deb itself)"
            ),
            GuestError::ScriptName(n) => write!(
                f,
                "script name {n:?}: use a plain file name of letters, digits, `.`, `_` and `-` (no `/`, not starting with `.`)"
            ),
            GuestError::DuplicateScript(n) => {
                write!(f, "script name {n:?} is given twice; rename one of them")
            }
            GuestError::TooManyScripts(n) => {
                write!(f, "{n} scripts given, at most {MAX_SCRIPTS} fit the NN- order prefix")
            }
            GuestError::Cpio(e) => write!(f, "{e}"),
            GuestError::Io { what, error } => write!(f, "cannot read {what}: {error}"),
            GuestError::Deb { path, error } => write!(
                f,
                "{path}: {error}; give Debian's busybox-static package or the busybox binary"
            ),
        }
    }
}

impl std::error::Error for GuestError {}

impl From<CpioError> for GuestError {
    fn from(e: CpioError) -> Self {
        GuestError::Cpio(e)
    }
}

/// Checks that `elf` is a static x86_64 ELF executable.
pub fn check_busybox(elf: &[u8]) -> Result<(), GuestError> {
    let bad = |why: &str| Err(GuestError::Busybox(why.to_string()));
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return bad("not an ELF file");
    }
    if elf[4] != 2 || elf[5] != 1 {
        return bad("not a 64-bit little-endian ELF file");
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    if u16_at(18) != 62 {
        return bad("not built for x86_64");
    }
    if !matches!(u16_at(16), 2 | 3) {
        return bad("not an executable");
    }
    let phoff = u64_at(32).unwrap_or(0) as usize;
    let (phentsize, phnum) = (u16_at(54) as usize, u16_at(56) as usize);
    if phentsize < 56 || phnum == 0 {
        return bad("has no program headers");
    }
    for i in 0..phnum {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        let Some(ph) = elf.get(at..at.saturating_add(4)) else {
            return bad("program headers lie outside the file (truncated?)");
        };
        // PT_INTERP: it wants a dynamic loader the initramfs does not have.
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 3 {
            return bad("dynamically linked (it names an interpreter)");
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), GuestError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(GuestError::ScriptName(name.to_string()))
    }
}

/// The `/init` script.
pub fn init_script() -> String {
    format!(
        r#"#!/bin/sh
# Bulkhead guest /init (written by `bulkhead guest`): mount the kernel
# filesystems, run /scripts/* in order, then a shell on the console.
/bin/busybox mount -t proc proc /proc
# --install reads /proc/self/exe, so it comes after /proc.
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo {READY_MARKER}
for s in /scripts/*; do
    [ -f "$s" ] || continue
    n=${{s#/scripts/}}
    echo "BULKHEAD_GUEST_SCRIPT $n"
    /bin/sh "$s"
    echo "BULKHEAD_GUEST_SCRIPT_EXIT $n $?"
done
echo {DONE_MARKER}
# A shell on the console, with it as controlling terminal; a new one when
# it exits (init must never exit: that panics the kernel).
while :; do setsid cttyhack /bin/sh; sleep 1; done
"#
    )
}

/// The path a script is stored at, e.g. `scripts/01-smoke.sh`.
pub fn script_path(index: usize, name: &str) -> String {
    format!("scripts/{:02}-{name}", index + 1)
}

/// Builds the initramfs (cpio newc bytes) from a static busybox and the
/// test scripts, which run in the order given.
pub fn build(busybox: &[u8], scripts: &[Script]) -> Result<Vec<u8>, GuestError> {
    check_busybox(busybox)?;
    if scripts.len() > MAX_SCRIPTS {
        return Err(GuestError::TooManyScripts(scripts.len()));
    }
    for (i, s) in scripts.iter().enumerate() {
        check_name(&s.name)?;
        if scripts[..i].iter().any(|o| o.name == s.name) {
            return Err(GuestError::DuplicateScript(s.name.clone()));
        }
    }
    let mut a = Archive::new();
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "scripts",
    ] {
        a.dir(d, 0o755)?;
    }
    a.dir("tmp", 0o1777)?;
    a.file("bin/busybox", 0o755, busybox)?;
    a.symlink("bin/sh", "busybox")?;
    a.char_dev("dev/console", 0o600, 5, 1)?;
    a.char_dev("dev/null", 0o666, 1, 3)?;
    a.file("init", 0o755, init_script().as_bytes())?;
    for (i, s) in scripts.iter().enumerate() {
        a.file(&script_path(i, &s.name), 0o755, &s.body)?;
    }
    Ok(a.to_bytes())
}

/// Where busybox is read from: the binary itself, or Debian's
/// `busybox-static` package holding it as `bin/busybox` (recognised by its
/// `ar` magic).
pub fn busybox_from_file(path: &Path) -> Result<Vec<u8>, GuestError> {
    let bytes = std::fs::read(path).map_err(|e| GuestError::Io {
        what: format!("busybox {}", path.display()),
        error: e.to_string(),
    })?;
    if bytes.starts_with(b"!<arch>\n") {
        crate::deb::file_from_deb(&bytes, "bin/busybox").map_err(|error| GuestError::Deb {
            path: path.display().to_string(),
            error,
        })
    } else {
        Ok(bytes)
    }
}

/// Reads a script file; its name in the guest is the file's name.
pub fn script_from_file(path: &Path) -> Result<Script, GuestError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| GuestError::ScriptName(path.display().to_string()))?
        .to_string();
    let body = std::fs::read(path).map_err(|e| GuestError::Io {
        what: format!("script {}", path.display()),
        error: e.to_string(),
    })?;
    Ok(Script { name, body })
}

/// [`build`] from files: busybox (binary or .deb) and script paths.
pub fn build_from_files(busybox: &Path, scripts: &[PathBuf]) -> Result<Vec<u8>, GuestError> {
    let bb = busybox_from_file(busybox)?;
    let scripts = scripts
        .iter()
        .map(|p| script_from_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    build(&bb, &scripts)
}

#[cfg(test)]
mod tests;
