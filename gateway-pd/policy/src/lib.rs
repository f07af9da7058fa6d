//! Gateway policy compiler: the host side of the gateway's policy.
//!
//! A policy file (TOML) names guest applications and what each may do on
//! the vehicle's CAN buses (ids, DBC signal values, rates, vehicle-state
//! guards) and on the network (L4 ports). This crate loads DBC files
//! ([`dbc`]), checks the policy against them with located diagnostics
//! ([`mod@compile`], [`diag`]), produces the compiled form the gateway PD loads
//! ([`gateway_core::Policy::to_bytes`]) and explains a compiled policy in
//! words ([`explain`]). The format is documented in `docs/gateway.md`.
//!
//! Design rules: every error names the file, line and column and, where
//! one is clear, the fix; nothing here runs in the PD, so std is fine; the
//! engine semantics live only in `gateway-core`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod compile;
pub mod dbc;
pub mod diag;
pub mod explain;
pub mod replay;

pub use compile::{compile, Compiled};
pub use dbc::Database;
pub use diag::{Diag, Severity};
