//! `bulkhead-sdf`: the system description (`system.xml`) of a Bulkhead
//! system — the Microkit 2.3 SDF for x86_64 (`x86_64_generic`,
//! `x86_64_generic_vtx`).
//!
//! - [`parse`] reads a file into a typed [`System`] and checks every rule,
//!   collecting *all* problems as located [`Diagnostic`]s;
//! - [`report`] describes a checked system: per PD, and the information
//!   flow between every pair of PDs (text, JSON, Graphviz);
//! - [`images`] checks program images against the system (`--search-path`);
//! - [`rings`] applies the typed-channel rule (`bulkhead_channel::rules`)
//!   inside [`parse`] and lists each ring for the report.
//!
//! Design rules: this crate never panics on any input (it is fuzzed);
//! every error names file, line, column and element, says what is wrong and,
//! where it can, what would fix it; a [`System`] is only handed out when
//! every rule passed, so code built on it (the boot-plan compiler) can rely
//! on its invariants (see [`model`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod diag;
pub mod images;
pub mod model;
mod parse;
pub mod report;
pub mod rings;
mod rules;

pub use diag::{Diagnostic, Severity};
pub use model::*;
pub use parse::parse_number;

/// Parses and checks a system description.
///
/// `path` is only used to label diagnostics. Returns the system (with its
/// warnings in [`System::warnings`]) when there is no error, else every
/// error and warning found, sorted by position.
pub fn parse(path: &str, text: &str) -> Result<System, Vec<Diagnostic>> {
    let (parsed, mut diags) = parse::parse(path, text);
    let Some(mut parsed) = parsed else {
        return Err(diags);
    };
    // Rules on a partly read model would mostly repeat what the parser
    // said; they still run, so one run shows everything that is wrong.
    diags.extend(rules::check(&mut parsed));
    // Typed channels: who may map a ring's regions, and how (by names
    // only, so it is safe on a partly read model too).
    diags.extend(rings::check(&parsed.system));
    diags.sort_by_key(|d| (d.line, d.column));
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    let mut system = parsed.system;
    system.warnings = diags;
    Ok(system)
}
