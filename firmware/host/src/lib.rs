//! Host-side tooling for firmware containers, used by `bulkhead container`:
//! manifest TOML to [`firmware_core::Manifest`] (hashing the module and the
//! change-prohibited regions), key files, the platform's trust
//! configuration to a [`firmware_core::Policy`], and `inspect`'s words.
//!
//! Design rules: std is fine here (host only), but no trust decision is
//! made here: verification is `firmware_core::verify`, the PD's own code.
//! Every error names the file and the field at fault and what would fix it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod describe;
pub mod keys;
pub mod manifest_toml;
pub mod trust;

use std::fmt;

/// An error a person can act on: which file, which field, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Shorthand for this crate's results.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex, or `None` if `s` is not even-length hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}
