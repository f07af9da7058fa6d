//! Program image checks.
